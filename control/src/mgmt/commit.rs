//! Commits to the running daemon: the checks first (`prepare`), then every part of the
//! board (`apply`); for the chassis, the same on every board the configuration names
//! (`crate::chassis`); `save` to the file.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{Daemon, Reply};
use crate::chassis::{self, Answer, Phase};
use crate::config::{Config, KeySource, Secret};
use crate::error::ConfigError;
use crate::natlog::NatLogger;
use ha_sync::wire::Key;

/// The receiving side of chassis commits (`crate::chassis`).
#[derive(Default)]
pub struct Chassis {
    listener: Option<std::net::TcpListener>,
    last_bind: Option<std::time::Instant>,
    replay: chassis::Replay,
    pending: Option<(u64, Prepared, std::time::Instant)>,
}

/// A configuration checked against the running board, ready to apply.
pub struct Prepared {
    text: String,
    config: Config,
    secret: Option<Secret>,
    ec: dataplane::config::EngineConfig,
    ha: Option<ha_sync::node::Settings>,
    metrics: Option<Option<crate::metrics::Listener>>,
    /// The NAT logger of the new settings, if they changed (None inside: no collector).
    logger: Option<Option<NatLogger>>,
}

/// How long the first phase of a chassis commit holds its configuration.
const PENDING_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl Daemon {
    /// What the running board cannot take from `new` without a restart: its interfaces,
    /// how it moves packets, its cores, its HA channel and pairing.
    pub(super) fn unchangeable(&self, new: &Config, new_ha: &Option<ha_sync::node::Settings>) -> Option<String> {
        let slot = self.slot;
        let (Some(a), Some(b)) = (self.running.slots.get(&slot), new.slots.get(&slot)) else {
            return Some(format!("slot {slot} is no longer defined"));
        };
        let fields = [
            (a.softwire_if != b.softwire_if, "interface softwire"),
            (a.internet_if != b.internet_if, "interface internet"),
            (a.packet_io != b.packet_io, "packet-io"),
            (a.poll != b.poll, "packet-poll"),
            (a.cores != b.cores, "worker-cores"),
            (a.ha_address != b.ha_address, "ha-address"),
            (a.route_table != b.route_table, "route-table"),
        ];
        if let Some((_, what)) = fields.iter().find(|(changed, _)| *changed) {
            return Some(format!("slot {slot}: changing `{what}` needs a restart of the board"));
        }
        let old_plan = crate::plan::plan(&self.running);
        let old_ha = crate::ha::settings(&self.running, &old_plan, slot, self.secret.as_ref()).ok().flatten();
        match (old_ha, new_ha) {
            (Some(old), Some(new)) => ha_sync::protocol::unchangeable(&old, new),
            (None, None) => None,
            _ => Some(format!(
                "slot {slot}: pairing it with a peer board, or unpairing it, needs a restart of the board"
            )),
        }
    }

    /// Checks a complete new configuration against the running board as a whole
    /// (syntax, semantics, what cannot change while running) and binds a moved metrics
    /// listener; nothing changes yet.
    pub(super) fn prepare(&self, text: &str) -> Result<Prepared, String> {
        let lines = |errors: Vec<ConfigError>| {
            let mut o = String::new();
            for ConfigError { line, column, message } in errors {
                let _ = writeln!(o, "{line}:{column}: {message}");
            }
            o
        };
        let (mut config, positions) = crate::parse::parse(text).map_err(lines)?;
        // `******` keeps the running key; a key file or credential is read now.
        let credentials = crate::secret::credentials_directory();
        let secret = crate::secret::resolve(&mut config, &positions, Some(&self.running), credentials.as_deref())
            .map_err(|e| lines(vec![e]))?;
        let plan = crate::plan::plan(&config);
        let Some(ec) = crate::plan::engine_config(&config, &plan, self.slot) else {
            return Err(format!("slot {} would serve no DS-Lite instance\n", self.slot));
        };
        let ha = crate::ha::settings(&config, &plan, self.slot, secret.as_ref()).map_err(|e| format!("{e}\n"))?;
        if let Some(why) = self.unchangeable(&config, &ha) {
            return Err(format!("{why}; nothing was applied\n"));
        }
        // The new listener is bound before anything changes: an address in use refuses
        // the commit.
        let (want, running) = (config.metrics_of(self.slot), self.running.metrics_of(self.slot));
        let metrics = match want {
            Some(addr) if want != running => match crate::metrics::Listener::start(addr, self.metrics_body.clone()) {
                Ok(l) => Some(Some(l)),
                Err(e) => return Err(format!("metrics http {addr}: {e}; nothing was applied\n")),
            },
            None if running.is_some() => Some(None),
            _ => None,
        };
        // The collectors' sockets too (a source address not on the host refuses it).
        let logger = match config.nat_log != self.running.nat_log || config.sysname != self.running.sysname {
            false => None,
            true if config.nat_log.hosts.is_empty() => Some(None),
            true => {
                let host = config.sysname.clone().unwrap_or_else(|| "aftr".into());
                let running = self.logger.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|l| l.stats.clone());
                match NatLogger::counting_into(&config.nat_log, &host, self.slot, running.unwrap_or_default()) {
                    Ok(l) => Some(Some(l)),
                    Err(e) => return Err(format!("nat log: {e}; nothing was applied\n")),
                }
            }
        };
        Ok(Prepared { text: text.to_string(), config, secret, ec, ha, metrics, logger })
    }

    /// Applies a prepared configuration to every part of the running board: the engines
    /// (every session the new settings allow is kept; counters go on), the XDP programs
    /// and ARP/ND answers, the hot-backup timers and delay-time, NAT logging and metrics.
    pub(super) fn apply(&mut self, p: Prepared) -> Reply {
        let Prepared { config, secret, ec, ha, metrics, logger, .. } = p;
        let carried = match self.board.reconfigure(ec) {
            Ok(c) => c,
            Err(e) => return Reply::Error(format!("{e}\n")),
        };
        if let (Some(node), Some(s)) = (&self.ha, ha)
            && let Err(e) = node.reconfigure(s)
        {
            tracing::warn!("slot {}: hot backup settings: {e}", self.slot);
        }
        if let Some(mut new) = logger {
            let mut running = self.logger.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(n), Some(old)) = (new.as_mut(), running.as_ref()) {
                n.continue_from(old);
            }
            *running = new;
        }
        if let Some(m) = metrics {
            // The old listener stops as it is dropped.
            self.metrics = m;
        }
        self.running = config;
        self.secret = secret;
        tracing::info!(
            "slot {}: configuration committed; {} sessions kept, {} ended",
            self.slot,
            carried.kept,
            carried.ended
        );
        Reply::Ok(format!("committed; {} sessions kept, {} ended\n", carried.kept, carried.ended))
    }

    /// Applies a configuration to this board only (SIGHUP, `commit local`, the second
    /// phase of a chassis commit); nothing changes on error.
    pub fn commit_local(&mut self, text: &str) -> Reply {
        match self.prepare(text) {
            Ok(p) => self.apply(p),
            Err(e) => Reply::Error(e),
        }
    }

    /// The key that signs chassis commits, from the running secret (both boards hold
    /// it while their configurations agree), else from the new configuration's.
    pub(super) fn chassis_key(&self, new: Option<&Secret>) -> Option<Key> {
        self.secret.as_ref().or(new).map(chassis::key)
    }

    /// A commit for the chassis (`crate::chassis`): checked here, then by every other
    /// board the new configuration names (its `ha-address`); only if every board that
    /// answers accepts is it applied here and there. The answer lists each board.
    pub fn commit(&mut self, text: &str) -> Reply {
        let prepared = match self.prepare(text) {
            Ok(p) => p,
            Err(e) => return Reply::Error(e),
        };
        let targets: Vec<(u32, std::net::SocketAddr)> = prepared
            .config
            .slots
            .iter()
            .filter(|(id, _)| **id != self.slot)
            .filter_map(|(id, s)| s.ha_address.map(|a| (*id, a)))
            .collect();
        let Some(key) = self.chassis_key(prepared.secret.as_ref()).filter(|_| !targets.is_empty()) else {
            return self.apply(prepared);
        };
        let nonce = chassis::nonce();
        let mut report = String::new();
        let mut checked = Vec::new();
        let mut refused = false;
        for (slot, addr) in targets {
            match chassis::ask(addr, &key, Phase::Prepare, nonce, text) {
                Answer::Said(true, _) => checked.push((slot, addr)),
                Answer::Said(false, why) => {
                    refused = true;
                    let _ = write!(report, "slot {slot}: refused: {why}");
                    if !why.ends_with('\n') {
                        report.push('\n');
                    }
                }
                Answer::Unreachable(e) => {
                    let _ = writeln!(report, "slot {slot} ({addr}): not reached ({e}); it keeps its configuration");
                }
            }
        }
        if refused {
            return Reply::Error(format!("{report}nothing was applied on any board\n"));
        }
        let here = self.apply(prepared);
        let Reply::Ok(done) = here else { return here };
        let mut o = format!("slot {}: {done}", self.slot);
        for (slot, addr) in checked {
            match chassis::ask(addr, &key, Phase::Apply, nonce, text) {
                Answer::Said(true, t) => {
                    let _ = write!(o, "slot {slot}: {t}");
                }
                Answer::Said(false, why) => {
                    let _ = write!(o, "slot {slot}: NOT applied: {why}");
                }
                Answer::Unreachable(e) => {
                    let _ = writeln!(o, "slot {slot}: NOT applied, not reached ({e})");
                }
            }
        }
        o.push_str(&report);
        Reply::Ok(o)
    }

    /// Binds the chassis listener on this slot's `ha-address` (TCP, the same port) when
    /// it is not bound yet (retried every second: the address may come later), then
    /// answers one waiting request; forgets a prepared configuration never applied.
    pub fn poll_chassis(&mut self) {
        // A first phase whose second never came lets its configuration (and a metrics
        // listener it bound) go.
        if self.chassis.pending.as_ref().is_some_and(|(_, _, at)| at.elapsed() >= PENDING_FOR) {
            self.chassis.pending = None;
        }
        let addr = self.running.slots.get(&self.slot).and_then(|s| s.ha_address);
        if self.chassis.listener.is_none()
            && let Some(addr) = addr
            && self.chassis.last_bind.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1))
        {
            self.chassis.last_bind = Some(std::time::Instant::now());
            if let Ok(l) = std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
                self.chassis.listener = Some(l);
            }
        }
        let Some(l) = &self.chassis.listener else { return };
        let Ok((mut s, _)) = l.accept() else { return };
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let mut req = Vec::new();
        if Read::by_ref(&mut s).take(1 << 20).read_to_end(&mut req).is_err() {
            return;
        }
        let answer = self.chassis_request(&req);
        let _ = s.write_all(&answer);
    }

    /// Answers one chassis-commit request from another board (see `crate::chassis`).
    pub fn chassis_request(&mut self, bytes: &[u8]) -> Vec<u8> {
        let Some(key) = self.chassis_key(None) else {
            return b"error -\nthis board has no service-ha preshared-key\n".to_vec();
        };
        let r = match self.chassis.replay.check(&key, bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("slot {}: chassis commit refused: {e}", self.slot);
                return chassis::reply(&key, 0, false, &format!("{e}\n"));
            }
        };
        match r.phase {
            Phase::Prepare => match self.prepare(&r.text) {
                Ok(p) => {
                    self.chassis.pending = Some((r.nonce, p, std::time::Instant::now()));
                    chassis::reply(&key, r.nonce, true, "checked\n")
                }
                Err(e) => chassis::reply(&key, r.nonce, false, &e),
            },
            Phase::Apply => match self.chassis.pending.take() {
                Some((n, p, at)) if n == r.nonce && p.text == r.text && at.elapsed() < PENDING_FOR => {
                    match self.apply(p) {
                        Reply::Ok(t) => {
                            tracing::info!("slot {}: chassis commit applied: {}", self.slot, t.trim_end());
                            chassis::reply(&key, r.nonce, true, &t)
                        }
                        Reply::Error(t) => chassis::reply(&key, r.nonce, false, &t),
                    }
                }
                _ => chassis::reply(&key, r.nonce, false, "no configuration was prepared for this commit\n"),
            },
        }
    }

    /// `save`: writes the running configuration to the daemon's file, atomically; the
    /// previous file is kept beside it as `FILE.bak`. An inline key is written in clear
    /// (the file must start the board with it), so the file is then its owner's alone.
    pub(super) fn save(&self) -> Reply {
        let secret = matches!(self.running.ha.key, Some(KeySource::Inline(_)));
        match write_keeping_previous(&self.file, &crate::display::render_in_clear(&self.running), secret) {
            Ok(bak) => Reply::Ok(format!(
                "Info: the running configuration is saved to {} (the previous file is {})\n",
                self.file.display(),
                bak.display()
            )),
            Err(e) => Reply::Error(format!("Error: save to {}: {e}; the file is unchanged\n", self.file.display())),
        }
    }
}

/// Writes `text` to `path` so that a reader (or a crash) sees the old file or the new
/// one, never a part: a temporary file in the same directory, synced, renamed over it,
/// the directory synced. The old file is first copied to `path.bak`, which is returned.
/// With `secret`, the new file is readable by its owner only.
fn write_keeping_previous(path: &Path, text: &str, secret: bool) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "aftr.conf".into());
    let bak = dir.join(format!("{name}.bak"));
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        // Nobody else reads it while it is written; then it gets the old file's mode.
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o644);
        f.set_permissions(std::fs::Permissions::from_mode(if secret { mode & 0o700 } else { mode }))?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if path.exists() {
        std::fs::copy(path, &bak)?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(bak)
}
