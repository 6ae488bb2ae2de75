//! The management interface of a running `aftrd`: a Unix socket (mode 0600) that
//! `aftrctl` talks to. One request per connection: the client writes a command line
//! (and, for `commit`, the whole configuration after it) and closes its side; the
//! daemon answers `ok` or `error` on the first line, then the text.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dataplane::counters::Counter;

use crate::board::{Board, SessionFilter};
use crate::chassis::{self, Answer, Phase};
use crate::config::Config;
use crate::error::ConfigError;
use crate::natlog::NatLogger;
use ha_sync::wire::Key;

/// Everything the daemon serves.
pub struct Daemon {
    pub slot: u32,
    /// The configuration file the daemon started with (`save` writes it, SIGHUP reads it).
    pub file: PathBuf,
    pub running: Config,
    pub board: Board,
    /// The hot-backup thread, when this board is paired with another.
    pub ha: Option<std::sync::Arc<ha_sync::node::Node>>,
    pub logger: Arc<Mutex<Option<NatLogger>>>,
    /// The Prometheus listener (`metrics http`), moved by a commit.
    pub metrics: Option<crate::metrics::Listener>,
    pub metrics_body: crate::metrics::Body,
    /// Chassis commits from the other boards: the listener on this slot's `ha-address`
    /// (bound when the address is there), nonces seen, and the configuration prepared
    /// by the first phase of one.
    pub chassis: Chassis,
}

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
    ec: dataplane::config::EngineConfig,
    ha: Option<ha_sync::node::Settings>,
    metrics: Option<Option<crate::metrics::Listener>>,
}

/// How long the first phase of a chassis commit holds its configuration.
const PENDING_FOR: std::time::Duration = std::time::Duration::from_secs(30);

pub enum Reply {
    Ok(String),
    Error(String),
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        _ => "?",
    }
}

impl Daemon {
    /// `display service-ha`: the settings, then the live state of the HA thread.
    fn display_ha(&self) -> String {
        let ha = &self.running.ha;
        let mut o = format!(
            "slot {}\nhot-backup: {}\ndelay-time: {} s\npreempt-time: {} s\nheartbeat: {} ms, dead after {}\n",
            self.slot,
            if ha.hot_backup { "enabled" } else { "disabled (cold standby)" },
            ha.delay_time,
            ha.preempt_time,
            ha.heartbeat_ms,
            ha.dead_count
        );
        let Some(n) = &self.ha else {
            o.push_str("role: standalone (no service-location pairs this board with another, or no ha-address)\n");
            return o;
        };
        let st = n.status();
        if let Some(e) = &st.channel_error {
            let _ = writeln!(o, "HA channel: down, {e} (retried every second; the board stays inactive)");
        }
        let _ = writeln!(
            o,
            "witness on the softwire segment: {}",
            if st.witness { "on" } else { "off (the HA link alone tells whether the peer lives)" }
        );
        let role = |r: ha_sync::role::Role| r.name();
        let _ = writeln!(
            o,
            "role: {}{}",
            role(st.role),
            if st.preferred { " (preferred board of the location)" } else { "" }
        );
        let _ = writeln!(
            o,
            "peer: {}",
            match (st.peer_alive, st.peer_role) {
                (true, Some(r)) => format!("alive, {}", role(r)),
                (false, Some(r)) => format!("silent (last seen {})", role(r)),
                _ => "never heard".to_string(),
            }
        );
        let _ = writeln!(o, "in sync: {}", if st.in_sync { "yes" } else { "no" });
        let _ = writeln!(
            o,
            "configuration: {}",
            match st.peer_config_digest {
                None => format!("digest {:016x}; the peer's not heard yet", st.config_digest),
                Some(_) if !st.config_differs() => format!("the same as the peer's (digest {:016x})", st.config_digest),
                Some(p) => format!(
                    "DIFFERS from the peer's (digest {:016x}, the peer's {p:016x}): commit the same on both boards",
                    st.config_digest
                ),
            }
        );
        let _ = writeln!(o, "sessions replicated: {} (waiting for delay-time: {})", st.replicated, st.young);
        let _ = writeln!(
            o,
            "records sent: {} in {} messages ({} retransmitted)",
            st.records_sent, st.messages_sent, st.retransmitted
        );
        let _ = writeln!(o, "records received: {} (refused on install: {})", st.records_received, st.install_refused);
        let _ = writeln!(o, "queue depth: {}, lag: {} ms", st.queue_depth, st.lag_ms);
        let _ = writeln!(
            o,
            "bulk syncs sent: {}, queue overflows: {}, events dropped: {}",
            st.bulk_syncs, st.overflows, st.events_dropped
        );
        let _ = writeln!(
            o,
            "refused messages: {} unauthenticated, {} replayed, {} malformed",
            st.rejected_auth, st.rejected_replay, st.rejected_malformed
        );
        match &st.last_change {
            Some((ms, why)) => {
                let _ = writeln!(o, "last change: {why} (unix time {}.{:03})", ms / 1000, ms % 1000);
            }
            None => o.push_str("last change: none\n"),
        }
        o
    }

    /// What the running board cannot take from `new` without a restart: its interfaces,
    /// how it moves packets, its cores, its HA channel and pairing.
    fn unchangeable(&self, new: &Config, new_ha: &Option<ha_sync::node::Settings>) -> Option<String> {
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
        ];
        if let Some((_, what)) = fields.iter().find(|(changed, _)| *changed) {
            return Some(format!("slot {slot}: changing `{what}` needs a restart of the board"));
        }
        let old_plan = crate::plan::plan(&self.running);
        let old_ha = crate::ha::settings(&self.running, &old_plan, slot).ok().flatten();
        match (old_ha, new_ha) {
            (Some(old), Some(new)) => ha_sync::protocol::unchangeable(&old, new),
            (None, None) => None,
            _ => Some(format!(
                "slot {slot}: pairing it with a peer board, or unpairing it, needs a restart of the board"
            )),
        }
    }

    /// `display service-ha global-information [delay-time]`, as the vendor names it: the
    /// running `service-ha` settings.
    fn display_ha_global(&self, only_delay: bool) -> String {
        let ha = &self.running.ha;
        let delay = format!("  Delay-time          : {} (s)\n", ha.delay_time);
        if only_delay {
            return format!("Service-HA global information:\n{delay}");
        }
        format!(
            "Service-HA global information:\n  Hot-backup          : {}\n{delay}  Preempt-time        : {} (s)\n  Heartbeat           : {} (ms), dead-count {}\n  Preshared-key       : {}\n",
            if ha.hot_backup { "enable" } else { "disable" },
            ha.preempt_time,
            ha.heartbeat_ms,
            ha.dead_count,
            if ha.key.is_some() { "configured" } else { "not configured" },
        )
    }

    /// `display service-location [ID]`: each location of the running configuration with
    /// its slots and, for this board's locations, its role there and whether the batch
    /// backup (bulk sync) finished.
    fn display_locations(&self, only: Option<u32>) -> Reply {
        if let Some(id) = only
            && !self.running.locations.contains_key(&id)
        {
            return Reply::Error(format!("Error: service-location {id} is not configured\n"));
        }
        let st = self.ha.as_ref().map(|n| n.status());
        let mut o = String::new();
        for (id, l) in self.running.locations.iter().filter(|(id, _)| only.is_none_or(|o| o == **id)) {
            let slot = |s: Option<u32>| s.map_or("-".to_string(), |s| s.to_string());
            let _ = writeln!(o, "Service-location {id}:");
            let _ = writeln!(o, "  Location slot ID    : {}", slot(l.slot));
            let _ = writeln!(o, "  Backup slot ID      : {}", slot(l.backup));
            let here = l.slot == Some(self.slot) || l.backup == Some(self.slot);
            let (role, batch) = match (&st, here) {
                (_, false) => ("not on this board".to_string(), "-"),
                (None, true) => ("standalone".to_string(), "-"),
                (Some(s), true) => (s.role.name().to_string(), if s.in_sync { "finished" } else { "unfinished" }),
            };
            let _ = writeln!(o, "  State on slot {:<5}: {role}", self.slot);
            let _ = writeln!(o, "  Batch-backup state  : {batch}");
            let groups: Vec<&str> = self
                .running
                .groups
                .iter()
                .filter(|(_, g)| g.locations.contains_key(id))
                .map(|(n, _)| n.as_str())
                .collect();
            let _ = writeln!(o, "  Bound service-instance-group number: {} ({})", groups.len(), groups.join(", "));
        }
        if o.is_empty() {
            o.push_str("no service-location is configured\n");
        }
        Reply::Ok(o)
    }

    /// Checks a complete new configuration against the running board as a whole
    /// (syntax, semantics, what cannot change while running) and binds a moved metrics
    /// listener; nothing changes yet.
    fn prepare(&self, text: &str) -> Result<Prepared, String> {
        let config = match crate::parse::parse(text) {
            Ok((c, _)) => c,
            Err(errors) => {
                let mut o = String::new();
                for ConfigError { line, column, message } in errors {
                    let _ = writeln!(o, "{line}:{column}: {message}");
                }
                return Err(o);
            }
        };
        let plan = crate::plan::plan(&config);
        let Some(ec) = crate::plan::engine_config(&config, &plan, self.slot) else {
            return Err(format!("slot {} would serve no DS-Lite instance\n", self.slot));
        };
        let ha = crate::ha::settings(&config, &plan, self.slot).map_err(|e| format!("{e}\n"))?;
        if let Some(why) = self.unchangeable(&config, &ha) {
            return Err(format!("{why}; nothing was applied\n"));
        }
        // The new listener is bound before anything changes: an address in use refuses
        // the commit.
        let metrics = match config.metrics {
            Some(addr) if config.metrics != self.running.metrics => {
                match crate::metrics::Listener::start(addr, self.metrics_body.clone()) {
                    Ok(l) => Some(Some(l)),
                    Err(e) => return Err(format!("metrics http {addr}: {e}; nothing was applied\n")),
                }
            }
            None if self.running.metrics.is_some() => Some(None),
            _ => None,
        };
        Ok(Prepared { text: text.to_string(), config, ec, ha, metrics })
    }

    /// Applies a prepared configuration to every part of the running board: the engines
    /// (every session the new settings allow is kept; counters go on), the XDP programs
    /// and ARP/ND answers, the hot-backup timers and delay-time, NAT logging and metrics.
    fn apply(&mut self, p: Prepared) -> Reply {
        let Prepared { config, ec, ha, metrics, .. } = p;
        let carried = match self.board.reconfigure(ec) {
            Ok(c) => c,
            Err(e) => return Reply::Error(format!("{e}\n")),
        };
        if let (Some(node), Some(s)) = (&self.ha, ha)
            && let Err(e) = node.reconfigure(s)
        {
            eprintln!("aftrd: slot {}: hot backup settings: {e}", self.slot);
        }
        if config.syslog != self.running.syslog || config.sysname != self.running.sysname {
            let host = config.sysname.clone().unwrap_or_else(|| "aftr".into());
            *self.logger.lock().unwrap_or_else(|e| e.into_inner()) =
                if config.syslog.is_empty() { None } else { NatLogger::new(config.syslog.clone(), &host).ok() };
        }
        if let Some(m) = metrics {
            // The old listener stops as it is dropped.
            self.metrics = m;
        }
        self.running = config;
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

    /// The key that signs chassis commits: the running one (both boards hold it while
    /// their configurations agree), else the new configuration's.
    fn chassis_key(&self, new: &Config) -> Option<Key> {
        self.running.ha.key.as_ref().or(new.ha.key.as_ref()).map(|k| Key::new(k.as_bytes()))
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
        let Some(key) = self.chassis_key(&prepared.config).filter(|_| !targets.is_empty()) else {
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
        let Some(key) = self.chassis_key(&self.running) else {
            return b"error -\nthis board has no service-ha preshared-key\n".to_vec();
        };
        let r = match self.chassis.replay.check(&key, bytes) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("aftrd: slot {}: chassis commit refused: {e}", self.slot);
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
                            eprint!("aftrd: slot {}: chassis commit applied: {t}", self.slot);
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
    /// previous file is kept beside it as `FILE.bak`.
    fn save(&self) -> Reply {
        match write_keeping_previous(&self.file, &crate::display::render(&self.running)) {
            Ok(bak) => Reply::Ok(format!(
                "Info: the running configuration is saved to {} (the previous file is {})\n",
                self.file.display(),
                bak.display()
            )),
            Err(e) => Reply::Error(format!("Error: save to {}: {e}; the file is unchanged\n", self.file.display())),
        }
    }

    fn sessions(&self, words: &[&str]) -> Reply {
        let mut f = SessionFilter::default();
        let mut i = 0;
        while i < words.len() {
            let (k, v) = (words[i], words.get(i + 1).copied().unwrap_or(""));
            let bad = || Reply::Error(format!("display sessions: bad value `{v}` for `{k}`\n"));
            match k {
                "b4" => {
                    f.b4 = Some(match v.parse::<Ipv6Addr>() {
                        Ok(a) => a.octets(),
                        Err(_) => return bad(),
                    })
                }
                "inside" => {
                    f.inside = Some(match v.parse::<Ipv4Addr>() {
                        Ok(a) => a.into(),
                        Err(_) => return bad(),
                    })
                }
                "external" => {
                    f.external = Some(match v.parse::<Ipv4Addr>() {
                        Ok(a) => a.into(),
                        Err(_) => return bad(),
                    })
                }
                "port" => {
                    f.port = Some(match v.parse() {
                        Ok(p) => p,
                        Err(_) => return bad(),
                    })
                }
                other => {
                    return Reply::Error(format!(
                        "display sessions: unknown filter `{other}` (b4, inside, external, port)\n"
                    ));
                }
            }
            i += 2;
        }
        let mut o = String::from(
            "B4                                       Inside                 External               Proto Age(s) Idle(s)\n",
        );
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        let list = self.board.sessions(&f);
        for r in &list {
            let _ = writeln!(
                o,
                "{:<40} {:<22} {:<22} {:<5} {:>6} {:>7}",
                Ipv6Addr::from(r.b4),
                format!("{}:{}", Ipv4Addr::from(r.inner_addr), r.inner_port),
                format!("{}:{}", Ipv4Addr::from(r.ext_addr), r.ext_port),
                proto_name(r.proto),
                now.saturating_sub(r.created),
                now.saturating_sub(r.last_seen)
            );
        }
        let _ = writeln!(o, "total {} sessions", list.len());
        Reply::Ok(o)
    }

    /// Answers one request.
    pub fn handle(&mut self, request: &str) -> Reply {
        let (first, body) = request.split_once('\n').unwrap_or((request, ""));
        let words: Vec<&str> = first.split_whitespace().collect();
        match words[..] {
            ["commit"] => self.commit(body),
            ["commit", "local"] => self.commit_local(body),
            ["save"] => self.save(),
            ["display", "current-configuration"] => Reply::Ok(crate::display::render(&self.running)),
            ["display", "plan"] => {
                Reply::Ok(crate::plan::describe(&self.running, &crate::plan::plan(&self.running), Some(self.slot)))
            }
            ["display", "sessions", ref rest @ ..] => self.sessions(rest),
            ["display", "subscribers"] => {
                let mut o = String::from(
                    "B4                                       External         Port blocks                Sessions\n",
                );
                let subs = self.board.subscribers();
                for s in &subs {
                    let blocks: Vec<String> =
                        s.blocks.iter().map(|(a, n)| format!("{}-{}", a, *a as u32 + *n as u32 - 1)).collect();
                    let _ = writeln!(
                        o,
                        "{:<40} {:<16} {:<26} {}",
                        Ipv6Addr::from(s.b4),
                        Ipv4Addr::from(s.ext_addr),
                        blocks.join(","),
                        s.sessions
                    );
                }
                let _ = writeln!(o, "total {} subscribers", subs.len());
                Reply::Ok(o)
            }
            ["display", "statistics"] => {
                let mut o = format!("{:<32} {}\n", "packet-io", self.board.io);
                let xdp = self.board.steering_stats();
                if !xdp.is_empty() {
                    for (i, (name, _)) in xdp[0].named().iter().enumerate() {
                        let per: Vec<u64> = xdp.iter().map(|s| s.named()[i].1).collect();
                        let total: u64 = per.iter().sum();
                        let _ = writeln!(o, "{name:<32} {total:>14}  softwire, internet {per:?}");
                    }
                }
                let workers = self.board.counters();
                for &c in Counter::ALL {
                    let per: Vec<u64> = workers.iter().map(|w| w.get(c)).collect();
                    let total: u64 = per.iter().sum();
                    if total > 0 || !c.name().starts_with("drop_") {
                        let _ = writeln!(o, "{:<32} {:>14}  per worker {:?}", c.name(), total, per);
                    }
                }
                Reply::Ok(o)
            }
            ["display", "service-ha"] => Reply::Ok(self.display_ha()),
            ["display", "service-ha", "global-information"] => Reply::Ok(self.display_ha_global(false)),
            ["display", "service-ha", "global-information", "delay-time"] => Reply::Ok(self.display_ha_global(true)),
            ["display", "service-location"] => self.display_locations(None),
            ["display", "service-location", id] => match id.parse() {
                Ok(id) => self.display_locations(Some(id)),
                Err(_) => Reply::Error(format!("display service-location: bad id `{id}`\n")),
            },
            ["switchover"] => match &self.ha {
                Some(n) => match n.switchover() {
                    Ok(what) => Reply::Ok(format!("Info: {what}\n")),
                    Err(e) => Reply::Error(format!("Error: switchover refused: {e}\n")),
                },
                None => Reply::Error(
                    "Error: this board runs alone (no service-location pairs it with another board)\n".into(),
                ),
            },
            _ => Reply::Error(format!(
                "unknown request `{first}`; one of: display current-configuration | plan | sessions [b4 A] [inside A] [external A] [port P] | subscribers | statistics | service-ha [global-information [delay-time]] | service-location [ID]; commit; save; switchover\n"
            )),
        }
    }
}

/// Writes `text` to `path` so that a reader (or a crash) sees the old file or the new
/// one, never a part: a temporary file in the same directory, synced, renamed over it,
/// the directory synced. The old file is first copied to `path.bak`, which is returned.
fn write_keeping_previous(path: &Path, text: &str) -> std::io::Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "aftr.conf".into());
    let bak = dir.join(format!("{name}.bak"));
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
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

/// Binds the management socket with mode 0600, replacing a stale one.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // A socket nobody answers on is left from a killed daemon.
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running aftrd", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves requests until `stop` is set; `reload` asks for the configuration file to be
/// read again (SIGHUP).
pub fn serve(l: &UnixListener, d: &mut Daemon, stop: &AtomicBool, reload: &AtomicBool, file: &PathBuf) {
    while !stop.load(Ordering::Relaxed) {
        if reload.swap(false, Ordering::Relaxed) {
            match std::fs::read_to_string(file) {
                Ok(text) => match d.commit_local(&text) {
                    Reply::Ok(m) => eprint!("aftrd: reloaded {}: {m}", file.display()),
                    Reply::Error(m) => eprint!("aftrd: reload of {} refused, nothing changed:\n{m}", file.display()),
                },
                Err(e) => eprintln!("aftrd: reload: {}: {e}", file.display()),
            }
        }
        d.poll_chassis();
        match l.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let mut req = String::new();
                if s.read_to_string(&mut req).is_err() {
                    continue;
                }
                let (status, text) = match d.handle(&req) {
                    Reply::Ok(t) => ("ok", t),
                    Reply::Error(t) => ("error", t),
                };
                let _ = write!(s, "{status}\n{text}");
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// Sends one request to the daemon at `path` and returns (ok, text).
pub fn request(path: &Path, req: &str) -> std::io::Result<(bool, String)> {
    let mut s = UnixStream::connect(path)?;
    s.write_all(req.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (status, text) = out.split_once('\n').unwrap_or((&out, ""));
    Ok((status == "ok", text.to_string()))
}
