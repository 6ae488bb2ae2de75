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

use crate::board::Board;
use crate::config::Config;
use crate::natlog::NatLogger;

mod commit;
mod show;

pub use commit::{Chassis, Prepared};

/// Everything the daemon serves.
pub struct Daemon {
    pub slot: u32,
    /// The configuration file the daemon started with (`save` writes it, SIGHUP reads it).
    pub file: PathBuf,
    pub running: Config,
    /// The running configuration's HA secret, as read at start or by the last commit.
    pub secret: Option<crate::config::Secret>,
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

pub enum Reply {
    Ok(String),
    Error(String),
}

impl Daemon {
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
            ["switchover"] | ["switchover", "service-location" | "location", _] => match &self.ha {
                Some(n) => {
                    let location = match words.get(2).map(|id| id.parse::<u32>()) {
                        None => None,
                        Some(Ok(id)) => Some(id),
                        Some(Err(_)) => return Reply::Error(format!("Error: bad service-location `{}`\n", words[2])),
                    };
                    match n.switchover(location) {
                        Ok(what) => Reply::Ok(format!("Info: {what}\n")),
                        Err(e) => Reply::Error(format!("Error: switchover refused: {e}\n")),
                    }
                }
                None => Reply::Error(
                    "Error: this board runs alone (no service-location pairs it with another board)\n".into(),
                ),
            },
            _ => Reply::Error(format!(
                "unknown request `{first}`; one of: display current-configuration | plan | sessions [b4 A] [inside A] [external A] [port P] | subscribers | statistics | service-ha [global-information [delay-time]] | service-location [ID]; commit; save; switchover [service-location ID]\n"
            )),
        }
    }
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
                    Reply::Ok(m) => tracing::info!("reloaded {}: {}", file.display(), m.trim_end()),
                    Reply::Error(m) => {
                        tracing::warn!("reload of {} refused, nothing changed: {}", file.display(), m.trim_end())
                    }
                },
                Err(e) => tracing::warn!("reload: {}: {e}", file.display()),
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
