//! The routes a board offers to its routing daemon (docs/decisions/0016-bgp-announcements.md):
//! while active for a location, the board keeps in a kernel routing table of its own
//! (`route-table N` in its slot) a route for each of the location's pool shares and a
//! /128 for the endpoint of each instance the location serves; BIRD's `kernel`
//! protocol learns that table and its BGP sessions export it (`deploy/bird/`). A
//! board that stops being active for a location takes its routes away; a board that
//! starts empties the table (it is not active yet), and so does one that stops. A
//! location given up stays announced for [`LINGER`] (make before break).
//!
//! The routes' metric says when the board became active: the later, the lower
//! ([`metric_at`]). BIRD passes it on as the MED, so an upstream router prefers the
//! board that took over last even while a killed board's routes linger (its aftrd is
//! gone, its kernel and BIRD still announce them).
//!
//! The routes are `blackhole` routes: the table is for announcing, no rule looks it
//! up, and a blackhole needs no interface or next hop. They are changed with `ip
//! -batch` from a thread of their own, never from a worker or the HA thread.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataplane::config::EngineConfig;

use crate::announce::Addresses;

/// The epoch of route metrics: 2026-01-01T00:00:00Z.
const EPOCH_SECS: u64 = 1_767_225_600;

/// The metric of routes of an activation at `t`: `u32::MAX` minus the tenths of a
/// second since [`EPOCH_SECS`], so a later activation has a lower metric. Two
/// activations of a pair with the default timers are at least a dead interval apart
/// (120 ms), so they rarely share one; a board that keeps the role over the other
/// renews to one less than now (`Msg::Renew`). The count lasts until 2039, when it
/// stays at its floor of 1.
pub fn metric_at(t: SystemTime) -> u32 {
    let tenths = t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() / 100).unwrap_or(0);
    let since = tenths.saturating_sub(EPOCH_SECS as u128 * 10);
    u32::MAX.saturating_sub(u32::try_from(since).unwrap_or(u32::MAX)).max(1)
}

/// The routes wanted: prefix (as `ip` writes it) to metric. `metrics[l]`: the metric
/// of location `l`'s activation, for the locations active in `active`. A pool share
/// is routed while its location is active; an endpoint while any of its instance's
/// locations is, with the lowest metric of those (the latest activation).
fn wanted(a: &Addresses, active: u64, metrics: &[u32; 64]) -> BTreeMap<String, u32> {
    let on = |l: u8| active & (1 << (l % 64)) != 0;
    let mut w = BTreeMap::new();
    for (p, l) in a.pools.iter().filter(|(_, l)| on(*l)) {
        let (first, _) = p.range();
        let m = metrics[(l % 64) as usize];
        let e = w.entry(format!("{}/{}", Ipv4Addr::from(first), p.len)).or_insert(m);
        *e = (*e).min(m);
    }
    for e in &a.endpoints {
        let best = (0..64).filter(|l| e.all & active & (1 << l) != 0).map(|l| metrics[l as usize]).min();
        if let Some(m) = best {
            let r = w.entry(format!("{}/128", Ipv6Addr::from(e.addr))).or_insert(m);
            *r = (*r).min(m);
        }
    }
    w
}

/// The `ip -batch` lines that take table `table` from `have` to `want`: new routes
/// first, then the old ones away (a changed metric is another route to the kernel).
fn changes(table: u32, have: &BTreeMap<String, u32>, want: &BTreeMap<String, u32>) -> Vec<String> {
    let route =
        |verb: &str, p: &str, m: u32| format!("route {verb} blackhole {p} table {table} proto static metric {m}");
    let add = want.iter().filter(|(p, m)| have.get(*p) != Some(m)).map(|(p, m)| route("add", p, *m));
    let del = have.iter().filter(|(p, m)| want.get(*p) != Some(m)).map(|(p, m)| route("del", p, *m));
    add.chain(del).collect()
}

/// Runs `ip -force -batch -` with `lines`; what went wrong, if anything.
fn ip_batch(lines: &[String]) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut c = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip: {e}"))?;
    if let Some(mut stdin) = c.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all((lines.join("\n") + "\n").as_bytes());
    }
    let o = c.wait_with_output().map_err(|e| format!("ip: {e}"))?;
    if o.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&o.stderr).trim().to_string()) }
}

/// Empties table `table` of both families.
fn flush(table: u32) {
    for family in ["-4", "-6"] {
        let t = table.to_string();
        match Command::new("ip").args([family, "route", "flush", "table", &t]).stderr(Stdio::piped()).output() {
            Ok(o) if o.status.success() => {}
            // Never used since the machine started: nothing to empty.
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("does not exist") => {}
            Ok(o) => eprintln!("aftrd: route-table {table}: flush: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => eprintln!("aftrd: route-table {table}: flush: ip: {e}"),
        }
    }
}

enum Msg {
    Active(u64),
    /// Still active for these after both boards were: the newest metric.
    Renew(u64),
    Addresses(Addresses),
}

/// A board's routes in its table, kept by a thread of their own. Dropping it waits
/// while the routes linger (at most [`LINGER`]), then empties the table.
pub struct Routes {
    tx: Mutex<Option<Sender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Routes {
    /// Empties `table` (the board is not active yet) and keeps the routes of `cfg`'s
    /// addresses there from now on, as the board's role says.
    pub fn new(table: u32, cfg: &EngineConfig) -> Result<Routes, String> {
        flush(table);
        let (tx, rx) = channel();
        let addresses = Addresses::of(cfg);
        let thread = std::thread::Builder::new()
            .name("aftr-routes".into())
            .spawn(move || keep(table, addresses, rx))
            .map_err(|e| format!("route-table {table}: no thread: {e}"))?;
        Ok(Routes { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) })
    }

    fn send(&self, m: Msg) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(m);
        }
    }
}

impl dataplane::board::Neighbours for Routes {
    fn set_active(&self, locations: u64) {
        self.send(Msg::Active(locations));
    }
    fn reannounce(&self, locations: u64) {
        self.send(Msg::Renew(locations));
    }
    fn set_addresses(&self, cfg: &EngineConfig) {
        self.send(Msg::Addresses(Addresses::of(cfg)));
    }
}

impl Drop for Routes {
    /// The thread empties the table and ends.
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// How long a board goes on announcing a location it gave up (switchover, preempt,
/// unfit, stop): the peer's routes, of a later activation, win as soon as they come
/// (tens of milliseconds after its takeover), so the upstream moves from one route to
/// the other without a moment with none (make before break).
pub const LINGER: Duration = Duration::from_secs(1);

/// Writes `want` over `have` in `table`; what the table holds afterwards.
fn apply(table: u32, have: BTreeMap<String, u32>, want: BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    match ip_batch(&changes(table, &have, &want)) {
        Ok(()) => want,
        Err(e) => {
            eprintln!("aftrd: route-table {table}: {e}");
            // What is there now is not known: start again from an empty table.
            flush(table);
            match ip_batch(&changes(table, &BTreeMap::new(), &want)) {
                Ok(()) => want,
                Err(_) => BTreeMap::new(),
            }
        }
    }
}

/// The thread: follows the role and the addresses until the sender goes, then, once
/// the locations it gave up last have lingered, empties the table.
fn keep(table: u32, mut addresses: Addresses, rx: Receiver<Msg>) {
    let (mut active, mut metrics, mut have) = (0u64, [u32::MAX; 64], BTreeMap::new());
    let mut released: [Option<Instant>; 64] = [None; 64];
    loop {
        let next = released.iter().flatten().min().map(|t| *t + LINGER);
        let got = match next {
            Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        match got {
            Ok(Msg::Active(mask)) => {
                let metric = metric_at(SystemTime::now());
                for l in 0..64 {
                    let bit = 1u64 << l;
                    if mask & !active & bit != 0 {
                        (metrics[l], released[l]) = (metric, None);
                    } else if active & !mask & bit != 0 {
                        released[l] = Some(now);
                    }
                }
                active = mask;
            }
            Ok(Msg::Renew(mask)) => {
                // Both boards were active and this one kept the role: its routes take
                // the newest metric, so that they win over the other board's, which
                // became active before this was heard, maybe within the same tenth of
                // a second: one lower still.
                let metric = metric_at(SystemTime::now()).saturating_sub(1);
                for l in (0..64).filter(|l| mask & active & (1u64 << l) != 0) {
                    (metrics[l], released[l]) = (metric, None);
                }
            }
            Ok(Msg::Addresses(a)) => addresses = a,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // The board stops: what it still announces lingers, then goes.
                let last = released.iter().flatten().max().map(|t| *t + LINGER);
                let until = if active != 0 { Some(now + LINGER) } else { last };
                if let Some(t) = until {
                    std::thread::sleep(t.saturating_duration_since(now));
                }
                break;
            }
        }
        for r in released.iter_mut() {
            if r.is_some_and(|t| now >= t + LINGER) {
                *r = None;
            }
        }
        let lingering = (0..64).filter(|l| released[*l].is_some()).fold(0u64, |m, l| m | 1 << l);
        have = apply(table, have, wanted(&addresses, active | lingering, &metrics));
    }
    flush(table);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::config::{InstanceConfig, Ipv4Prefix, Ipv6Prefix};
    use std::time::Duration;

    fn two_locations() -> EngineConfig {
        let mut endpoint = [0u8; 16];
        endpoint[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        endpoint[15] = 1;
        let b4 = Ipv6Prefix { addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], len: 64 };
        let mut i = InstanceConfig::new("d", endpoint, b4, Ipv4Prefix { addr: 0xc633_6400, len: 25 });
        i.pool.push(Ipv4Prefix { addr: 0xc633_6480, len: 25 });
        i.pool_locations = vec![0, 1];
        let mut c = EngineConfig::new(vec![i]);
        c.locations = vec![1, 2];
        c
    }

    #[test]
    fn later_activations_have_lower_metrics() {
        let t = UNIX_EPOCH + Duration::from_secs(EPOCH_SECS + 86_400);
        assert_eq!(metric_at(t), u32::MAX - 864_000);
        assert_eq!(metric_at(t + Duration::from_millis(100)), metric_at(t) - 1);
        assert!(metric_at(t + Duration::from_millis(120)) < metric_at(t));
        // Before the epoch, and long after it, the metric stays in its range.
        assert_eq!(metric_at(UNIX_EPOCH), u32::MAX);
        assert_eq!(metric_at(t + Duration::from_secs(20 * 365 * 86_400)), 1);
    }

    #[test]
    fn routes_follow_the_locations_and_their_activations() {
        let a = Addresses::of(&two_locations());
        let mut metrics = [u32::MAX; 64];
        (metrics[0], metrics[1]) = (900, 800);
        assert!(wanted(&a, 0, &metrics).is_empty(), "a standby routes nothing");
        let one = wanted(&a, 0b01, &metrics);
        assert_eq!(
            one.into_iter().collect::<Vec<_>>(),
            [("198.51.100.0/25".to_string(), 900), ("2001:db8::1/128".to_string(), 900)]
        );
        // Both locations: each share with its own activation, the endpoint with the latest.
        let both = wanted(&a, 0b11, &metrics);
        assert_eq!(both["198.51.100.0/25"], 900);
        assert_eq!(both["198.51.100.128/25"], 800);
        assert_eq!(both["2001:db8::1/128"], 800);
    }

    #[test]
    fn own_addresses_are_routed_by_their_b4s_location() {
        let mut c = two_locations();
        let mut b4 = [0u8; 16];
        b4[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0xb4]);
        b4[15] = 3;
        c.instances[0].own_addresses =
            vec![dataplane::config::OwnAddress { b4, addr: 0xc633_6501, first: 1, last: u16::MAX }];
        c.instances[0].buckets = vec![1; dataplane::config::BUCKETS];
        let a = Addresses::of(&c);
        let metrics = [700; 64];
        assert!(!wanted(&a, 0b01, &metrics).contains_key("198.51.101.1/32"));
        assert_eq!(wanted(&a, 0b10, &metrics)["198.51.101.1/32"], 700);
    }

    #[test]
    fn changes_add_before_they_delete() {
        let have: BTreeMap<String, u32> = [("198.51.100.0/25".into(), 900), ("2001:db8::1/128".into(), 900)].into();
        let want: BTreeMap<String, u32> = [("198.51.100.0/25".into(), 900), ("2001:db8::1/128".into(), 800)].into();
        assert_eq!(
            changes(100, &have, &want),
            [
                "route add blackhole 2001:db8::1/128 table 100 proto static metric 800",
                "route del blackhole 2001:db8::1/128 table 100 proto static metric 900",
            ]
        );
        assert!(changes(100, &want, &want).is_empty());
        assert_eq!(changes(7, &want, &BTreeMap::new()).len(), 2);
    }
}
