//! aftrd's logs: levels (`--log-level`, else `RUST_LOG` in tracing's `target=level`
//! form, else `info`), to journald when systemd runs it (its stderr is the journal's
//! stream, `JOURNAL_STREAM`), to stderr otherwise; the `log` records of libraries (aya)
//! are taken in too. And a watcher that logs, at most once a minute each, what counters
//! tell without a log line of their own: a pool exhausted, HA messages and records
//! refused, bulk syncs, the standby falling out of sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dataplane::counters::{Counter, WorkerCounters};
use tracing::{info, warn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// The levels `--log-level` takes.
pub const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// Is stderr the journal's stream? systemd sets `JOURNAL_STREAM=DEV:INODE` of the
/// stream it connects; a child whose stderr was redirected elsewhere inherits the
/// variable, so the device and inode are compared (as `sd_journal_stream_fd`'s
/// documentation asks).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(want) = std::env::var("JOURNAL_STREAM") else { return false };
    let Ok(m) = std::fs::metadata("/proc/self/fd/2") else { return false };
    want == format!("{}:{}", m.dev(), m.ino())
}

/// Sets up the logs; `level` is `--log-level`'s.
pub fn init(level: Option<&str>) -> Result<(), String> {
    let filter = match (level, std::env::var("RUST_LOG")) {
        (Some(l), _) => Targets::new().with_default(l.parse::<LevelFilter>().map_err(|e| format!("--log-level: {e}"))?),
        (None, Ok(spec)) if !spec.is_empty() => spec.parse::<Targets>().map_err(|e| format!("RUST_LOG={spec}: {e}"))?,
        _ => Targets::new().with_default(LevelFilter::INFO),
    };
    let journal = if stderr_is_journal() { tracing_journald::layer().ok() } else { None };
    let registry = tracing_subscriber::registry().with(filter);
    let set = match journal {
        Some(j) => registry.with(j.with_syslog_identifier("aftrd".into())).try_init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .try_init(),
    };
    set.map_err(|e| format!("logging: {e}"))
}

/// Something counted, logged at most once per `every` with what was counted since the
/// last line.
struct Throttled {
    every: Duration,
    last: Option<Instant>,
    /// The count at the last line (at the first reading: the baseline).
    logged: Option<u64>,
}

impl Throttled {
    fn new(every: Duration) -> Self {
        Throttled { every, last: None, logged: None }
    }

    /// Takes the counter's value; the count to log now, if any.
    fn take(&mut self, total: u64, now: Instant) -> Option<u64> {
        // The first reading is the baseline: what was counted before the watcher
        // started is not news.
        let logged = *self.logged.get_or_insert(total);
        let due = self.last.is_none_or(|t| now.duration_since(t) >= self.every);
        if total > logged && due {
            self.logged = Some(total);
            self.last = Some(now);
            return Some(total - logged);
        }
        None
    }
}

/// What the watcher reads: the workers' counters and, with hot backup, the HA status.
pub struct Sources {
    pub slot: u32,
    pub workers: Vec<Arc<WorkerCounters>>,
    pub ha: Option<Box<dyn Fn() -> ha_sync::node::Status + Send>>,
}

/// The watcher's state between readings.
pub struct Watch {
    exhausted: Throttled,
    rejected: Throttled,
    refused: Throttled,
    bulks: Throttled,
    in_sync: Option<bool>,
}

impl Default for Watch {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Watch {
            exhausted: Throttled::new(minute),
            rejected: Throttled::new(minute),
            refused: Throttled::new(minute),
            bulks: Throttled::new(Duration::ZERO),
            in_sync: None,
        }
    }
}

impl Watch {
    /// Reads the sources once and logs what is due.
    pub fn check(&mut self, s: &Sources, now: Instant) {
        let slot = s.slot;
        let sum = |k: Counter| s.workers.iter().map(|c| c.get(k)).sum::<u64>();
        if let Some(n) = self.exhausted.take(sum(Counter::DropPortsExhausted), now) {
            warn!(
                "slot {slot}: pool exhausted: {n} new sessions refused for want of a free port block (drop_ports_exhausted)"
            );
        }
        let Some(status) = &s.ha else { return };
        let st = status();
        let rejected = [
            ("unauthenticated", st.rejected_auth),
            ("replayed", st.rejected_replay),
            ("malformed", st.rejected_malformed),
            ("from a slot other than the peer's", st.rejected_slot),
        ];
        if let Some(n) = self.rejected.take(rejected.iter().map(|r| r.1).sum(), now) {
            let why: Vec<String> = rejected.iter().filter(|r| r.1 > 0).map(|(w, v)| format!("{v} {w}")).collect();
            warn!("slot {slot}: hot backup: {n} HA messages rejected (in all: {})", why.join(", "));
        }
        if let Some(n) = self.refused.take(st.install_refused + st.refused_active_here, now) {
            warn!(
                "slot {slot}: hot backup: {n} records of the peer refused (in all: {} by the engines, {} for locations active here)",
                st.install_refused, st.refused_active_here
            );
        }
        if let Some(n) = self.bulks.take(st.bulk_syncs, now) {
            info!("slot {slot}: hot backup: bulk sync started ({n} new, {} in all)", st.bulk_syncs);
        }
        let was = self.in_sync.replace(st.in_sync);
        if st.peer_alive && was.is_some_and(|w| w != st.in_sync) {
            match st.in_sync {
                true => info!("slot {slot}: hot backup: in sync with the peer"),
                false => warn!("slot {slot}: hot backup: no longer in sync with the peer"),
            }
        }
    }
}

/// Runs the watcher every second until `stop`.
pub fn spawn_watch(s: Sources, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("log-watch".into()).spawn(move || {
        let mut w = Watch::default();
        while !stop.load(Ordering::Relaxed) {
            w.check(&s, Instant::now());
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `f` logs, as the fmt layer writes it.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt().with_writer(move || w.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn pool_exhaustion_and_rejected_messages_are_logged_once_a_minute() {
        let c = Arc::new(WorkerCounters::default());
        let st = Arc::new(std::sync::Mutex::new(ha_sync::node::Status { peer_alive: true, ..Default::default() }));
        let s2 = st.clone();
        let s = Sources { slot: 3, workers: vec![c.clone()], ha: Some(Box::new(move || s2.lock().unwrap().clone())) };
        let mut w = Watch::default();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let out = logged(|| {
            w.check(&s, at(0));
            c.add(Counter::DropPortsExhausted, 3);
            st.lock().unwrap().rejected_replay = 2;
            st.lock().unwrap().bulk_syncs = 1;
            w.check(&s, at(1));
            c.add(Counter::DropPortsExhausted, 500);
            st.lock().unwrap().rejected_replay = 9;
            w.check(&s, at(2));
            w.check(&s, at(30));
            w.check(&s, at(62));
        });
        let lines: Vec<&str> = out.lines().collect();
        let has = |text: &str| lines.iter().filter(|l| l.contains(text)).count();
        assert_eq!(has("WARN"), 4, "{out}");
        assert_eq!(has("slot 3: pool exhausted: 3 new sessions refused"), 1, "{out}");
        assert_eq!(has("slot 3: pool exhausted: 500 new sessions refused"), 1, "a minute later: {out}");
        assert_eq!(has("slot 3: hot backup: 2 HA messages rejected (in all: 2 replayed)"), 1, "{out}");
        assert_eq!(has("slot 3: hot backup: 7 HA messages rejected (in all: 9 replayed)"), 1, "{out}");
        assert_eq!(has("INFO control::logging: slot 3: hot backup: bulk sync started (1 new, 1 in all)"), 1, "{out}");
    }

    #[test]
    fn a_count_is_logged_at_most_once_a_period_with_what_came_since() {
        let mut t = Throttled::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(t.take(0, t0), None);
        assert_eq!(t.take(5, t0), Some(5), "counted after the first reading");
        let mut t = Throttled::new(Duration::from_secs(60));
        assert_eq!(t.take(5, t0), None, "the first reading is the baseline");
        assert_eq!(t.take(7, t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(t.take(100, t0 + Duration::from_secs(2)), None, "within the minute");
        assert_eq!(t.take(100, t0 + Duration::from_secs(30)), None);
        assert_eq!(t.take(150, t0 + Duration::from_secs(61)), Some(143), "what came since the last line");
        assert_eq!(t.take(150, t0 + Duration::from_secs(200)), None, "nothing new");
    }
}
