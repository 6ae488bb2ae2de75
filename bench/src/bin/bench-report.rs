//! bench-report: the throughput benchmark of the AFTR and its report.
//!
//! In one run, side by side on the same veth pairs, with the same generator and sink:
//! the bare AF_XDP forwarder (`xdp-forward`: the physical limit of these veths), `aftrd`
//! with one worker and `aftrd` with two, softwire -> IPv4 and IPv4 -> softwire, at
//! 64-byte-class and ~512-byte frames. For each, the highest rate without loss (RFC 2544
//! section 26.1 style: a binary search over paced trials, with a stated loss tolerance),
//! then the latency of sampled frames at that rate (section 26.2: the kernel's receive
//! time minus the send time the generator wrote into the frame). Then, from their own
//! programs, the in-memory engine figures (`engine-bench`, with its forwarding-table
//! row), the hot-backup figures (`failover-bench`, and three kill -9 trials with `--bgp`)
//! and `aftrd` under attack (`hostile-bench`: the legitimate load's
//! throughput beside each attack against its throughput alone). Prints a table and
//! writes `bench/results/<date>.md` and `.svg`.
//!
//! Topology (made here, removed on exit, even on failure):
//!   [gen] g-sw <-> d-sw [dut] d-in <-> g-in [gen]
//! veths with two queues each way, so `aftrd` with two workers gets one RX queue per
//! worker. The generator (AF_XDP transmit sockets) runs on core 0, the DUT's first
//! worker on core 1 (the second, if any, on core 0: this machine has two).
//!
//! Usage: bench-report [--sizes 64,512] [--trial S] [--loss PCT] [--flows N] [--b4s N]
//!   [--duts bare,aftrd1,aftrd2] [--skip-engine] [--skip-ha] [--skip-hostile] [--kills N]
//!   [--out DIR] [--profile PERF.DATA]
//! `--trial`: 2 s by default, at most RFC 2544's 60 s. `--profile`: `perf record` of
//! aftrd with one worker through a trial at its rate found, softwire -> IPv4, of the
//! first size (`scripts/profile-worker.sh` makes the flame graph).
//! (as root, with the workspace binaries built: `bash scripts/bench-report.sh`)

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bench::attack::Attack;
use bench::generator::{self, Addresses, Direction, Io, L4, Mix, Plan, Sent, Traffic};
use bench::lab::{Running, Topology, bin, start_aftrd};
use bench::measure::{arg, known_options, median, percentiles};
use bench::start::first_line;
use bench::tap::{self, BadFrame, Check, Tap, TapReport};

/// The devices under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dut {
    Bare,
    Aftrd(u32),
}

impl Dut {
    fn name(self) -> String {
        match self {
            Dut::Bare => "bare AF_XDP forwarder".into(),
            Dut::Aftrd(1) => "aftrd, 1 worker".into(),
            Dut::Aftrd(n) => format!("aftrd, {n} workers"),
        }
    }
    fn short(self) -> String {
        match self {
            Dut::Bare => "bare".into(),
            Dut::Aftrd(n) => format!("aftrd{n}"),
        }
    }
    /// TX queues the generator spreads over (one per receiving worker).
    fn queues(self) -> u32 {
        match self {
            Dut::Bare => 1,
            Dut::Aftrd(n) => n,
        }
    }
}

/// aftrd's hand-off counters: (handed_off_softwire, handed_off_internet, rx_frames,
/// drop_handoff_full).
#[derive(Debug, Clone, Copy, Default)]
struct Handed(u64, u64, u64, u64);

/// aftrd's hand-off counters now (None for the bare forwarder).
fn handed(dut: &Running) -> Result<Option<Handed>, String> {
    if dut.socket.is_none() {
        return Ok(None);
    }
    let v = dut.statistics()?;
    let v = |k| v.get(k);
    Ok(Some(Handed(v("handed_off_softwire"), v("handed_off_internet"), v("rx_frames"), v("drop_handoff_full"))))
}

fn start(t: &Topology, dir: &Path, dut: Dut) -> Result<Running, String> {
    match dut {
        Dut::Bare => {
            let mut c = Command::new("ip")
                .args(["netns", "exec", &t.dut_ns])
                .arg(bin("xdp-forward"))
                .args(["--softwire", "d-sw", "--internet", "d-in", "--core", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("xdp-forward: {e}"))?;
            let err = c.stderr.take().expect("piped");
            let running = Running { child: c, socket: None };
            // It says "XDP on ..." once its program is attached and its sockets open.
            let line = first_line(err, "xdp-forward", 10)?;
            if !line.contains("XDP on") {
                return Err(format!("xdp-forward did not start: {line}"));
            }
            Ok(running)
        }
        Dut::Aftrd(workers) => start_aftrd(t, dir, workers, ""),
    }
}

/// The interfaces a direction sends on and receives from (generator side).
fn ends(dir: Direction) -> (&'static str, &'static str) {
    match dir {
        Direction::In2Out => ("g-sw", "g-in"),
        Direction::Out2In => ("g-in", "g-sw"),
    }
}

/// One paced (or full-speed) trial.
struct Trial {
    sent: Sent,
    received: u64,
    tap: TapReport,
}

impl Trial {
    fn loss(&self) -> f64 {
        if self.sent.frames == 0 { 1.0 } else { (1.0 - self.received as f64 / self.sent.frames as f64).max(0.0) }
    }
}

/// What a trial sends and how its frames are tapped.
struct Load<'a> {
    dir: Direction,
    traffic: &'a Traffic,
    queues: u32,
    plan: Plan,
    /// Tap: every marked frame (`all`) or the sampled ones, checked as given.
    tap: Option<(bool, Check)>,
}

/// Set by SIGINT or SIGTERM: the run ends at its next trial or program with an error,
/// so that its DUT and namespaces go as on any other failure (as in hostile-bench).
static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn interrupted() -> Result<(), String> {
    match INTERRUPTED.get() {
        Some(f) if f.load(Ordering::Relaxed) => Err("interrupted by a signal".into()),
        _ => Ok(()),
    }
}

fn trial(t: &Topology, l: &Load) -> Result<Trial, String> {
    interrupted()?;
    let (tx_if, rx_if) = ends(l.dir);
    let tap = l.tap.map(|(all, what)| tap::start(t.gen_ns.clone(), rx_if.to_string(), all, what)).transpose()?;
    let before = tap::rx_packets(&t.gen_ns, rx_if)?;
    let sent = std::thread::scope(|s| {
        s.spawn(|| {
            dataplane::io::netns::enter(&t.gen_ns).map_err(|e| e.to_string())?;
            core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
            generator::send(tx_if, Io::AfXdp, l.queues, l.traffic, &l.plan, |_, _| {}).map_err(|e| e.to_string())
        })
        .join()
        .expect("generator thread")
    })?;
    // What is still in flight arrives within the drain time.
    std::thread::sleep(Duration::from_millis(300));
    let received = tap::rx_packets(&t.gen_ns, rx_if)?.saturating_sub(before);
    let tap = tap.map(Tap::finish).unwrap_or_default();
    let at = l.plan.rate.map(|r| format!("{:.3} Mpps", r / 1e6)).unwrap_or("full speed".into());
    if sent.frames == 0 {
        return Err(format!("trial at {at}: the generator sent nothing out of {tx_if}"));
    }
    // Nothing at all through is no loss figure: the DUT is not forwarding.
    if received == 0 {
        return Err(format!("trial at {at}: the sink ({rx_if}) counted none of the {} frames sent", sent.frames));
    }
    Ok(Trial { sent, received, tap })
}

/// The loads of the latency trials, as shares of the rate found (RFC 2544 section 26.2
/// measures at the rate found; below it, what a frame waits when the DUT is not full).
const LOADS: [f64; 3] = [0.5, 0.9, 1.0];
/// Where the 90% load is in [`LOADS`] (the goal's).
const AT_90: usize = 1;
/// RFC 2544 section 24: trials of 60 s at most; the default is shorter, for a run of
/// minutes on a shared machine.
const TRIAL_MAX_SECS: f64 = 60.0;
const TRIAL_DEFAULT_SECS: f64 = 2.0;
/// Rounds of every DUT's searches by default: the medians of three, on a machine whose
/// speed moves by tens of percent within minutes (decision 0008).
const ROUNDS_DEFAULT: usize = 3;

/// The latency of the sampled frames at one load, and their translation checks.
#[derive(Debug, Clone, Default)]
struct Latency {
    /// The share of the rate found, and the rate, frames per second.
    load: f64,
    rate: f64,
    /// p50, p99, p99.9 in us.
    us: [f64; 3],
    loss: f64,
    samples: u64,
    bad: u64,
    bad_frames: Vec<BadFrame>,
}

/// The result of one search.
#[derive(Debug, Clone, Default)]
struct Found {
    /// Highest rate within the tolerance, frames per second (a search that finds none
    /// fails).
    rate: f64,
    /// The generator's own limit was reached without loss: the DUT is at least this fast.
    at_generator_limit: bool,
    /// Loss at that rate in the search's trial.
    loss: f64,
    /// One per share of [`LOADS`], in that order.
    latency: Vec<Latency>,
    /// CPU time of the DUT's forwarding threads per frame delivered in the full-speed
    /// trial, ns ([`forwarding_cpu_ns`]).
    ns_per_frame: f64,
    trials: usize,
}

impl Found {
    /// The latency trial at the rate found.
    fn at_rate(&self) -> &Latency {
        self.latency.last().expect("a search measures latency")
    }
    fn samples(&self) -> u64 {
        self.latency.iter().map(|l| l.samples).sum()
    }
    fn bad(&self) -> u64 {
        self.latency.iter().map(|l| l.bad).sum()
    }
}

struct Settings {
    /// `perf record` of aftrd with one worker, softwire -> IPv4, at the rate found, of
    /// the first frame size, into this file.
    profile: Option<PathBuf>,
    trial_secs: f64,
    /// Rounds of searches, each of every DUT in turn ([`measure`]).
    rounds: usize,
    tolerance: f64,
    flows: usize,
    b4s: u32,
}

/// RFC 2544-style search: a trial as fast as the generator goes, then bisection between
/// the highest rate that passed and the lowest that failed, to 2% of the rate.
/// CPU time (ns) the DUT's forwarding threads have had so far (the kernel's
/// `/proc/PID/task/TID/schedstat`): aftrd's workers (`aftr-slotN-wK`), or the bare
/// forwarder's thread. It counts what they do in the kernel too (their transmit wakes
/// the far veth's receive), and not the time other work on the machine took their core.
fn forwarding_cpu_ns(dut: &Running) -> Result<u64, String> {
    let dir = format!("/proc/{}/task", dut.child.id());
    let tasks = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    let mut total = None;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        let worker = comm
            .strip_prefix("aftr-slot")
            .and_then(|r| r.split_once("-w"))
            .is_some_and(|(slot, w)| slot.bytes().all(|b| b.is_ascii_digit()) && w.bytes().all(|b| b.is_ascii_digit()));
        if !worker && comm != "xdp-forward" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let ns: u64 = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{}: no run time in {stat:?}", task.path().join("schedstat").display()))?;
        *total.get_or_insert(0) += ns;
    }
    total.ok_or_else(|| format!("no forwarding thread of pid {} found", dut.child.id()))
}

fn search(
    t: &Topology,
    s: &Settings,
    dut: Dut,
    running: &Running,
    dir: Direction,
    traffic: &Traffic,
) -> Result<Found, String> {
    let load = |rate: Option<f64>, tap: Option<(bool, Check)>, sample_every: u64| Load {
        dir,
        traffic,
        queues: dut.queues(),
        plan: Plan { rate, secs: s.trial_secs, count: u64::MAX, sample_every },
        tap,
    };
    let mut f = Found::default();
    let cpu_before = forwarding_cpu_ns(running)?;
    let full = trial(t, &load(None, None, u64::MAX))?;
    f.ns_per_frame = (forwarding_cpu_ns(running)? - cpu_before) as f64 / full.received as f64;
    f.trials += 1;
    let (top, forwarded) = (full.sent.rate(), full.received as f64 / full.sent.secs);
    eprintln!(
        "    full speed: offered {:.3} Mpps, forwarded {:.3} Mpps ({:.2}% lost); {:.0} ns of the forwarding \
         thread's CPU per frame",
        top / 1e6,
        forwarded / 1e6,
        full.loss() * 100.0,
        f.ns_per_frame
    );
    let (mut lo, mut hi) = (0.0f64, top);
    // The passing trial's loss and the rate it offered (below `lo` by what the
    // generator forfeited when it fell behind).
    let (mut lo_loss, mut lo_offered) = (0.0, 0.0);
    // The lowest rate that failed, and its loss.
    let mut failed = (top, full.loss());
    if full.loss() <= s.tolerance {
        (lo, lo_loss, lo_offered, f.at_generator_limit) = (top * 0.999, full.loss(), top * 0.999, true);
    } else {
        // The rate it forwarded under overload is the first guess.
        let mut rate = (forwarded * 0.99).min(top * 0.98);
        for _ in 0..10 {
            if hi - lo <= 0.02 * hi || rate <= 0.0 {
                break;
            }
            let tr = trial(t, &load(Some(rate), None, u64::MAX))?;
            f.trials += 1;
            let pass = tr.loss() <= s.tolerance;
            eprintln!(
                "    {:.3} Mpps: {:.3}% lost, {}{}",
                rate / 1e6,
                tr.loss() * 100.0,
                if pass { "pass" } else { "fail" },
                forfeited(&tr.sent)
            );
            if pass {
                (lo, lo_loss, lo_offered) = (rate, tr.loss(), tr.sent.rate().min(rate));
            } else {
                hi = rate;
                failed = (rate, tr.loss());
            }
            rate = (lo + hi) / 2.0;
        }
    }
    if lo <= 0.0 {
        return Err(format!(
            "{} {}: no rate within {}% loss found (the lowest tried, {:.3} Mpps, lost {:.2}%)",
            dut.name(),
            dir.name(),
            s.tolerance * 100.0,
            failed.0 / 1e6,
            failed.1 * 100.0
        ));
    }
    (f.rate, f.loss) = (lo_offered, lo_loss);
    // Latency at each load, of about one frame in 64.
    let check = match dut {
        Dut::Bare => Check::Mark,
        Dut::Aftrd(_) => Check::Translated(dir, Addresses::default()),
    };
    for share in LOADS {
        let rate = lo * share;
        let mut tr = trial(t, &load(Some(rate), Some((false, check)), 64))?;
        f.trials += 1;
        if tr.tap.frames == 0 {
            return Err(format!(
                "{} {}: the latency trial at {:.3} Mpps ({:.0}% of the rate found) kept no sampled frame ({} of {} \
                 frames arrived)",
                dut.name(),
                dir.name(),
                rate / 1e6,
                share * 100.0,
                tr.received,
                tr.sent.frames
            ));
        }
        let p = percentiles(&mut tr.tap.latency_ns, &[50.0, 99.0, 99.9]);
        let l = Latency {
            load: share,
            // What it offered: the generator may have forfeited frames it fell behind on.
            rate: tr.sent.rate().min(rate),
            us: [0, 1, 2].map(|i| p[i] as f64 / 1e3),
            loss: tr.loss(),
            samples: tr.tap.frames,
            bad: tr.tap.bad,
            bad_frames: tr.tap.bad_frames,
        };
        eprintln!(
            "    latency at {:.0}% ({:.3} Mpps): p50 {:.1} p99 {:.1} p99.9 {:.1} us, {} samples{}",
            share * 100.0,
            l.rate / 1e6,
            l.us[0],
            l.us[1],
            l.us[2],
            l.samples,
            forfeited(&tr.sent)
        );
        if l.bad > 0 {
            eprintln!("    {}: {} of {} sampled frames FAILED the translation check:", dut.name(), l.bad, l.samples);
            for b in &l.bad_frames {
                eprintln!("      {}", b.describe(128));
            }
        }
        f.latency.push(l);
    }
    Ok(f)
}

/// What the generator forfeited of a paced trial, when anything: it fell behind its
/// schedule by more than a batch (its core taken) and did not burst to catch up.
fn forfeited(sent: &Sent) -> String {
    if sent.forfeited == 0 {
        return String::new();
    }
    let share = sent.forfeited as f64 / (sent.frames + sent.forfeited) as f64;
    format!(" (the generator fell behind and forfeited {} frames, {:.2}%)", sent.forfeited, share * 100.0)
}

/// `perf record` (call graphs from DWARF unwinding: release builds keep no frame
/// pointers) of the running aftrd through one trial at `rate`, into `out`.
fn profile(t: &Topology, s: &Settings, dut: &Running, traffic: &Traffic, rate: f64, out: &Path) -> Result<(), String> {
    let secs = s.trial_secs.min(5.0);
    eprintln!(
        "    profiling aftrd (pid {}) for {secs} s at {:.3} Mpps into {}",
        dut.child.id(),
        rate / 1e6,
        out.display()
    );
    let perf = Command::new("perf")
        .args(["record", "-F", "997", "--call-graph", "dwarf,16384", "-p", &dut.child.id().to_string(), "-o"])
        .arg(out)
        .args(["--", "sleep", &format!("{:.1}", secs + 0.4)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("perf record: {e} (scripts/setup.sh installs linux-perf)"))?;
    std::thread::sleep(Duration::from_millis(200));
    let l = Load {
        dir: Direction::In2Out,
        traffic,
        queues: 1,
        plan: Plan { rate: Some(rate), secs, count: u64::MAX, sample_every: u64::MAX },
        tap: None,
    };
    let tr = trial(t, &l)?;
    let done = perf.wait_with_output().map_err(|e| format!("perf record: {e}"))?;
    if !done.status.success() {
        return Err(format!("perf record failed: {}", String::from_utf8_lossy(&done.stderr).trim()));
    }
    eprintln!("    profiled trial: {:.3}% lost", tr.loss() * 100.0);
    Ok(())
}

/// One cell of the table: one round's search, or the medians of every round's.
#[derive(Clone)]
struct Cell {
    size: usize,
    dir: Direction,
    dut: Dut,
    /// The round of the run (0 for the medians).
    round: usize,
    found: Found,
    /// Share of the frames received from the network that aftrd handed to another
    /// worker during this direction's search (None for the bare forwarder).
    handed: Option<f64>,
}

/// The share of frames from the network handed over between `before` and `after`, of
/// the side `dir`'s frames come from. Every frame from the network counts once in
/// `rx_frames` where it lands, and once more at its owner if it was handed over, but
/// not if its lane was full (`drop_handoff_full`).
fn handed_share(before: Handed, after: Handed, dir: Direction) -> Option<f64> {
    let (sw, inet, rx, full) = (after.0 - before.0, after.1 - before.1, after.2 - before.2, after.3 - before.3);
    let from_network = (rx + full).checked_sub(sw + inet).filter(|&n| n > 0)?;
    let side = if dir == Direction::In2Out { sw } else { inet };
    Some(side as f64 / from_network as f64)
}

/// The softwire frames of the run and, after aftrd's warm-up, the mapped flows.
fn warm(t: &Topology, s: &Settings, sw: &Traffic, dut: Dut) -> Result<Vec<(L4, u32, u16)>, String> {
    if dut == Dut::Bare {
        // Any pool address and port will do for the bare forwarder.
        return Ok((0..s.flows).map(|i| (L4::Udp, 0xc633_6400 + (i % 250) as u32 + 1, 2000 + i as u16)).collect());
    }
    // Every flow a few times at a pace the tap holds: the sessions, and their mappings.
    let l = Load {
        dir: Direction::In2Out,
        traffic: sw,
        queues: dut.queues(),
        plan: Plan { rate: Some(100_000.0), secs: 5.0, count: 3 * s.flows as u64, sample_every: 1 },
        tap: Some((true, Check::Translated(Direction::In2Out, Addresses::default()))),
    };
    let tr = trial(t, &l)?;
    if tr.tap.bad > 0 {
        let first = tr.tap.bad_frames.first().map(|b| b.describe(128)).unwrap_or_default();
        return Err(format!(
            "{}: {} of the translated frames failed the check in the warm-up; the first: {first}",
            dut.name(),
            tr.tap.bad
        ));
    }
    let mapped: Vec<_> = tr.tap.mapped.into_iter().collect();
    if mapped.len() < s.flows {
        return Err(format!("{} mapped {} of {} flows in the warm-up", dut.name(), mapped.len(), s.flows));
    }
    Ok(mapped)
}

/// Every search of the run: for each frame size, `s.rounds` rounds, each of every DUT
/// in turn (so each DUT's figures come from times spread over the run, and each round's
/// are side by side with the others' of that round).
fn measure(t: &Topology, dir: &Path, s: &Settings, sizes: &[usize], duts: &[Dut]) -> Result<Vec<Cell>, String> {
    let mut cells = Vec::new();
    for &size in sizes {
        for (round, &dut) in (1..=s.rounds).flat_map(|r| duts.iter().map(move |d| (r, d))) {
            let sw = Traffic::softwire(&Addresses::default(), s.flows, s.b4s, Mix::UDP, size, dut.queues());
            let mut running = start(t, dir, dut)?;
            let mapped = warm(t, s, &sw, dut)?;
            let back = Traffic::inbound(&Addresses::default(), &mapped, size, dut.queues());
            for (d, traffic) in [(Direction::In2Out, &sw), (Direction::Out2In, &back)] {
                eprintln!(
                    "round {round} of {}: {} {}, {}-byte frames ({} bytes on the softwire):",
                    s.rounds,
                    dut.name(),
                    d.name(),
                    size,
                    sw.templates[0].bytes.len() + 4
                );
                let before = handed(&running)?;
                let found = search(t, s, dut, &running, d, traffic)?;
                if let Some(out) = &s.profile
                    && (dut, d, size, round) == (Dut::Aftrd(1), Direction::In2Out, sizes[0], 1)
                {
                    profile(t, s, &running, traffic, found.rate, out)?;
                }
                running.alive(&dut.name())?;
                let handed = match (before, handed(&running)?) {
                    (Some(b), Some(a)) => Some(
                        handed_share(b, a, d)
                            .ok_or_else(|| format!("{}: aftrd counted no received frame in the search", dut.name()))?,
                    ),
                    _ => None,
                };
                eprintln!(
                    "  => {:.3} Mpps{} ({:.2}% lost); latency p50 {:.1} p99 {:.1} us",
                    found.rate / 1e6,
                    if found.at_generator_limit { " (generator limit)" } else { "" },
                    found.loss * 100.0,
                    found.at_rate().us[0],
                    found.at_rate().us[1]
                );
                if let (Some(h), Dut::Aftrd(2..)) = (handed, dut) {
                    eprintln!("  {:.1}% of the frames handed to another worker", h * 100.0);
                }
                cells.push(Cell { size, dir: d, dut, round, found, handed });
            }
        }
    }
    Ok(cells)
}

/// One cell per (frame size, direction, DUT), in the order of the run, of the medians of
/// its rounds: the rate, the CPU per frame, the hand-offs and, load by load, each
/// percentile of the latency, its rate and its loss. Whether the rate was the
/// generator's limit, and the loss at it, are the median round's. Samples and failed
/// checks are the sums over the rounds, and every failed frame kept is kept.
fn medians(cells: &[Cell]) -> Vec<Cell> {
    let mut out: Vec<Cell> = Vec::new();
    for c in cells {
        if out.iter().any(|o| (o.size, o.dir, o.dut) == (c.size, c.dir, c.dut)) {
            continue;
        }
        let mut rounds: Vec<&Cell> =
            cells.iter().filter(|o| (o.size, o.dir, o.dut) == (c.size, c.dir, c.dut)).collect();
        rounds.sort_by(|a, b| a.found.rate.total_cmp(&b.found.rate));
        let mid = rounds[rounds.len() / 2];
        let med = |f: &dyn Fn(&Cell) -> f64| median(&mut rounds.iter().map(|c| f(c)).collect::<Vec<_>>());
        let latency = (0..LOADS.len())
            .map(|i| Latency {
                load: LOADS[i],
                rate: med(&|c| c.found.latency[i].rate),
                us: [0, 1, 2].map(|k| med(&|c| c.found.latency[i].us[k])),
                loss: med(&|c| c.found.latency[i].loss),
                samples: rounds.iter().map(|c| c.found.latency[i].samples).sum(),
                bad: rounds.iter().map(|c| c.found.latency[i].bad).sum(),
                bad_frames: rounds.iter().flat_map(|c| c.found.latency[i].bad_frames.clone()).collect(),
            })
            .collect();
        let found = Found {
            rate: mid.found.rate,
            at_generator_limit: mid.found.at_generator_limit,
            loss: mid.found.loss,
            latency,
            ns_per_frame: med(&|c| c.found.ns_per_frame),
            trials: rounds.iter().map(|c| c.found.trials).sum(),
        };
        let handed = rounds.iter().all(|c| c.handed.is_some()).then(|| med(&|c| c.handed.unwrap_or(0.0)));
        out.push(Cell { round: 0, found, handed, ..c.clone() });
    }
    out
}

/// The engine figures of the report: key in `engine-bench`'s summary, what it is, goal.
const ENGINE_FIGURES: &[(&str, &str, &str)] = &[
    ("est10k_in2out_mpps", "established, 10k sessions, softwire -> IPv4, Mpps", ">= 15"),
    ("est10k_out2in_mpps", "established, 10k sessions, IPv4 -> softwire, Mpps", ">= 15"),
    ("est1m_in2out_mpps", "established, 1M sessions, softwire -> IPv4, Mpps", ">= 8"),
    ("est1m_out2in_mpps", "established, 1M sessions, IPv4 -> softwire, Mpps", ">= 8"),
    ("baseline_mpps", "baseline (parse and copy only), Mpps", ""),
    ("new_sessions_per_sec", "new sessions per second", ">= 2000000"),
    ("bytes_per_session_1m", "memory per session at 1M sessions, bytes", "<= 128"),
    ("bytes_per_session_10m", "memory per session at 10M sessions, bytes", "<= 128"),
    (
        "mix_in2out_mpps",
        "mix UDP/TCP/ICMP 70/25/5, address-and-port-dependent filtering, 4 remotes per mapping, softwire -> IPv4, Mpps",
        "",
    ),
    ("mix_out2in_mpps", "the same mix, IPv4 -> softwire, Mpps", ""),
    ("scale2_in2out", "two workers on two cores / one worker, softwire -> IPv4, no hand-off", ">= 1.8"),
    ("scale2_half_in2out", "the same, 50% of the frames handed to the other worker", ">= 1.5"),
    ("scale2_out2in", "two workers / one worker, IPv4 -> softwire, no hand-off", ">= 1.8"),
    ("scale2_half_out2in", "the same, 50% handed over", ">= 1.5"),
    (
        "fragflood_delivery",
        "fragmented datagrams of 64 B4s delivered while one B4 floods first fragments (7 of 8 frames), share",
        ">= 0.95",
    ),
    ("fragflood_many_delivery", "the same, the flood from a new B4 address every fragment, share", ">= 0.95"),
];

/// The hot-backup figures: key in `failover-bench`'s summary, what it is.
const HA_FIGURES: &[(&str, &str)] = &[
    ("gap_ms", "traffic gap at a kill -9 of the active board, median, ms"),
    ("gap_worst_ms", "worst gap, ms"),
    ("preserved", "sessions older than delay-time kept with their mapping"),
    ("replication_records_per_s", "replication, session records per second"),
    ("bulk_sync_s", "bulk synchronisation of a new standby, seconds"),
    ("bulk_sessions", "sessions in that bulk synchronisation"),
];

/// The routing figures of the report (issue 16): keys in `engine-bench`'s summary (its
/// forwarding-table row), what each is, goal.
const FIB_FIGURES: &[(&str, &str, &str)] = &[
    ("fib_default_mpps", "softwire -> IPv4 through a forwarding table of one default route, Mpps", ""),
    ("fib_full_mpps", "the same through an Internet-sized table of 1M routes, Mpps", ""),
    ("fib_full_ratio", "1M routes / default route only", ">= 0.90"),
    ("fib_build_ms", "building the 1M-route table, ms", ""),
];

/// The kill -9 trials of the BGP failover (`failover-bench --bgp`): few, on a small
/// table, so that the report grows by a minute or so.
const BGP_TRIALS: &str = "3";

/// `failover-bench`'s arguments for the report's BGP failover row.
fn bgp_failover_args() -> [&'static str; 9] {
    ["--faults", "kill9", "--trials", BGP_TRIALS, "--records", "100000", "--bulk", "10000", "--bgp"]
}

/// The BGP failover figures: key in `failover-bench --bgp`'s kill9 row, what it is.
const BGP_FIGURES: &[(&str, &str)] = &[
    ("gap_ms", "traffic gap at a kill -9 of the active board, the upstream on BGP, median, ms"),
    ("gap_worst_ms", "worst gap, ms"),
    ("preserved", "sessions older than delay-time kept with their mapping"),
];

/// The report's routing section: the forwarding table from `engine-bench` (`e`) and
/// the failover with announcements by BGP (`b`), whichever ran.
fn routing_section(md: &mut String, e: Option<&[(String, String)]>, b: Option<&[(String, String)]>) {
    if e.is_none() && b.is_none() {
        return;
    }
    let _ = writeln!(
        md,
        "## Routing: the forwarding table and BGP (issue 16)
"
    );
    let _ = writeln!(
        md,
        "Forwarding: established UDP, one worker, in memory (`engine-bench`'s forwarding-table \
         row), servers spread over the address space, through a snapshot of one default route \
         and of 1M Internet-like routes (/8 to /28, some two-way ECMP). Failover: \
         `failover-bench {}`, the upstream router reaching the pool only by the route the active \
         board's BIRD announces (decision 0016).\n",
        bgp_failover_args().join(" ")
    );
    let _ = writeln!(md, "| figure | value | goal |\n| --- | --- | --- |");
    if let Some(e) = e {
        for (k, name, goal) in FIB_FIGURES {
            let _ = writeln!(md, "| {name} | {} | {goal} |", get(e, k));
        }
    }
    if let Some(b) = b {
        for (k, name) in BGP_FIGURES {
            let _ = writeln!(md, "| {name} | {} | |", get(b, k));
        }
    }
    md.push('\n');
}

/// The keys of `hostile-bench`'s summary the report shows: for each attack, at line rate
/// and paced (`_paced_`), the legitimate load's packets per second beside it and alone
/// (`BESIDE/ALONE`) and the attack's rate; the legitimate sessions kept.
fn hostile_keys() -> Vec<String> {
    let mut keys: Vec<String> = Attack::ALL
        .iter()
        .flat_map(|a| {
            let k = a.name().replace('-', "_");
            ["", "_paced"].map(|p| [format!("{k}{p}_legit_pps"), format!("{k}{p}_attack_mpps")])
        })
        .flatten()
        .collect();
    keys.push("sessions_kept".into());
    keys
}

/// The report's section of `hostile-bench`'s figures.
fn hostile_section(md: &mut String, h: &[(String, String)], flows: usize, b4s: u32) {
    let _ = writeln!(md, "## Under attack (`hostile-bench`)\n");
    let _ = writeln!(
        md,
        "aftrd (one worker) forwarding a steady legitimate load ({flows} UDP flows from {b4s} B4s and their replies, \
         at 60% of what it forwards softwire -> IPv4), alone and beside each attack from a separate generator, as \
         fast as it goes (line rate) and paced at 20% of that capacity, in alternating trials; legitimate packets per \
         second delivered beside the attack and alone (medians), and the median ratio of the share of the \
         legitimate frames sent that arrived, beside the attack against alone (on veth the attack also takes from \
         the legitimate generator's core, which sends less). Goal: at least 0.95, no legitimate session lost. The \
         full tables, with the frames sent, aftrd's drop counters and where frames were lost: `bash \
         scripts/hostile-bench.sh`.\n"
    );
    let _ = writeln!(
        md,
        "| attack | from | pace | attack Mpps | legitimate pps beside / alone | ratio |\n| --- | --- | --- | --- | --- | --- |"
    );
    for a in Attack::ALL {
        for (p, pace) in [("", "line rate"), ("_paced", "paced")] {
            let k = format!("{}{p}", a.name().replace('-', "_"));
            let _ = writeln!(
                md,
                "| {} | {} | {pace} | {} | {} | {} |",
                a.name(),
                if a.from_internet() { "Internet" } else { "B4" },
                get(h, &format!("{k}_attack_mpps")),
                get(h, &format!("{k}_legit_pps")),
                get(h, &format!("{k}_ratio"))
            );
        }
    }
    let _ = writeln!(md, "\nLegitimate sessions kept with their mapping: {}.\n", get(h, "sessions_kept"));
}

/// The `key=value` pairs of the `summary:` line a benchmark program prints, which
/// must hold a measurement for each of `keys`; a program that fails (even after a
/// summary) or prints none fails the report.
fn summary_of(program: &str, args: &[&str], keys: &[&str]) -> Result<Vec<(String, String)>, String> {
    interrupted()?;
    eprintln!("running {program} {}", args.join(" "));
    let out = Command::new(bin(program))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} {} failed ({}); its messages are above", args.join(" "), out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("summary:"))
        .ok_or_else(|| format!("{program} printed no summary line"))?;
    let kv: Vec<(String, String)> = line["summary:".len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    check_summary(program, &kv, keys)?;
    Ok(kv)
}

/// Each of `keys` is in the summary and is a measurement: a number above 0, or a count
/// `KEPT/OF` of something (OF above 0). A figure of 0 or NaN is a benchmark that
/// measured nothing.
fn check_summary(program: &str, kv: &[(String, String)], keys: &[&str]) -> Result<(), String> {
    for k in keys {
        let v = kv
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("{program}'s summary has no {k}"))?;
        let measured = match v.split_once('/') {
            Some((a, b)) => a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok_and(|b| b > 0),
            None => v.parse::<f64>().is_ok_and(|x| x.is_finite() && x > 0.0),
        };
        if !measured {
            return Err(format!("{program} reported {k}={v}: not a measurement"));
        }
    }
    Ok(())
}

fn get<'a>(kv: &'a [(String, String)], k: &str) -> &'a str {
    kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()).unwrap_or("?")
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The machine's 1-minute load average now, as the kernel gives it.
fn load_average() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().next().unwrap_or("unknown").to_string()
}

/// The machine the run was on.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    format!(
        "{} ({cores} vCPUs), {:.0} GiB, Linux {}, {}, commit {}",
        cpu,
        mem as f64 / (1 << 20) as f64,
        sh("uname", &["-r"]),
        sh("rustc", &["--version"]),
        sh("git", &["rev-parse", "--short", "HEAD"])
    )
}

fn mpps(f: &Found) -> String {
    format!("{}{:.3}", if f.at_generator_limit { ">=" } else { "" }, f.rate / 1e6)
}

/// The (frame size, direction) pairs measured, in the order of the run.
fn groups(cells: &[Cell]) -> Vec<(usize, Direction)> {
    let mut g: Vec<(usize, Direction)> = Vec::new();
    for c in cells {
        if !g.contains(&(c.size, c.dir)) {
            g.push((c.size, c.dir));
        }
    }
    g
}

/// The table of the I/O figures, in Markdown (printed too).
fn table(cells: &[Cell], duts: &[Dut]) -> String {
    let mut o = String::new();
    let _ = write!(o, "| frame (IPv4 / softwire bytes) | direction |");
    for d in duts {
        let _ = write!(o, " {} Mpps |", d.name());
        if *d != Dut::Bare {
            let _ = write!(o, " ratio |");
        }
    }
    let _ = write!(o, " latency p50 / p99 us ({}) |", duts.iter().map(|d| d.short()).collect::<Vec<_>>().join(", "));
    o.push('\n');
    o.push_str(&"| --- ".repeat(3 + 2 * duts.len() - usize::from(duts.contains(&Dut::Bare))));
    o.push_str("|\n");
    for (size, dir) in groups(cells) {
        let cell = |dut: Dut| cells.iter().find(|c| c.size == size && c.dir == dir && c.dut == dut);
        let bare = cell(Dut::Bare).map(|c| c.found.rate).unwrap_or(0.0);
        let _ = write!(o, "| {size} / {} | {} |", size + 40, dir.name());
        let mut lat = Vec::new();
        for &d in duts {
            let Some(c) = cell(d) else { continue };
            let _ = write!(o, " {} |", mpps(&c.found));
            if d != Dut::Bare {
                let r = if bare > 0.0 { format!("{:.2}", c.found.rate / bare) } else { "-".into() };
                let _ = write!(o, " {r} |");
            }
            lat.push(format!("{:.0} / {:.0}", c.found.at_rate().us[0], c.found.at_rate().us[1]));
        }
        let _ = writeln!(o, " {} |", lat.join(", "));
    }
    o
}

/// The latency of every search at each load: p50 / p99 / p99.9 us.
fn latency_table(cells: &[Cell]) -> String {
    let mut o = String::from("| frame | direction | DUT |");
    for share in LOADS {
        let _ = write!(o, " {:.0}% of its rate: Mpps (lost), p50 / p99 / p99.9 us |", share * 100.0);
    }
    let _ = writeln!(o, "\n|{}", " --- |".repeat(3 + LOADS.len()));
    for (size, dir) in groups(cells) {
        for c in cells.iter().filter(|c| c.size == size && c.dir == dir) {
            let _ = write!(o, "| {size} | {} | {} |", dir.name(), c.dut.name());
            for l in &c.found.latency {
                let (mpps, lost) = (l.rate / 1e6, l.loss * 100.0);
                let _ = write!(o, " {mpps:.3} ({lost:.2}%): {:.0} / {:.0} / {:.0} |", l.us[0], l.us[1], l.us[2]);
            }
            o.push('\n');
        }
    }
    o
}

/// CPU per frame of each search's full-speed trial, ns, and the ratio to the bare
/// forwarder's.
fn cost_table(cells: &[Cell], duts: &[Dut]) -> String {
    let mut o = String::from("| frame | direction |");
    for d in duts {
        let _ = write!(o, " {} ns |", d.name());
        if *d != Dut::Bare {
            o.push_str(" ratio |");
        }
    }
    let _ = writeln!(o, "\n|{}", " --- |".repeat(2 + 2 * duts.len() - usize::from(duts.contains(&Dut::Bare))));
    for (size, dir) in groups(cells) {
        let cell = |dut: Dut| cells.iter().find(|c| c.size == size && c.dir == dir && c.dut == dut);
        let bare = cell(Dut::Bare).map(|c| c.found.ns_per_frame);
        let _ = write!(o, "| {size} | {} |", dir.name());
        for &d in duts {
            let Some(c) = cell(d) else { continue };
            let _ = write!(o, " {:.0} |", c.found.ns_per_frame);
            if d != Dut::Bare {
                let r = bare.filter(|&b| b > 0.0).map_or("-".into(), |b| format!("{:.2}", c.found.ns_per_frame / b));
                let _ = write!(o, " {r} |");
            }
        }
        o.push('\n');
    }
    o
}

/// What the translation checks found, DUT by DUT, and every failed frame the taps kept.
fn checks_section(cells: &[Cell], duts: &[Dut]) -> String {
    let mut o = String::new();
    let counted: Vec<String> = duts
        .iter()
        .filter(|&&d| d != Dut::Bare)
        .map(|&d| {
            let of = cells.iter().filter(|c| c.dut == d);
            let (n, bad) = of.fold((0, 0), |(n, b), c| (n + c.found.samples(), b + c.found.bad()));
            format!("{}: {bad} of {n}", d.name())
        })
        .collect();
    let _ = writeln!(
        o,
        "Translation checks (addresses, IPv4 header and transport checksums) of the sampled frames of the latency \
         trials, failed of kept: {}.\n",
        if counted.is_empty() { "no aftrd measured".into() } else { counted.join("; ") }
    );
    for c in cells {
        for l in c.found.latency.iter().filter(|l| l.bad > 0) {
            let _ = writeln!(
                o,
                "- {}, {} B, {}, at {:.0}% of its rate: {} of {} failed; the first {} kept:",
                c.dut.name(),
                c.size,
                c.dir.name(),
                l.load * 100.0,
                l.bad,
                l.samples,
                l.bad_frames.len()
            );
            for b in &l.bad_frames {
                let _ = writeln!(o, "  - `{}`", b.describe(256));
            }
        }
    }
    o
}

/// One goal of issue 17 and whether this run met it (None: not measured here).
struct Goal {
    what: String,
    value: String,
    met: Option<bool>,
}

/// The bound of each goal: aftrd with one worker at 0.9 of the bare forwarder or more,
/// its p99 at 90% load at most 3 times the bare forwarder's.
const GOAL_RATIO: f64 = 0.9;
const GOAL_P99_TIMES: f64 = 3.0;

/// The median of `ratios` and the list of them, for a goal's value.
fn ratios(ratios: &[f64]) -> (f64, String) {
    let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    (median(&mut ratios.to_vec()), list.join(", "))
}

/// Issue 17's goals: aftrd1 against the bare forwarder, both directions, 64 and 512
/// bytes; p99 at 90% of the rate found; no translation check failure. Each ratio is
/// taken within a round (the two DUTs measured one after the other) and the goal is
/// judged on the median of the rounds' ratios; `med` has the medians of the figures.
fn goals(rounds: &[Cell], med: &[Cell]) -> Vec<Goal> {
    let find = |size, dir, dut| med.iter().find(|c| c.size == size && c.dir == dir && c.dut == dut);
    // The two DUTs' cells of each round that measured both.
    let pairs = |size, dir| -> Vec<(&Cell, &Cell)> {
        let of = |c: &&Cell, dut| c.size == size && c.dir == dir && c.dut == dut;
        rounds
            .iter()
            .filter(|c| of(c, Dut::Aftrd(1)))
            .filter_map(|a| rounds.iter().find(|b| of(b, Dut::Bare) && b.round == a.round).map(|b| (b, a)))
            .collect()
    };
    let mut g = Vec::new();
    for size in [64, 512] {
        for dir in [Direction::In2Out, Direction::Out2In] {
            let (bare, one) = (find(size, dir, Dut::Bare), find(size, dir, Dut::Aftrd(1)));
            let pairs = pairs(size, dir);
            let what = format!("{size} B {}: aftrd, 1 worker, at >= {GOAL_RATIO} of the bare forwarder", dir.name());
            g.push(match (bare, one) {
                (Some(b), Some(a)) if !pairs.is_empty() => {
                    let (r, list) = ratios(&pairs.iter().map(|(b, a)| a.found.rate / b.found.rate).collect::<Vec<_>>());
                    let limit = match (b.found.at_generator_limit, a.found.at_generator_limit) {
                        (true, true) => " (both at the generator's limit)",
                        (false, true) => " (aftrd at the generator's limit: a lower bound)",
                        (true, false) => " (the bare forwarder at the generator's limit: an upper bound)",
                        (false, false) => "",
                    };
                    Goal {
                        what,
                        value: format!(
                            "{r:.2}: the median of the rounds' {list} (medians {} / {} Mpps){limit}",
                            mpps(&a.found),
                            mpps(&b.found)
                        ),
                        met: Some(r >= GOAL_RATIO),
                    }
                }
                _ => Goal { what, value: "not measured in this run".into(), met: None },
            });
            let what = format!(
                "{size} B {}: aftrd, 1 worker, p99 at 90% of its rate <= {GOAL_P99_TIMES} x the bare forwarder's",
                dir.name()
            );
            g.push(match (bare, one) {
                (Some(b), Some(a)) if !pairs.is_empty() => {
                    let p99 = |c: &Cell| c.found.latency[AT_90].us[1];
                    let (r, list) = ratios(&pairs.iter().map(|(b, a)| p99(a) / p99(b).max(1e-3)).collect::<Vec<_>>());
                    Goal {
                        what,
                        value: format!(
                            "{r:.1} x: the median of the rounds' {list} (medians {:.0} us against {:.0} us)",
                            p99(a),
                            p99(b)
                        ),
                        met: Some(r <= GOAL_P99_TIMES),
                    }
                }
                _ => Goal { what, value: "not measured in this run".into(), met: None },
            });
        }
    }
    let (n, bad) = rounds
        .iter()
        .filter(|c| c.dut != Dut::Bare)
        .fold((0, 0), |(n, b), c| (n + c.found.samples(), b + c.found.bad()));
    g.push(Goal {
        what: "no translation check failure among the sampled frames".into(),
        value: format!("{bad} of {n}"),
        met: (n > 0).then_some(bad == 0),
    });
    g
}

fn goals_table(g: &[Goal]) -> String {
    let mut o = String::from("| goal | this run | met |\n| --- | --- | --- |\n");
    for x in g {
        let met = match x.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        let _ = writeln!(o, "| {} | {} | {met} |", x.what, x.value);
    }
    o
}

/// A bar chart of the rates found, one group per (frame, direction), one bar per DUT.
fn plot(path: &Path, cells: &[Cell], duts: &[Dut], title: &str, y_desc: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let groups = groups(cells);
    let top = cells.iter().map(|c| c.found.rate / 1e6).fold(0.0, f64::max).max(0.1) * 1.4;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = groups.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, 0.0..top)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = groups.iter().map(|(s, d)| format!("{} B, {}", s, d.name())).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < names.len() { names[i].clone() } else { String::new() }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    let colours = [RGBColor(120, 120, 120), RGBColor(31, 119, 180), RGBColor(255, 127, 14)];
    let w = 0.8 / duts.len() as f64;
    for (k, &dut) in duts.iter().enumerate() {
        let colour = colours[k % colours.len()];
        let bars = groups.iter().enumerate().filter_map(|(g, &(size, dir))| {
            let c = cells.iter().find(|c| c.size == size && c.dir == dir && c.dut == dut)?;
            let x0 = g as f64 + 0.1 + k as f64 * w;
            Some(Rectangle::new([(x0, 0.0), (x0 + w * 0.9, c.found.rate / 1e6)], colour.filled()))
        });
        chart
            .draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(dut.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench-report: {e}");
            return ExitCode::from(2);
        }
    };
    let flag = INTERRUPTED.get_or_init(Default::default);
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            eprintln!("bench-report: signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    match run(&args, o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-report: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

/// The run the command line asks for.
struct Options {
    sizes: Vec<usize>,
    duts: Vec<Dut>,
    s: Settings,
    out_dir: PathBuf,
    kills: usize,
    skip_engine: bool,
    skip_ha: bool,
    skip_hostile: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    known_options(
        args,
        &["--sizes", "--trial", "--rounds", "--loss", "--flows", "--b4s", "--duts", "--kills", "--out", "--profile"],
        &["--skip-engine", "--skip-ha", "--skip-hostile"],
    )?;
    let sizes: Vec<usize> = arg::<String>(args, "--sizes")?
        .unwrap_or("64,512".into())
        .split(',')
        .map(|v| v.parse().map_err(|_| format!("--sizes: {v:?} is not a number")))
        .collect::<Result<_, _>>()?;
    if sizes.iter().any(|s| !(64..=1518).contains(s)) {
        return Err("--sizes: frames of 64 to 1518 bytes".into());
    }
    let duts: Vec<Dut> = arg::<String>(args, "--duts")?
        .unwrap_or("bare,aftrd1,aftrd2".into())
        .split(',')
        .map(|d| match d {
            "bare" => Ok(Dut::Bare),
            "aftrd1" => Ok(Dut::Aftrd(1)),
            "aftrd2" => Ok(Dut::Aftrd(2)),
            _ => Err(format!("--duts: {d:?} is not bare, aftrd1 or aftrd2")),
        })
        .collect::<Result<_, _>>()?;
    let s = Settings {
        profile: arg(args, "--profile")?,
        trial_secs: arg(args, "--trial")?.unwrap_or(TRIAL_DEFAULT_SECS),
        rounds: arg(args, "--rounds")?.unwrap_or(ROUNDS_DEFAULT),
        tolerance: arg::<f64>(args, "--loss")?.unwrap_or(0.5) / 100.0,
        flows: arg(args, "--flows")?.unwrap_or(1024),
        b4s: arg(args, "--b4s")?.unwrap_or(64),
    };
    if s.trial_secs.is_nan() || s.trial_secs <= 0.0 || !(0.0..1.0).contains(&s.tolerance) || s.flows == 0 || s.b4s == 0
    {
        return Err("--trial, --flows and --b4s: more than 0; --loss: 0 to less than 100".into());
    }
    if s.rounds == 0 {
        return Err("--rounds: 1 or more".into());
    }
    if s.trial_secs > TRIAL_MAX_SECS {
        return Err(format!("--trial: at most {TRIAL_MAX_SECS} s (RFC 2544 section 24)"));
    }
    let kills = arg(args, "--kills")?.unwrap_or(5);
    if kills == 0 {
        return Err("--kills: 1 or more".into());
    }
    Ok(Options {
        sizes,
        duts,
        s,
        out_dir: arg(args, "--out")?.unwrap_or_else(|| PathBuf::from("bench/results")),
        kills,
        skip_engine: args.iter().any(|a| a == "--skip-engine"),
        skip_ha: args.iter().any(|a| a == "--skip-ha"),
        skip_hostile: args.iter().any(|a| a == "--skip-hostile"),
    })
}

fn run(args: &[String], o: Options) -> Result<(), String> {
    let Options { sizes, duts, s, out_dir, kills, skip_engine, skip_ha, skip_hostile } = o;
    let kills = kills.to_string();
    let started = Instant::now();
    let load_at_start = load_average();
    let cells = {
        let t = Topology::up("br", 2)?;
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let r = measure(&t, &dir, &s, &sizes, &duts);
        let _ = std::fs::remove_dir_all(&dir);
        r?
    };
    let (rounds, cells) = (cells.clone(), medians(&cells));
    let io_table = table(&cells, &duts);
    let goal_list = goals(&rounds, &cells);
    println!("\n{io_table}\n{}\n{}", latency_table(&cells), goals_table(&goal_list));
    let engine_keys: Vec<&str> = ENGINE_FIGURES.iter().chain(FIB_FIGURES).map(|f| f.0).collect();
    let ha_keys: Vec<&str> = HA_FIGURES.iter().map(|f| f.0).collect();
    let engine = if skip_engine { None } else { Some(summary_of("engine-bench", &[], &engine_keys)?) };
    let ha = if skip_ha { None } else { Some(summary_of("failover-bench", &["--kills", &kills], &ha_keys)?) };
    let bgp_keys: Vec<&str> = BGP_FIGURES.iter().map(|f| f.0).collect();
    let bgp = if skip_ha { None } else { Some(summary_of("failover-bench", &bgp_failover_args(), &bgp_keys)?) };
    let hostile_keys = hostile_keys();
    let hostile_keys: Vec<&str> = hostile_keys.iter().map(String::as_str).collect();
    let (flows, b4s) = (s.flows.to_string(), s.b4s.to_string());
    let hostile = if skip_hostile {
        None
    } else {
        Some(summary_of("hostile-bench", &["--flows", &flows, "--b4s", &b4s], &hostile_keys)?)
    };

    let date = sh("date", &["+%F"]);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let svg = out_dir.join(format!("{date}.svg"));
    let within = format!("within {}% loss", s.tolerance * 100.0);
    plot(
        &svg,
        &cells,
        &duts,
        &format!("DS-Lite AFTR over veth, {date}: highest rate {within}"),
        &format!("Mpps {within}"),
    )?;

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark report, {date}\n");
    let _ = writeln!(md, "Machine: {}.\n", machine());
    let _ = writeln!(
        md,
        "Produced by `bash scripts/bench-report.sh{}` in {:.0} s. Every figure below is printed by that \
         run; nothing is copied in by hand. Load average (1 minute) of the machine at the start of the run {}, \
         at its end {}: work besides the run's own (generator, DUT, sink: about 2) takes the DUT's core for \
         whole time slices, which the rates and the latency's tail show, and the CPU per frame less (other work also takes its caches).\n",
        if args.is_empty() { String::new() } else { format!(" {}", args.join(" ")) },
        started.elapsed().as_secs_f64(),
        load_at_start,
        load_average()
    );
    let _ = writeln!(md, "## Packet I/O: the AFTR against the bare forwarder\n");
    let _ = writeln!(
        md,
        "Highest rate with at most {}% loss (RFC 2544 section 26.1 style: bisection over paced trials of {} s \
         (`--trial`, default {TRIAL_DEFAULT_SECS} s, at most RFC 2544's {TRIAL_MAX_SECS} s), to 2% of the rate), {} \
         established UDP flows from {} B4s, in Mpps; ratio = aftrd / bare forwarder. `>=`: the generator's own \
         limit was reached within the tolerance. Latency: the kernel's receive time at the sink minus the send \
         time written into the frame, of one frame in 64, at the rate found (section 26.2; below, also at 50% and \
         90% of it), including the generator's batching (up to 32 frames). Every figure is the median of {} \
         rounds (`--rounds`, default {ROUNDS_DEFAULT}); a round searches every DUT in turn, so the DUTs of a \
         round are measured minutes apart at most. The generator paces at a constant rate and, when it falls \
         behind (its core taken), catches up by one batch at most and forfeits the rest, as a tester with a \
         constant gap between frames would; the rates shown are the rates offered. The sink (the generator's \
         interfaces) drops every frame at the ingress hook, after the kernel has counted it and the tap has seen \
         it, so its IP stack costs no DUT anything.\n",
        s.tolerance * 100.0,
        s.trial_secs,
        s.flows,
        s.b4s,
        s.rounds
    );
    md.push_str(&io_table);
    let _ = writeln!(md, "\n![rates]({date}.svg)\n");
    let _ = writeln!(
        md,
        "Frame sizes are the IPv4 side on the wire with FCS; softwire frames are 40 bytes more.\n\n{}",
        checks_section(&cells, &duts)
    );
    let _ = writeln!(md, "### Latency at 50%, 90% and 100% of the rate found\n");
    let _ = writeln!(
        md,
        "Each DUT at shares of its own rate found above, a trial of {} s each, one frame in 64 sampled.\n",
        s.trial_secs
    );
    md.push_str(&latency_table(&cells));
    let _ = writeln!(md, "\n### CPU per frame on the forwarding core\n");
    let _ = writeln!(
        md,
        "CPU time of the DUT's forwarding threads (the kernel's run time of aftrd's workers or of the bare \
         forwarder's thread, their system calls and the far veth's receive that their transmit runs included) per \
         frame delivered in the full-speed trial of each search, in ns; ratio = aftrd / bare forwarder. It does \
         not count the time other work on the machine takes from the DUT's core, as the rates do, but that work \
         still takes its caches: on a loaded machine it moves too. Where the DUT kept up with the generator, \
         its busy polling while waiting is counted too.\n"
    );
    md.push_str(&cost_table(&cells, &duts));
    let _ = writeln!(md, "\n### Goals of issue 17\n");
    let _ = writeln!(
        md,
        "Measured side by side in this run. On a machine shared with other work the figures move by +-30% from \
         run to run (MACHINE-FACTS.md), and within a run: each ratio is taken within a round, between the two DUTs \
         measured one after the other, and a goal is judged on the median of the rounds' ratios.\n"
    );
    md.push_str(&goals_table(&goal_list));
    md.push('\n');
    let _ = writeln!(
        md,
        "Setting: generator (AF_XDP transmit sockets), DUT and sink share this machine's cores: generator on \
         core 0, the DUT's first worker on core 1, a second worker on core 0 with the generator. On veth the \
         receive side's XDP program and copy into the DUT's UMEM run in the sender's softirq. Copy-mode \
         AF_XDP (veth has no zero-copy). With two workers, the generator spreads B4s over two RX queues \
         (B4 n on queue n mod 2, as RSS on the outer header would keep a B4 on one queue); worker i reads \
         queue i.\n"
    );
    let multi: Vec<&Cell> = cells.iter().filter(|c| matches!(c.dut, Dut::Aftrd(n) if n > 1)).collect();
    if !multi.is_empty() {
        let _ = writeln!(md, "### Hand-offs between workers\n");
        let _ = writeln!(
            md,
            "Share of the frames from the network that the receiving worker handed to the worker owning them, over \
             each search (`handed_off_softwire` or `handed_off_internet` against `rx_frames`). A subscriber belongs \
             to the worker its frames reach (decision 0010), so softwire frames stay where they land; IPv4 frames \
             belong to the owner of their port, which the generator's queue choice (mapped port n on queue n mod 2) \
             ignores.\n"
        );
        let _ = writeln!(md, "| frame | direction | DUT | handed over |\n| --- | --- | --- | --- |");
        for c in &multi {
            let share = c.handed.map_or("not measured".into(), |h| format!("{:.1}%", h * 100.0));
            let _ = writeln!(md, "| {} | {} | {} | {share} |", c.size, c.dir.name(), c.dut.name());
        }
        md.push('\n');
    }
    if let Some(e) = &engine {
        let _ = writeln!(md, "## Engine, in memory (`engine-bench`, no I/O)\n");
        let _ = writeln!(
            md,
            "One worker on one core but for the scaling rows (two workers pinned to two cores). Around every \
             batch the clock is set and expiry runs; each timed pass holds a refresh-interval rollover, so every \
             session is relinked and emits a refresh event, which a thread drains as the board's event thread \
             does.\n"
        );
        let _ = writeln!(md, "| figure | value | goal |\n| --- | --- | --- |");
        for (k, name, goal) in ENGINE_FIGURES {
            let _ = writeln!(md, "| {name} | {} | {goal} |", get(e, k));
        }
        md.push('\n');
    }
    if let Some(h) = &ha {
        let _ = writeln!(md, "## Hot backup (`failover-bench --kills {kills}`)\n");
        let _ = writeln!(md, "| figure | value |\n| --- | --- |");
        for (k, name) in HA_FIGURES {
            let _ = writeln!(md, "| {name} | {} |", get(h, k));
        }
        md.push('\n');
    }
    routing_section(&mut md, engine.as_deref(), bgp.as_deref());
    if let Some(h) = &hostile {
        hostile_section(&mut md, h, s.flows, s.b4s);
    }
    let report = out_dir.join(format!("{date}.md"));
    std::fs::write(&report, md).map_err(|e| format!("{}: {e}", report.display()))?;
    let mut summary: Vec<String> = Vec::new();
    for c in &cells {
        let dir = if c.dir == Direction::In2Out { "in2out" } else { "out2in" };
        summary.push(format!("{}_{}_{}_mpps={:.3}", c.dut.short(), dir, c.size, c.found.rate / 1e6));
        let l = &c.found.latency[AT_90];
        summary.push(format!("{}_{}_{}_p99_at90_us={:.0}", c.dut.short(), dir, c.size, l.us[1]));
        summary.push(format!("{}_{}_{}_ns_per_frame={:.0}", c.dut.short(), dir, c.size, c.found.ns_per_frame));
        if let (Some(h), Dut::Aftrd(n)) = (c.handed, c.dut)
            && n > 1
        {
            summary.push(format!("{}_{}_{}_handed_pct={:.1}", c.dut.short(), dir, c.size, h * 100.0));
        }
    }
    let met = goal_list.iter().filter(|g| g.met == Some(true)).count();
    let measured = goal_list.iter().filter(|g| g.met.is_some()).count();
    summary.push(format!("check_failures={}", cells.iter().map(|c| c.found.bad()).sum::<u64>()));
    summary.push(format!("goals_met={met}/{measured}"));
    summary.push(format!("rounds={}", s.rounds));
    println!("report: {} and {}", report.display(), svg.display());
    println!("summary: {}", summary.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_off_shares_count_each_frame_from_the_network_once() {
        // 1000 softwire frames arrived, 250 of them at the wrong worker (each then
        // counted again by its owner, but for 50 that found the lane full).
        let (b, a) = (Handed(5, 7, 100, 3), Handed(255, 7, 1300, 53));
        assert_eq!(handed_share(b, a, Direction::In2Out), Some(0.25));
        assert_eq!(handed_share(b, a, Direction::Out2In), Some(0.0));
        assert_eq!(handed_share(b, b, Direction::In2Out), None, "nothing received: no figure");
    }

    #[test]
    fn hostile_bench_summaries_hold_the_keys_the_report_shows() {
        // The form of hostile-bench's summary line (one attack spelt out, the others alike).
        let mut line = String::from("legit_mpps=0.563");
        for a in Attack::ALL {
            let k = a.name().replace('-', "_");
            for p in ["", "_paced"] {
                line += &format!(
                    " {k}{p}_legit_pps=472583/562311 {k}{p}_ratio=1.000 {k}{p}_sent_ratio=0.840 {k}{p}_attack_mpps=0.481"
                );
            }
        }
        line += " sessions_kept=6144/6144 goal_met=12/12";
        let kv: Vec<(String, String)> =
            line.split_whitespace().filter_map(|p| p.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
        let keys = hostile_keys();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert!(check_summary("hostile-bench", &kv, &keys).is_ok());
        // A baseline of nothing, or an attack that sent nothing, is no figure.
        for bad in ["ptb_legit_pps=5/0", "ptb_paced_attack_mpps=0.000"] {
            let (k, v) = bad.split_once('=').unwrap();
            let broken: Vec<(String, String)> =
                kv.iter().map(|(a, b)| (a.clone(), if a == k { v.to_string() } else { b.clone() })).collect();
            assert!(check_summary("hostile-bench", &broken, &keys).is_err(), "{bad}");
        }
        let mut md = String::new();
        hostile_section(&mut md, &kv, 1024, 64);
        assert!(md.contains("| ptb | B4 | paced | 0.481 | 472583/562311 | 1.000 |"), "{md}");
    }

    /// A cell with the rate `mpps` and the p99 `p99s` (us) at each load.
    fn cell(size: usize, dir: Direction, dut: Dut, mpps: f64, p99s: [f64; 3], bad: u64) -> Cell {
        let latency = LOADS
            .iter()
            .zip(p99s)
            .map(|(&load, p99)| Latency {
                load,
                rate: mpps * 1e6 * load,
                us: [p99 / 2.0, p99, p99 * 2.0],
                samples: 1000,
                bad,
                bad_frames: (0..bad)
                    .map(|_| BadFrame { why: "transport checksum", bytes: vec![0x45, 0, 0, 20] })
                    .collect(),
                ..Latency::default()
            })
            .collect();
        Cell { size, dir, dut, round: 1, found: Found { rate: mpps * 1e6, latency, ..Found::default() }, handed: None }
    }

    #[test]
    fn goals_take_the_median_of_the_rounds_ratios_and_tables_the_medians() {
        let i = Direction::In2Out;
        let mut cells = Vec::new();
        // Three rounds: aftrd at 0.80, 0.95 and 0.92 of the bare forwarder of its round,
        // its p99 at 90% 5, 2 and 1 times the bare forwarder's.
        for (round, bare, one, p99) in [(1, 1.0, 0.8, 500.0), (2, 0.5, 0.475, 200.0), (3, 1.2, 1.104, 100.0)] {
            let mut b = cell(64, i, Dut::Bare, bare, [50.0, 100.0, 200.0], 0);
            let mut a = cell(64, i, Dut::Aftrd(1), one, [60.0, p99, 900.0], 0);
            (b.round, a.round) = (round, round);
            cells.extend([b, a]);
        }
        let med = medians(&cells);
        assert_eq!(med.len(), 2);
        assert_eq!((med[1].dut, med[1].found.rate), (Dut::Aftrd(1), 0.8e6));
        assert_eq!(med[1].found.latency[AT_90].us, [100.0, 200.0, 400.0]);
        assert_eq!(med[1].found.samples(), 9000, "samples add up over the rounds");
        let g = goals(&cells, &med);
        assert_eq!(g[0].met, Some(true), "{}", g[0].value);
        assert_eq!(g[0].value, "0.92: the median of the rounds' 0.80, 0.95, 0.92 (medians 0.800 / 1.000 Mpps)");
        assert_eq!(g[1].met, Some(true), "{}", g[1].value);
        assert!(g[1].value.starts_with("2.0 x: the median of the rounds' 5.00, 2.00, 1.00"), "{}", g[1].value);
        // A median of 3.5 times misses.
        cells[5].found.latency[AT_90].us[1] = 350.0;
        assert_eq!(goals(&cells, &medians(&cells))[1].met, Some(false));
    }

    #[test]
    fn goals_are_met_or_missed_from_the_cells_of_the_run() {
        let (i, o) = (Direction::In2Out, Direction::Out2In);
        let mut cells = Vec::new();
        for size in [64, 512] {
            for dir in [i, o] {
                cells.push(cell(size, dir, Dut::Bare, 1.5, [20.0, 40.0, 50.0], 0));
                cells.push(cell(size, dir, Dut::Aftrd(2), 0.4, [900.0; 3], 0));
            }
        }
        // 64 B softwire -> IPv4: 0.83 of the bare forwarder, p99 at 90% 2210 us (55 x).
        cells.push(cell(64, i, Dut::Aftrd(1), 1.245, [30.0, 2210.0, 3000.0], 0));
        cells.push(cell(64, o, Dut::Aftrd(1), 1.5, [30.0, 120.0, 3000.0], 0));
        cells.push(cell(512, i, Dut::Aftrd(1), 1.35, [30.0, 119.0, 3000.0], 0));
        let g = goals(&cells, &medians(&cells));
        let met: Vec<Option<bool>> = g.iter().map(|g| g.met).collect();
        assert_eq!(
            met,
            [Some(false), Some(false), Some(true), Some(true), Some(true), Some(true), None, None, Some(true)]
        );
        assert_eq!(g[0].value, "0.83: the median of the rounds' 0.83 (medians 1.245 / 1.500 Mpps)");
        assert_eq!(g[1].value, "55.2 x: the median of the rounds' 55.25 (medians 2210 us against 40 us)");
        assert!(goals_table(&g).contains("| MISSED |") && goals_table(&g).contains("not measured"));
        // One failed frame of aftrd with two workers: the goal is missed and the report
        // says which DUT, which trial, and shows the frame.
        cells.push(cell(512, o, Dut::Aftrd(1), 1.5, [30.0, 100.0, 3000.0], 0));
        cells[3] = cell(64, o, Dut::Aftrd(2), 0.4, [900.0, 900.0, 900.0], 0);
        cells[3].found.latency[1].bad = 1;
        cells[3].found.latency[1].bad_frames = vec![BadFrame { why: "IPv4 header checksum", bytes: vec![0xab; 3] }];
        let g = goals(&cells, &medians(&cells));
        assert_eq!(g.last().map(|g| (g.met, g.value.as_str())), Some((Some(false), "1 of 24000")));
        let text = checks_section(&cells, &[Dut::Bare, Dut::Aftrd(1), Dut::Aftrd(2)]);
        assert!(text.contains("aftrd, 1 worker: 0 of 12000; aftrd, 2 workers: 1 of 12000"), "{text}");
        assert!(
            text.contains("- aftrd, 2 workers, 64 B, IPv4 -> softwire, at 90% of its rate: 1 of 1000 failed")
                && text.contains("`IPv4 header checksum (3 bytes): ababab`"),
            "{text}"
        );
        cells[0].found.ns_per_frame = 800.0; // bare, 64 B softwire -> IPv4
        cells[8].found.ns_per_frame = 1000.0; // aftrd1, the same
        let costs = cost_table(&cells, &[Dut::Bare, Dut::Aftrd(1)]);
        assert!(costs.contains("| 64 | softwire -> IPv4 | 800 | 1000 | 1.25 |"), "{costs}");
        assert!(costs.contains("| 64 | IPv4 -> softwire | 0 | 0 | - |"), "{costs}");
        assert!(
            latency_table(&cells).contains("| 64 | softwire -> IPv4 | aftrd, 1 worker | 0.623 (0.00%): 15 / 30 / 60 |")
        );
    }

    #[test]
    fn trials_are_of_rfc_2544_length_at_most() {
        let o = |t: &str| options(&["--trial".into(), t.into()]).map(|o| o.s.trial_secs);
        assert_eq!(o("60"), Ok(60.0));
        assert!(o("60.5").unwrap_err().contains("at most 60"));
        assert!(o("0").is_err());
        assert_eq!(options(&[]).map(|o| o.s.trial_secs), Ok(TRIAL_DEFAULT_SECS));
    }

    #[test]
    fn the_routing_section_shows_the_fib_ratio_and_the_bgp_gap() {
        let kv = |s: &str| -> Vec<(String, String)> {
            s.split_whitespace().filter_map(|p| p.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
        };
        // engine-bench's forwarding-table fields and failover-bench --bgp's kill9 row.
        let e =
            kv("fib_fixed_mpps=3.10 fib_default_mpps=3.00 fib_full_mpps=2.85 fib_full_ratio=0.950 fib_build_ms=640");
        let b = kv("fault=kill9 gap_ms=129 gap_worst_ms=150 preserved=7/7 trials=3 kills=3 announce=bgp");
        let keys: Vec<&str> = FIB_FIGURES.iter().map(|f| f.0).collect();
        assert!(check_summary("engine-bench", &e, &keys).is_ok());
        let keys: Vec<&str> = BGP_FIGURES.iter().map(|f| f.0).collect();
        assert!(check_summary("failover-bench", &b, &keys).is_ok());
        let mut md = String::new();
        routing_section(&mut md, Some(&e), Some(&b));
        assert!(md.contains("| 1M routes / default route only | 0.950 | >= 0.90 |"), "{md}");
        assert!(md.contains("the upstream on BGP, median, ms | 129 |"), "{md}");
        assert!(md.contains("`failover-bench --faults kill9 --trials 3 --records 100000 --bulk 10000 --bgp`"), "{md}");
        let mut none = String::new();
        routing_section(&mut none, None, None);
        assert!(none.is_empty(), "nothing ran: no section");
    }

    #[test]
    fn a_summary_of_nothing_fails_the_report() {
        let kv = |s: &str| -> Vec<(String, String)> {
            s.split_whitespace().filter_map(|p| p.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
        };
        let keys = ["gap_ms", "preserved"];
        assert!(check_summary("f", &kv("gap_ms=296 preserved=303/303"), &keys).is_ok());
        assert!(check_summary("f", &kv("gap_ms=296 preserved=0/303"), &keys).is_ok());
        for bad in ["gap_ms=0 preserved=0/0", "gap_ms=296 preserved=0/0", "gap_ms=NaN preserved=1/1", "preserved=1/1"] {
            assert!(check_summary("f", &kv(bad), &keys).is_err(), "{bad}");
        }
    }
}
