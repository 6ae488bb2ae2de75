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
//! Ends with `summary: gap_ms=... preserved=KEPT/ELIGIBLE ...`, printed only when every
//! figure was measured. Otherwise it exits 1 and says why: a standby that did not count
//! every record within the time limit, a bulk sync that never got in sync, a process
//! of the set-up that did not start (each start waits for its own sign of life), and
//! any round without a probe echo just before the kill and after it, without an
//! eligible session, or without a takeover (the rounds go on after a failed round, but
//! not after a missing takeover, and the run fails at the end, naming each).
//! `--break no-b4|echo-stops|wrong-key` breaks a run on purpose (for the tests).

use bench::measure::{arg, known_options};
use bench::start::{first_line, tail, wait_for_socket};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench::measure::median;
use dataplane::nat::events::{BlockRecord, Refused, SessionEvent, SessionRecord, SweepKeys};
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
    fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> Refused {
        self.installed.fetch_add((blocks.len() + sessions.len()) as u64, Ordering::Relaxed);
        Refused::default()
    }
    fn sweep(&self, _: Arc<SweepKeys>, _: u64) -> usize {
        0
    }
    fn remove(&self, sessions: Vec<SessionRecord>) -> usize {
        sessions.len()
    }
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        (self.table.to_vec(), Vec::new())
    }
    fn set_active(&self, _: usize, _: bool) {}
    fn set_peer(&self, _: [u8; 6], _: u64) {}
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

/// How the loopback figures run: their time limit, and the standby's HA key (another
/// than the active board's in the tests, so that the standby counts nothing).
struct Loopback {
    limit: Duration,
    standby_key: &'static [u8],
}

const KEY: &[u8] = b"bench-secret-0123456789";

/// An active board (in the active role) and a standby joining it, over 127.0.0.1; the
/// counter of what the standby installs.
fn loopback_pair(table: Vec<SessionRecord>, l: &Loopback) -> Result<(Node, Node, Arc<AtomicU64>), String> {
    let port = |_| UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr());
    let (a, b): (SocketAddr, SocketAddr) = (port(0).map_err(|e| e.to_string())?, port(1).map_err(|e| e.to_string())?);
    let settings = |slot, bind, peer, preferred, key: &[u8]| Settings {
        slot,
        peer_slot: 3 - slot,
        bind,
        peer,
        witness: None,
        links: Vec::new(),
        secret: ha_sync::wire::Secret::new(key),
        locations: vec![ha_sync::node::Location { id: 1, preferred }],
        shares: Default::default(),
        softwire_mac: [0; 6],
        hot_backup: true,
        delay_secs: 1,
        preempt_ms: 60_000,
        heartbeat_ms: 50,
        dead_count: 20,
        queue: 16_384,
        rto_ms: 100,
        pace_per_ms: 64,
        config_digest: 0,
        instance_ids: Vec::new(),
        notify: None,
    };
    let installed = Arc::new(AtomicU64::new(0));
    let active = Node::start(
        settings(1, a, b, true, KEY),
        Counting { table: Arc::new(table), installed: Arc::new(AtomicU64::new(0)) },
    )
    .map_err(|e| format!("active board on {a}: {e}"))?;
    if !wait(5, || active.status().role == Role::Active) {
        return Err(format!("the active board on {a} did not take the active role within 5 s"));
    }
    let standby = Node::start(
        settings(2, b, a, false, l.standby_key),
        Counting { table: Arc::new(Vec::new()), installed: installed.clone() },
    )
    .map_err(|e| format!("standby on {b}: {e}"))?;
    Ok((active, standby, installed))
}

/// Records per second streamed from events to a standby on loopback: every record
/// must reach the standby within the time limit.
fn replication_rate(n: u32, l: &Loopback) -> Result<f64, String> {
    let (active, standby, installed) = loopback_pair(Vec::new(), l)?;
    if !wait(l.limit.as_secs().min(10), || standby.status().in_sync) {
        return Err(format!(
            "replication: the standby did not get in sync with an empty active board ({})",
            describe(&standby.status())
        ));
    }
    let created = unix_s().saturating_sub(10);
    let start = Instant::now();
    for i in 0..n {
        while active.event_backlog() > 60_000 {
            std::hint::spin_loop();
        }
        active.event(SessionEvent::Created(record(i, created)));
    }
    while installed.load(Ordering::Relaxed) < n as u64 && start.elapsed() < l.limit {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (got, secs) = (installed.load(Ordering::Relaxed), start.elapsed().as_secs_f64());
    let st = active.status();
    eprintln!(
        "replication: {} records in {} messages, {} retransmitted, {} overflows, {} events dropped",
        st.records_sent, st.messages_sent, st.retransmitted, st.overflows, st.events_dropped
    );
    if got < n as u64 {
        return Err(format!(
            "replication: the standby counted {got} of {n} records within {} s ({})",
            l.limit.as_secs(),
            describe(&standby.status())
        ));
    }
    Ok(got as f64 / secs)
}

/// Seconds until a joining standby is in sync with a table of `n` sessions, all of
/// them installed.
fn bulk_sync_secs(n: u32, l: &Loopback) -> Result<f64, String> {
    let created = unix_s().saturating_sub(10);
    let table: Vec<SessionRecord> = (0..n).map(|i| record(i, created)).collect();
    let start = Instant::now();
    let (_active, standby, installed) = loopback_pair(table, l)?;
    let joined = Instant::now();
    while !standby.status().in_sync && joined.elapsed() < l.limit {
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = joined.elapsed().as_secs_f64();
    let got = installed.load(Ordering::Relaxed);
    eprintln!(
        "bulk sync: {got} records installed, {secs:.2} s (with {:.2} s to start the active board)",
        joined.duration_since(start).as_secs_f64()
    );
    if !standby.status().in_sync {
        return Err(format!(
            "bulk sync: the standby was not in sync within {} s, {got} of {n} records installed ({})",
            l.limit.as_secs(),
            describe(&standby.status())
        ));
    }
    if got < n as u64 {
        return Err(format!("bulk sync: the standby says it is in sync with {got} of {n} records installed"));
    }
    Ok(secs)
}

/// What a loopback standby says, for a failure's message.
fn describe(st: &ha_sync::node::Status) -> String {
    format!(
        "standby: role {:?}, peer alive {}, {} records received, {} refused unauthenticated",
        st.role, st.peer_alive, st.records_received, st.rejected_auth
    )
}

// ----- Failover over real boards -----

const CONFIG: &str = "sysname failover-bench
slot 1
 worker-cores 0
 interface softwire a1-sw
 interface internet a1-in
 ha-address 192.0.2.1 port 62000
 packet-poll blocking
slot 2
 worker-cores 1
 interface softwire a2-sw
 interface internet a2-in
 ha-address 192.0.2.2 port 62000
 packet-poll blocking
service-ha hot-backup enable
service-ha delay-time 1
service-ha preempt-time 3600
service-ha preshared-key bench-secret-0123456789
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

/// How a run is broken on purpose (`--break`, for the tests): it must then fail, and
/// say why, instead of printing figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// The B4 is not there (its binary missing: the cause of a run that printed
    /// `gap_ms=0 ... preserved=0/0` and passed).
    NoB4,
    /// The echo server stops just before the first kill: no echo after it.
    EchoStops,
    /// The loopback standby has another key: it counts nothing.
    WrongKey,
}

impl Break {
    fn parse(s: &str) -> Result<Break, String> {
        match s {
            "no-b4" => Ok(Break::NoB4),
            "echo-stops" => Ok(Break::EchoStops),
            "wrong-key" => Ok(Break::WrongKey),
            _ => Err(format!("--break {s:?}: no-b4, echo-stops or wrong-key")),
        }
    }
}

/// The HA topology (`dataplane::testing::Lab` removes it, and what runs in it, on every
/// way out), the two boards, which are killed and started again, and the echo server.
struct Bench {
    boards: [Option<Child>; 2],
    echo: Option<Child>,
    lab: Lab,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for c in self.boards.iter_mut().flatten().chain(self.echo.as_mut()) {
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
    /// `aftrctl ARGS` on `slot`: its output, or what went wrong.
    fn ctl(&self, slot: usize, args: &[&str]) -> Result<String, String> {
        let o = Command::new(Bench::bin("aftrctl"))
            .arg("--socket")
            .arg(self.lab.dir.join(format!("s{slot}.sock")))
            .args(args)
            .output()
            .map_err(|e| format!("aftrctl: {e}"))?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!("aftrctl {} on slot {slot}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim()))
        }
    }
    /// `display service-ha` of `slot` (or what went wrong), on one line.
    fn ha(&self, slot: usize) -> String {
        self.ctl(slot, &["display", "service-ha"]).unwrap_or_else(|e| e).replace('\n', "; ")
    }
    fn is_active(&self, slot: usize) -> bool {
        self.ctl(slot, &["display", "service-ha"]).is_ok_and(|t| t.contains("role: active"))
    }
    /// Starts the board of `slot` and waits until its management socket answers.
    fn start(&mut self, slot: usize) -> Result<(), String> {
        let sock = self.lab.dir.join(format!("s{slot}.sock"));
        let log = self.lab.dir.join(format!("aftrd-s{slot}.log"));
        let _ = std::fs::remove_file(&sock);
        let c = self
            .exec(
                &format!("a{slot}"),
                &[&Bench::bin("aftrd"), "--config", self.lab.dir.join("aftr.conf").to_str().unwrap()],
            )
            .args(["--slot", &slot.to_string(), "--socket", sock.to_str().unwrap()])
            .stderr(std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?)
            .spawn()
            .map_err(|e| format!("slot {slot}: aftrd: {e}"))?;
        wait_for_socket(self.boards[slot - 1].insert(c), &sock, &log, &format!("slot {slot}: aftrd"))
    }
    /// Mappings (B4, inside, external) of sessions older than `age` seconds on `slot`.
    fn sessions(&self, slot: usize, min_age: u32) -> Result<Vec<String>, String> {
        Ok(self
            .ctl(slot, &["display", "sessions"])?
            .lines()
            .filter(|l| l.starts_with("2001:"))
            .filter(|l| l.split_whitespace().nth(4).and_then(|a| a.parse::<u32>().ok()).is_some_and(|a| a >= min_age))
            .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
            .collect())
    }
}

/// Waits up to `secs` for `ok`; whether it came.
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

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The times (unix seconds) of the echoes the probe got so far.
fn echoes(log: &Path) -> Vec<f64> {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect()
}

/// What the failovers measured: gaps in ms, sessions kept and eligible (over the
/// rounds that measured, which are all of them when the run succeeds).
struct Failovers {
    gaps: Vec<f64>,
    kept: usize,
    eligible: usize,
}

/// The topology, the two boards, the echo server, the B4 and the probe, each started
/// and seen to be working (the probe has had an echo through B4 and active board).
fn set_up(broken: Option<Break>) -> Result<(Bench, PathBuf), String> {
    let mut lab =
        Bench { boards: [None, None], echo: None, lab: Lab::of("deploy/netns/ha-topology.sh", "fb", Path::new(".")) };
    let dir = lab.lab.dir.clone();
    std::fs::write(dir.join("aftr.conf"), CONFIG).map_err(|e| e.to_string())?;
    for (name, text) in [("echo.py", ECHO), ("probe.py", PROBE), ("flows.py", FLOWS)] {
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
    }
    let d = dir.to_str().unwrap().to_string();
    let mut echo = lab
        .exec("inet", &["python3", "-u", &format!("{d}/echo.py")])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("echo server: {e}"))?;
    let out = echo.stdout.take().expect("piped");
    lab.echo = Some(echo);
    let said = first_line(out, "the echo server", 10)?;
    if said != "ready" {
        return Err(format!("the echo server did not start: {said}"));
    }
    lab.start(1)?;
    if !wait(10, || lab.is_active(1)) {
        return Err(format!("slot 1 did not become active within 10 s: {}", lab.ha(1)));
    }
    lab.start(2)?;
    let b4 = Bench::bin(if broken == Some(Break::NoB4) { "b4-missing" } else { "b4" });
    let mut b4 = lab
        .exec("sub", &[&b4, "--b4", "2001:db8:b4::2", "--aftr", "2001:db8::1", "--ipv4", "192.168.1.10"])
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("b4: {e}"))?;
    let err = b4.stderr.take().expect("piped");
    lab.lab.keep(b4);
    // The B4 says this once its TUN device, address and default route are up.
    let said = first_line(err, "the B4", 10)?;
    if !said.contains("<-> softwire") {
        return Err(format!("the B4 did not start: {said}"));
    }
    let probe_log = dir.join("probe.log");
    let probe = lab
        .exec("sub", &["python3", "-u", &format!("{d}/probe.py")])
        .stdout(std::fs::File::create(&probe_log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("probe: {e}"))?;
    lab.lab.keep(probe);
    if !wait(10, || !echoes(&probe_log).is_empty()) {
        // What the board forwarded tells whether the echoes were lost on its way or
        // beyond it.
        let stats = lab.ctl(1, &["display", "statistics"]).unwrap_or_else(|e| e);
        let counted: Vec<String> = stats
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let (name, value) = (w.next()?, w.next()?);
                let shown = ["in2out", "out2in", "sessions_created"].contains(&name) || name.starts_with("drop_");
                (shown && value != "0").then(|| format!("{name} {value}"))
            })
            .collect();
        return Err(format!(
            "the probe got no echo through the B4 and slot 1 within 10 s (probe says: {}; slot 1 counted: {})",
            tail(&probe_log),
            if counted.is_empty() { "nothing".into() } else { counted.join(", ") }
        ));
    }
    Ok((lab, probe_log))
}

/// `kills` kills of the active board. A round that does not measure (no echo of the
/// probe just before the kill or within 5 s after it, no eligible session, the flows
/// not sent) is a failed round: the run goes on to the next and fails at the end. The
/// boards not settling or no takeover stop the run at once (what the boards do then is
/// unknown).
fn failovers(kills: usize, broken: Option<Break>) -> Result<Failovers, String> {
    let (mut lab, probe_log) = set_up(broken)?;
    let d = lab.lab.dir.to_str().unwrap().to_string();
    let mut f = Failovers { gaps: Vec::new(), kept: 0, eligible: 0 };
    let mut failed = Vec::new();
    for round in 1..=kills {
        // Settled: one active, the other standby and in sync.
        let settled = wait(20, || {
            let s = [lab.ha(1), lab.ha(2)];
            let act = s.iter().filter(|t| t.contains("role: active")).count();
            let sb = s.iter().filter(|t| t.contains("role: standby") && t.contains("in sync: yes")).count();
            act == 1 && sb == 1
        });
        if !settled {
            return Err(format!(
                "round {round}: the boards did not settle within 20 s (slot 1: {}; slot 2: {})",
                lab.ha(1),
                lab.ha(2)
            ));
        }
        let active = if lab.is_active(1) { 1 } else { 2 };
        let other = 3 - active;
        let mut why = Vec::new();
        // 50 more sessions, then past delay-time. Eligible: sessions that have been
        // older than delay-time (1 s) for a second at least at the kill; ages are whole
        // seconds, so those of age 3 or more (a session that became eligible a moment
        // before the kill is still on its way, and is no loss of the protocol's).
        let first = (20_000 + 50 * round).to_string();
        match lab.exec("sub", &["python3", &format!("{d}/flows.py"), &first, "50"]).status() {
            Ok(s) if s.success() => {}
            Ok(s) => why.push(format!("the 50 new flows were not sent (flows.py: {s})")),
            Err(e) => why.push(format!("the 50 new flows were not sent (flows.py: {e})")),
        }
        std::thread::sleep(Duration::from_millis(3500));
        let before = lab.sessions(active, 3).unwrap_or_else(|e| {
            why.push(e);
            Vec::new()
        });
        if before.is_empty() {
            why.push(format!("no eligible session on slot {active} (none 3 s old or older)"));
        }
        if std::env::var_os("FB_DEBUG").is_some() {
            eprintln!("  active slot {active}: {}", lab.ha(active));
            eprintln!("  subscribers: {}", lab.ctl(active, &["display", "subscribers"]).unwrap_or_else(|e| e));
        }
        if broken == Some(Break::EchoStops)
            && let Some(mut c) = lab.echo.take()
        {
            let _ = c.kill();
            let _ = c.wait();
            // Echoes the server sent before it died are still on their way through the
            // active board: they must not count as echoes after the kill.
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Some(mut c) = lab.boards[active - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // From the board's death on: an echo after this went through the other board.
        let killed = now_s();
        if !wait(10, || lab.is_active(other)) {
            return Err(format!("round {round}: no takeover by slot {other} within 10 s: {}", lab.ha(other)));
        }
        // The first echo after the kill, then half a second more of them.
        let back = wait(5, || echoes(&probe_log).last().is_some_and(|t| *t > killed));
        std::thread::sleep(Duration::from_millis(500));
        let after = lab.sessions(other, 0).unwrap_or_else(|e| {
            why.push(e);
            Vec::new()
        });
        let k = before.iter().filter(|m| after.contains(m)).count();
        // The longest silence of the probe around the kill (echoes already in flight
        // may still arrive just after it).
        let near: Vec<f64> = echoes(&probe_log).into_iter().filter(|t| *t > killed - 0.5).collect();
        if !near.iter().any(|t| *t <= killed) {
            why.push("the probe got no echo in the 0.5 s before the kill".into());
        }
        if !back {
            why.push("the probe got no echo within 5 s after the kill".into());
        }
        let gap = near.windows(2).map(|w| (w[1] - w[0]) * 1000.0).fold(0.0, f64::max);
        let missing: Vec<&String> = before.iter().filter(|m| !after.contains(m)).take(3).collect();
        if !missing.is_empty() {
            eprintln!("  not on slot {other}: {missing:?}\n  slot {other} says: {}", lab.ha(other));
        }
        if why.is_empty() {
            eprintln!(
                "kill {round}: slot {active} killed; gap {gap:.0} ms; {k}/{} eligible sessions kept",
                before.len()
            );
            f.gaps.push(gap);
            f.kept += k;
            f.eligible += before.len();
        } else {
            let why = why.join("; ");
            eprintln!("kill {round}: slot {active} killed; FAILED: {why}");
            failed.push(format!("round {round} (slot {active} killed): {why}"));
        }
        lab.start(active)?;
    }
    if !failed.is_empty() {
        return Err(format!("{} of {kills} rounds failed:\n  {}", failed.len(), failed.join("\n  ")));
    }
    Ok(f)
}

const USAGE: &str = "usage: failover-bench [--kills N] [--records N] [--bulk N]";

/// Kills, records replicated and sessions bulk-synced, and the deliberate break.
fn options(args: &[String]) -> Result<(usize, u32, u32, Option<Break>), String> {
    known_options(args, &["--kills", "--records", "--bulk", "--break"], &[])?;
    let kills: usize = arg(args, "--kills")?.unwrap_or(20);
    let records: u32 = arg(args, "--records")?.unwrap_or(2_000_000);
    let bulk: u32 = arg(args, "--bulk")?.unwrap_or(1_000_000);
    if kills == 0 || records == 0 || bulk == 0 {
        return Err("--kills, --records and --bulk: 1 or more".into());
    }
    let broken = arg::<String>(args, "--break")?.map(|b| Break::parse(&b)).transpose()?;
    Ok((kills, records, bulk, broken))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (kills, records, bulk, broken) = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("failover-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(kills, records, bulk, broken) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover-bench: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(kills: usize, records: u32, bulk: u32, broken: Option<Break>) -> Result<(), String> {
    let l = Loopback {
        limit: Duration::from_secs(60),
        standby_key: if broken == Some(Break::WrongKey) { b"another-secret-0123456" } else { KEY },
    };
    let rate = replication_rate(records, &l)?;
    println!("replication on loopback: {rate:.0} records/s ({records} session records)");
    let bulk_s = bulk_sync_secs(bulk, &Loopback { limit: Duration::from_secs(120), ..l })?;
    println!("bulk sync of {bulk} sessions on loopback: {bulk_s:.2} s");
    let Failovers { mut gaps, kept, eligible } = failovers(kills, broken)?;
    let worst = gaps.iter().copied().fold(0.0, f64::max);
    let med = median(&mut gaps);
    println!(
        "failover over {kills} kills: gap median {med:.0} ms, worst {worst:.0} ms; {kept}/{eligible} eligible sessions kept"
    );
    println!(
        "summary: gap_ms={med:.0} gap_worst_ms={worst:.0} preserved={kept}/{eligible} kills={kills} replication_records_per_s={rate:.0} bulk_sync_s={bulk_s:.2} bulk_sessions={bulk}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_that_counts_nothing_fails_the_loopback_figures() {
        let l = Loopback { limit: Duration::from_secs(1), standby_key: b"another-secret-0123456" };
        let e = replication_rate(1000, &l).unwrap_err();
        assert!(e.contains("did not get in sync"), "{e}");
        let e = bulk_sync_secs(1000, &l).unwrap_err();
        assert!(e.contains("not in sync within 1 s, 0 of 1000 records"), "{e}");
        let ok = Loopback { limit: Duration::from_secs(20), standby_key: KEY };
        assert!(replication_rate(1000, &ok).unwrap() > 0.0);
        assert!(bulk_sync_secs(1000, &ok).unwrap() > 0.0);
    }

    #[test]
    fn options_are_checked() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(options(&a("")).unwrap(), (20, 2_000_000, 1_000_000, None));
        assert_eq!(options(&a("--kills 3 --break no-b4")).unwrap().3, Some(Break::NoB4));
        for bad in ["--kills three", "--kills 0", "--kils 3", "--break nothing", "--records"] {
            assert!(options(&a(bad)).is_err(), "{bad}");
        }
    }
}
