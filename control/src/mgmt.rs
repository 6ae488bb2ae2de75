//! The management interface of a running `aftrd`: a Unix socket (mode 0600) that
//! `aftrctl` talks to. One request per connection: the client writes a command line
//! (and, for `commit`, the whole configuration after it) and closes its side; the
//! daemon answers `ok` or `error` on the first line, then the text.

use std::io::{Read, Write};
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
pub mod pipe;
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
    /// Where `reset statistics` set the displayed counters to zero.
    pub baseline: Baseline,
}

pub enum Reply {
    Ok(String),
    Error(String),
}

/// What `reset statistics` set to zero: the counters' values then, per worker (and per
/// XDP program). Displays show the counts since; the metrics go on counting, as
/// Prometheus counters must.
#[derive(Default)]
pub struct Baseline {
    pub workers: Vec<Vec<u64>>,
    pub xdp: Vec<Vec<u64>>,
}

/// A display, both ways: text for people, JSON (`| json`) for programs.
pub(crate) struct Shown {
    pub text: String,
    pub json: serde_json::Value,
}

impl Daemon {
    /// Answers one request: a command line of the user view's table (abbreviations as
    /// typed at the router, `dis cur`), ending in `| json` for the JSON form of a
    /// display; or `commit [local]` with the configuration after it.
    pub fn handle(&mut self, request: &str) -> Reply {
        let (first, body) = request.split_once('\n').unwrap_or((request, ""));
        match first.split_whitespace().collect::<Vec<_>>()[..] {
            ["commit"] => return self.commit(body),
            ["commit", "local"] => return self.commit_local(body),
            _ => {}
        }
        let (line, json) = match first.split_once('|') {
            None => (first, false),
            Some((l, "json" | " json")) => (l, true),
            Some((l, m)) if m.trim() == "json" => (l, true),
            Some((_, m)) => {
                return Reply::Error(format!(
                    "Error: `| {}`: the daemon answers `| json`; include, exclude and begin are aftrctl's\n",
                    m.trim()
                ));
            }
        };
        let line = match crate::grammar::expand(&crate::grammar::View::User, line) {
            Ok(l) if !l.is_empty() => l,
            Ok(_) => return Reply::Error("Error: an empty request; `?` in aftrctl lists the commands\n".into()),
            Err(e) => return Reply::Error(format!("Error: {} (column {})\n", e.message, e.column)),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let shown = match words[..] {
            ["save"] => return self.save(),
            ["display", "current-configuration"] => {
                let text = crate::display::render(&self.running);
                let json = serde_json::json!({ "configuration": text.lines().collect::<Vec<_>>() });
                Shown { text, json }
            }
            ["display", "plan"] => {
                let text = crate::plan::describe(&self.running, &crate::plan::plan(&self.running), Some(self.slot));
                let json = serde_json::json!({ "plan": text.lines().collect::<Vec<_>>() });
                Shown { text, json }
            }
            ["display", "sessions", ref rest @ ..] => match show::filter(rest) {
                Ok(f) => self.sessions(&f),
                Err(e) => return Reply::Error(e),
            },
            ["display", "subscribers"] => self.subscribers(),
            ["display", "statistics"] => self.statistics(),
            ["display", "service-ha"] => self.display_ha(),
            ["display", "service-ha", "global-information"] => self.display_ha_global(false),
            ["display", "service-ha", "global-information", "delay-time"] => self.display_ha_global(true),
            ["display", "service-location"] => return self.display_locations(None, json),
            ["display", "service-location", id] => match id.parse() {
                Ok(id) => return self.display_locations(Some(id), json),
                Err(_) => return Reply::Error(format!("Error: bad service-location `{id}`\n")),
            },
            ["display", "ds-lite", "address-usage"] => self.address_usage(None),
            ["display", "ds-lite", "address-usage", "instance", name] => match self.running.instances.get(name) {
                Some(_) => self.address_usage(Some(name)),
                None => return Reply::Error(format!("Error: ds-lite instance {name} is not configured\n")),
            },
            ["reset", "session", ref rest @ ..] => match show::filter(rest) {
                Ok(f) => {
                    let n = self.board.end_sessions(&f);
                    Shown { text: format!("Info: {n} sessions ended\n"), json: serde_json::json!({ "ended": n }) }
                }
                Err(e) => return Reply::Error(e),
            },
            ["reset", "statistics"] => {
                self.baseline = Baseline {
                    workers: self
                        .board
                        .counters()
                        .iter()
                        .map(|w| Counter::ALL.iter().map(|&c| w.get(c)).collect())
                        .collect(),
                    xdp: self.board.steering_stats().iter().map(|s| s.named().iter().map(|v| v.1).collect()).collect(),
                };
                Shown { text: "Info: the statistics start again from zero\n".into(), json: serde_json::json!({}) }
            }
            ["switchover", ref rest @ ..] => return self.switchover(rest),
            _ => {
                return Reply::Error(format!(
                    "Error: `{line}` is not a request of the daemon; `?` in aftrctl lists the commands\n"
                ));
            }
        };
        if json { Reply::Ok(format!("{}\n", shown.json)) } else { Reply::Ok(shown.text) }
    }

    fn switchover(&self, words: &[&str]) -> Reply {
        let Some(n) = &self.ha else {
            return Reply::Error(
                "Error: this board runs alone (no service-location pairs it with another board)\n".into(),
            );
        };
        let location = match words.get(1).map(|id| id.parse::<u32>()) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return Reply::Error(format!("Error: bad service-location `{}`\n", words[1])),
        };
        match n.switchover(location) {
            Ok(what) => Reply::Ok(format!("Info: {what}\n")),
            Err(e) => Reply::Error(format!("Error: switchover refused: {e}\n")),
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
