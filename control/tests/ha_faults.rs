//! The fault matrix of issue 14: one end-to-end test per fault, on two `aftrd` boards
//! of one service-location on `deploy/netns/ha-topology.sh` (slot 1 preferred, slot 2
//! its backup; heartbeat 100 ms, dead after 5; delay-time 1 s; preempt-time 3 s), with
//! traffic running: 300 UDP flows from the host behind the user-space B4 through the
//! softwire to an echo server that says which external address and port it saw, each
//! flow sending every 0.5 s; where the fault leaves time for it, 100 more flows start
//! during the fault (on whichever board serves then).
//!
//! Every test asserts, after the fault and the recovery:
//! - never two active boards for the location. A thread per board reads its `display
//!   service-ha` (some 40 times a second): the location's role and the board's last
//!   change of role (unix milliseconds, the new role first in its reason). A board
//!   process is active from a change to active until its next change, its end (a kill:
//!   when its process is gone) or its last reading; no two such spans of the two boards
//!   may overlap, to the millisecond (in a hand-over the releasing board's change comes
//!   first, the other's at the same millisecond or later). A change to standby seen
//!   after another change to standby hides a time as active, which counts. Not seen:
//!   changes before a process's first reading (it is read within tens of milliseconds
//!   of its start, and decides nothing in its first dead interval). The only overlap
//!   allowed is the one a SIGSTOP makes: a stopped board cannot know it lost the role
//!   until it runs again, so from the stop to 2 s after SIGCONT the stopped board may
//!   still say active; once it has heard the peer, one of the two must have stepped
//!   down;
//! - every flow older than delay-time keeps its mapping: across the whole run the echo
//!   server saw each flow from one external address and port, and every flow is
//!   answered again after the recovery;
//! - the pair is back in sync: one board active, the other standby and `in sync: yes`,
//!   each seeing the peer alive, and both boards' session tables hold every flow with the
//!   mapping the server saw.
//!
//! Faults that must not move the role (the HA link cut or lossy, a standby restart, a
//! bulk sync, replayed and forged messages) assert instead that no board became active
//! after the fault began. The tests run one at a time (they share the machine's two
//! cores and time their heartbeats). Needs root, python3 and, for the replayed and
//! forged messages, scapy and tcpdump, as CI has. One test checks its own ends: a
//! standby restarted while the active board is stopped goes active alone, and the flows
//! that meet it then get other mappings there; it asserts that the board with the
//! sessions keeps the role, the server's ARP entries come back to it, and every flow is
//! answered again from its first mapping.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    CONFIG, bench_bin, ctl, ha, mac_of, start_b4, start_board, start_pair, start_servers, stats, take_turn, wait_for,
};
use dataplane::testing::{Capture, Lab, can_capture, is_root, skip};

/// Flows of the traffic running from the start, and of the batch that starts during a
/// fault.
const FLOWS: u16 = 300;
const LATE_FLOWS: u16 = 100;
const FIRST_PORT: u16 = 10000;
const LATE_PORT: u16 = 20000;
/// How long after SIGCONT a stopped board may still say active.
const RESUME_GRACE_MS: u64 = 2000;

fn config() -> String {
    let c = CONFIG.replace("heartbeat interval 50 dead-count 4", "heartbeat interval 100 dead-count 5");
    assert!(c.contains("heartbeat interval 100 dead-count 5"));
    c
}

/// N UDP flows from ports BASE.. to the echo server, flow i sending every PERIOD
/// seconds (the flows spread over the period), until killed. Every 0.25 s it writes
/// FILE: per flow and per external address and port the server saw it from, a line
/// `port sent mapping echoes first last` (times in unix seconds); a flow not answered
/// yet has mapping `-`.
const FLOWS_PY: &str = r#"
import os, select, socket, sys, time
base, n, period, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", base + i))
    s.setblocking(False)
    socks.append(s)
ep = select.epoll()
flow = {}
for i, s in enumerate(socks):
    ep.register(s.fileno(), select.EPOLLIN)
    flow[s.fileno()] = i
seen = [dict() for _ in range(n)]
sent = [0] * n
t0, k, dumped = time.time(), 0, 0.0
def dump():
    with open(out + ".tmp", "w") as f:
        for i in range(n):
            for m, (c, a, b) in seen[i].items():
                f.write("%d %d %s %d %.3f %.3f\n" % (base + i, sent[i], m, c, a, b))
            if not seen[i]:
                f.write("%d %d - 0 0 0\n" % (base + i, sent[i]))
    os.replace(out + ".tmp", out)
while True:
    now = time.time()
    while t0 + k * period / n <= now:
        i = k % n
        try:
            socks[i].sendto(b"%d %d" % (base + i, sent[i]), ("203.0.113.80", 7))
        except OSError:
            pass
        sent[i] += 1
        k += 1
    for fd, _ in ep.poll(max(0.0, min(0.05, t0 + k * period / n - time.time()))):
        i = flow[fd]
        while True:
            try:
                d = socks[i].recv(2048)
            except BlockingIOError:
                break
            m = d.decode().rsplit(" from ", 1)[1]
            now = time.time()
            e = seen[i].get(m)
            if e:
                e[0] += 1
                e[2] = now
            else:
                seen[i][m] = [1, now, now]
    if time.time() - dumped >= 0.25:
        dump()
        dumped = time.time()
"#;

/// Forwards every frame between interfaces A and B (the HA link through the lan
/// namespace, `ha-topology.sh relay`), in order. After SIGUSR1 each frame is lost with
/// probability LOSS and the others wait DELAY_MS; after SIGUSR2 they pass at once again,
/// and it says how many passed and how many were lost meanwhile. Says `ready` first.
const RELAY_PY: &str = r#"
import heapq, random, select, signal, socket, sys, time
a, b, loss, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]) / 1000
def bound(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((ifname, 0))
    s.setblocking(False)
    return s
sa, sb = bound(a), bound(b)
other = {sa.fileno(): sb, sb.fileno(): sa}
impaired = [False]
count = {"passed": 0, "lost": 0}
def impair(*_):
    impaired[0] = True
    count.update(passed=0, lost=0)
def clear(*_):
    impaired[0] = False
    print("impaired: %d frames passed, %d lost" % (count["passed"], count["lost"]), flush=True)
signal.signal(signal.SIGUSR1, impair)
signal.signal(signal.SIGUSR2, clear)
queue, n = [], 0
print("ready", flush=True)
while True:
    wait = max(0.0, queue[0][0] - time.time()) if queue else 0.1
    try:
        ready, _, _ = select.select([sa, sb], [], [], wait)
    except InterruptedError:
        ready = []
    for s in ready:
        while True:
            try:
                frame, addr = s.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            if impaired[0] and random.random() < loss:
                count["lost"] += 1
                continue
            n += 1
            heapq.heappush(queue, (time.time() + (delay if impaired[0] else 0), n, other[s.fileno()], frame))
    now = time.time()
    while queue and queue[0][0] <= now:
        _, _, to, frame = heapq.heappop(queue)
        to.send(frame)
        count["passed"] += 1
"#;

/// Resends the frames of the pcap file FILE out of IFACE as they are (replayed), then
/// the first N of them with the last byte of the datagram, in the tag, flipped
/// (forged). Says `replayed R forged F`.
const RESEND_PY: &str = r#"
import sys
from scapy.all import rdpcap, sendp, UDP, conf
conf.verb = 0
frames = [p for p in rdpcap(sys.argv[1]) if UDP in p]
iface, n = sys.argv[2], int(sys.argv[3])
sendp(frames, iface=iface)
forged = []
for p in frames[:n]:
    p = p.copy()
    load = bytes(p[UDP].payload)
    p[UDP].remove_payload()
    p[UDP].add_payload(load[:-1] + bytes([load[-1] ^ 0xff]))
    del p[UDP].chksum
    forged.append(p)
sendp(forged, iface=iface)
print("replayed", len(frames), "forged", len(forged))
"#;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One request to a board's management socket, given up after `limit` (a stopped
/// board answers nothing).
fn ask(sock: &Path, req: &str, limit: Duration) -> Option<String> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    s.write_all(req.as_bytes()).ok()?;
    s.shutdown(std::net::Shutdown::Write).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.strip_prefix("ok\n").map(str::to_string)
}

/// One reading of a board's `display service-ha`: which board process (slot, and how
/// many times it was started before), when it was asked, the location's role and the
/// board's last change of role (unix milliseconds, and the reason, which begins with
/// the new role).
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    slot: u32,
    run: u32,
    at: u64,
    role: String,
    change: Option<(u64, String)>,
}

fn parse_reading(slot: u32, run: u32, at: u64, text: &str) -> Option<Reading> {
    let role = text.lines().find_map(|l| l.trim().strip_prefix("service-location 1: "))?;
    let role = role.split(|c: char| !c.is_alphabetic()).next()?.to_string();
    let change = text.lines().find_map(|l| l.strip_prefix("last change: "))?;
    let change = match change.rsplit_once(" (unix time ") {
        None => None,
        Some((why, t)) => {
            let (s, ms) = t.trim_end_matches(')').split_once('.')?;
            Some((s.parse::<u64>().ok()? * 1000 + ms.parse::<u64>().ok()?, why.to_string()))
        }
    };
    Some(Reading { slot, run, at, role, change })
}

/// A time one board process was (or may have been) active.
#[derive(Debug, Clone, PartialEq)]
struct Span {
    slot: u32,
    run: u32,
    from: u64,
    to: u64,
    why: String,
}

/// Each board process's changes of role, in order, as its readings showed them.
fn changes(readings: &[Reading]) -> BTreeMap<(u32, u32), Vec<(u64, String)>> {
    let mut out: BTreeMap<(u32, u32), Vec<(u64, String)>> = BTreeMap::new();
    for r in readings {
        let seen = out.entry((r.slot, r.run)).or_default();
        if let Some(c) = &r.change
            && seen.last() != Some(c)
        {
            seen.push(c.clone());
        }
    }
    out
}

/// The times each board process was active: from a change to active to its next
/// change, or to its end (`ends`: when it was killed) or its last reading. A change to
/// standby followed by another change to standby hides a time as active between them,
/// which counts.
fn active_spans(readings: &[Reading], ends: &BTreeMap<(u32, u32), u64>) -> Vec<Span> {
    let mut spans = Vec::new();
    for ((slot, run), cs) in changes(readings) {
        let last = readings.iter().filter(|r| (r.slot, r.run) == (slot, run)).map(|r| r.at).max().unwrap_or(0);
        let end = ends.get(&(slot, run)).copied().unwrap_or(last);
        for (i, (from, why)) in cs.iter().enumerate() {
            let next = cs.get(i + 1);
            let to = next.map_or(end.max(*from), |n| n.0);
            let hidden = why.starts_with("standby") && next.is_some_and(|n| n.1.starts_with("standby"));
            if why.starts_with("active") || hidden {
                let why =
                    if hidden { format!("unobserved between `{why}` and `{}`", next.unwrap().1) } else { why.clone() };
                spans.push(Span { slot, run, from: *from, to, why });
            }
        }
    }
    spans
}

/// Every overlap of two boards' active spans that `allowed` (unix ms, from and to)
/// does not hold.
fn overlaps(spans: &[Span], allowed: Option<(u64, u64)>) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, a) in spans.iter().enumerate() {
        for b in spans.iter().skip(i + 1).filter(|b| b.slot != a.slot) {
            let (lo, hi) = (a.from.max(b.from), a.to.min(b.to));
            if lo < hi && !allowed.is_some_and(|(f, t)| f <= lo && hi <= t) {
                bad.push(format!("both active from {lo} to {hi} ({} ms): {a:?} and {b:?}", hi - lo));
            }
        }
    }
    bad
}

/// Readers of both boards' `display service-ha`, each on its own thread, until dropped.
struct RoleWatch {
    readings: Arc<Mutex<Vec<Reading>>>,
    /// Per slot, the board process now behind its socket (0 the first).
    runs: Arc<[AtomicU32; 2]>,
    ends: BTreeMap<(u32, u32), u64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl RoleWatch {
    fn start(dir: &Path) -> RoleWatch {
        let readings = Arc::new(Mutex::new(Vec::new()));
        let runs = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (1..=2u32)
            .map(|slot| {
                let (readings, runs, stop) = (readings.clone(), runs.clone(), stop.clone());
                let sock = dir.join(format!("s{slot}.sock"));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let at = unix_ms();
                        let text = ask(&sock, "display service-ha", Duration::from_millis(300));
                        // A reading belongs to the process that answered: a new one is
                        // counted before it starts, after the old one is gone.
                        let run = runs[slot as usize - 1].load(Ordering::SeqCst);
                        if let Some(r) = text.and_then(|t| parse_reading(slot, run, at, &t)) {
                            readings.lock().unwrap().push(r);
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            })
            .collect();
        RoleWatch { readings, runs, ends: BTreeMap::new(), stop, threads }
    }

    fn run(&self, slot: u32) -> u32 {
        self.runs[slot as usize - 1].load(Ordering::SeqCst)
    }

    /// The board process of `slot` ended at unix ms `at`; the next one is another run.
    fn ended(&mut self, slot: u32, at: u64) {
        self.ends.insert((slot, self.run(slot)), at);
        self.runs[slot as usize - 1].fetch_add(1, Ordering::SeqCst);
    }

    fn readings(&self) -> Vec<Reading> {
        let mut r = self.readings.lock().unwrap().clone();
        r.sort_by_key(|r| r.at);
        r
    }

    /// Each board process's changes of role, for a failure message.
    fn history(&self) -> String {
        changes(&self.readings()).iter().map(|((slot, run), cs)| format!("slot {slot} (run {run}): {cs:?}\n")).collect()
    }
}

impl Drop for RoleWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What the echo server saw of one flow: the external address and port, how many
/// echoes, the first and the last (unix seconds).
#[derive(Debug, Clone)]
struct Seen {
    mapping: String,
    echoes: u64,
    last: f64,
}

/// A batch of `FLOWS_PY` flows and its file.
struct Batch {
    first: u16,
    n: u16,
    file: PathBuf,
}

impl Batch {
    /// Per flow (its source port), what the server saw; empty for a flow not answered yet.
    fn read(&self) -> BTreeMap<u16, Vec<Seen>> {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        let mut out: BTreeMap<u16, Vec<Seen>> = BTreeMap::new();
        for l in text.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            let seen = out.entry(w[0].parse().unwrap()).or_default();
            if w[2] != "-" {
                seen.push(Seen { mapping: w[2].into(), echoes: w[3].parse().unwrap(), last: w[5].parse().unwrap() });
            }
        }
        out
    }

    /// Every flow of the batch answered after unix time `since` (seconds).
    fn all_answered_since(&self, since: f64) -> bool {
        let flows = self.read();
        flows.len() == self.n as usize && flows.values().all(|s| s.iter().any(|s| s.last > since))
    }
}

/// The two boards with traffic running through them, and the readers of their roles.
/// Drops the lab (processes, namespaces) before letting the next fault run.
struct Rig {
    name: &'static str,
    began: Instant,
    watch: RoleWatch,
    pids: [u32; 2],
    batches: Vec<Batch>,
    lab: Lab,
    _turn: MutexGuard<'static, ()>,
}

impl Rig {
    /// Slot 1 active, slot 2 standby and in sync, the B4 up and `FLOWS` flows running,
    /// each answered and each held by the standby (so older than delay-time). None (the
    /// test is skipped) without root.
    fn up(name: &'static str) -> Option<Rig> {
        Rig::up_with(name, |_| {})
    }

    /// [`Rig::up`], with `prepare` run on the lab before the boards start.
    fn up_with(name: &'static str, prepare: impl FnOnce(&mut Lab)) -> Option<Rig> {
        if !is_root() {
            skip("needs root for network namespaces");
            return None;
        }
        let turn = take_turn();
        let began = Instant::now();
        let mut lab = Lab::of("deploy/netns/ha-topology.sh", name, Path::new(".."));
        std::fs::write(lab.dir.join("aftr.conf"), config()).unwrap();
        std::fs::write(lab.dir.join("flows.py"), FLOWS_PY).unwrap();
        prepare(&mut lab);
        start_servers(&mut lab);
        let watch = RoleWatch::start(&lab.dir);
        let [a1, a2] = start_pair(&mut lab);
        start_b4(&mut lab);
        let mut rig = Rig { name, began, watch, pids: [a1, a2], batches: Vec::new(), lab, _turn: turn };
        rig.start_flows(FIRST_PORT, FLOWS);
        if let Err(e) = rig.replicated(&rig.batches[0], 2) {
            panic!("{name}: before the fault: {e}\n{}", rig.watch.history());
        }
        Some(rig)
    }

    /// Starts a batch of `n` flows from port `first` and waits until each is answered.
    fn start_flows(&mut self, first: u16, n: u16) {
        let file = self.lab.dir.join(format!("flows-{first}.txt"));
        let script = self.lab.dir.join("flows.py");
        let args = [script.to_str().unwrap(), &first.to_string(), &n.to_string(), "0.5", file.to_str().unwrap()];
        let c = self.lab.exec("sub", &["python3"]).args(args).spawn().unwrap();
        self.lab.keep(c);
        let batch = Batch { first, n, file };
        wait_for("every flow of the batch answered", 20, || batch.all_answered_since(0.0));
        self.batches.push(batch);
    }

    /// Waits until the board of `slot` holds every flow of `batch`, with the mapping the
    /// server saw; or says which it does not after 30 s.
    fn replicated(&self, batch: &Batch, slot: u32) -> Result<(), String> {
        let t = Instant::now();
        loop {
            let missing = self.missing(batch, slot);
            if missing.is_empty() {
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "slot {slot} does not hold {} flows of the batch from port {} as the server saw them, \
                     e.g. (port, seen, held) {:?}",
                    missing.len(),
                    batch.first,
                    &missing[..missing.len().min(5)],
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The flows of `batch` that the board of `slot` does not hold with the mapping the
    /// server saw last (port, what the server saw, what the board holds).
    fn missing(&self, batch: &Batch, slot: u32) -> Vec<(u16, String, Option<String>)> {
        let held = self.sessions(slot);
        batch
            .read()
            .iter()
            .filter_map(|(port, seen)| {
                let saw = seen.last().map(|s| s.mapping.clone()).unwrap_or_default();
                let has = held.get(port).cloned();
                (has.as_ref() != Some(&saw)).then_some((*port, saw, has))
            })
            .collect()
    }

    /// The B4's sessions on the board of `slot`: inside port to external address and port.
    fn sessions(&self, slot: u32) -> BTreeMap<u16, String> {
        ctl(&self.lab, slot, &["display", "sessions", "b4", "2001:db8:b4::2"])
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let port = w.get(1)?.strip_prefix("192.168.1.10:")?.parse().ok()?;
                Some((port, w.get(2)?.to_string()))
            })
            .collect()
    }

    fn ns(&self, slot: u32) -> String {
        format!("a{slot}")
    }

    /// Runs `ip ARGS` in the namespace of the board of `slot`.
    fn ip(&self, slot: u32, args: &[&str]) {
        let ok = self.lab.exec(&self.ns(slot), &["ip"]).args(args).status().unwrap().success();
        assert!(ok, "ip {args:?} in slot {slot}'s namespace");
    }

    /// Sends `signal` to the board of `slot`; for KILL and TERM, waits until it is gone
    /// and notes when.
    fn signal(&mut self, slot: u32, signal: &str) {
        let pid = self.pids[slot as usize - 1];
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap().success());
        if signal == "KILL" || signal == "TERM" {
            wait_for("the board to end", 10, || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.rsplit_once(") ").is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
            });
            self.watch.ended(slot, unix_ms());
        }
    }

    fn restart(&mut self, slot: u32) {
        self.pids[slot as usize - 1] = start_board(&mut self.lab, slot);
    }

    /// The slot whose board is active for the location, when exactly one is, the
    /// other standby and in sync, and each hears the other.
    fn settled(&self) -> Option<u32> {
        let s = [ha(&self.lab, 1), ha(&self.lab, 2)];
        let role = |i: usize| parse_reading(i as u32 + 1, 0, 0, &s[i]).map(|r| r.role).unwrap_or_default();
        let active = (0..2).find(|&i| role(i) == "active")?;
        let standby = 1 - active;
        (role(standby) == "standby"
            && s[standby].contains("in sync: yes")
            && s[standby].contains("peer: alive, active")
            && s[active].contains("peer: alive, standby")
            && s[active].contains("in sync: yes"))
        .then_some(active as u32 + 1)
    }

    fn wait_for_role(&self, slot: u32, role: &str, secs: u64) {
        let what = format!("slot {slot} {role}");
        wait_for(&what, secs, || parse_reading(slot, 0, 0, &ha(&self.lab, slot)).is_some_and(|r| r.role == role));
    }

    /// The three assertions of every fault (see the module's doc), all checked and
    /// reported together; `allowed` is the time (unix ms) when two boards may say
    /// active, if any. Returns the slot active at the end.
    fn finish(self, allowed: Option<(u64, u64)>) -> u32 {
        let Rig { name, began, watch, batches, lab, .. } = &self;
        let t = Instant::now();
        while self.settled().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "{name}: the pair did not settle:\nslot 1:\n{}\nslot 2:\n{}\n{}",
                ha(lab, 1),
                ha(lab, 2),
                watch.history()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let active = self.settled().unwrap();
        let mut failed = Vec::new();
        // Never two boards active at once.
        let spans = active_spans(&watch.readings(), &watch.ends);
        failed.extend(overlaps(&spans, allowed).into_iter().map(|o| format!("two boards active at once: {o}")));
        // Every flow goes on, and from one external address and port across the run.
        let now = unix_ms() as f64 / 1000.0;
        let t = Instant::now();
        while !batches.iter().all(|b| b.all_answered_since(now)) && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
        }
        for b in batches {
            let flows = b.read();
            let silent = flows.values().filter(|s| !s.iter().any(|s| s.last > now)).count();
            if silent > 0 {
                failed.push(format!(
                    "{silent} of {} flows from port {} not answered within 20 s of the pair settling (slot {active} active)",
                    b.n, b.first
                ));
            }
            let moved: Vec<(&u16, &Vec<Seen>)> = flows.iter().filter(|(_, s)| s.len() != 1).collect();
            if !moved.is_empty() {
                failed.push(format!(
                    "{} of {} flows from port {} changed external address or port, e.g. {:?}",
                    moved.len(),
                    b.n,
                    b.first,
                    &moved[..moved.len().min(5)]
                ));
            }
        }
        // Back in sync: both tables hold every flow with the server's mapping.
        for b in batches {
            for slot in [1, 2] {
                failed.extend(self.replicated(b, slot).err());
            }
        }
        let received: Vec<String> = (1..=2)
            .map(|slot| {
                let s = ha(lab, slot);
                let line = s.lines().find(|l| l.starts_with("records received")).unwrap_or_default().to_string();
                format!("slot {slot}: {line}")
            })
            .collect();
        assert!(
            failed.is_empty(),
            "{name}:\n{}\n{}; roles:\n{}slot 1:\n{}slot 2:\n{}",
            failed.join("\n"),
            received.join(", "),
            watch.history(),
            stats(lab, 1),
            stats(lab, 2)
        );
        let readings = watch.readings().len();
        let flows: u64 = batches.iter().map(|b| b.read().values().flatten().map(|s| s.echoes).sum::<u64>()).sum();
        eprintln!(
            "{name}: passed in {:.1} s; slot {active} active at the end; {readings} readings of the roles, {flows} echoes; {}\n{}",
            began.elapsed().as_secs_f64(),
            received.join(", "),
            watch.history()
        );
        active
    }

    /// For a fault that must not move the role: no board became active from unix ms
    /// `since` on, and [`Rig::finish`] with slot 1 still active.
    fn finish_without_takeover(self, since: u64) {
        self.assert_no_takeover_since(since);
        assert_eq!(self.finish(None), 1);
    }

    /// No board became active from unix ms `since` on.
    fn assert_no_takeover_since(&self, since: u64) {
        let late: Vec<(u32, u32, u64, String)> = changes(&self.watch.readings())
            .into_iter()
            .flat_map(|((slot, run), cs)| cs.into_iter().map(move |(at, why)| (slot, run, at, why)))
            .filter(|(_, _, at, why)| *at >= since && why.starts_with("active"))
            .collect();
        assert!(late.is_empty(), "{}: a board became active during the fault: {late:?}", self.name);
    }
}

/// kill -9 of the active board: slot 2 takes over; 100 flows start there; slot 1 comes
/// back, syncs and takes the role back after preempt-time. Strict: never two active
/// (the killed board's time ends when its process is gone).
#[test]
fn kill_9_of_the_active() {
    let Some(mut rig) = Rig::up("fk") else { return };
    rig.signal(1, "KILL");
    rig.wait_for_role(2, "active", 10);
    rig.start_flows(LATE_PORT, LATE_FLOWS);
    rig.restart(1);
    rig.wait_for_role(1, "standby", 10);
    rig.wait_for_role(1, "active", 30);
    rig.finish(None);
}

/// SIGSTOP of the active board for 2 s, then SIGCONT: slot 2 takes over after the dead
/// interval and 100 flows start there; once slot 1 runs again, one board keeps the
/// role. Allowed: both say active from the stop until at most 2 s after SIGCONT (the
/// stopped board cannot know before it runs; once it hears the peer, one of them must
/// step down). The flows started during the stop keep their mapping too.
#[test]
fn sigstop_of_the_active_for_2_s() {
    let Some(mut rig) = Rig::up("fs") else { return };
    let stopped = unix_ms();
    rig.signal(1, "STOP");
    rig.wait_for_role(2, "active", 10);
    rig.start_flows(LATE_PORT, LATE_FLOWS);
    std::thread::sleep(Duration::from_millis(2000).saturating_sub(Duration::from_millis(unix_ms() - stopped)));
    rig.signal(1, "CONT");
    let resumed = unix_ms();
    eprintln!("sigstop: stopped {} ms", resumed - stopped);
    rig.finish(Some((stopped, resumed + RESUME_GRACE_MS)));
}

/// The standby restarts while the active board is stopped (SIGSTOP): alone, it goes
/// active with empty tables (cold) and draws the neighbours to itself with gratuitous
/// ARP. At the SIGCONT both are active; the one holding the sessions (slot 1, active
/// longer, both cold) keeps the role and tells the neighbours again, and slot 2 steps
/// down and syncs from it: the server's ARP entries for the pool point at slot 1 once
/// more, and every flow is answered again from the mapping it had before.
#[test]
fn a_standby_that_went_active_alone_yields_to_the_board_with_the_sessions() {
    let Some(mut rig) = Rig::up("fy") else { return };
    let before: BTreeMap<u16, String> =
        rig.batches[0].read().into_iter().map(|(port, seen)| (port, seen[0].mapping.clone())).collect();
    let mac = |slot: u32| {
        let o = rig.lab.exec(&format!("a{slot}"), &["cat", &format!("/sys/class/net/a{slot}-in/address")]).output();
        String::from_utf8_lossy(&o.unwrap().stdout).trim().to_string()
    };
    let (mac1, mac2) = (mac(1), mac(2));
    // The server's neighbour entries for the pool's addresses: address to MAC.
    let pool_neighbours = |lab: &Lab| -> BTreeMap<String, String> {
        let o = lab.exec("inet", &["ip", "neigh", "show", "dev", "srv"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let at = w.iter().position(|x| *x == "lladdr")?;
                let mac = w.get(at + 1)?;
                w[0].starts_with("198.51.100.").then(|| (w[0].to_string(), mac.to_string()))
            })
            .collect()
    };
    rig.signal(2, "TERM");
    rig.signal(1, "STOP");
    rig.restart(2);
    rig.wait_for_role(2, "active", 10);
    wait_for("the server to follow slot 2's announcement", 5, || {
        pool_neighbours(&rig.lab).values().any(|m| *m == mac2)
    });
    rig.signal(1, "CONT");
    let t = Instant::now();
    while rig.settled() != Some(1) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "slot 1 did not keep the role:\nslot 1:\n{}\nslot 2:\n{}\n{}",
            ha(&rig.lab, 1),
            ha(&rig.lab, 2),
            rig.watch.history()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let settled = unix_ms() as f64 / 1000.0;
    let t = Instant::now();
    loop {
        let n = pool_neighbours(&rig.lab);
        if !n.is_empty() && n.values().all(|m| *m == mac1) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the server's pool entries do not point at slot 1 ({mac1}) again: {n:?}\nslot 1:\n{}\n{}",
            ha(&rig.lab, 1),
            rig.watch.history()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let answered = || {
        let now = rig.batches[0].read();
        before.iter().all(|(port, mapping)| {
            now.get(port).is_some_and(|seen| seen.iter().any(|s| s.mapping == *mapping && s.last > settled))
        })
    };
    let t = Instant::now();
    while !answered() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "flows not answered from their first mapping after slot 1 kept the role: {:?}",
            rig.batches[0].read().into_iter().take(5).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Slot 2 stepped down for slot 1 (which may not have seen it active: it hears the
    // restarted board only after the handshake, and then tells the neighbours again).
    let history = rig.watch.history();
    assert!(history.contains("standby: both boards were active; the peer keeps the role"), "{history}");
    eprintln!("fy: passed in {:.1} s\n{}", rig.began.elapsed().as_secs_f64(), rig.watch.history());
}

/// The Internet link of the active board down, then up. Setting a link down removes
/// the kernel's routes through it, the default route too: with the link up again but
/// no route yet, the board has no next hop towards the Internet, stays unfit and takes
/// nothing back (preempt-time is 3 s); once the route is back (as the board's network
/// configuration would add it), it is fit and takes the role back.
#[test]
fn internet_link_of_the_active_down() {
    let Some(mut rig) = Rig::up("fi") else { return };
    rig.ip(1, &["link", "set", "a1-in", "down"]);
    rig.wait_for_role(2, "active", 10);
    rig.start_flows(LATE_PORT, LATE_FLOWS);
    std::thread::sleep(Duration::from_secs(2));
    rig.ip(1, &["link", "set", "a1-in", "up"]);
    std::thread::sleep(Duration::from_secs(5));
    let s1 = ha(&rig.lab, 1);
    assert!(s1.contains("fit: no, no next hop towards the Internet") && s1.contains("role: standby"), "{s1}");
    rig.ip(1, &["route", "add", "default", "via", "203.0.113.80"]);
    rig.wait_for_role(1, "active", 30);
    rig.finish(None);
}

/// The softwire link of the active board down for a few seconds: it hands the role to
/// the other board at once; 100 flows start there; the link comes back and the role
/// returns after preempt-time. Strict: never two active.
#[test]
fn softwire_link_of_the_active_down() {
    let Some(mut rig) = Rig::up("fw") else { return };
    rig.ip(1, &["link", "set", "a1-sw", "down"]);
    rig.wait_for_role(2, "active", 10);
    rig.start_flows(LATE_PORT, LATE_FLOWS);
    std::thread::sleep(Duration::from_secs(2));
    rig.ip(1, &["link", "set", "a1-sw", "up"]);
    rig.wait_for_role(1, "active", 30);
    rig.finish(None);
}

/// The HA link cut for 3 s, then restored: the witness on the softwire segment keeps
/// the roles (no board becomes active); 100 flows start during the cut and become older
/// than delay-time then; after the restore the standby holds them.
#[test]
fn ha_link_cut_then_restored() {
    let Some(mut rig) = Rig::up("fh") else { return };
    let cut = unix_ms();
    rig.ip(1, &["link", "set", "a1-ha", "down"]);
    rig.start_flows(LATE_PORT, LATE_FLOWS);
    std::thread::sleep(Duration::from_secs(3));
    rig.ip(1, &["link", "set", "a1-ha", "up"]);
    rig.finish_without_takeover(cut);
}

/// The HA link loses 10% of the frames each way and delays the others by 50 ms for
/// 30 s (a relay in the lan namespace: this kernel has no netem): no board becomes
/// active, the 100 flows started then reach the standby, and it ends in sync.
#[test]
fn ha_link_lossy_and_slow() {
    let (mut relay, mut said) = (None, None);
    let Some(mut rig) = Rig::up_with("fl", |lab| {
        let ok = Command::new("bash")
            .args(["../deploy/netns/ha-topology.sh", "relay", &lab.prefix])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ha-topology.sh relay");
        let script = lab.dir.join("relay.py");
        std::fs::write(&script, RELAY_PY).unwrap();
        let mut c = lab
            .exec("lan", &["python3", script.to_str().unwrap(), "p-a1h", "p-a2h", "0.1", "50"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(c.stdout.take().unwrap()).lines();
        assert_eq!(out.next().unwrap().unwrap(), "ready");
        relay = Some(c.id());
        said = Some(out);
        lab.keep(c);
    }) else {
        return;
    };
    let (relay, mut said) = (relay.unwrap().to_string(), said.unwrap());
    let began = unix_ms();
    assert!(Command::new("kill").args(["-USR1", &relay]).status().unwrap().success());
    rig.start_flows(LATE_PORT, LATE_FLOWS);
    std::thread::sleep(Duration::from_secs(30).saturating_sub(Duration::from_millis(unix_ms() - began)));
    let lossy = ha(&rig.lab, 1);
    assert!(Command::new("kill").args(["-USR2", &relay]).status().unwrap().success());
    let impaired = said.next().unwrap().unwrap();
    eprintln!("lossy HA link for 30 s, {impaired}; slot 1 then:\n{lossy}");
    let n: Vec<u64> = impaired.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(n[1] > 0 && n[1] < n[0], "the relay lost some frames, not all: {impaired}");
    rig.finish_without_takeover(began);
}

/// The standby stops (SIGTERM) and starts again while traffic runs and 100 flows start
/// in between: no board becomes active; the restarted standby syncs and holds every
/// flow.
#[test]
fn standby_restart_under_load() {
    let Some(mut rig) = Rig::up("fr") else { return };
    let began = unix_ms();
    rig.signal(2, "TERM");
    rig.start_flows(LATE_PORT, LATE_FLOWS);
    std::thread::sleep(Duration::from_secs(2));
    rig.restart(2);
    rig.finish_without_takeover(began);
}

/// Sessions made for the bulk sync test: the million of the issue (the boards' session
/// tables are sized for it, `nat session-table size`) ...
const BULK: usize = 1_000_000;
/// ... from this many B4s (at most 4,096 sessions each by default).
const BULK_B4S: usize = 1_000;

/// The sessions a board holds, by `display subscribers`.
fn session_count(lab: &Lab, slot: u32) -> usize {
    ctl(lab, slot, &["display", "subscribers"])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        .sum()
}

/// With the standby stopped, `BULK` sessions from `BULK_B4S` other B4s (`dslite-gen`,
/// one frame each) are made on the active board; once they are older than delay-time
/// the standby starts, and the active board sends them all in a bulk sync while
/// heartbeats must keep the roles: no board becomes active, and when the standby says
/// it is in sync it holds as many sessions as the active board.
#[test]
fn bulk_sync_of_many_sessions_keeps_the_roles() {
    let sized = |lab: &mut Lab| {
        let conf = lab.dir.join("aftr.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        std::fs::write(conf, format!("{text}nat session-table size {}\n", BULK.next_power_of_two())).unwrap();
    };
    let Some(mut rig) = Rig::up_with("fb", sized) else { return };
    let began = unix_ms();
    rig.signal(2, "TERM");
    let sub_mac = {
        let o = rig.lab.exec("sub", &["cat", "/sys/class/net/b4/address"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let (flows, b4s) = (BULK.to_string(), BULK_B4S.to_string());
    let want = BULK + FLOWS as usize;
    // One frame per session; a round again makes what a lost frame did not.
    for round in 1.. {
        let o = Command::new(bench_bin("dslite-gen"))
            .args(["--iface", "b4", "--netns", &rig.lab.name("sub"), "--io", "af-packet"])
            .args(["--flows", &flows, "--b4s", &b4s, "--count", &flows, "--rate", "50000", "--seconds", "25"])
            .args(["--b4-first", "2001:db8:b4::1:0", "--b4-shift", "0", "--server-port", "9"])
            .args(["--src-mac", &sub_mac, "--dst-mac", &mac_of(&rig.lab, 1)])
            .output()
            .unwrap();
        assert!(o.status.success(), "dslite-gen: {}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(Duration::from_millis(500));
        // All of them but a few: the last frames lost under load take a round each.
        let made = session_count(&rig.lab, 1);
        if made >= want - BULK / 100 {
            break;
        }
        // On a quiet machine one round makes them all; a loaded one drops frames at
        // the worker's ring, and each round makes more.
        assert!(
            round < 8,
            "{made} sessions on the active board after {round} rounds, not {want}\n{}",
            ctl(&rig.lab, 1, &["display", "statistics"])
        );
    }
    // Older than delay-time (whole seconds: created + delay + 1).
    std::thread::sleep(Duration::from_millis(2500));
    let held = session_count(&rig.lab, 1);
    let started = Instant::now();
    rig.restart(2);
    let t = Instant::now();
    while !ha(&rig.lab, 2).contains("in sync: yes") {
        assert!(t.elapsed() < Duration::from_secs(120), "the standby never got in sync:\n{}", ha(&rig.lab, 2));
        std::thread::sleep(Duration::from_millis(50));
    }
    let synced = started.elapsed();
    let installed = session_count(&rig.lab, 2);
    let line = |slot, what| ha(&rig.lab, slot).lines().find(|l| l.starts_with(what)).unwrap_or_default().to_string();
    eprintln!(
        "bulk sync: {held} sessions on the active board, {installed} on the standby when in sync after {synced:?}; \
         slot 1: {}; slot 2: {}",
        line(1, "bulk syncs sent"),
        line(2, "records received")
    );
    assert_eq!(
        installed,
        held,
        "in sync, the standby holds every session of the active board\nslot 1:\n{}\nslot 2:\n{}",
        ha(&rig.lab, 1),
        ha(&rig.lab, 2)
    );
    rig.finish_without_takeover(began);
}

/// `refused messages: A unauthenticated, B replayed, C malformed` of a board.
fn refused(lab: &Lab, slot: u32) -> (u64, u64, u64) {
    let s = ha(lab, slot);
    let line = s.lines().find_map(|l| l.strip_prefix("refused messages: ")).unwrap_or_else(|| panic!("{s}"));
    let n: Vec<u64> = line.split(", ").map(|p| p.split_whitespace().next().unwrap().parse().unwrap()).collect();
    (n[0], n[1], n[2])
}

/// HA datagrams of each board, recorded on the HA link, are sent again to it later
/// as they were (replayed) and with a flipped tag (forged): each board counts the
/// forged ones as unauthenticated and the replayed ones as replays (the active board
/// every one: it gets no Data; the standby at least one, as its Data replays are
/// duplicates of the stream); no board becomes active.
#[test]
fn replayed_and_forged_messages_are_refused() {
    if let Err(why) = can_capture() {
        return skip(why);
    }
    let Some(rig) = Rig::up("fm") else { return };
    let began = unix_ms();
    std::fs::write(rig.lab.dir.join("resend.py"), RESEND_PY).unwrap();
    // (receiving slot, the other slot)
    for (to, from) in [(1u32, 2u32), (2, 1)] {
        let pcap = rig.lab.dir.join(format!("to{to}.pcap"));
        let filter = format!("udp and src host 192.0.2.{from} and dst host 192.0.2.{to} and dst port 62000");
        let cap = Capture::start(&rig.lab.name(&format!("a{to}")), &format!("a{to}-ha"), &filter, &pcap);
        let got = cap.wait_for(10, Duration::from_secs(10));
        let pcap = cap.stop();
        assert!(got >= 10, "{got} HA datagrams recorded");
        // The boards move on past what was recorded.
        std::thread::sleep(Duration::from_millis(500));
        let before = refused(&rig.lab, to);
        let forge = 5;
        let script = rig.lab.dir.join("resend.py");
        let args = [script.to_str().unwrap(), pcap.to_str().unwrap(), &format!("a{from}-ha"), &forge.to_string()];
        let o = rig.lab.exec(&format!("a{from}"), &["python3"]).args(args).output().unwrap();
        let said = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "{said}{}", String::from_utf8_lossy(&o.stderr));
        let replayed: u64 = said.split_whitespace().nth(1).unwrap().parse().unwrap();
        wait_for("the forged messages counted", 5, || refused(&rig.lab, to).0 >= before.0 + forge);
        std::thread::sleep(Duration::from_millis(300));
        let after = refused(&rig.lab, to);
        eprintln!("slot {to}: {replayed} replayed and {forge} forged sent; refused before {before:?}, after {after:?}");
        assert_eq!(after.0 - before.0, forge, "slot {to}: every forged message refused as unauthenticated");
        if to == 1 {
            assert_eq!(after.1 - before.1, replayed, "slot 1: every replayed message refused as a replay");
        } else {
            assert!((1..=replayed).contains(&(after.1 - before.1)), "slot 2: replays refused: {before:?} {after:?}");
        }
        assert_eq!(after.2, before.2, "slot {to}: nothing malformed");
    }
    rig.finish_without_takeover(began);
}

/// `aftrctl switchover` on the active board under load: slot 2 takes the role
/// gracefully (final deltas, release, then activation); 100 flows start there; strict:
/// never two active.
#[test]
fn switchover_under_load() {
    let Some(mut rig) = Rig::up("fo") else { return };
    let said = ctl(&rig.lab, 1, &["switchover"]);
    assert!(said.contains("handed the role to the peer"), "{said}");
    rig.wait_for_role(2, "active", 10);
    rig.start_flows(LATE_PORT, LATE_FLOWS);
    rig.finish(None);
}

/// The readings' arithmetic, without boards.
mod timeline {
    use super::*;

    fn r(slot: u32, run: u32, at: u64, change: (u64, &str)) -> Reading {
        let role = change.1.split(':').next().unwrap().to_string();
        Reading { slot, run, at, role, change: Some((change.0, change.1.to_string())) }
    }

    #[test]
    fn a_reading_parses() {
        let text = "role: active (active for any location, else standby for any)\n  service-location 1: active (its preferred board), peer standby, in sync\nlast change: active: no peer answered (unix time 1796161926.267)\n";
        let got = parse_reading(1, 0, 5, text).unwrap();
        assert_eq!(got.role, "active");
        assert_eq!(got.change, Some((1_796_161_926_267, "active: no peer answered".to_string())));
        let none =
            parse_reading(2, 0, 5, "  service-location 1: init, peer never heard, not in sync\nlast change: none\n");
        assert_eq!(none.map(|r| (r.role, r.change)), Some(("init".to_string(), None)));
    }

    #[test]
    fn a_handover_in_the_same_millisecond_is_no_overlap() {
        let rs = [
            r(1, 0, 100, (50, "active: first")),
            r(2, 0, 100, (60, "standby: peer active")),
            r(1, 0, 300, (200, "standby: handed over")),
            r(2, 0, 300, (200, "active: handed to me")),
        ];
        let spans = active_spans(&rs, &BTreeMap::new());
        assert_eq!(spans.len(), 2);
        assert!(overlaps(&spans, None).is_empty());
    }

    #[test]
    fn two_active_boards_are_found_and_a_window_may_allow_them() {
        let rs = [
            r(1, 0, 100, (50, "active: first")),
            r(2, 0, 100, (60, "standby: peer active")),
            r(2, 0, 900, (700, "active: peer silent")),
            r(1, 0, 1200, (1100, "standby: both active")),
        ];
        let spans = active_spans(&rs, &BTreeMap::new());
        assert_eq!(overlaps(&spans, None).len(), 1, "{spans:?}");
        assert!(overlaps(&spans, Some((600, 1100))).is_empty());
        assert_eq!(overlaps(&spans, Some((600, 800))).len(), 1);
    }

    #[test]
    fn a_killed_board_is_active_until_it_is_gone() {
        let rs = [r(1, 0, 100, (50, "active: first")), r(2, 0, 900, (700, "active: peer silent"))];
        let ends = BTreeMap::from([((1, 0), 650)]);
        assert!(overlaps(&active_spans(&rs, &ends), None).is_empty());
        let ends = BTreeMap::from([((1, 0), 750)]);
        assert_eq!(overlaps(&active_spans(&rs, &ends), None).len(), 1);
    }

    #[test]
    fn an_unobserved_change_counts_as_active() {
        let rs = [
            r(1, 0, 100, (50, "active: first")),
            r(2, 0, 100, (60, "standby: peer active")),
            r(2, 0, 900, (800, "standby: again")),
        ];
        let spans = active_spans(&rs, &BTreeMap::new());
        assert_eq!(overlaps(&spans, None).len(), 1, "{spans:?}");
    }
}
