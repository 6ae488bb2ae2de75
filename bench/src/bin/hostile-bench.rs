//! hostile-bench: `aftrd` forwarding a steady legitimate load while attacks run
//! (issue 15). Goal: the legitimate flows keep at least 95% of the throughput they have
//! with no attack, and no legitimate subscriber loses a session.
//!
//! In one run, on veths in namespaces made here and removed at the end (even on failure
//! or an interrupt; `bench::lab`):
//! - `aftrd` with one worker (AF_XDP, core 1), its instance with a per-subscriber session
//!   limit and new-session rate (`INSTANCE_LIMITS`);
//! - the legitimate load: `--flows` UDP flows from `--b4s` B4s (softwire -> IPv4) and the
//!   server's replies to their mappings (IPv4 -> softwire), both at once, half the rate
//!   each, sent by AF_PACKET from this process (core 0). The rate is `--legit-rate`, or
//!   `--load` (0.6) of the capacity: what `aftrd` forwarded softwire -> IPv4 in a
//!   full-speed trial (AF_XDP generator, as `bench-report`'s first trial);
//! - for each attack (`--attacks`, `bench::attack`), `--rounds` rounds of `--trial`-second
//!   trials: the load alone, then the load with the attack beside it from a separate
//!   generator process (`dslite-gen --attack`, AF_XDP, core 0) as fast as it goes ("line
//!   rate"), then (`--paced`, 20% of the capacity unless `none`) at a rate the load
//!   leaves room for: whether the defences cost the legitimate flows anything once the
//!   frames are in, apart from what a flood costs the receive path.
//!
//! The legitimate throughput is counted by the taps on the far interfaces
//! (`bench::tap`): one legitimate frame in 17 carries the sample flag, the tap keeps
//! those that arrive translated (and checks them), and the delivered rate is the sent
//! rate times the share of sampled frames that arrived. Attack frames never carry the
//! flag or the mark, so what an attack makes `aftrd` send (a flood's first sessions,
//! ICMP errors) is not counted as legitimate. The goal's ratio is the share of the
//! legitimate frames sent that arrived beside the attack, against the same alone: on veth
//! the receive path of every frame (the XDP program, the copy into `aftrd`'s buffers)
//! runs on its sender's core, so an attack takes from the legitimate generator's core
//! and it sends less, which independent senders would not; the frames sent and
//! delivered per second are in the table beside it. Medians over the rounds, and the
//! median of the ratios of each attack trial to the baseline of its round. A baseline that lost
//! more than 5% of the load (on a shared machine: other work took aftrd's core) is no
//! baseline: it is repeated, twice at most, and the notes say how often.
//!
//! Sessions: the legitimate sessions (`aftrctl display sessions`: B4, inside and
//! external address and port) after the warm-up, compared after each attack's trials:
//! every one must still be there with the same mapping. Counters: `aftrctl display
//! statistics` around every trial, and the veths' (`ethtool -S`: frames the XDP program
//! redirected that the socket refused, its ring full); each attack's own drop counters
//! must move while it runs, else it never reached the engine.
//!
//! It fails (exit 1, saying why) when a trial measured nothing: no legitimate frame
//! delivered at a baseline, an attack generator that sent nothing, drop counters that
//! did not move. A legitimate throughput below 95% or a lost session is a result, printed
//! as such. `--break no-legit|silent-attacker|attack-elsewhere` breaks a run on purpose
//! (`bench/tests/hostile_fails.rs`).
//!
//! Usage: hostile-bench [--attacks a,b,...] [--rounds N] [--trial S] [--flows N] [--b4s N]
//!   [--load F | --legit-rate PPS] [--paced N%|PPS|none] [--out DIR] [--break WHAT]
//! (as root, with the workspace binaries built: `bash scripts/hostile-bench.sh`)

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bench::attack::Attack;
use bench::generator::{self, Addresses, Direction, Io, L4, Mix, Plan, Sent, Traffic};
use bench::lab::{Running, SessionLine, Statistics, Topology, bin, start_aftrd};
use bench::measure::{arg, known_options, median, percentiles};
use bench::tap::{self, Check, Tap};

/// The instance's limits per subscriber (decision 0014), added to the lab's instance.
const INSTANCE_LIMITS: &str = " session-limit 4096\n new-session-rate 1000\n";
/// One legitimate frame in this many carries the sample flag (prime: every flow is
/// sampled whatever their number).
const SAMPLE: u64 = 17;
/// The attacking B4's number (the legitimate ones are below `--b4s`).
const ATTACKER: u32 = 1 << 16;
/// The share of the baseline throughput the legitimate flows must keep.
const GOAL: f64 = 0.95;

/// A run broken on purpose, to show that it fails (`bench/tests/hostile_fails.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// After the warm-up, the legitimate softwire frames go to another endpoint.
    NoLegit,
    /// The attack generator sends nothing.
    SilentAttacker,
    /// The attacks go to another endpoint and pool: the XDP program leaves them to the
    /// kernel, and no counter of aftrd moves.
    AttackElsewhere,
}

/// The paced attack's rate: a share of the capacity, or frames per second.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Paced {
    Share(f64),
    Rate(f64),
}

struct Options {
    attacks: Vec<Attack>,
    rounds: usize,
    trial: f64,
    flows: usize,
    b4s: u32,
    load: f64,
    legit_rate: Option<f64>,
    paced: Option<Paced>,
    out_dir: Option<PathBuf>,
    broken: Option<Break>,
}

fn options(args: &[String]) -> Result<Options, String> {
    known_options(
        args,
        &[
            "--attacks",
            "--rounds",
            "--trial",
            "--flows",
            "--b4s",
            "--load",
            "--legit-rate",
            "--paced",
            "--out",
            "--break",
        ],
        &[],
    )?;
    let attacks = match arg::<String>(args, "--attacks")? {
        Some(list) => list.split(',').map(Attack::parse).collect::<Result<Vec<_>, _>>()?,
        None => Attack::ALL.to_vec(),
    };
    let paced = match arg::<String>(args, "--paced")?.as_deref().unwrap_or("20%") {
        "none" => None,
        p => {
            let bad = || format!("--paced {p:?}: N% (of the capacity), frames per second, or none");
            let v = match p.strip_suffix('%') {
                Some(n) => Paced::Share(n.parse::<f64>().map_err(|_| bad())? / 100.0),
                None => Paced::Rate(p.parse().map_err(|_| bad())?),
            };
            match v {
                Paced::Share(f) | Paced::Rate(f) if f > 0.0 && f.is_finite() => Some(v),
                _ => return Err(bad()),
            }
        }
    };
    let o = Options {
        attacks,
        rounds: arg(args, "--rounds")?.unwrap_or(3),
        trial: arg(args, "--trial")?.unwrap_or(2.5),
        flows: arg(args, "--flows")?.unwrap_or(1024),
        b4s: arg(args, "--b4s")?.unwrap_or(64),
        load: arg(args, "--load")?.unwrap_or(0.6),
        legit_rate: arg(args, "--legit-rate")?,
        paced,
        out_dir: arg(args, "--out")?,
        broken: match arg::<String>(args, "--break")?.as_deref() {
            None => None,
            Some("no-legit") => Some(Break::NoLegit),
            Some("silent-attacker") => Some(Break::SilentAttacker),
            Some("attack-elsewhere") => Some(Break::AttackElsewhere),
            Some(b) => return Err(format!("--break {b:?}: no-legit, silent-attacker or attack-elsewhere")),
        },
    };
    if o.rounds == 0 || o.flows == 0 || o.b4s == 0 || o.b4s >= ATTACKER || o.flows > 65_535 - 10_000 {
        return Err("--rounds, --flows, --b4s: 1 or more (--b4s below 65536, --flows at most 55535)".into());
    }
    if !(o.trial > 0.0 && o.trial.is_finite() && o.load > 0.0 && o.load <= 1.0) {
        return Err("--trial: more than 0; --load: more than 0, at most 1".into());
    }
    if o.legit_rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--legit-rate: frames per second, more than 0".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hostile-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("hostile-bench: signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    match run(&args, &o, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostile-bench: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

/// What one direction of the legitimate load did in a trial.
#[derive(Debug, Clone, Default)]
struct Way {
    sent: Sent,
    /// Sampled frames sent, and of those the tap kept (arrived translated).
    sampled: u64,
    kept: u64,
    /// Kept frames that failed the translation check.
    bad: u64,
    /// The sink interface's counter (every frame that arrived there, attacks' included).
    sink: u64,
    latency_ns: Vec<u64>,
}

impl Way {
    /// The share of the frames sent that arrived (of the sampled ones).
    fn share(&self) -> f64 {
        if self.sampled == 0 { 0.0 } else { self.kept as f64 / self.sampled as f64 }
    }
    /// Legitimate frames delivered per second.
    fn delivered(&self) -> f64 {
        self.sent.rate() * self.share()
    }
    fn p99_us(&self) -> f64 {
        percentiles(&mut self.latency_ns.clone(), &[99.0])[0] as f64 / 1e3
    }
}

/// The legitimate load: softwire -> IPv4 and IPv4 -> softwire.
struct Load {
    up: Traffic,
    down: Traffic,
    /// Frames per second each way.
    rate: f64,
}

const WAYS: [(Direction, &str, &str); 2] = [(Direction::In2Out, "g-sw", "g-in"), (Direction::Out2In, "g-in", "g-sw")];

/// Sends the load both ways for `secs` from threads on core 0 and counts what arrives.
fn legit_trial(t: &Topology, load: &Load, secs: f64) -> Result<[Way; 2], String> {
    let lab = Addresses::default();
    let mut taps: Vec<Tap> = Vec::new();
    for (dir, _, rx) in WAYS {
        taps.push(tap::start(t.gen_ns.clone(), rx.into(), false, Check::Translated(dir, lab))?);
    }
    let before = WAYS.map(|(_, _, rx)| tap::rx_packets(&t.gen_ns, rx));
    let plan = Plan { rate: Some(load.rate), secs, count: u64::MAX, sample_every: SAMPLE };
    let sent: Vec<Result<Sent, String>> = std::thread::scope(|s| {
        let threads: Vec<_> = [(&load.up, WAYS[0].1), (&load.down, WAYS[1].1)]
            .map(|(traffic, tx)| {
                s.spawn(move || {
                    dataplane::io::netns::enter(&t.gen_ns).map_err(|e| e.to_string())?;
                    core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
                    generator::send(tx, Io::AfPacket, 1, traffic, &plan, |_, _| {}).map_err(|e| format!("{tx}: {e}"))
                })
            })
            .into_iter()
            .collect();
        threads.into_iter().map(|h| h.join().expect("generator thread")).collect()
    });
    // What is still in flight arrives within the drain time.
    std::thread::sleep(Duration::from_millis(300));
    let mut ways: [Way; 2] = Default::default();
    for (i, ((w, tap), sent)) in ways.iter_mut().zip(taps).zip(sent).enumerate() {
        let r = tap.finish();
        w.sent = sent?;
        w.sampled = w.sent.frames / SAMPLE;
        (w.kept, w.bad, w.latency_ns) = (r.frames, r.bad, r.latency_ns);
        let rx = WAYS[i].2;
        w.sink = tap::rx_packets(&t.gen_ns, rx)?.saturating_sub(before[i].clone()?);
    }
    Ok(ways)
}

/// An attack generator running in the generator's namespace.
struct AttackRun {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for AttackRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `attack` for `secs` on core 0, at `rate` frames per second or as fast as it
/// goes; returns once it sends.
fn start_attack(t: &Topology, o: &Options, attack: Attack, rate: Option<f64>, secs: f64) -> Result<AttackRun, String> {
    let iface = if attack.from_internet() { "g-in" } else { "g-sw" };
    let mut c = Command::new("taskset");
    c.args(["-c", "0"]).arg(bin("dslite-gen"));
    c.args(["--netns", &t.gen_ns, "--iface", iface, "--attack", attack.name(), "--io", "af-xdp"]);
    c.args(["--attacker", &ATTACKER.to_string(), "--b4s", &o.b4s.to_string(), "--flows", &o.flows.to_string()]);
    c.args(["--seconds", &secs.to_string()]);
    if let Some(r) = rate {
        c.args(["--rate", &r.to_string()]);
    }
    match o.broken {
        Some(Break::SilentAttacker) => {
            c.args(["--count", "0"]);
        }
        Some(Break::AttackElsewhere) => {
            c.args(["--aftr", "2001:db8::dead", "--pool", "192.0.2.0/24"]);
        }
        _ => {}
    }
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| format!("dslite-gen: {e}"))?;
    let (tx, lines) = mpsc::channel();
    for out in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    let run = AttackRun { child, lines };
    match run.lines.recv_timeout(Duration::from_secs(10)) {
        Ok(l) if l.starts_with("dslite-gen: attack") => {}
        Ok(l) => return Err(format!("the {} generator did not start: {l}", attack.name())),
        Err(_) => return Err(format!("the {} generator said nothing within 10 s", attack.name())),
    }
    // Its sockets open, and it is under way.
    std::thread::sleep(Duration::from_millis(300));
    Ok(run)
}

/// Waits for an attack generator to end; what it sent (frames and its rate).
fn finish_attack(mut run: AttackRun, attack: Attack) -> Result<Sent, String> {
    let status = run.child.wait().map_err(|e| format!("dslite-gen: {e}"))?;
    // Its output ends when it does (the readers' ends of the channel go with it).
    let said: Vec<String> = run.lines.iter().collect();
    let last = said.iter().rev().find(|l| l.starts_with("sent ")).cloned().unwrap_or_default();
    // "sent N frames in S s: X Mpps"
    let w: Vec<&str> = last.split_whitespace().collect();
    let frames: u64 = w.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    let secs: f64 = w.get(4).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    if !status.success() || frames == 0 {
        return Err(format!(
            "the {} generator sent nothing ({status}): {}",
            attack.name(),
            said.iter().rev().take(3).rev().cloned().collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(Sent { frames, secs, forfeited: 0 })
}

/// The legitimate sessions: B4 (of the first `b4s`), inside address and port and
/// protocol, with the external address and port.
fn legit_sessions(dut: &Running, b4s: u32) -> Result<Vec<SessionLine>, String> {
    let lab = Addresses::default();
    let mut list: Vec<SessionLine> =
        dut.sessions()?.into_iter().filter(|s| (0..b4s).any(|n| lab.b4(n) == s.b4.octets())).collect();
    list.sort();
    Ok(list)
}

/// The veths' counters on aftrd's side (`ethtool -S d-sw` and `d-in`), each name after
/// its interface's (`d-sw rx_queue_0_drops`).
fn veth_counters(t: &Topology) -> Result<Statistics, String> {
    let mut all = Vec::new();
    for dev in ["d-sw", "d-in"] {
        let out = Command::new("ip")
            .args(["netns", "exec", &t.dut_ns, "ethtool", "-S", dev])
            .output()
            .map_err(|e| format!("ethtool: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        for l in text.lines() {
            if let Some((k, v)) = l.trim().split_once(':')
                && let Ok(v) = v.trim().parse::<u64>()
            {
                all.push((format!("{dev} {k}"), v));
            }
        }
    }
    Ok(Statistics(all))
}

/// One trial's figures.
#[derive(Debug, Clone, Default)]
struct Trial {
    ways: [Way; 2],
    secs: f64,
    /// aftrd's counters that moved during the trial.
    counted: Statistics,
    /// The veths' counters that moved.
    veth: Statistics,
    /// What the attack generator sent (none at a baseline).
    attack: Option<Sent>,
}

impl Trial {
    fn legit(&self) -> f64 {
        self.ways.iter().map(Way::delivered).sum()
    }
    /// Legitimate frames sent per second.
    fn sent(&self) -> f64 {
        self.ways.iter().map(|w| w.sent.rate()).sum()
    }
    /// The share of the legitimate frames sent that arrived.
    fn delivery(&self) -> f64 {
        self.legit() / self.sent().max(1.0)
    }
    /// Frames aftrd's worker took from its rings per second.
    fn taken(&self) -> f64 {
        self.counted.get("rx_frames") as f64 / self.secs
    }
    /// Frames the XDP program redirected to aftrd's socket on `dev` that the socket
    /// refused (its RX ring full, or no free buffer), per second.
    fn refused(&self, dev: &str) -> f64 {
        self.veth
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(dev) && k.ends_with("_drops") && !k.contains("xdp_drops"))
            .map(|(_, v)| *v)
            .sum::<u64>() as f64
            / self.secs
    }
}

fn sum_counters<'a>(trials: impl IntoIterator<Item = &'a Trial>) -> Statistics {
    let mut s = Statistics::default();
    for t in trials {
        for (k, v) in &t.counted.0 {
            match s.0.iter_mut().find(|(n, _)| n == k) {
                Some((_, total)) => *total += v,
                None => s.0.push((k.clone(), *v)),
            }
        }
    }
    s
}

fn med(trials: &[Trial], f: impl Fn(&Trial) -> f64) -> f64 {
    median(&mut trials.iter().map(f).collect::<Vec<_>>())
}

/// The trials of one attack at one pace, against the baselines of their rounds.
struct Run {
    /// Frames per second asked of the attack generator; None: as fast as it goes.
    rate: Option<f64>,
    trials: Vec<Trial>,
}

/// The trials of one attack and what became of the legitimate sessions.
struct Row {
    attack: Attack,
    baseline: Vec<Trial>,
    runs: Vec<Run>,
    /// Legitimate sessions kept with their mapping after the attack's trials, of those
    /// there were before.
    kept: usize,
    of: usize,
    /// Legitimate sessions that appeared meanwhile (a flow mapped anew).
    new: usize,
}

impl Row {
    /// The median over the rounds of `of` each attack trial against its round's
    /// baseline.
    fn paired(&self, run: &Run, of: impl Fn(&Trial) -> f64) -> f64 {
        median(&mut self.baseline.iter().zip(&run.trials).map(|(b, a)| of(a) / of(b)).collect::<Vec<_>>())
    }
    /// What the goal is about: the share of the legitimate frames sent that aftrd
    /// delivered beside the attack, against the same alone (both ways, or `way`). Not
    /// the frames delivered per second: on veth the receive path of every frame, the
    /// attack's too, runs on its sender's core, so the attack takes from the legitimate
    /// generator's core and it sends less ([`Row::sent`]), which independent senders on
    /// a network would not.
    fn ratio(&self, run: &Run, way: Option<usize>) -> f64 {
        self.paired(run, |t| way.map_or_else(|| t.delivery(), |w| t.ways[w].share()))
    }
    /// The legitimate frames sent beside the attack against alone: the lab's limit.
    fn sent(&self, run: &Run) -> f64 {
        self.paired(run, Trial::sent)
    }
    fn goal_met(&self, run: &Run) -> bool {
        self.ratio(run, None) >= GOAL && self.kept == self.of && self.new == 0
    }
    /// The interface the attack comes in on, aftrd's side.
    fn dev(&self) -> &'static str {
        if self.attack.from_internet() { "d-in" } else { "d-sw" }
    }
    /// The attack's own counters that moved, and the others worth seeing, over a run.
    fn counters(&self, run: &Run) -> String {
        let s = sum_counters(&run.trials);
        let mut shown: Vec<String> = self
            .attack
            .counters()
            .iter()
            .chain(&["xdp_passed_not_ours", "dest_unreachable_sent", "icmp_errors_suppressed"])
            .filter(|&&k| s.get(k) > 0)
            .map(|&k| format!("{k} {}", s.get(k)))
            .collect();
        if self.attack == Attack::Ptb {
            shown.push(format!("softwire_mtu_learned {}", s.get("softwire_mtu_learned")));
        }
        shown.join(", ")
    }
}

fn pace(rate: Option<f64>) -> String {
    rate.map_or("line rate".into(), |r| format!("paced, {:.3} Mpps", r / 1e6))
}

fn run(args: &[String], o: &Options, stop: &AtomicBool) -> Result<(), String> {
    let started = Instant::now();
    let interrupted = || if stop.load(Ordering::Relaxed) { Err("interrupted".to_string()) } else { Ok(()) };
    let t = Topology::up("hb", 1)?;
    let dir = std::env::temp_dir().join(format!("hostile-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let r = measure(&t, &dir, o, &interrupted);
    let _ = std::fs::remove_dir_all(&dir);
    let m = r?;
    let tables = tables(&m.rows);
    println!("\n{tables}");
    let notes = notes(&m, o);
    println!("{notes}");
    let summary = summary(&m);
    if let Some(out) = &o.out_dir {
        let sh = |c: &str, a: &[&str]| {
            Command::new(c)
                .args(a)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let date = sh("date", &["+%F"]);
        let path = out.join(format!("{date}-hostile.md"));
        let mut md = String::new();
        let _ = writeln!(md, "# Hostile traffic, {date}\n");
        let _ = writeln!(
            md,
            "Produced by `bash scripts/hostile-bench.sh{}` in {:.0} s, commit {}, Linux {}. Every figure below is \
             printed by that run.\n",
            if args.is_empty() { String::new() } else { format!(" {}", args.join(" ")) },
            started.elapsed().as_secs_f64(),
            sh("git", &["rev-parse", "--short", "HEAD"]),
            sh("uname", &["-r"])
        );
        md.push_str(&tables);
        md.push('\n');
        md.push_str(&notes);
        let _ = writeln!(md, "\n```\nsummary: {summary}\n```");
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("report: {}", path.display());
    }
    println!("summary: {summary}");
    Ok(())
}

/// What a run measured.
struct Measured {
    rows: Vec<Row>,
    busy: Busy,
    /// The load average (1 minute) at the start and at the end.
    loadavg: (String, String),
    /// The legitimate load's rate, both ways.
    rate: f64,
    /// What aftrd forwarded softwire -> IPv4 at full speed (None: the rate was set).
    capacity: Option<f64>,
}

/// Baselines that lost more than `1 - BUSY` of the load: repeated, and kept after two
/// repeats.
#[derive(Debug, Default, Clone, Copy)]
struct Busy {
    repeated: usize,
    kept: usize,
}

/// The share of the load a baseline delivers when the machine leaves aftrd its core.
const BUSY: f64 = 0.95;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?").to_string()
}

/// The run: aftrd, the warm-up, the load's rate, then each attack's trials.
fn measure(
    t: &Topology,
    dir: &Path,
    o: &Options,
    interrupted: &dyn Fn() -> Result<(), String>,
) -> Result<Measured, String> {
    let lab = Addresses::default();
    let load_at_start = loadavg();
    let mut busy = Busy::default();
    let mut dut = start_aftrd(t, dir, 1, INSTANCE_LIMITS)?;
    let up = Traffic::softwire(&lab, o.flows, o.b4s, Mix::UDP, 64, 1);
    let mapped = warm(t, &up, o.flows)?;
    let down = Traffic::inbound(&lab, &mapped, 64, 1);
    let sessions = legit_sessions(&dut, o.b4s)?;
    if sessions.len() != o.flows {
        return Err(format!("after the warm-up aftrd holds {} legitimate sessions, not {}", sessions.len(), o.flows));
    }
    // The load's rate: set, or a share of what aftrd forwards softwire -> IPv4.
    let capacity = if o.legit_rate.is_some() { None } else { Some(calibrate(t, &up)?) };
    let rate = o.legit_rate.unwrap_or_else(|| capacity.unwrap_or(0.0) * o.load);
    let paced = o.paced.map(|p| match p {
        Paced::Share(f) => f * rate / o.load,
        Paced::Rate(r) => r,
    });
    let up = if o.broken == Some(Break::NoLegit) {
        // The frames go to an endpoint that is not aftrd's.
        let elsewhere =
            Addresses { aftr: "2001:db8::dead".parse::<std::net::Ipv6Addr>().expect("an address").octets(), ..lab };
        Traffic::softwire(&elsewhere, o.flows, o.b4s, Mix::UDP, 64, 1)
    } else {
        up
    };
    let load = Load { up, down, rate: rate / 2.0 };
    eprintln!(
        "legitimate load: {:.3} Mpps ({:.3} each way), {} flows from {} B4s and their replies; attacks at line rate{}",
        rate / 1e6,
        load.rate / 1e6,
        o.flows,
        o.b4s,
        paced.map_or(String::new(), |r| format!(" and at {:.3} Mpps", r / 1e6))
    );
    let mut rows = Vec::new();
    for &attack in &o.attacks {
        eprintln!("{} ({}):", attack.name(), if attack.from_internet() { "from the Internet" } else { "from a B4" });
        let mut baseline = Vec::new();
        let mut runs: Vec<Run> =
            [None].into_iter().chain(paced.map(Some)).map(|rate| Run { rate, trials: Vec::new() }).collect();
        for round in 1..=o.rounds {
            // The load alone: at 60% of the capacity it all arrives, unless the machine's
            // other work takes aftrd's core; then that baseline is no baseline, and the
            // round starts again (twice at most).
            let mut tries = 0;
            let b = loop {
                interrupted()?;
                let b = trial(t, &mut dut, &load, o, None)?;
                for (w, (dir, _, rx)) in b.ways.iter().zip(WAYS) {
                    if w.kept == 0 {
                        return Err(format!(
                            "{} baseline {round}: no legitimate frame delivered {} ({} of {} sampled frames; the sink \
                             {rx} counted {})",
                            attack.name(),
                            dir.name(),
                            w.kept,
                            w.sampled,
                            w.sink
                        ));
                    }
                }
                if b.delivery() >= BUSY || tries == 2 {
                    break b;
                }
                tries += 1;
                busy.repeated += 1;
                eprintln!(
                    "  round {round}: the load alone lost {:.1}% (the machine is busy): again",
                    100.0 * (1.0 - b.delivery())
                );
            };
            if b.delivery() < BUSY {
                busy.kept += 1;
            }
            let mut line = format!("  round {round}: legitimate {:.3} Mpps alone", b.legit() / 1e6);
            for run in &mut runs {
                interrupted()?;
                let a = trial(t, &mut dut, &load, o, Some((attack, run.rate)))?;
                let _ = write!(
                    line,
                    ", {:.3} beside {:.3} Mpps of attack",
                    a.legit() / 1e6,
                    a.attack.map_or(0.0, |s| s.rate()) / 1e6
                );
                run.trials.push(a);
            }
            eprintln!("{line}");
            baseline.push(b);
        }
        let during = sum_counters(runs.iter().flat_map(|r| &r.trials));
        let moved: u64 = attack.counters().iter().map(|c| during.get(c)).sum();
        if moved == 0 {
            return Err(format!(
                "{}: none of aftrd's counters {} moved while it ran: the attack did not reach the engine (it counted: \
                 {})",
                attack.name(),
                attack.counters().join(", "),
                during.0.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            ));
        }
        let now = legit_sessions(&dut, o.b4s)?;
        let kept = sessions.iter().filter(|s| now.contains(s)).count();
        let new = now.iter().filter(|s| !sessions.contains(s)).count();
        rows.push(Row { attack, baseline, runs, kept, of: sessions.len(), new });
    }
    dut.alive("aftrd")?;
    Ok(Measured { rows, busy, loadavg: (load_at_start, loadavg()), rate, capacity })
}

/// One trial of the load, alone or beside an attack (at a rate, or as fast as it goes),
/// with aftrd's and the veths' counters around it.
fn trial(
    t: &Topology,
    dut: &mut Running,
    load: &Load,
    o: &Options,
    attack: Option<(Attack, Option<f64>)>,
) -> Result<Trial, String> {
    dut.alive("aftrd")?;
    let (before, veth) = (dut.statistics()?, veth_counters(t)?);
    // The attack runs from before the load starts until after it ends.
    let run = attack.map(|(a, rate)| start_attack(t, o, a, rate, o.trial + 1.0)).transpose()?;
    let started = Instant::now();
    let ways = legit_trial(t, load, o.trial)?;
    let secs = started.elapsed().as_secs_f64();
    let attack = match (run, attack) {
        (Some(run), Some((a, _))) => Some(finish_attack(run, a)?),
        _ => None,
    };
    let counted = dut.statistics()?.since(&before);
    let veth = veth_counters(t)?.since(&veth);
    Ok(Trial { ways, secs, counted, veth, attack })
}

/// Every legitimate flow a few times at a pace the tap holds: their sessions, and the
/// mappings the replies go to. Again (up to five passes) while some flow has no mapping
/// seen: aftrd's first frames may come before its worker polls.
fn warm(t: &Topology, up: &Traffic, flows: usize) -> Result<Vec<(L4, u32, u16)>, String> {
    let lab = Addresses::default();
    let mut mapped = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let tap = tap::start(t.gen_ns.clone(), "g-in".into(), true, Check::Translated(Direction::In2Out, lab))?;
        let plan = Plan { rate: Some(100_000.0), secs: 5.0, count: 3 * flows as u64, sample_every: 1 };
        std::thread::scope(|s| {
            s.spawn(|| {
                dataplane::io::netns::enter(&t.gen_ns).map_err(|e| e.to_string())?;
                generator::send("g-sw", Io::AfPacket, 1, up, &plan, |_, _| {}).map_err(|e| e.to_string())
            })
            .join()
            .expect("generator thread")
        })?;
        std::thread::sleep(Duration::from_millis(300));
        let r = tap.finish();
        if r.bad > 0 {
            return Err(format!("{} of the translated frames failed the check in the warm-up", r.bad));
        }
        mapped.extend(r.mapped);
        if mapped.len() >= flows {
            return Ok(mapped.into_iter().collect());
        }
    }
    Err(format!("aftrd mapped {} of {flows} flows in the warm-up", mapped.len()))
}

/// What aftrd forwards softwire -> IPv4 when the load's frames come as fast as the
/// AF_XDP generator sends them (2 s, the sink's counter: no attack runs): the capacity.
fn calibrate(t: &Topology, up: &Traffic) -> Result<f64, String> {
    let before = tap::rx_packets(&t.gen_ns, "g-in")?;
    let plan = Plan { rate: None, secs: 2.0, count: u64::MAX, sample_every: u64::MAX };
    let sent = std::thread::scope(|s| {
        s.spawn(|| {
            dataplane::io::netns::enter(&t.gen_ns).map_err(|e| e.to_string())?;
            core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
            generator::send("g-sw", Io::AfXdp, 1, up, &plan, |_, _| {}).map_err(|e| e.to_string())
        })
        .join()
        .expect("generator thread")
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let got = tap::rx_packets(&t.gen_ns, "g-in")?.saturating_sub(before);
    if got == 0 {
        return Err(format!("the full-speed trial: the sink counted none of the {} frames sent", sent.frames));
    }
    let forwarded = got as f64 / sent.secs;
    eprintln!(
        "full speed softwire -> IPv4: offered {:.3} Mpps, aftrd forwarded {:.3} Mpps",
        sent.rate() / 1e6,
        forwarded / 1e6
    );
    Ok(forwarded)
}

/// The tables of the run, in Markdown: the legitimate load beside each attack, then
/// what aftrd counted.
fn tables(rows: &[Row]) -> String {
    let mut o = String::from(
        "| attack | from | pace | attack Mpps | legitimate frames delivered of those sent, alone / beside the attack \
         | ratio | softwire -> IPv4 / IPv4 -> softwire ratio | legitimate Mpps sent, alone / beside | legitimate Mpps \
         delivered, alone / beside | legitimate p99 latency us, alone / beside | aftrd took from its rings, Mpps, alone \
         / beside | refused by aftrd's socket (ring full) on the attacked side, Mpps, alone / beside |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let b = &r.baseline;
        for run in &r.runs {
            let a = &run.trials;
            let ratio = r.ratio(run, None);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.3} | {:.1}% / {:.1}% | {:.3}{} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} / {:.3} | \
                 {:.0} / {:.0} | {:.3} / {:.3} | {:.3} / {:.3} |",
                r.attack.name(),
                if r.attack.from_internet() { "Internet" } else { "B4" },
                pace(run.rate),
                med(a, |t| t.attack.map_or(0.0, |s| s.rate())) / 1e6,
                med(b, Trial::delivery) * 100.0,
                med(a, Trial::delivery) * 100.0,
                ratio,
                if ratio < GOAL { " (below 0.95)" } else { "" },
                r.ratio(run, Some(0)),
                r.ratio(run, Some(1)),
                med(b, Trial::sent) / 1e6,
                med(a, Trial::sent) / 1e6,
                med(b, Trial::legit) / 1e6,
                med(a, Trial::legit) / 1e6,
                med(b, |t| t.ways[0].p99_us().max(t.ways[1].p99_us())),
                med(a, |t| t.ways[0].p99_us().max(t.ways[1].p99_us())),
                med(b, Trial::taken) / 1e6,
                med(a, Trial::taken) / 1e6,
                med(b, |t| t.refused(r.dev())) / 1e6,
                med(a, |t| t.refused(r.dev())) / 1e6,
            );
        }
    }
    let _ = writeln!(
        o,
        "\n| attack | legitimate sessions kept with their mapping | pace | aftrd counted during the attack trials \
         (totals) |\n| --- | --- | --- | --- |"
    );
    for r in rows {
        for run in &r.runs {
            let _ = writeln!(
                o,
                "| {} | {}/{}{} | {} | {} |",
                r.attack.name(),
                r.kept,
                r.of,
                if r.new > 0 { format!(", {} mapped anew", r.new) } else { String::new() },
                pace(run.rate),
                r.counters(run)
            );
        }
    }
    o
}

/// The settings and checks of the run, in words, under the tables.
fn notes(m: &Measured, o: &Options) -> String {
    let mut n = String::new();
    let _ = writeln!(
        n,
        "Legitimate load: {} UDP flows from {} B4s and the server's replies to their mappings, {:.3} Mpps in all, \
         half each way, 64-byte frames (104 on the softwire), AF_PACKET, core 0{}. Each attack: {} rounds of {} s \
         trials, the load alone, then beside the attack (`dslite-gen --attack`, AF_XDP, core 0) as fast as it goes \
         and at the paced rate; medians, and the median of each attack trial's ratio to its round's baseline. The \
         ratio (the goal's) is that of the share of the legitimate frames sent that arrived: on veth the receive path \
         of a frame (XDP program, copy into aftrd's buffers) runs on its sender's core, so the attack generator takes \
         from the legitimate one's core and it sends less (Mpps sent), which independent senders would not. aftrd: \
         one worker on core 1, AF_XDP, instance with `{}`.",
        o.flows,
        o.b4s,
        m.rate / 1e6,
        m.capacity.map_or(" (set)".into(), |f| format!(
            ", {:.0}% of the {:.3} Mpps aftrd forwarded softwire -> IPv4 at full speed",
            o.load * 100.0,
            f / 1e6
        )),
        o.rounds,
        o.trial,
        INSTANCE_LIMITS.trim().replace("\n ", "`, `")
    );
    let _ = writeln!(
        n,
        "\nThe machine's other work: load average {} at the start, {} at the end; {} baselines lost more than {:.0}% \
         of the load (aftrd's core taken) and were repeated, {} of them were kept after two repeats.",
        m.loadavg.0,
        m.loadavg.1,
        m.busy.repeated,
        100.0 * (1.0 - BUSY),
        m.busy.kept
    );
    let all = m.rows.iter().flat_map(|r| r.baseline.iter().chain(r.runs.iter().flat_map(|x| &x.trials)));
    let (kept, bad) = all.flat_map(|t| &t.ways).fold((0, 0), |(k, b), w| (k + w.kept, b + w.bad));
    let _ = writeln!(
        n,
        "\nTranslation checks: the taps kept {kept} sampled legitimate frames, {bad} failed a check (addresses, \
         checksums)."
    );
    for r in &m.rows {
        let _ = writeln!(n, "- {}: {}.", r.attack.name(), r.attack.what());
    }
    let missed: Vec<String> = m
        .rows
        .iter()
        .flat_map(|r| {
            r.runs.iter().filter(|run| !r.goal_met(run)).map(|run| format!("{} ({})", r.attack.name(), pace(run.rate)))
        })
        .collect();
    let _ = writeln!(
        n,
        "\nGoal (the share of the legitimate frames sent that arrive beside the attack at least 95% of the share \
         alone, every legitimate session kept with its mapping): {}.",
        if missed.is_empty() {
            "met for every attack".to_string()
        } else {
            format!("not met for {}", missed.join(", "))
        }
    );
    n
}

/// The `summary:` line: the load; for each attack (line rate; `_paced_` at the paced
/// rate) the legitimate packets per second delivered beside it and alone, the ratio of
/// the goal (share of the frames sent delivered), that of the frames sent, the attack's
/// rate; the sessions kept, the goals met.
fn summary(m: &Measured) -> String {
    let mut s = vec![format!("legit_mpps={:.3}", m.rate / 1e6)];
    let (mut kept, mut of, mut met, mut runs) = (0, 0, 0, 0);
    for r in &m.rows {
        for run in &r.runs {
            let key =
                format!("{}{}", r.attack.name().replace('-', "_"), if run.rate.is_some() { "_paced" } else { "" });
            s.push(format!(
                "{key}_legit_pps={:.0}/{:.0} {key}_ratio={:.3} {key}_sent_ratio={:.3} {key}_attack_mpps={:.3}",
                med(&run.trials, Trial::legit),
                med(&r.baseline, Trial::legit),
                r.ratio(run, None),
                r.sent(run),
                med(&run.trials, |t| t.attack.map_or(0.0, |s| s.rate())) / 1e6
            ));
            met += r.goal_met(run) as usize;
            runs += 1;
        }
        (kept, of) = (kept + r.kept, of + r.of);
    }
    s.push(format!("sessions_kept={kept}/{of} goal_met={met}/{runs}"));
    s.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(line: &str) -> Result<Options, String> {
        options(&line.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn options_have_their_defaults_and_refuse_nonsense() {
        let o = opts("").unwrap();
        assert_eq!((o.attacks.len(), o.rounds, o.trial, o.load, o.paced), (6, 3, 2.5, 0.6, Some(Paced::Share(0.2))));
        assert_eq!(opts("--paced 50000").unwrap().paced, Some(Paced::Rate(50000.0)));
        assert_eq!(opts("--paced none").unwrap().paced, None);
        assert_eq!(opts("--attacks ptb,frag-internet").unwrap().attacks, vec![Attack::Ptb, Attack::FragInternet]);
        for bad in [
            "--attacks ptb,smurf",
            "--paced 0%",
            "--paced fast",
            "--load 1.5",
            "--rounds 0",
            "--b4s 70000",
            "--legit-rate 0",
            "--break everything",
            "--attack-rate 5",
        ] {
            assert!(opts(bad).is_err(), "{bad}");
        }
    }

    /// A trial whose two ways each sent 1000 frames a second, `kept` of 100 sampled
    /// arriving.
    fn trial_of(kept: [u64; 2]) -> Trial {
        let way = |k| Way {
            sent: Sent { frames: 1000, secs: 1.0, forfeited: 0 },
            sampled: 100,
            kept: k,
            ..Default::default()
        };
        Trial { ways: kept.map(way), secs: 1.0, ..Default::default() }
    }

    #[test]
    fn each_attack_trial_is_measured_against_its_rounds_baseline() {
        // Three rounds; the machine was slower in the second (both trials lower).
        let baseline = vec![trial_of([100, 100]), trial_of([50, 50]), trial_of([100, 100])];
        let run = Run { rate: None, trials: vec![trial_of([96, 100]), trial_of([48, 50]), trial_of([90, 100])] };
        let row = Row { attack: Attack::Ptb, baseline, runs: vec![], kept: 10, of: 10, new: 0 };
        // Each attack trial against its own round's baseline: 0.98, 0.98 and 0.95, so
        // the slow second round counts as one like the others.
        assert!((row.ratio(&run, None) - 0.98).abs() < 1e-9);
        assert!((row.ratio(&run, Some(0)) - 0.96).abs() < 1e-9);
        assert_eq!(row.ratio(&run, Some(1)), 1.0);
        assert!(row.goal_met(&run));
        assert_eq!(row.sent(&run), 1.0);
        // A generator that sent half as much beside the attack, all of it delivered:
        // aftrd lost nothing, the lab's generator was short of its core.
        let mut short = trial_of([100, 100]);
        short.ways.iter_mut().for_each(|w| w.sent.frames = 500);
        let halved = Run { rate: None, trials: vec![short.clone(), short.clone(), short] };
        assert_eq!((row.ratio(&halved, None), row.sent(&halved)), (1.0, 0.5));
        assert_eq!(trial_of([96, 100]).legit(), 1960.0);
        assert!((trial_of([96, 100]).delivery() - 0.98).abs() < 1e-9);
        // One legitimate session lost, or mapped anew: the goal is not met.
        let lost = Row { kept: 9, ..row };
        assert!(!lost.goal_met(&run));
        let anew = Row { new: 1, ..lost };
        assert!(!anew.goal_met(&run));
    }
}
