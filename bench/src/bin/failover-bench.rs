//! failover-bench: the hot-backup figures, a row per fault.
//!
//! 1. Replication rate on loopback: an active HA thread fed session events (already
//!    older than delay-time) streams them to a standby HA thread over 127.0.0.1; the
//!    rate is records received per second by the standby (its board only counts them,
//!    so this is the protocol's rate, not the engine's install rate). Run once per
//!    trial: median and worst.
//! 2. Bulk sync of 1M sessions on loopback: a standby joins an active board whose table
//!    holds them; the time until it reports being in sync.
//! 3. Faults over real boards (`deploy/netns/ha-topology.sh`, two `aftrd`, the
//!    user-space B4, a UDP probe through it to an echo server, 200 datagrams a second
//!    while unanswered): `--trials N` times per kind, once the standby is in sync, a
//!    fault hits the active board ([`Fault`]: kill -9, SIGSTOP for 2 s, its Internet or
//!    softwire link down, `aftrctl switchover`, the HA link cut for 2 s). Per trial:
//!    - the gap: the longest silence of the probe around the fault (an echo later than
//!      [`LATE`] is a loss);
//!    - kept: the sessions the active board held longer than delay-time before the fault
//!      that the board active after it holds with the same mapping;
//!    - afterwards, once the pair has settled again (one active board, the other standby
//!      and in sync): the active board's sessions older than delay-time, those made
//!      during the fault among them, that the standby holds too;
//!    - takeovers, from the boards' `service-ha notify` hook (a line per change of role)
//!      and from polling the roles: for the HA link cut, where the witness on the
//!      softwire segment must keep the roles, a takeover between the cut and the pair's
//!      settling after it fails the run;
//!    - stray changes of role: before the fault or after the pair settled again (a
//!      peer unheard for a dead interval on a loaded host), reported.
//!
//!    Each kind's row says whether issue 14's goals were met (a missed goal is reported,
//!    not a failed run): with the configuration's timers, the kill -9 gap under 150 ms
//!    median and 200 ms worst; with a dead interval of 60 ms or less (`--heartbeat 20
//!    --dead-count 3`), under 100 ms worst; replication at least 1.5M records/s; every
//!    eligible session kept.
//!
//! Usage: failover-bench [--faults kill9,sigstop,...] [--trials N] [--heartbeat MS
//! --dead-count N] [--records N] [--bulk N] [--bgp]   (root, binaries built); `--kills N` is the
//! first form of `--faults kill9 --trials N` (what bench-report runs); `--faults none`: the
//! loopback figures only (no root needed).
//! Ends with `summary:` rows, one per fault kind (`fault=kill9 gap_ms=... gap_worst_ms=...
//! preserved=KEPT/ELIGIBLE ...`); kill9's row comes last and carries the loopback
//! figures, with the fields of the single summary line of before (`kills=N`,
//! `replication_records_per_s=...`). They are printed only when every figure was
//! measured. Otherwise it exits 1 and says why: a standby that did not count every
//! record within the time limit, a bulk sync that never got in sync, a process of the
//! set-up that did not start (each start waits for its own sign of life), a notify hook
//! that recorded nothing, any trial without a probe echo just before the fault and
//! after it (and after the SIGCONT), without an eligible session; a takeover at an HA
//! link cut; and, stopping the run at once, a fault with no takeover or a pair that
//! does not settle afterwards (what the boards do then is unknown).
//! `--bgp`: the upstream router learns the pool by BGP from the boards' BIRD
//! (`deploy/bird/`, decision 0016) instead of ARP on its segment, so every gap includes
//! the route's move; the rows end with `announce=bgp`.
//! `--break no-b4|echo-stops|echo-stops-at-sigcont|witness-cut|wrong-key` breaks a run
//! on purpose (for the tests).

use bench::measure::{arg, known_options, median};
use bench::start::{first_line, tail, wait_for_socket};
use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    fn sweep(&self, _: Arc<SweepKeys>, _: u64) -> Result<usize, (usize, String)> {
        Ok(0)
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
        pcp: None,
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
    // In batches as a board hands its workers' events on (up to
    // `dataplane::board::EVENT_BATCH` of a worker; a quarter of that here).
    const BATCH: u32 = 1024;
    for first in (0..n).step_by(BATCH as usize) {
        // A full queue holds some 40 ms of the HA thread's work: a nap, not a spin, so
        // that this thread does not take a core from the HA threads it measures.
        while active.event_backlog() > 60_000 {
            std::thread::sleep(Duration::from_micros(100));
        }
        active.events((first..n.min(first + BATCH)).map(|i| SessionEvent::Created(record(i, created))).collect());
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
            "replication: the standby counted {got} of {n} records within {} s ({}; active: role {:?}{})",
            l.limit.as_secs(),
            describe(&standby.status()),
            st.role,
            last_change(&st)
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
        "standby: role {:?}, peer alive {}, {} records received, {} refused unauthenticated{}",
        st.role,
        st.peer_alive,
        st.records_received,
        st.rejected_auth,
        last_change(st)
    )
}

/// The last change of role of a loopback board and its reason, if it had one.
fn last_change(st: &ha_sync::node::Status) -> String {
    st.last_change.as_ref().map(|(ms, why)| format!(", last change at {ms} ms: {why}")).unwrap_or_default()
}

// ----- Faults over real boards -----

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

/// The line of [`CONFIG`] after which the run's own `service-ha` lines go (the notify
/// hook, the timers). Preempt-time is an hour: a board that recovers stays standby, so
/// each trial ends with the roles where the fault left them.
const HA_LINES_AFTER: &str = "service-ha preshared-key bench-secret-0123456789\n";

const ECHO: &str = r#"
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("203.0.113.80", 7))
print("ready", flush=True)
while True:
    d, peer = u.recvfrom(2048)
    try:
        u.sendto(d, peer)
    except OSError:
        # No route back (--bgp: none announced at that moment): a lost echo, a gap.
        pass
"#;

/// 200 datagrams a second from port 5000 while none is answered, otherwise the next
/// one a millisecond after the last (the gap's resolution; unpaced, a ping-pong over
/// veth wrote half a megabyte of log a second), each carrying its send time; prints
/// the time of each echo and the send time it carries.
const PROBE: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
s.settimeout(0.005)
print("started", flush=True)
while True:
    t = time.time()
    try:
        s.sendto(b"%.6f" % t, ("203.0.113.80", 7))
        sent = float(s.recv(64))
        print("%.4f %.6f" % (time.time(), sent), flush=True)
        rest = t + 0.001 - time.time()
        if rest > 0:
            time.sleep(rest)
    except (OSError, ValueError):
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

/// The boards' `service-ha notify` hook: a line per change of role in `roles.log`,
/// `UNIX-TIME SLOT LOCATION ROLE REASON`. `{log}` is replaced by the log's path.
const NOTIFY: &str = "#!/bin/sh\necho \"$(date +%s.%N) $1 $2 $3 $4\" >> {log}\n";

/// How long a SIGSTOP or an HA link cut lasts, seconds.
const OUTAGE: f64 = 2.0;

/// A fault of the active board: a row of the summary each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL of the active board's process; it is started again after the trial and
    /// joins as the standby.
    Kill9,
    /// SIGSTOP of the active board for 2 s, then SIGCONT. The standby takes over; when
    /// the stopped board runs again both are active until the first heartbeat, and the
    /// board that became active last keeps the role (decision 0007): the resumed board
    /// steps down and resyncs.
    Sigstop,
    /// The active board's Internet interface set down in its namespace: the board is
    /// unfit and hands its locations over; set up again after the measurement.
    InetDown,
    /// The same with its softwire interface.
    SoftwireDown,
    /// `aftrctl switchover` on the active board.
    Switchover,
    /// The HA link cut for 2 s (the active board's end set down): the witness on the
    /// softwire segment tells the standby that the active board lives, so no takeover.
    HaCut,
}

impl Fault {
    const ALL: [Fault; 6] =
        [Fault::Kill9, Fault::Sigstop, Fault::InetDown, Fault::SoftwireDown, Fault::Switchover, Fault::HaCut];

    fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill9",
            Fault::Sigstop => "sigstop",
            Fault::InetDown => "inet-down",
            Fault::SoftwireDown => "softwire-down",
            Fault::Switchover => "switchover",
            Fault::HaCut => "ha-cut",
        }
    }

    /// `--faults`: names separated by commas, each once.
    fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
        let mut faults = Vec::new();
        if s == "none" {
            return Ok(faults);
        }
        for name in s.split(',') {
            let f = Fault::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| {
                let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("--faults: {name:?} is none of {}", names.join(", "))
            })?;
            if faults.contains(&f) {
                return Err(format!("--faults: {name} twice"));
            }
            faults.push(f);
        }
        Ok(faults)
    }

    /// What is done to the active board `slot`, for messages.
    fn what(self, slot: usize) -> String {
        match self {
            Fault::Kill9 => format!("SIGKILL of slot {slot}"),
            Fault::Sigstop => format!("SIGSTOP of slot {slot} for {OUTAGE} s"),
            Fault::InetDown => format!("slot {slot}'s Internet link down"),
            Fault::SoftwireDown => format!("slot {slot}'s softwire link down"),
            Fault::Switchover => format!("switchover from slot {slot}"),
            Fault::HaCut => format!("slot {slot}'s HA link cut for {OUTAGE} s"),
        }
    }

    /// Whether the standby is to take over.
    fn takes_over(self) -> bool {
        self != Fault::HaCut
    }
}

/// The HA timers the boards run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timers {
    /// The configuration's defaults (no `service-ha heartbeat` line).
    Defaults,
    /// `--heartbeat MS --dead-count N`: `service-ha heartbeat interval MS dead-count N`.
    Set { heartbeat_ms: u32, dead_count: u32 },
}

/// How a run is broken on purpose (`--break`, for the tests): it must then fail, and
/// say why, instead of printing figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// The B4 is not there (its binary missing: the cause of a run that printed
    /// `gap_ms=0 ... preserved=0/0` and passed).
    NoB4,
    /// The echo server stops just before the first fault: no echo after it.
    EchoStops,
    /// The echo server stops just before the first SIGCONT: no echo after it.
    EchoStopsAtSigcont,
    /// At an HA link cut, the witness's path goes too (the active board's softwire port
    /// leaves the bridge): the standby takes over, which an HA link cut must not cause.
    WitnessCut,
    /// The loopback standby has another key: it counts nothing.
    WrongKey,
}

impl Break {
    fn parse(s: &str) -> Result<Break, String> {
        match s {
            "no-b4" => Ok(Break::NoB4),
            "echo-stops" => Ok(Break::EchoStops),
            "echo-stops-at-sigcont" => Ok(Break::EchoStopsAtSigcont),
            "witness-cut" => Ok(Break::WitnessCut),
            "wrong-key" => Ok(Break::WrongKey),
            _ => Err(format!("--break {s:?}: no-b4, echo-stops, echo-stops-at-sigcont, witness-cut or wrong-key")),
        }
    }

    /// The fault a break needs to take effect, if it needs one.
    fn needs(self) -> Option<Fault> {
        match self {
            Break::EchoStopsAtSigcont => Some(Fault::Sigstop),
            Break::WitnessCut => Some(Fault::HaCut),
            _ => None,
        }
    }
}

/// A session as `display sessions` shows it.
struct Session {
    /// B4, inside, external, protocol.
    mapping: String,
    age: u32,
    idle: u32,
}

impl Session {
    /// Older than delay-time (1 s) for a second at least: ages are whole seconds, so of
    /// age 3 or more (a session that became eligible a moment ago is still on its way,
    /// and is no loss of the protocol's). And far from the 300 s UDP timeout: an expiry
    /// between two reads is no loss either.
    fn eligible(&self) -> bool {
        self.age >= 3 && self.idle < 240
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
    fn roles_log(&self) -> PathBuf {
        self.lab.dir.join("roles.log")
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
    /// The timers `slot` runs with: heartbeat interval (ms) and dead count.
    fn timers(&self, slot: usize) -> Result<(u32, u32), String> {
        let text = self.ctl(slot, &["display", "service-ha"])?;
        let line = text.lines().find_map(|l| l.strip_prefix("heartbeat: ")).unwrap_or_default();
        let parsed = line.split_once(" ms, dead after ").and_then(|(h, d)| Some((h.parse().ok()?, d.parse().ok()?)));
        parsed.ok_or_else(|| format!("slot {slot} shows no timers in display service-ha: {text}"))
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
    /// The sessions on `slot`.
    fn sessions(&self, slot: usize) -> Result<Vec<Session>, String> {
        Ok(self
            .ctl(slot, &["display", "sessions"])?
            .lines()
            .filter(|l| l.starts_with("2001:"))
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let (age, idle) = (w.get(4)?.parse().ok()?, w.get(5)?.parse().ok()?);
                Some(Session { mapping: w[..4].join(" "), age, idle })
            })
            .collect())
    }
    /// Waits up to 20 s until one board is active and the other standby and in sync;
    /// the active one.
    fn settle(&self) -> Result<usize, String> {
        let mut active = 0;
        let settled = wait(20, || {
            let s = [self.ha(1), self.ha(2)];
            let act: Vec<usize> = (1..=2).filter(|&n| s[n - 1].contains("role: active")).collect();
            let sb = s.iter().filter(|t| t.contains("role: standby") && t.contains("in sync: yes")).count();
            active = act.first().copied().unwrap_or(0);
            act.len() == 1 && sb == 1
        });
        if !settled {
            return Err(format!(
                "the boards did not settle within 20 s (slot 1: {}; slot 2: {})",
                self.ha(1),
                self.ha(2)
            ));
        }
        Ok(active)
    }
    /// `ip ARGS` in namespace `ns` (`a1`, `a2`, `lan`).
    fn ip(&self, ns: &str, args: &[&str]) -> Result<(), String> {
        let o = self.exec(ns, &["ip"]).args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
        if !o.status.success() {
            return Err(format!("ip {} in {ns}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim()));
        }
        Ok(())
    }
    /// Sets interface `a<slot>-<end>` (`in`, `sw`, `ha`) of board `slot` up or down.
    fn link(&self, slot: usize, end: &str, state: &str) -> Result<(), String> {
        self.ip(&format!("a{slot}"), &["link", "set", &format!("a{slot}-{end}"), state])
    }
    /// Sends `kill -SIG` to the board of `slot` (through kill(1): this crate keeps its
    /// unsafe code in `tun`).
    fn signal(&self, slot: usize, sig: &str) -> Result<(), String> {
        let pid =
            self.boards[slot - 1].as_ref().map(|c| c.id()).ok_or_else(|| format!("slot {slot} is not running"))?;
        match Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("kill -{sig} of slot {slot}: {s}")),
            Err(e) => Err(format!("kill -{sig} of slot {slot}: {e}")),
        }
    }
    /// 50 more sessions, from ports `first` on.
    fn flows(&self, first: usize) -> Result<(), String> {
        let script = self.lab.dir.join("flows.py");
        match self.exec("sub", &["python3", script.to_str().unwrap(), &first.to_string(), "50"]).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("the 50 new flows were not sent (flows.py: {s})")),
            Err(e) => Err(format!("the 50 new flows were not sent (flows.py: {e})")),
        }
    }
    /// Stops the echo server (a run broken on purpose). Echoes it sent before it died
    /// may still be on their way through the active board: they must not count as
    /// echoes after what follows.
    fn stop_echo(&mut self) {
        if let Some(mut c) = self.echo.take() {
            let _ = c.kill();
            let _ = c.wait();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Puts `fault` in place on `slot`, the active board.
    fn inject(&mut self, fault: Fault, slot: usize, broken: Option<Break>) -> Result<(), String> {
        match fault {
            Fault::Kill9 => {
                if let Some(mut c) = self.boards[slot - 1].take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                Ok(())
            }
            Fault::Sigstop => self.signal(slot, "STOP"),
            Fault::InetDown => self.link(slot, "in", "down"),
            Fault::SoftwireDown => self.link(slot, "sw", "down"),
            Fault::Switchover => self.ctl(slot, &["switchover"]).map(|_| ()),
            Fault::HaCut => {
                self.link(slot, "ha", "down")?;
                if broken == Some(Break::WitnessCut) {
                    self.ip("lan", &["link", "set", &format!("p-a{slot}s"), "nomaster"])?;
                }
                Ok(())
            }
        }
    }

    /// Ends an outage of `slot` that lasts a fixed time: the SIGCONT, the HA link back.
    fn end_outage(&self, fault: Fault, slot: usize, broken: Option<Break>) -> Result<(), String> {
        match fault {
            Fault::Sigstop => self.signal(slot, "CONT"),
            Fault::HaCut => {
                self.link(slot, "ha", "up")?;
                if broken == Some(Break::WitnessCut) {
                    self.ip("lan", &["link", "set", &format!("p-a{slot}s"), "master", "bsw"])?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// After the measurement, `slot` as it was before `fault`: the killed board started
    /// again (it joins as the standby), the link set up again (with the default route
    /// that the kernel removed with it).
    fn restore(&mut self, fault: Fault, slot: usize) -> Result<(), String> {
        match fault {
            Fault::Kill9 => self.start(slot),
            Fault::InetDown => {
                self.link(slot, "in", "up")?;
                self.ip(&format!("a{slot}"), &["route", "replace", "default", "via", "203.0.113.80"])
            }
            Fault::SoftwireDown => self.link(slot, "sw", "up"),
            _ => Ok(()),
        }
    }

    /// Of the eligible sessions of the active board, how many the standby holds (within
    /// 5 s, for records still on their way), and of how many.
    fn resynced(&self, active: usize) -> Result<(usize, usize), String> {
        let want: Vec<String> =
            self.sessions(active)?.into_iter().filter(Session::eligible).map(|s| s.mapping).collect();
        let mut held = 0;
        let mut error = None;
        wait(5, || match self.sessions(3 - active) {
            Ok(s) => {
                let there: HashSet<String> = s.into_iter().map(|s| s.mapping).collect();
                held = want.iter().filter(|m| there.contains(*m)).count();
                held == want.len()
            }
            Err(e) => {
                error = Some(e);
                false
            }
        });
        match error {
            Some(e) if held < want.len() => Err(e),
            _ => Ok((held, want.len())),
        }
    }

    /// One trial of `fault` (the `n`th of its kind, the `seq`th of the run, which names
    /// the ports of its flows). The inner error is a trial that did not measure (the
    /// run goes on and fails at the end); the outer one stops the run: no takeover, a
    /// pair that does not settle, a fault that could not be put in place.
    fn trial(
        &mut self,
        fault: Fault,
        n: usize,
        seq: usize,
        probe_log: &Path,
        broken: Option<Break>,
    ) -> Result<Result<Trial, String>, String> {
        let name = format!("{} trial {n}", fault.name());
        let active = self.settle().map_err(|e| format!("{name}: before the fault, {e}"))?;
        let other = 3 - active;
        let what = fault.what(active);
        let began = now_s();
        let mut why = Vec::new();
        // Sessions eligible at the fault: 50 more, then past delay-time.
        let port = 20_000 + (100 * seq) % 40_000;
        if let Err(e) = self.flows(port) {
            why.push(e);
        }
        std::thread::sleep(Duration::from_millis(3500));
        let before: Vec<String> = match self.sessions(active) {
            Ok(s) => s.into_iter().filter(Session::eligible).map(|s| s.mapping).collect(),
            Err(e) => {
                why.push(e);
                Vec::new()
            }
        };
        if before.is_empty() {
            why.push(format!("no eligible session on slot {active} (none 3 s old or older)"));
        }
        if std::env::var_os("FB_DEBUG").is_some() {
            eprintln!("  active slot {active}: {}", self.ha(active));
            eprintln!("  subscribers: {}", self.ctl(active, &["display", "subscribers"]).unwrap_or_else(|e| e));
        }
        if broken == Some(Break::EchoStops) {
            self.stop_echo();
        }
        // The fault, from the moment it is asked for.
        let t0 = now_s();
        self.inject(fault, active, broken).map_err(|e| format!("{name}: {what}: {e}"))?;
        // The standby takes over, or (an HA link cut) must not while the cut lasts.
        let mut polled_takeover = false;
        let seen = if fault.takes_over() {
            if !wait(10, || self.is_active(other)) {
                return Err(format!(
                    "{name}: no takeover by slot {other} within 10 s of the {what}: {}",
                    self.ha(other)
                ));
            }
            now_s()
        } else {
            while now_s() < t0 + OUTAGE {
                polled_takeover |= self.is_active(other);
                std::thread::sleep(Duration::from_millis(50));
            }
            self.end_outage(fault, active, broken).map_err(|e| format!("{name}: {e}"))?;
            now_s()
        };
        // Sessions made while the fault lasts: the standby must hold them afterwards.
        if let Err(e) = self.flows(port + 50) {
            why.push(e);
        }
        let made = now_s();
        let resumed = if fault == Fault::Sigstop {
            sleep_until(t0 + OUTAGE);
            if broken == Some(Break::EchoStopsAtSigcont) {
                self.stop_echo();
            }
            let resumed = now_s();
            self.end_outage(fault, active, broken).map_err(|e| format!("{name}: {e}"))?;
            Some(resumed)
        } else {
            None
        };
        // The first echo after the takeover (or the HA link's return) and after the
        // SIGCONT, then a while more: 0.5 s, or 2 s after a SIGCONT, where a lasting
        // second gap would show.
        let back = wait(5, || echoes(probe_log).last().is_some_and(|t| *t > seen));
        let back_after_cont = resumed.map(|r| wait(5, || echoes(probe_log).last().is_some_and(|t| *t > r)));
        std::thread::sleep(Duration::from_millis(if resumed.is_some() { 2000 } else { 500 }));
        let serving = if fault.takes_over() { other } else { active };
        let after: HashSet<String> = match self.sessions(serving) {
            Ok(s) => s.into_iter().map(|s| s.mapping).collect(),
            Err(e) => {
                why.push(e);
                HashSet::new()
            }
        };
        let kept = before.iter().filter(|m| after.contains(*m)).count();
        let observed = now_s();
        let near: Vec<f64> = echoes(probe_log).into_iter().filter(|t| *t > t0 - 0.5).collect();
        let late = echo_log(probe_log).iter().filter(|(r, s)| *r > t0 && r - s >= LATE).count();
        if !near.iter().any(|t| *t <= t0) {
            why.push("the probe got no echo in the 0.5 s before the fault".into());
        }
        if !back {
            let what = if fault.takes_over() { "the takeover" } else { "the HA link came back" };
            why.push(format!("the probe got no echo in the 5 s after {what}"));
        }
        if back_after_cont == Some(false) {
            why.push("the probe got no echo in the 5 s after the SIGCONT".into());
        }
        let quiet = silences(&near, observed);
        let missing: Vec<&String> = before.iter().filter(|m| !after.contains(*m)).take(3).collect();
        if !missing.is_empty() {
            eprintln!("  not on slot {serving}: {missing:?}\n  slot {serving} says: {}", self.ha(serving));
        }
        self.restore(fault, active).map_err(|e| format!("{name}: restoring after the {what}: {e}"))?;
        let now_active = self.settle().map_err(|e| format!("{name}: after the {what}, {e}"))?;
        let settled = now_s();
        // The sessions made during the fault past delay-time, then on both boards.
        sleep_until(made + 3.5);
        let (resynced, resync_of) = self.resynced(now_active).unwrap_or_else(|e| {
            why.push(e);
            (0, 0)
        });
        // Changes of role from the fault until the pair settled again are the fault's;
        // any before it or after that, or roles that end elsewhere than the fault put
        // them, are stray (on a loaded host: a peer unheard for a dead interval).
        let roles = role_changes(&std::fs::read_to_string(self.roles_log()).unwrap_or_default());
        let since: Vec<&RoleChange> = roles.iter().filter(|c| c.at >= began).collect();
        let (during, around): (Vec<&RoleChange>, Vec<&RoleChange>) =
            since.iter().partition(|c| (t0..=settled).contains(&c.at));
        let takeover = during.iter().find(|c| c.slot == other && c.role == "active").map(|c| c.at);
        let stray = around.len() + usize::from(now_active != serving);
        let astray = stray > 0 || (!fault.takes_over() && (takeover.is_some() || polled_takeover));
        if astray || std::env::var_os("FB_DEBUG").is_some() {
            for c in &since {
                eprintln!("  {:+.3} s after the fault: slot {} {}: {}", c.at - t0, c.slot, c.role, c.why);
            }
        }
        let t = Trial {
            gap_ms: longest_silence_from_before(&quiet, resumed.unwrap_or(f64::INFINITY)),
            after_cont_ms: resumed.map(|r| longest_silence_after(&quiet, r)),
            step_down_ms: resumed.and_then(|r| {
                let c = since.iter().find(|c| c.slot == active && c.role == "standby" && c.at >= r)?;
                Some((c.at - r) * 1000.0)
            }),
            takeover_ms: takeover.map(|at| (at - t0).max(0.0) * 1000.0),
            took_over: polled_takeover || takeover.is_some(),
            kept,
            eligible: before.len(),
            resynced,
            resync_of,
            active_after: now_active,
            late,
            stray,
        };
        if why.is_empty() {
            eprintln!("{name}: {what}; {}", t.describe(fault, other));
            Ok(Ok(t))
        } else {
            let why = why.join("; ");
            eprintln!("{name}: {what}; FAILED: {why}");
            Ok(Err(format!("{name} ({what}): {why}")))
        }
    }
}

/// What one trial measured.
#[derive(Debug, Clone, Default)]
struct Trial {
    /// The longest silence of the probe around the fault (at a SIGSTOP, of those that
    /// began before the SIGCONT), ms.
    gap_ms: f64,
    /// SIGSTOP: the longest silence after the SIGCONT (the part after it), ms.
    after_cont_ms: Option<f64>,
    /// SIGSTOP: from the SIGCONT to the resumed board's step down, by its notify, ms.
    step_down_ms: Option<f64>,
    /// From the fault to the standby's change to active, by its notify, ms.
    takeover_ms: Option<f64>,
    /// Whether the standby became active, by its notify or by polling.
    took_over: bool,
    /// Sessions eligible at the fault, and of them those on the board active after it.
    kept: usize,
    eligible: usize,
    /// Afterwards, the pair settled again: the active board's eligible sessions (those
    /// made during the fault among them), and of them those on the standby.
    resynced: usize,
    resync_of: usize,
    /// The board active afterwards.
    active_after: usize,
    /// Echoes after the fault that came later than [`LATE`] (not counted as echoes).
    late: usize,
    /// Changes of role that were not the fault's (before it, after the pair settled
    /// again), and roles that ended elsewhere than the fault put them.
    stray: usize,
}

impl Trial {
    /// The trial's line, after what was done.
    fn describe(&self, fault: Fault, standby: usize) -> String {
        let ms = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.0}"));
        let mut s = match (fault.takes_over(), self.took_over) {
            (true, _) if self.takeover_ms.is_none() => {
                format!("takeover by slot {standby} (not in the notify log); ")
            }
            (true, _) => format!("takeover by slot {standby} after {} ms; ", ms(self.takeover_ms)),
            (false, false) => "no takeover; ".to_string(),
            (false, true) => format!("TAKEOVER by slot {standby}; "),
        };
        s += &format!("gap {:.0} ms; ", self.gap_ms);
        if self.late > 0 {
            s += &format!("{} echoes later than {LATE} s not counted; ", self.late);
        }
        if let Some(after) = self.after_cont_ms {
            s += &format!(
                "after the SIGCONT: slot {} stepped down after {} ms, longest silence {after:.0} ms; ",
                3 - standby,
                ms(self.step_down_ms)
            );
        }
        s += &format!(
            "{}/{} eligible sessions kept; afterwards slot {} active, {}/{} of its eligible sessions on the standby",
            self.kept, self.eligible, self.active_after, self.resynced, self.resync_of
        );
        if self.stray > 0 {
            s += &format!("; {} STRAY changes of role", self.stray);
        }
        s
    }
}

/// A change of role, as the notify hook logged it.
#[derive(Debug, Clone, PartialEq)]
struct RoleChange {
    /// Unix time, seconds.
    at: f64,
    slot: usize,
    role: String,
    why: String,
}

/// The lines of the notify hook's log (`UNIX-TIME SLOT LOCATION ROLE REASON`).
fn role_changes(log: &str) -> Vec<RoleChange> {
    log.lines()
        .filter_map(|l| {
            let mut w = l.splitn(5, ' ');
            let (at, slot, _location, role) = (w.next()?, w.next()?, w.next()?, w.next()?);
            let why = w.next().unwrap_or_default().to_string();
            Some(RoleChange { at: at.parse().ok()?, slot: slot.parse().ok()?, role: role.to_string(), why })
        })
        .collect()
}

/// The silences of the probe (start, end): between each echo (times, sorted) and the
/// next, and from the last one to `end`, the end of the observation (a silence that
/// never ended is a silence too).
fn silences(echoes: &[f64], end: f64) -> Vec<(f64, f64)> {
    echoes.windows(2).map(|w| (w[0], w[1])).chain(echoes.last().map(|&l| (l, end.max(l)))).collect()
}

/// The longest of `silences` that began before `split`, whole, ms.
fn longest_silence_from_before(silences: &[(f64, f64)], split: f64) -> f64 {
    silences.iter().filter(|s| s.0 < split).map(|s| (s.1 - s.0) * 1000.0).fold(0.0, f64::max)
}

/// The longest part of `silences` after `split`, ms.
fn longest_silence_after(silences: &[(f64, f64)], split: f64) -> f64 {
    silences.iter().filter(|s| s.1 > split).map(|s| (s.1 - s.0.max(split)) * 1000.0).fold(0.0, f64::max)
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

/// Sleeps until unix time `t` (seconds), if it is still to come.
fn sleep_until(t: f64) {
    let left = t - now_s();
    if left > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(left));
    }
}

/// An echo that comes later than this after its datagram was sent (seconds) is a loss:
/// frames that waited in the rings of a stopped board come out when it runs again, 2 s
/// late, and say nothing of the path then.
const LATE: f64 = 0.5;

/// The echoes the probe got so far: (received, sent), unix seconds.
fn echo_log(log: &Path) -> Vec<(f64, f64)> {
    recent(log)
        .lines()
        .filter_map(|l| {
            let (received, sent) = l.split_once(' ')?;
            Some((received.parse().ok()?, sent.parse().ok()?))
        })
        .collect()
}

/// The last [`RECENT_BYTES`] of the probe's log (about a minute of echoes, more than a
/// trial looks back), from a line's start: reading the whole log at every poll of every
/// trial would cost more the longer the run.
fn recent(log: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(log) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(RECENT_BYTES);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(from)).and_then(|_| f.read_to_end(&mut bytes)).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    match (from, text.find('\n')) {
        (0, _) => text.into_owned(),
        (_, Some(first_end)) => text[first_end + 1..].to_owned(),
        (_, None) => String::new(),
    }
}

const RECENT_BYTES: u64 = 2 << 20;

/// The times the probe got an echo in time (within [`LATE`]).
fn echoes(log: &Path) -> Vec<f64> {
    echo_log(log).into_iter().filter(|(received, sent)| received - sent < LATE).map(|e| e.0).collect()
}

/// The topology, the two boards, the echo server, the B4 and the probe, each started
/// and seen to be working (the probe has had an echo through B4 and active board, the
/// notify hook has logged slot 1's start as active).
fn set_up(timers: Timers, broken: Option<Break>, bgp: bool) -> Result<(Bench, PathBuf), String> {
    let mut lab =
        Bench { boards: [None, None], echo: None, lab: Lab::of("deploy/netns/ha-topology.sh", "fb", Path::new(".")) };
    let dir = lab.lab.dir.clone();
    let notify = dir.join("notify.sh");
    std::fs::write(&notify, NOTIFY.replace("{log}", lab.roles_log().to_str().unwrap())).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let mut ha = format!("service-ha notify {}\n", notify.display());
    if let Timers::Set { heartbeat_ms, dead_count } = timers {
        ha += &format!("service-ha heartbeat interval {heartbeat_ms} dead-count {dead_count}\n");
    }
    if !CONFIG.contains(HA_LINES_AFTER) {
        return Err("the bench's configuration lost the line its HA settings follow".into());
    }
    let mut config = CONFIG.replace(HA_LINES_AFTER, &format!("{HA_LINES_AFTER}{ha}"));
    if bgp {
        // Decision 0016: the upstream reaches the pool only by the route the active
        // board's BIRD announces.
        config = config.replace(" packet-poll blocking\n", " packet-poll blocking\n route-table 100\n");
        lab.lab.bgp(Path::new("."))?;
    }
    std::fs::write(dir.join("aftr.conf"), config).map_err(|e| e.to_string())?;
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
    // Takeovers are counted from the hook's log: it must be seen to work.
    let logged = || {
        let roles = role_changes(&std::fs::read_to_string(lab.roles_log()).unwrap_or_default());
        roles.iter().any(|c| c.slot == 1 && c.role == "active")
    };
    if !wait(5, logged) {
        return Err(format!(
            "the notify hook logged no change of role of slot 1 within 5 s ({}): takeovers could not be counted",
            tail(&dir.join("aftrd-s1.log"))
        ));
    }
    if bgp {
        let route = || lab.exec("inet", &["ip", "route", "show", "198.51.100.0/24"]).output();
        let via1 = || route().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("via 203.0.113.1 "));
        if !wait(20, via1) {
            return Err(format!(
                "the upstream learned no route to the pool via slot 1 by BGP within 20 s (its BIRD says: {})",
                tail(&dir.join("inet.bird.log"))
            ));
        }
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

/// A fault kind's trials: those that measured, and why the others did not.
struct Row {
    fault: Fault,
    trials: Vec<Trial>,
    failed: Vec<String>,
}

impl Row {
    /// Median and worst of the trials' values.
    fn median_worst(mut v: Vec<f64>) -> (f64, f64) {
        let worst = v.iter().copied().fold(0.0, f64::max);
        (median(&mut v), worst)
    }
    fn gap(&self) -> (f64, f64) {
        Row::median_worst(self.trials.iter().map(|t| t.gap_ms).collect())
    }
    fn after_cont(&self) -> Option<(f64, f64)> {
        (self.fault == Fault::Sigstop)
            .then(|| Row::median_worst(self.trials.iter().filter_map(|t| t.after_cont_ms).collect()))
    }
    fn kept(&self) -> (usize, usize) {
        (self.trials.iter().map(|t| t.kept).sum(), self.trials.iter().map(|t| t.eligible).sum())
    }
    fn resynced(&self) -> (usize, usize) {
        (self.trials.iter().map(|t| t.resynced).sum(), self.trials.iter().map(|t| t.resync_of).sum())
    }
    fn takeovers(&self) -> usize {
        self.trials.iter().filter(|t| t.took_over).count()
    }
    fn stray(&self) -> usize {
        self.trials.iter().map(|t| t.stray).sum()
    }

    /// Issue 14's goals for this kind, each with whether it was met: the kill -9 gap
    /// (with the configuration's timers, or with a dead interval of 60 ms or less), no
    /// takeover at an HA link cut, every eligible session kept.
    fn goals(&self, timers: Timers) -> Vec<(String, bool)> {
        let mut goals = Vec::new();
        let (med, worst) = self.gap();
        match (self.fault, timers) {
            (Fault::Kill9, Timers::Defaults) => {
                goals.push(("gap median under 150 ms".to_string(), med < 150.0));
                goals.push(("worst under 200 ms".to_string(), worst < 200.0));
            }
            (Fault::Kill9, Timers::Set { heartbeat_ms, dead_count }) if heartbeat_ms * dead_count <= 60 => {
                goals.push(("worst gap under 100 ms".to_string(), worst < 100.0));
            }
            (Fault::HaCut, _) => goals.push(("no takeover".to_string(), self.takeovers() == 0)),
            _ => {}
        }
        let (kept, eligible) = self.kept();
        goals.push(("every eligible session kept".to_string(), kept == eligible));
        goals
    }

    /// The kind's figures and goals, for people.
    fn line(&self, timers: Timers) -> String {
        if self.trials.is_empty() {
            return format!("{}: none of {} trials measured", self.fault.name(), self.failed.len());
        }
        let (med, worst) = self.gap();
        let (kept, eligible) = self.kept();
        let (resynced, of) = self.resynced();
        let mut s = format!(
            "{} over {} trials: gap median {med:.0} ms, worst {worst:.0} ms",
            self.fault.name(),
            self.trials.len()
        );
        if let Some((m, w)) = self.after_cont() {
            s += &format!(", after the SIGCONT median {m:.0} ms, worst {w:.0} ms");
        }
        if !self.fault.takes_over() {
            s += &format!("; takeovers: {}/{}", self.takeovers(), self.trials.len());
        }
        s += &format!("; {kept}/{eligible} eligible sessions kept, {resynced}/{of} on the standby afterwards");
        if self.stray() > 0 {
            s += &format!("; {} stray changes of role", self.stray());
        }
        if !self.failed.is_empty() {
            s += &format!("; {} more trials FAILED", self.failed.len());
        }
        s + "; " + &verdict(&self.goals(timers))
    }

    /// The kind's `summary:` fields.
    fn summary(&self, timers: (u32, u32), goals: Timers) -> String {
        let (med, worst) = self.gap();
        let (kept, eligible) = self.kept();
        let (resynced, of) = self.resynced();
        let n = self.trials.len();
        let mut s = format!("fault={} gap_ms={med:.0} gap_worst_ms={worst:.0}", self.fault.name());
        if let Some((m, w)) = self.after_cont() {
            s += &format!(" after_sigcont_ms={m:.0} after_sigcont_worst_ms={w:.0}");
        }
        if !self.fault.takes_over() {
            s += &format!(" takeovers={}/{n}", self.takeovers());
        }
        s += &format!(
            " preserved={kept}/{eligible} resynced={resynced}/{of} stray_role_changes={} trials={n}",
            self.stray()
        );
        if self.fault == Fault::Kill9 {
            s += &format!(" kills={n}");
        }
        let met = self.goals(goals).iter().all(|g| g.1);
        s + &format!(" heartbeat_ms={} dead_count={} goal={}", timers.0, timers.1, if met { "met" } else { "missed" })
    }
}

/// Goals and whether each was met, for people: `goal: A: met, B: MISSED`.
fn verdict(goals: &[(String, bool)]) -> String {
    let each: Vec<String> =
        goals.iter().map(|(g, met)| format!("{g}: {}", if *met { "met" } else { "MISSED" })).collect();
    format!("goal: {}", each.join(", "))
}

/// The trials of every fault kind on one topology, and the timers the boards ran with.
fn faults(o: &Options) -> Result<(Vec<Row>, (u32, u32)), String> {
    let (mut lab, probe_log) = set_up(o.timers, o.broken, o.bgp)?;
    let timers = lab.timers(1)?;
    let source = match o.timers {
        Timers::Defaults => "the configuration's defaults",
        Timers::Set { .. } => "--heartbeat, --dead-count",
    };
    println!("HA timers: heartbeat {} ms, dead after {} ({source})", timers.0, timers.1);
    if o.bgp {
        println!(
            "announcements: BGP through BIRD 2; the upstream reaches the pool by the active board's route (--bgp)"
        );
    }
    let mut rows = Vec::new();
    let mut seq = 0;
    for &fault in &o.faults {
        let mut row = Row { fault, trials: Vec::new(), failed: Vec::new() };
        for n in 1..=o.trials {
            seq += 1;
            match lab.trial(fault, n, seq, &probe_log, o.broken)? {
                Ok(t) => row.trials.push(t),
                Err(why) => row.failed.push(why),
            }
        }
        rows.push(row);
    }
    Ok((rows, timers))
}

const USAGE: &str = "usage: failover-bench [--faults kill9,sigstop,inet-down,softwire-down,switchover,ha-cut|none] \
                     [--trials N] [--heartbeat MS --dead-count N] [--records N] [--bulk N] [--bgp]
       failover-bench --kills N ...   (the same as --faults kill9 --trials N)";

/// What a run measures.
#[derive(Debug, PartialEq)]
struct Options {
    faults: Vec<Fault>,
    /// Trials per fault kind, and runs of the replication rate.
    trials: usize,
    /// Records replicated, sessions bulk-synced on loopback.
    records: u32,
    bulk: u32,
    timers: Timers,
    broken: Option<Break>,
    /// `--bgp`: the upstream learns the pool by BGP (decision 0016), not by ARP.
    bgp: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    known_options(
        args,
        &["--faults", "--trials", "--kills", "--heartbeat", "--dead-count", "--records", "--bulk", "--break"],
        &["--bgp"],
    )?;
    let (faults, trials) = match (arg::<usize>(args, "--kills")?, arg::<String>(args, "--faults")?) {
        (Some(_), Some(_)) => {
            return Err("--kills N is --faults kill9 --trials N: not with --faults or --trials".into());
        }
        (Some(_), None) if args.iter().any(|a| a == "--trials") => {
            return Err("--kills N is --faults kill9 --trials N: not with --faults or --trials".into());
        }
        (Some(kills), None) => (vec![Fault::Kill9], kills),
        (None, f) => (
            f.map(|f| Fault::parse_list(&f)).transpose()?.unwrap_or(Fault::ALL.to_vec()),
            arg(args, "--trials")?.unwrap_or(20),
        ),
    };
    let records: u32 = arg(args, "--records")?.unwrap_or(2_000_000);
    let bulk: u32 = arg(args, "--bulk")?.unwrap_or(1_000_000);
    if trials == 0 || records == 0 || bulk == 0 {
        return Err("--trials (--kills), --records and --bulk: 1 or more".into());
    }
    let timers = match (arg::<u32>(args, "--heartbeat")?, arg::<u32>(args, "--dead-count")?) {
        (None, None) => Timers::Defaults,
        // The ranges of the configuration's `service-ha heartbeat` command.
        (Some(h), Some(d)) if (10..=10_000).contains(&h) && (2..=100).contains(&d) => {
            Timers::Set { heartbeat_ms: h, dead_count: d }
        }
        (Some(_), Some(_)) => return Err("--heartbeat: 10 to 10000 ms; --dead-count: 2 to 100".into()),
        _ => return Err("--heartbeat and --dead-count go together (one configuration line sets both)".into()),
    };
    let broken = arg::<String>(args, "--break")?.map(|b| Break::parse(&b)).transpose()?;
    if let Some(f) = broken.and_then(Break::needs)
        && !faults.contains(&f)
    {
        return Err(format!(
            "--break {}: only with the fault {}",
            arg::<String>(args, "--break")?.unwrap_or_default(),
            f.name()
        ));
    }
    let bgp = args.iter().any(|a| a == "--bgp");
    Ok(Options { faults, trials, records, bulk, timers, broken, bgp })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("failover-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover-bench: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

/// Replication at least 1.5 million records a second (issue 14), in every run.
const REPLICATION_GOAL: f64 = 1.5e6;

fn run(o: &Options) -> Result<(), String> {
    let l = Loopback {
        limit: Duration::from_secs(60),
        standby_key: if o.broken == Some(Break::WrongKey) { b"another-secret-0123456" } else { KEY },
    };
    let mut rates = Vec::new();
    for _ in 0..o.trials {
        rates.push(replication_rate(o.records, &l)?);
    }
    let (rate, rate_worst) = (median(&mut rates.clone()), rates.iter().copied().fold(f64::INFINITY, f64::min));
    let replication_goal = rate_worst >= REPLICATION_GOAL;
    println!(
        "replication on loopback over {} runs ({} session records each): median {rate:.0} records/s, worst {rate_worst:.0}; {}",
        o.trials,
        o.records,
        verdict(&[(format!("at least {REPLICATION_GOAL:.0} records/s in every run"), replication_goal)])
    );
    let bulk_s = bulk_sync_secs(o.bulk, &Loopback { limit: Duration::from_secs(120), ..l })?;
    println!("bulk sync of {} sessions on loopback: {bulk_s:.2} s", o.bulk);
    if o.faults.is_empty() {
        return Ok(());
    }
    let (rows, timers) = faults(o)?;
    let mut failed = Vec::new();
    for row in &rows {
        println!("{}", row.line(o.timers));
        failed.extend(row.failed.iter().cloned());
        if row.fault == Fault::HaCut && row.takeovers() > 0 {
            failed.push(format!(
                "ha-cut: a takeover in {} of {} trials (the witness must keep the roles while the HA link is cut)",
                row.takeovers(),
                row.trials.len()
            ));
        }
    }
    if !failed.is_empty() {
        return Err(format!("{} failures:\n  {}", failed.len(), failed.join("\n  ")));
    }
    // One row per kind; kill9's last, with the loopback figures (or the last kind's
    // when kill9 did not run): a reader of the one summary line of before (bench-report
    // takes the last) finds the same fields.
    let mut ordered: Vec<&Row> = rows.iter().filter(|r| r.fault != Fault::Kill9).collect();
    ordered.extend(rows.iter().filter(|r| r.fault == Fault::Kill9));
    for (i, row) in ordered.iter().enumerate() {
        let mut s = format!("summary: {}", row.summary(timers, o.timers));
        if o.bgp {
            s += " announce=bgp";
        }
        if i + 1 == ordered.len() {
            s += &format!(
                " replication_records_per_s={rate:.0} replication_worst_records_per_s={rate_worst:.0} replication_goal={} bulk_sync_s={bulk_s:.2} bulk_sessions={}",
                if replication_goal { "met" } else { "missed" },
                o.bulk
            );
        }
        println!("{s}");
    }
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

    fn a(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_default_to_every_fault_twenty_times_with_the_configurations_timers() {
        let o = options(&a("")).unwrap();
        assert_eq!(o.faults, Fault::ALL.to_vec());
        assert_eq!(
            (o.trials, o.records, o.bulk, o.timers, o.broken, o.bgp),
            (20, 2_000_000, 1_000_000, Timers::Defaults, None, false)
        );
        assert!(options(&a("--faults kill9 --bgp")).unwrap().bgp, "--bgp: BGP through BIRD");
    }

    #[test]
    fn kills_is_kill9_alone() {
        let o = options(&a("--kills 5 --records 10 --bulk 10 --break no-b4")).unwrap();
        assert_eq!((o.faults, o.trials, o.broken), (vec![Fault::Kill9], 5, Some(Break::NoB4)));
        for bad in ["--kills 3 --trials 3", "--kills 3 --faults kill9", "--kills 0", "--kills three"] {
            assert!(options(&a(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn faults_are_named_each_once() {
        let o = options(&a("--faults ha-cut,kill9,switchover --trials 3")).unwrap();
        assert_eq!((o.faults, o.trials), (vec![Fault::HaCut, Fault::Kill9, Fault::Switchover], 3));
        let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(Fault::parse_list(&names.join(",")).unwrap(), Fault::ALL.to_vec());
        for bad in ["--faults kill9,kill9", "--faults kill", "--faults", "--faults kill9, --trials 3", "--trials 0"] {
            assert!(options(&a(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn timers_go_together_within_the_configurations_ranges() {
        let o = options(&a("--heartbeat 20 --dead-count 3")).unwrap();
        assert_eq!(o.timers, Timers::Set { heartbeat_ms: 20, dead_count: 3 });
        for bad in [
            "--heartbeat 20",
            "--dead-count 3",
            "--heartbeat 5 --dead-count 3",
            "--heartbeat 20 --dead-count 1",
            "--heartbeat fast --dead-count 3",
        ] {
            assert!(options(&a(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_break_needs_its_fault() {
        assert_eq!(
            options(&a("--faults sigstop --break echo-stops-at-sigcont")).unwrap().broken,
            Some(Break::EchoStopsAtSigcont)
        );
        assert_eq!(options(&a("--faults ha-cut --break witness-cut")).unwrap().broken, Some(Break::WitnessCut));
        for bad in ["--kills 1 --break echo-stops-at-sigcont", "--faults kill9 --break witness-cut", "--break nothing"]
        {
            assert!(options(&a(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn silences_are_split_at_the_sigcont() {
        // Echoes every 10 ms, none from 1.0 to 1.15 (the stop), none from 3.0 to 3.05
        // (the SIGCONT at 3.0), the observation ending 0.02 s after the last one.
        let mut e: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
        e.extend((115..=300).map(|i| i as f64 / 100.0));
        e.extend((305..=400).map(|i| i as f64 / 100.0));
        let s = silences(&e, 4.02);
        assert!((longest_silence_from_before(&s, f64::INFINITY) - 150.0).abs() < 1e-6);
        assert!((longest_silence_from_before(&s, 3.0) - 150.0).abs() < 1e-6);
        assert!((longest_silence_after(&s, 3.0) - 50.0).abs() < 1e-6);
        // A silence that never ended counts up to the end of the observation; one
        // that began before the split counts after it only for its part after it.
        let s = silences(&[1.0, 1.01, 2.9], 4.0);
        assert!((longest_silence_after(&s, 3.0) - 1000.0).abs() < 1e-6);
        assert!((longest_silence_from_before(&s, 3.0) - 1890.0).abs() < 1e-6);
        assert!(silences(&[], 1.0).is_empty());
    }

    #[test]
    fn role_changes_are_read_from_the_hook_log() {
        let log = "1700000000.25 1 1 active no peer answered\n\
                   garbage\n\
                   1700000001.5 2 1 standby the peer is active\n";
        assert_eq!(
            role_changes(log),
            vec![
                RoleChange { at: 1_700_000_000.25, slot: 1, role: "active".into(), why: "no peer answered".into() },
                RoleChange { at: 1_700_000_001.5, slot: 2, role: "standby".into(), why: "the peer is active".into() },
            ]
        );
    }

    fn trial(gap_ms: f64, kept: usize, eligible: usize, took_over: bool) -> Trial {
        Trial { gap_ms, kept, eligible, took_over, ..Trial::default() }
    }

    #[test]
    fn goals_are_judged_per_kind_and_timers() {
        let row = |fault, trials| Row { fault, trials, failed: Vec::new() };
        let kill9 =
            row(Fault::Kill9, vec![trial(120.0, 5, 5, true), trial(140.0, 5, 5, true), trial(210.0, 5, 5, true)]);
        let met = |r: &Row, t| r.goals(t).iter().map(|g| g.1).collect::<Vec<bool>>();
        assert_eq!(met(&kill9, Timers::Defaults), [true, false, true], "median 140 met, worst 210 missed");
        assert_eq!(met(&kill9, Timers::Set { heartbeat_ms: 20, dead_count: 3 }), [false, true]);
        assert_eq!(met(&kill9, Timers::Set { heartbeat_ms: 100, dead_count: 3 }), [true], "no gap goal");
        let cut = row(Fault::HaCut, vec![trial(5.0, 5, 5, false), trial(5.0, 4, 5, true)]);
        assert_eq!(met(&cut, Timers::Defaults), [false, false]);
        assert_eq!(
            verdict(&cut.goals(Timers::Defaults)),
            "goal: no takeover: MISSED, every eligible session kept: MISSED"
        );
        assert!(cut.summary((40, 3), Timers::Defaults).contains("takeovers=1/2 preserved=9/10"));
    }
}
