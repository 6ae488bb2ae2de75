//! failover-bench: the hot-backup figures.
//!
//! 1. Replication rate on loopback: an active HA thread fed session events (already
//!    older than delay-time) streams them to a standby HA thread over 127.0.0.1; the
//!    rate is records received per second by the standby (its board only counts them,
//!    so this is the protocol's rate, not the engine's install rate).
//! 2. Bulk sync of 1M sessions on loopback: a standby joins an active board whose table
//!    holds them; the time until it reports being in sync.
//! 3. Failover over real boards (`deploy/netns/ha-topology.sh`, two `aftrd`, the
//!    user-space B4): `--kills N` times, once the standby is in sync, the active board is
//!    killed with SIGKILL. The gap is the time between the last echo a 200/s UDP probe
//!    through the B4 got before the kill and the first after; preserved counts the
//!    sessions the dead board held longer than delay-time that the new active board
//!    holds with the same mapping. The killed board is started again each round and
//!    becomes the standby (preempt-time is long), so the kills alternate.
//!
//! Usage: failover-bench [--kills N] [--records N] [--bulk N]   (root, binaries built)
//! Ends with `summary: gap_ms=... preserved=KEPT/ELIGIBLE ...`.

use bench::measure::{arg, known_options};
use std::io::BufRead;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench::measure::median;
use dataplane::nat::events::{BlockRecord, SessionEvent, SessionRecord};
use dataplane::testing::Lab;
use ha_sync::node::{Local, Node, Settings};
use ha_sync::role::Role;

fn unix_s() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0)
}

/// A board for the loopback figures: a table to bulk from, a counter of installs.
struct Counting {
    table: Arc<Vec<SessionRecord>>,
    installed: Arc<AtomicU64>,
}

impl Local for Counting {
    fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> (usize, usize) {
        self.installed.fetch_add((blocks.len() + sessions.len()) as u64, Ordering::Relaxed);
        (0, 0)
    }
    fn remove(&self, sessions: Vec<SessionRecord>) -> usize {
        sessions.len()
    }
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        (self.table.to_vec(), Vec::new())
    }
    fn set_active(&self, _: bool) {}
}

fn record(n: u32, created: u32) -> SessionRecord {
    let mut b4 = [0x20, 1, 0xd, 0xb8, 0, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    b4[12..16].copy_from_slice(&(n / 64).to_be_bytes());
    SessionRecord {
        inst: 0,
        b4,
        inner_addr: 0xc0a8_0000 | (n % 64),
        inner_port: 1024 + (n % 60_000) as u16,
        ext_addr: 0xc633_6400 | (n % 256),
        ext_port: 1024 + (n % 64_000) as u16,
        proto: 17,
        flags: 0,
        created,
        last_seen: created,
        mac: [2, 0, 0, 0, 0, 1],
    }
}

fn loopback_pair(table: Vec<SessionRecord>) -> (Node, Node, Arc<AtomicU64>) {
    let port = |_| UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (a, b): (SocketAddr, SocketAddr) = (port(0), port(1));
    let settings = |slot, bind, peer, preferred| Settings {
        slot,
        bind,
        peer,
        witness: None,
        key: b"bench".to_vec(),
        preferred,
        hot_backup: true,
        delay_secs: 1,
        preempt_ms: 60_000,
        heartbeat_ms: 50,
        dead_count: 20,
        queue: 16_384,
        rto_ms: 100,
        pace_per_ms: 64,
    };
    let installed = Arc::new(AtomicU64::new(0));
    let active = Node::start(
        settings(1, a, b, true),
        Counting { table: Arc::new(table), installed: Arc::new(AtomicU64::new(0)) },
    )
    .unwrap();
    let t = Instant::now();
    while active.status().role != Role::Active && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let standby =
        Node::start(settings(2, b, a, false), Counting { table: Arc::new(Vec::new()), installed: installed.clone() })
            .unwrap();
    (active, standby, installed)
}

/// Records per second streamed from events to a standby on loopback.
fn replication_rate(n: u32) -> f64 {
    let (active, standby, installed) = loopback_pair(Vec::new());
    let t = Instant::now();
    while !standby.status().in_sync && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let created = unix_s().saturating_sub(10);
    let start = Instant::now();
    for i in 0..n {
        while active.event_backlog() > 60_000 {
            std::hint::spin_loop();
        }
        active.event(SessionEvent::Created(record(i, created)));
    }
    while installed.load(Ordering::Relaxed) < n as u64 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_micros(200));
    }
    let rate = installed.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let st = active.status();
    eprintln!(
        "replication: {} records in {} messages, {} retransmitted, {} overflows, {} events dropped",
        st.records_sent, st.messages_sent, st.retransmitted, st.overflows, st.events_dropped
    );
    standby.stop();
    active.stop();
    rate
}

/// Seconds until a joining standby is in sync with a table of `n` sessions.
fn bulk_sync_secs(n: u32) -> f64 {
    let created = unix_s().saturating_sub(10);
    let table: Vec<SessionRecord> = (0..n).map(|i| record(i, created)).collect();
    let start = Instant::now();
    let (active, standby, installed) = loopback_pair(table);
    let joined = Instant::now();
    while !standby.status().in_sync && joined.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = joined.elapsed().as_secs_f64();
    eprintln!(
        "bulk sync: {} records installed, {:.2} s (with {:.2} s to start the active board)",
        installed.load(Ordering::Relaxed),
        secs,
        joined.duration_since(start).as_secs_f64()
    );
    standby.stop();
    active.stop();
    secs
}

// ----- Failover over real boards -----

const CONFIG: &str = "sysname failover-bench
slot 1
 worker-cores 0
 interface softwire a1-sw
 interface internet a1-in
 ha-address 192.0.2.1 port 4789
 packet-poll blocking
slot 2
 worker-cores 1
 interface softwire a2-sw
 interface internet a2-in
 ha-address 192.0.2.2 port 4789
 packet-poll blocking
service-ha hot-backup enable
service-ha delay-time 1
service-ha preempt-time 3600
service-ha preshared-key bench-secret
service-location 1
 location slot 1 backup slot 2
service-instance-group g
 service-location 1
ds-lite address-group pool
 section 0 198.51.100.0 mask 24
ds-lite instance d id 1
 service-instance-group g
 local-ipv6 2001:db8::1
 remote-ipv6 2001:db8:b4:: prefix-length 64
 ds-lite address-group pool
";

const ECHO: &str = r#"
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("203.0.113.80", 7))
print("ready", flush=True)
while True:
    d, peer = u.recvfrom(2048)
    u.sendto(d, peer)
"#;

/// 200 datagrams a second from port 5000; prints the time of each echo.
const PROBE: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
s.settimeout(0.005)
print("started", flush=True)
while True:
    try:
        s.sendto(b"probe", ("203.0.113.80", 7))
        s.recv(64)
        print("%.4f" % time.time(), flush=True)
    except OSError:
        pass
"#;

/// One datagram from each of `n` ports starting at `first`: `n` more sessions.
const FLOWS: &str = r#"
import socket, sys
first, n = int(sys.argv[1]), int(sys.argv[2])
for p in range(first, first + n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", p))
    s.sendto(b"flow", ("203.0.113.80", 7))
    s.close()
"#;

/// The HA topology (`dataplane::testing::Lab` removes it, and what runs in it, on every
/// way out) and the two boards, which are killed and started again.
struct Bench {
    boards: [Option<Child>; 2],
    lab: Lab,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for c in self.boards.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Bench {
    fn exec(&self, ns: &str, args: &[&str]) -> Command {
        self.lab.exec(ns, args)
    }
    fn bin(name: &str) -> String {
        std::env::current_exe().unwrap().with_file_name(name).to_string_lossy().into_owned()
    }
    fn ctl(&self, slot: usize, args: &[&str]) -> String {
        Command::new(Bench::bin("aftrctl"))
            .arg("--socket")
            .arg(self.lab.dir.join(format!("s{slot}.sock")))
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
    fn start(&mut self, slot: usize) {
        let sock = self.lab.dir.join(format!("s{slot}.sock"));
        let _ = std::fs::remove_file(&sock);
        let c = self
            .exec(
                &format!("a{slot}"),
                &[&Bench::bin("aftrd"), "--config", self.lab.dir.join("aftr.conf").to_str().unwrap()],
            )
            .args(["--slot", &slot.to_string(), "--socket", sock.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .expect("aftrd");
        self.boards[slot - 1] = Some(c);
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    /// Mappings (B4, inside, external) of sessions older than `age` seconds on `slot`.
    fn sessions(&self, slot: usize, min_age: u32) -> Vec<String> {
        self.ctl(slot, &["display", "sessions"])
            .lines()
            .filter(|l| l.starts_with("2001:"))
            .filter(|l| l.split_whitespace().nth(4).and_then(|a| a.parse::<u32>().ok()).is_some_and(|a| a >= min_age))
            .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
            .collect()
    }
}

fn wait(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !ok() {
        if t.elapsed() > Duration::from_secs(secs) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// (gaps in ms, kept, eligible) over `kills` kills.
fn failovers(kills: usize) -> Result<(Vec<f64>, usize, usize), String> {
    let mut lab = Bench { boards: [None, None], lab: Lab::of("deploy/netns/ha-topology.sh", "fb", Path::new(".")) };
    let dir = lab.lab.dir.clone();
    std::fs::write(dir.join("aftr.conf"), CONFIG).map_err(|e| e.to_string())?;
    for (name, text) in [("echo.py", ECHO), ("probe.py", PROBE), ("flows.py", FLOWS)] {
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
    }
    let d = dir.to_str().unwrap().to_string();
    let mut echo = lab.exec("inet", &["python3", &format!("{d}/echo.py")]).stdout(Stdio::piped()).spawn().unwrap();
    let out = echo.stdout.take();
    // Owned by the lab from here: killed and waited for on every way out.
    lab.lab.keep(echo);
    let mut line = String::new();
    std::io::BufReader::new(out.unwrap()).read_line(&mut line).map_err(|e| e.to_string())?;
    lab.start(1);
    if !wait(10, || lab.ctl(1, &["display", "service-ha"]).contains("role: active")) {
        return Err("slot 1 did not become active".into());
    }
    lab.start(2);
    let mut b4 = lab
        .exec("sub", &[&Bench::bin("b4"), "--b4", "2001:db8:b4::2", "--aftr", "2001:db8::1", "--ipv4", "192.168.1.10"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = b4.stderr.take();
    lab.lab.keep(b4);
    std::io::BufReader::new(err.unwrap()).read_line(&mut line).map_err(|e| e.to_string())?;
    let probe_log = dir.join("probe.log");
    let probe = lab
        .exec("sub", &["python3", &format!("{d}/probe.py")])
        .stdout(std::fs::File::create(&probe_log).unwrap())
        .spawn()
        .unwrap();
    lab.lab.keep(probe);
    let (mut gaps, mut kept, mut eligible) = (Vec::new(), 0, 0);
    for round in 0..kills {
        // Settled: one active, the other standby and in sync.
        let settled = wait(20, || {
            let s = [lab.ctl(1, &["display", "service-ha"]), lab.ctl(2, &["display", "service-ha"])];
            let act = s.iter().filter(|t| t.contains("role: active")).count();
            let sb = s.iter().filter(|t| t.contains("role: standby") && t.contains("in sync: yes")).count();
            act == 1 && sb == 1
        });
        if !settled {
            return Err(format!("round {round}: the boards did not settle"));
        }
        let active = if lab.ctl(1, &["display", "service-ha"]).contains("role: active") { 1 } else { 2 };
        // 50 more sessions, then past delay-time. Eligible: sessions that have been
        // older than delay-time (1 s) for a second at least at the kill; ages are whole
        // seconds, so those of age 3 or more (a session that became eligible a moment
        // before the kill is still on its way, and is no loss of the protocol's).
        let first = (20_000 + 50 * round).to_string();
        let _ = lab.exec("sub", &["python3", &format!("{d}/flows.py"), &first, "50"]).status();
        std::thread::sleep(Duration::from_millis(3500));
        let before = lab.sessions(active, 3);
        if std::env::var_os("FB_DEBUG").is_some() {
            eprintln!("  active slot {active}: {}", lab.ctl(active, &["display", "service-ha"]).replace('\n', "; "));
            eprintln!("  subscribers: {}", lab.ctl(active, &["display", "subscribers"]).replace('\n', "; "));
        }
        let killed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        if let Some(mut c) = lab.boards[active - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let other = 3 - active;
        if !wait(10, || lab.ctl(other, &["display", "service-ha"]).contains("role: active")) {
            return Err(format!("round {round}: no takeover"));
        }
        std::thread::sleep(Duration::from_millis(500));
        let after = lab.sessions(other, 0);
        let k = before.iter().filter(|m| after.contains(m)).count();
        let times: Vec<f64> =
            std::fs::read_to_string(&probe_log).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect();
        // The longest silence of the probe around the kill (echoes already in flight
        // may still arrive just after it).
        let near: Vec<f64> = times.iter().copied().filter(|t| *t > killed - 0.5 && *t < killed + 5.0).collect();
        let gap = near.windows(2).map(|w| (w[1] - w[0]) * 1000.0).fold(0.0, f64::max);
        let missing: Vec<&String> = before.iter().filter(|m| !after.contains(m)).take(3).collect();
        if !missing.is_empty() {
            eprintln!(
                "  not on slot {other}: {missing:?}\n  slot {other} says: {}",
                lab.ctl(other, &["display", "service-ha"]).replace('\n', "; ")
            );
        }
        eprintln!(
            "kill {}: slot {active} killed; gap {gap:.0} ms; {k}/{} eligible sessions kept",
            round + 1,
            before.len()
        );
        gaps.push(gap);
        kept += k;
        eligible += before.len();
        lab.start(active);
    }
    Ok((gaps, kept, eligible))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = || -> Result<(usize, u32, u32), String> {
        known_options(&args, &["--kills", "--records", "--bulk"], &[])?;
        Ok((
            arg(&args, "--kills")?.unwrap_or(20),
            arg(&args, "--records")?.unwrap_or(2_000_000),
            arg(&args, "--bulk")?.unwrap_or(1_000_000),
        ))
    };
    let (kills, records, bulk) = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("failover-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rate = replication_rate(records);
    println!("replication on loopback: {:.0} records/s ({records} session records)", rate);
    let bulk_s = bulk_sync_secs(bulk);
    println!("bulk sync of {bulk} sessions on loopback: {bulk_s:.2} s");
    let (mut gaps, kept, eligible) = match failovers(kills) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("failover-bench: {e}");
            return ExitCode::from(1);
        }
    };
    let worst = gaps.iter().copied().fold(0.0, f64::max);
    let med = median(&mut gaps);
    println!(
        "failover over {kills} kills: gap median {med:.0} ms, worst {worst:.0} ms; {kept}/{eligible} eligible sessions kept"
    );
    println!(
        "summary: gap_ms={med:.0} gap_worst_ms={worst:.0} preserved={kept}/{eligible} kills={kills} replication_records_per_s={rate:.0} bulk_sync_s={bulk_s:.2} bulk_sessions={bulk}"
    );
    ExitCode::SUCCESS
}
