//! systemd's service protocol (`Type=notify`): READY=1 once the board serves, STOPPING=1
//! when it stops, and the watchdog (`WatchdogSec=`). Without `$NOTIFY_SOCKET` (not
//! started by systemd) each is nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// The board is up: its management socket is open.
pub fn ready() {
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
}

/// The board is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// With `WatchdogSec=` set: a thread that pings systemd every half period, but only
/// while every counter `progress` gives (each worker's rounds, the HA thread's) moved
/// since the last look. A worker or the HA thread that stops stops the pings, and
/// systemd restarts the board; its peer has its locations by then (a stuck worker makes
/// the board unfit within `ha_sync::node::STUCK`, a hung HA thread stops heartbeats).
/// Returns the period, if the watchdog is on.
pub fn watchdog(progress: impl Fn() -> Vec<u64> + Send + 'static) -> Option<Duration> {
    let period = watchdog_usec().map(|usec| Duration::from_micros(usec / 2))?;
    let run = move || {
        let mut last = progress();
        loop {
            std::thread::sleep(period);
            let now = progress();
            if moved(&last, &now) {
                let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
            } else {
                tracing::warn!("watchdog: a worker or the HA thread made no progress in {period:?}; no ping");
            }
            last = now;
        }
    };
    std::thread::Builder::new().name("aftr-watchdog".into()).spawn(run).ok()?;
    Some(period)
}

/// `$WATCHDOG_USEC`, if meant for this process: as sd_watchdog_enabled(3), a
/// `$WATCHDOG_PID` that is set must be ours (the crate's own check also refuses an unset
/// one, which systemd's does not).
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok().filter(|&u| u > 0)?;
    match std::env::var("WATCHDOG_PID").ok().map(|p| p.parse::<u32>()) {
        Some(Ok(pid)) if pid != std::process::id() => None,
        Some(Err(_)) => None,
        _ => Some(usec),
    }
}

/// Every counter moved (and none came or went).
fn moved(before: &[u64], now: &[u64]) -> bool {
    before.len() == now.len() && before.iter().zip(now).all(|(a, b)| a != b)
}

#[cfg(test)]
mod tests {
    use super::moved;

    #[test]
    fn a_ping_needs_every_counter_to_move() {
        assert!(moved(&[1, 5], &[2, 9]));
        assert!(!moved(&[1, 5], &[2, 5]), "one stuck");
        assert!(!moved(&[1, 5], &[2]), "one gone");
        assert!(moved(&[], &[]), "nothing to watch");
    }
}
