//! engine-bench: the packet engine's figures, frames already in memory, doing what a
//! worker of `aftrd` does around the engine (but the I/O):
//! - the clock is read and set before every batch, and expiry runs after it, as in the
//!   worker loop; each timed pass contains the second in which the 10-second refresh
//!   interval rolls over, so every session touched is relinked in its timer list and
//!   emits one refresh event: the heaviest second of a steady run;
//! - the session event ring is drained by a thread of its own that behaves as the
//!   board's event thread does (up to 4096 events a round, a 10 ms nap when empty);
//! - frames carry real checksums, which the engine updates incrementally.
//!
//! Rows, each beside the baseline measured in the same run (copy the frame into the
//! receive buffer, parse Ethernet, swap MACs: what any forwarder does):
//! - established UDP flows, softwire to IPv4 (in2out) and IPv4 to softwire (out2in),
//!   with 10k and 1M sessions, in a random order over the sessions;
//! - a mix: UDP/TCP/ICMP 70/25/5, address-and-port-dependent filtering, four remote
//!   endpoints per mapping (so four filter entries per session);
//! - new sessions per second;
//! - memory per session at 1M and 10M sessions, measured as resident memory;
//! - scaling: two workers pinned to two cores, each fed its own frames, hand-offs
//!   through the workers' mailboxes (`dataplane::handoff`), against one worker alone,
//!   with 0% and 50% of each worker's frames belonging to the other;
//! - a fragment flood (decision 0013): one B4 sends first fragments that never complete,
//!   seven of every eight frames, while 64 other B4s send datagrams in two IPv6
//!   fragments with flood frames between them; the share of those datagrams reassembled
//!   and translated, the rate of all frames, and the legitimate datagrams per second
//!   beside the same traffic without the flood.
//!
//! A single-worker pass that forwards less than every frame fails the run, and so does a
//! scaling pass in which a worker forwarded nothing, or a flood pass that sent no
//! legitimate datagram or no flood frame: a figure is printed only from a measurement
//! that happened. In the scaling rows, frames refused by a full lane are counted and
//! printed beside the rate (the rate counts forwarded frames only). Ends with one
//! `summary:` line (DESIGN.md).
//! - the forwarding table (decision 0015): established UDP in2out towards servers spread
//!   over the address space, by the engine's one next hop, by a table of one default
//!   route and by a table of a million prefixes (Internet-like lengths, ECMP groups),
//!   passes alternating; and the time to build the million-prefix table.
//!
//! Options: `--quick` (smaller, for a smoke run), `--rounds N`, `--skip-10m`,
//! `--seconds S` (length of one timed pass, default 1), `--frag-flood` (the fragment
//! flood row alone), `--fib` (the forwarding-table row alone).

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, TryRecvError};
use dataplane::config::{EgressL2, EngineConfig, Filtering, InstanceConfig, Ipv4Prefix, Ipv6Prefix};
use dataplane::counters::Counter;
use dataplane::handoff::{self, Mailbox};
use dataplane::nat::events::SessionEvent;
use dataplane::nat::owners::Owners;
use dataplane::wire::ethernet;
use dataplane::{Egress, Engine, FragmentPorts, Frame, HEADROOM, Sink, Verdict, WorkerId};

use bench::frames;
use bench::generator::{self, Addresses, L4, Mix};
use bench::measure::{arg, known_options, median, rss_bytes, shuffle};

struct NullSink;
impl Sink for NullSink {
    fn emit(&mut self, _: Egress, _: &[u8]) {}
    fn handoff(&mut self, _: WorkerId, _: &[u8], _: Option<FragmentPorts>) {}
}

const STRIDE: usize = 128;
/// 64-byte class frames: 60 bytes (and the FCS) on the IPv4 side, 100 on the softwire.
const SIZE: usize = 64;
const SESSIONS_PER_SUB: u32 = 100;
const BATCH: usize = 32;
/// The engine's refresh event interval (`EngineConfig::refresh_event_interval`).
const REFRESH_S: u64 = 10;

/// A failed measurement: the run stops and exits non-zero with this reason.
type Outcome<T> = Result<T, String>;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How the engine is set up for a workload.
#[derive(Clone, Copy)]
struct Shape {
    mix: Mix,
    filtering: Filtering,
    /// Remote endpoints per mapping.
    remotes: u32,
}

const UDP: Shape =
    Shape { mix: Mix { udp: 1, tcp: 0, icmp: 0 }, filtering: Filtering::EndpointIndependent, remotes: 1 };
const MIXED: Shape =
    Shape { mix: Mix { udp: 70, tcp: 25, icmp: 5 }, filtering: Filtering::AddressAndPortDependent, remotes: 4 };

fn config(max_sessions: u32, subscribers: u32, shape: Shape, workers: u16) -> EngineConfig {
    let b4net = frames::b4(0);
    let mut inst = InstanceConfig::new(
        "bench",
        frames::ENDPOINT,
        Ipv6Prefix { addr: b4net, len: 48 },
        Ipv4Prefix { addr: 0xc633_6000, len: 20 },
    );
    inst.limits.max_sessions = 1 << 20;
    inst.filtering = shape.filtering;
    let mut c = EngineConfig::new(vec![inst]);
    c.workers = workers;
    c.max_sessions = max_sessions;
    c.max_subscribers = subscribers + 16;
    c.softwire_l2 = EgressL2 { src: frames::AFTR_MAC, dst: frames::PEER_MAC, vlan: None };
    c.internet_l2 = EgressL2 { src: frames::AFTR_MAC, dst: frames::PEER_MAC, vlan: None };
    assert_eq!(c.refresh_event_interval as u64, REFRESH_S, "the passes are timed around this interval");
    c
}

/// Drains an engine's event ring as the board's event thread does.
struct Drain {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    fn start(rx: Receiver<SessionEvent>) -> Drain {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let mut got = 0u64;
                for _ in 0..4096 {
                    match rx.try_recv() {
                        Ok(e) => {
                            black_box(e);
                            got += 1;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                n.fetch_add(got, Ordering::Relaxed);
                if got == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Drain { stop, seen, thread: Some(thread) }
    }

    fn events(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A napping drainer wakes within 10 ms.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A worker's engine with its clock offset and its event drain.
struct Worker {
    e: Engine,
    /// Added to the real clock: the passes are placed around a refresh rollover.
    skew_ms: u64,
    drain: Drain,
}

impl Worker {
    fn new(max_sessions: u32, subscribers: u32, shape: Shape, workers: u16, id: WorkerId) -> Worker {
        Worker::of_board(max_sessions, subscribers, shape, workers, id, Arc::new(Owners::new()))
    }

    /// Worker `id` of a board whose workers claim subscribers in `owners`.
    fn of_board(
        max_sessions: u32,
        subscribers: u32,
        shape: Shape,
        workers: u16,
        id: WorkerId,
        owners: Arc<Owners>,
    ) -> Worker {
        let cfg = config(max_sessions, subscribers, shape, workers);
        let (mut e, events) = Engine::with_owners(&cfg, id, 1, owners).expect("bench configuration");
        e.set_clock(unix_ms());
        Worker { e, skew_ms: 0, drain: Drain::start(events) }
    }

    /// What the worker loop does around each received batch: set the clock, process,
    /// run expiry. Returns the frames forwarded.
    #[inline]
    fn batch(&mut self, fs: &mut [Frame], vs: &mut [Verdict], to: Egress) -> usize {
        self.batch_into(fs, vs, &mut NullSink);
        forwarded(vs, to)
    }

    /// The same, the frames made on the side going to `sink`.
    #[inline]
    fn batch_into(&mut self, fs: &mut [Frame], vs: &mut [Verdict], sink: &mut dyn Sink) {
        self.e.set_clock(unix_ms() + self.skew_ms);
        self.e.process_batch(fs, vs, sink);
        self.e.expire(4096);
    }

    /// Moves the clock so that a refresh interval rolls over `lead` into the next pass.
    fn before_rollover(&mut self, lead: Duration) {
        let now = unix_ms() + self.skew_ms;
        let period = REFRESH_S * 1000;
        let next = (now / period + 1) * period;
        self.skew_ms += (next - now).saturating_sub(lead.as_millis() as u64);
    }
}

fn forwarded(v: &[Verdict], e: Egress) -> usize {
    v.iter().filter(|&&x| x == Verdict::Forward(e)).count()
}

/// Frames laid out `STRIDE` bytes apart, each with its length.
#[derive(Default)]
struct Frames {
    bytes: Vec<u8>,
    lens: Vec<u16>,
}

impl Frames {
    fn push(&mut self, f: &[u8]) {
        let at = self.bytes.len();
        self.bytes.resize(at + STRIDE, 0);
        self.bytes[at..at + f.len()].copy_from_slice(f);
        self.lens.push(f.len() as u16);
    }
    fn get(&self, i: usize) -> &[u8] {
        &self.bytes[i * STRIDE..i * STRIDE + self.lens[i] as usize]
    }
    fn len(&self) -> usize {
        self.lens.len()
    }
    /// The frames in the order `arrival`.
    fn permute(&self, arrival: &[u32]) -> Frames {
        let mut out = Frames::default();
        for &i in arrival {
            out.push(self.get(i as usize));
        }
        out
    }
    /// Frames of `self` and `other` alternately (as many as the shorter has, twice).
    fn interleave(&self, other: &Frames) -> Frames {
        let mut out = Frames::default();
        for i in 0..self.len().min(other.len()) {
            out.push(self.get(i));
            out.push(other.get(i));
        }
        out
    }
}

/// Sessions of a workload on one engine and the frames that use them.
struct Flows {
    in2out: Frames,
    out2in: Frames,
}

/// Creates `n` mappings (100 per subscriber, of subscribers `subs`), each used towards
/// `shape.remotes` servers, through the engine; returns the frames of every (mapping,
/// remote) each way, in a random arrival order.
fn flows(w: &mut Worker, n: u32, shape: Shape, subs: &[u32]) -> Outcome<Flows> {
    flows_to(w, n, shape, subs, |_, r| frames::SERVER + r)
}

/// The same, towards the server `server(mapping, remote)`.
fn flows_to(w: &mut Worker, n: u32, shape: Shape, subs: &[u32], server: impl Fn(u32, u32) -> u32) -> Outcome<Flows> {
    let (mut ins, mut outs) = (Frames::default(), Frames::default());
    let mut buf = vec![0u8; HEADROOM + STRIDE];
    for k in 0..n {
        let (sub, flow) = (subs[(k / SESSIONS_PER_SUB) as usize], k % SESSIONS_PER_SUB);
        let l4 = shape.mix.pick(k as usize);
        for r in 0..shape.remotes {
            let remote = Addresses { server: server(k, r), ..Addresses::default() };
            let t = generator::softwire_from(&remote, sub, 0, l4, 1024 + flow as u16 * 2, SIZE).bytes;
            let len = t.len();
            buf[HEADROOM..HEADROOM + len].copy_from_slice(&t);
            let mut f = Frame::new(&mut buf, HEADROOM, len);
            let v = w.e.process(&mut f, &mut NullSink);
            if v != Verdict::Forward(Egress::Internet) {
                return Err(format!("set-up of flow {k} remote {r}: {v:?}, {:?}", w.e.counters().nonzero()));
            }
            let out = f.bytes();
            let ext = u32::from_be_bytes(out[26..30].try_into().expect("IPv4 source"));
            let port = match l4 {
                L4::Icmp => u16::from_be_bytes([out[38], out[39]]),
                _ => u16::from_be_bytes([out[34], out[35]]),
            };
            ins.push(&t);
            outs.push(&generator::inbound_from(&remote, l4, ext, port, SIZE).bytes);
        }
    }
    // Flows arrive in a random order, but a receive ring is read front to back: lay the
    // frames out in arrival order, so only the engine's tables see random access.
    let mut arrival: Vec<u32> = (0..ins.len() as u32).collect();
    shuffle(&mut arrival, 0x9e37_79b9_7f4a_7c15);
    Ok(Flows { in2out: ins.permute(&arrival), out2in: outs.permute(&arrival) })
}

/// Receive buffers for one batch, as a NIC ring would give them.
struct Rx {
    bufs: Vec<u8>,
}

impl Rx {
    fn new() -> Rx {
        Rx { bufs: vec![0u8; (HEADROOM + STRIDE) * BATCH] }
    }

    /// Copies frames `at..at + n` of `src` into the buffers and hands them to `step`.
    fn fill<R>(&mut self, src: &Frames, at: usize, n: usize, step: impl FnOnce(&mut [Frame]) -> R) -> R {
        let slot = HEADROOM + STRIDE;
        let mut frames: arrayvec::ArrayVec<Frame, BATCH> = self
            .bufs
            .chunks_mut(slot)
            .zip(at..at + n)
            .map(|(b, i)| {
                let len = src.lens[i] as usize;
                b[HEADROOM..HEADROOM + len].copy_from_slice(&src.bytes[i * STRIDE..i * STRIDE + len]);
                Frame::new(b, HEADROOM, len)
            })
            .collect();
        step(&mut frames)
    }
}

/// Runs all of `src`, `BATCH` at a time, through `step` for about `budget`; returns
/// Mpps. Every frame must be forwarded.
fn pump(src: &Frames, budget: Duration, mut step: impl FnMut(&mut [Frame], &mut [Verdict]) -> usize) -> Outcome<f64> {
    let mut rx = Rx::new();
    let mut verdicts = [Verdict::Pass; BATCH];
    let t = Instant::now();
    let (mut done, mut ok) = (0u64, 0u64);
    while t.elapsed() < budget {
        for at in (0..src.len()).step_by(BATCH) {
            let n = BATCH.min(src.len() - at);
            ok += rx.fill(src, at, n, |fs| step(fs, &mut verdicts[..n])) as u64;
            done += n as u64;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if ok != done {
        return Err(format!("{} of {done} frames not forwarded", done - ok));
    }
    Ok(done as f64 / secs / 1e6)
}

/// Parse the Ethernet header and swap the MACs of each frame: the floor any forwarder pays.
fn baseline(fs: &mut [Frame], _: &mut [Verdict]) -> usize {
    let mut ok = 0;
    for f in fs {
        let b = &mut f.buf[f.start..f.start + f.len];
        ok += ethernet::parse(b).is_ok() as usize;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&b[0..6]);
        b.copy_within(6..12, 0);
        b[6..12].copy_from_slice(&mac);
        black_box(b);
    }
    ok
}

struct Est {
    base: f64,
    in2out: f64,
    out2in: f64,
    /// Session events the drain received over the timed passes.
    events: u64,
    dropped_events: u64,
}

/// Established-flow throughput with `n` mappings of `shape`, `rounds` interleaved
/// rounds; each timed pass holds a refresh rollover.
fn established(n: u32, shape: Shape, rounds: usize, budget: Duration) -> Outcome<Est> {
    let subs: Vec<u32> = (0..n.div_ceil(SESSIONS_PER_SUB)).collect();
    // The filter table is sized by the session capacity: room for every remote.
    let mut w = Worker::new(n * shape.remotes, subs.len() as u32, shape, 1, 0);
    let fl = flows(&mut w, n, shape, &subs)?;
    let before = w.drain.events();
    let (mut b, mut i, mut o) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        b.push(pump(&fl.in2out, budget, baseline)?);
        w.before_rollover(budget / 2);
        i.push(pump(&fl.in2out, budget, |f, v| w.batch(f, v, Egress::Internet)).map_err(|e| format!("in2out: {e}"))?);
        w.before_rollover(budget / 2);
        o.push(pump(&fl.out2in, budget, |f, v| w.batch(f, v, Egress::Softwire)).map_err(|e| format!("out2in: {e}"))?);
    }
    // Let the drain catch up before reading it.
    std::thread::sleep(Duration::from_millis(50));
    let events = w.drain.events() - before;
    if events == 0 {
        return Err("no session events were emitted: the clock did not roll over a refresh".into());
    }
    let dropped_events = w.e.counters().get(Counter::EventsDropped);
    Ok(Est { base: median(&mut b), in2out: median(&mut i), out2in: median(&mut o), events, dropped_events })
}

/// Creates `n` sessions (100 per subscriber) one frame at a time, the clock set and the
/// event ring drained as in a worker; returns the time taken.
fn populate_timed(w: &mut Worker, n: u32) -> Outcome<Duration> {
    let base = generator::softwire(0, L4::Udp, 1024, SIZE);
    let mut tmpl = base.bytes.clone();
    let len = tmpl.len();
    let mut buf = vec![0u8; HEADROOM + STRIDE];
    let t = Instant::now();
    for k in 0..n {
        if (k as usize).is_multiple_of(BATCH) {
            w.e.set_clock(unix_ms());
        }
        let (sub, flow) = (k / SESSIONS_PER_SUB, k % SESSIONS_PER_SUB);
        generator::renew(&mut tmpl, &base, sub, 1024 + flow as u16 * 2);
        buf[HEADROOM..HEADROOM + len].copy_from_slice(&tmpl);
        let mut f = Frame::new(&mut buf, HEADROOM, len);
        let v = w.e.process(&mut f, &mut NullSink);
        if v != Verdict::Forward(Egress::Internet) {
            return Err(format!("new flow {k}: {v:?}, {:?}", w.e.counters().nonzero()));
        }
    }
    Ok(t.elapsed())
}

/// New sessions per second, median of `rounds` fresh engines creating `n` each.
fn new_sessions(n: u32, rounds: usize) -> Outcome<f64> {
    let mut r = vec![];
    for _ in 0..rounds {
        let mut w = Worker::new(n, n / SESSIONS_PER_SUB + 1, UDP, 1, 0);
        let d = populate_timed(&mut w, n)?;
        r.push(n as f64 / d.as_secs_f64());
    }
    Ok(median(&mut r))
}

/// Resident bytes per session with `n` sessions (the engine sized for exactly `n`),
/// measured in a fresh process so that no memory freed by earlier phases is reused.
fn memory(n: u32) -> (f64, f64) {
    let out = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["--memory-child", &n.to_string()])
        .output()
        .expect("run memory child");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    match v[..] {
        // A child that failed, or printed no figures, measured nothing: no NaN or 0 in
        // the summary.
        [resident, table] if out.status.success() && resident > 0.0 && table > 0.0 => (resident, table),
        _ => {
            eprintln!(
                "engine-bench: the memory measurement at {n} sessions failed ({}; it printed {:?}): {}",
                out.status,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            std::process::exit(1);
        }
    }
}

fn memory_child(n: u32) {
    let before = rss_bytes();
    let mut w = Worker::new(n, n / SESSIONS_PER_SUB + 1, UDP, 1, 0);
    populate_timed(&mut w, n).expect("sessions");
    let after = rss_bytes();
    assert_eq!(w.e.session_count(), n);
    println!("{} {}", after.saturating_sub(before) as f64 / n as f64, w.e.table_memory() as f64 / n as f64);
}

// ----- Scaling: workers on their own cores, hand-offs through the mailboxes -----

/// What one worker thread did in a timed pass.
#[derive(Default, Clone, Copy)]
struct Done {
    forwarded: u64,
    received: u64,
    handed: u64,
    handoff_full: u64,
}

/// The worker loop without I/O: receive a batch of `src` (copied in, as from a ring),
/// process it, hand the others' frames over, then process what the others handed to
/// this worker; until `stop`.
fn worker_pass(w: &mut Worker, mailbox: Option<&Mailbox>, src: &Frames, to: Egress, stop: &AtomicBool) -> Done {
    let mut rx = Rx::new();
    let mut verdicts = [Verdict::Pass; handoff::BATCH];
    let mut d = Done::default();
    let full = w.e.counters().get(Counter::DropHandoffFull);
    while !stop.load(Ordering::Relaxed) {
        for at in (0..src.len()).step_by(BATCH) {
            let n = BATCH.min(src.len() - at);
            d.forwarded += rx.fill(src, at, n, |fs| {
                let ok = w.batch(fs, &mut verdicts[..n], to);
                if let Some(m) = mailbox {
                    for (f, v) in fs.iter().zip(&verdicts[..n]) {
                        if let Verdict::Handoff(owner) = v
                            && m.send(*owner, f.bytes(), f.hint).is_err()
                        {
                            w.e.counters().inc(Counter::DropHandoffFull);
                        }
                    }
                }
                if let Some(m) = mailbox {
                    m.flush();
                }
                ok
            }) as u64;
            d.received += n as u64;
            if let Some(m) = mailbox {
                m.receive_batch(4 * BATCH, |fs| {
                    let n = fs.len();
                    d.handed += n as u64;
                    d.forwarded += w.batch(fs, &mut verdicts[..n], to) as u64;
                });
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    d.handoff_full = w.e.counters().get(Counter::DropHandoffFull) - full;
    d
}

/// Runs each worker on its own core (`cores[i]`), fed `inputs[i]`, for `budget`;
/// returns the total forwarded Mpps and what each did.
fn parallel(
    workers: &mut [Worker],
    inputs: &[Frames],
    mailboxes: &mut [Mailbox],
    to: Egress,
    budget: Duration,
) -> (f64, Vec<Done>) {
    let stop = AtomicBool::new(false);
    let go = Barrier::new(workers.len() + 1);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut boxes: Vec<Option<&mut Mailbox>> = mailboxes.iter_mut().map(Some).collect();
    boxes.resize_with(workers.len(), || None);
    let (done, secs) = std::thread::scope(|s| {
        let threads: Vec<_> = workers
            .iter_mut()
            .zip(inputs)
            .zip(boxes)
            .enumerate()
            .map(|(i, ((w, src), m))| {
                let (stop, go, core) = (&stop, &go, cores.get(i).copied());
                s.spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    go.wait();
                    worker_pass(w, m.as_deref(), src, to, stop)
                })
            })
            .collect();
        go.wait();
        let t = Instant::now();
        std::thread::sleep(budget);
        stop.store(true, Ordering::Relaxed);
        let done: Vec<Done> = threads.into_iter().map(|t| t.join().expect("worker thread")).collect();
        (done, t.elapsed().as_secs_f64())
    });
    // Frames still in the lanes when the pass stopped are not the next pass's.
    mailboxes.iter().for_each(Mailbox::flush_all);
    for m in mailboxes.iter() {
        m.receive(usize::MAX, |_| {});
    }
    let total: u64 = done.iter().map(|d| d.forwarded).sum();
    (total as f64 / secs / 1e6, done)
}

struct Scaling {
    one: f64,
    two: f64,
    two_half: f64,
    /// Share of frames handed over in the 50% pass, as measured.
    handed_share: f64,
    handoff_full: u64,
}

/// One worker alone against two workers on two cores, with none and half of each
/// worker's frames belonging to the other, `n` sessions per worker, direction `dir`.
fn scaling(n: u32, dir: Egress, rounds: usize, budget: Duration) -> Outcome<Scaling> {
    let pick = |f: Flows| if dir == Egress::Internet { f.in2out } else { f.out2in };
    let subs = n.div_ceil(SESSIONS_PER_SUB);
    let mut single = vec![Worker::new(n, subs, UDP, 1, 0)];
    let one_in = [pick(flows(&mut single[0], n, UDP, &(0..subs).collect::<Vec<_>>())?)];
    // Each worker of the pair creates (and so holds) subscribers of its own.
    let owners = Arc::new(Owners::new());
    let mut pair: Vec<Worker> = (0..2).map(|id| Worker::of_board(n, subs, UDP, 2, id, owners.clone())).collect();
    let own: Vec<Frames> = (0..2u16)
        .map(|id| {
            let mine: Vec<u32> = (id as u32 * subs..(id as u32 + 1) * subs).collect();
            flows(&mut pair[id as usize], n, UDP, &mine).map(pick)
        })
        .collect::<Outcome<_>>()?;
    let half = [own[0].interleave(&own[1]), own[1].interleave(&own[0])];
    let mut mailboxes = handoff::mesh(2, 1024, 2048);
    let (mut one, mut two, mut two_half) = (vec![], vec![], vec![]);
    let (mut handed, mut received, mut full) = (0u64, 0u64, 0u64);
    let check = |what: &str, done: &[Done]| -> Outcome<()> {
        if done.iter().any(|d| d.forwarded == 0) {
            return Err(format!("scaling {what}: a worker forwarded nothing"));
        }
        Ok(())
    };
    for _ in 0..rounds {
        let (r, d) = parallel(&mut single, &one_in, &mut [], dir, budget);
        check("one worker", &d)?;
        one.push(r);
        let (r, d) = parallel(&mut pair, &own, &mut mailboxes, dir, budget);
        check("two workers, no hand-off", &d)?;
        if d.iter().any(|d| d.handed > 0) {
            return Err("scaling: frames were handed over where none belong to another worker".into());
        }
        two.push(r);
        let (r, d) = parallel(&mut pair, &half, &mut mailboxes, dir, budget);
        check("two workers, half handed over", &d)?;
        handed += d.iter().map(|d| d.handed + d.handoff_full).sum::<u64>();
        received += d.iter().map(|d| d.received).sum::<u64>();
        full += d.iter().map(|d| d.handoff_full).sum::<u64>();
        two_half.push(r);
    }
    let handed_share = handed as f64 / received.max(1) as f64;
    if handed == 0 {
        return Err("scaling: no frame was handed over in the 50% pass".into());
    }
    Ok(Scaling {
        one: median(&mut one),
        two: median(&mut two),
        two_half: median(&mut two_half),
        handed_share,
        handoff_full: full,
    })
}

// ----- Hostile traffic: a fragment flood beside legitimate fragmented datagrams -----

/// B4s that send legitimate fragmented datagrams (B4 numbers 0..).
const LEGIT_B4S: u32 = 64;
/// The flooding B4: in the instance's prefix, not one of the others.
const FLOODER: u32 = 1_000_000;
/// Size of a legitimate datagram (IPv4 side), cut into two IPv6 fragments at 512.
const FRAG_DATAGRAM: usize = 1000;
/// Room for a fragment in a receive buffer.
const FRAG_SLOT: usize = HEADROOM + 2048;
/// Where a fragment's identification sits.
const FRAG_IDENT_AT: usize = 14 + 40 + 4;
/// Where the last four bytes of its B4 address sit.
const FRAG_B4_AT: usize = 14 + 8 + 12;

/// Counts the frames the engine sends through the sink: reassembled datagrams leave so.
#[derive(Default)]
struct CountSink {
    internet: u64,
}

impl Sink for CountSink {
    fn emit(&mut self, e: Egress, _: &[u8]) {
        self.internet += (e == Egress::Internet) as u64;
    }
    fn handoff(&mut self, _: WorkerId, _: &[u8], _: Option<FragmentPorts>) {}
}

/// What one flood pass did.
#[derive(Default, Clone, Copy)]
struct FloodPass {
    frames: u64,
    flood_frames: u64,
    sent: u64,
    delivered: u64,
    secs: f64,
}

/// Where the flooding fragments come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flooder {
    /// No flood.
    None,
    /// One B4 address.
    One,
    /// A new B4 address (inside the authorised prefix) for every fragment.
    Many,
}

/// Runs, for about `budget`, batches of 32 frames: two legitimate datagrams, each first
/// fragment sixteen slots before its last (slots 0, 16 and 8, 24), and in the other 28
/// slots the flood's first fragments (`flood`, as `flooder` sends it). Every datagram has
/// an identification of its own.
fn flood_pass(w: &mut Worker, legit: &[Vec<Vec<u8>>], flood: &[u8], flooder: Flooder, budget: Duration) -> FloodPass {
    let mut bufs = vec![0u8; FRAG_SLOT * BATCH];
    let mut verdicts = [Verdict::Pass; BATCH];
    let mut sink = CountSink::default();
    let mut pass = FloodPass::default();
    let mut ident = 0u32;
    let mut next = 0usize;
    let t = Instant::now();
    while t.elapsed() < budget {
        let (a, b) = (&legit[next % legit.len()], &legit[(next + 1) % legit.len()]);
        next += 2;
        // (frame, identification) of each slot.
        let slot = |k: usize| -> Option<(&[u8], u32)> {
            match k {
                0 => Some((&a[0], ident)),
                8 => Some((&b[0], ident + 1)),
                16 => Some((&a[1], ident)),
                24 => Some((&b[1], ident + 1)),
                _ if flooder == Flooder::None => None,
                _ => Some((flood, ident + 2 + k as u32)),
            }
        };
        let mut frames: arrayvec::ArrayVec<Frame, BATCH> = arrayvec::ArrayVec::new();
        for (k, buf) in bufs.chunks_mut(FRAG_SLOT).enumerate() {
            let Some((f, id)) = slot(k) else { continue };
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            buf[HEADROOM + FRAG_IDENT_AT..HEADROOM + FRAG_IDENT_AT + 4].copy_from_slice(&id.to_be_bytes());
            if flooder == Flooder::Many && std::ptr::eq(f, flood) {
                // The B4 address's last four bytes: a new B4 every time.
                buf[HEADROOM + FRAG_B4_AT..HEADROOM + FRAG_B4_AT + 4].copy_from_slice(&id.to_be_bytes());
            }
            frames.push(Frame::new(buf, HEADROOM, f.len()));
        }
        ident = ident.wrapping_add(2 + BATCH as u32);
        let n = frames.len();
        w.batch_into(&mut frames, &mut verdicts[..n], &mut sink);
        pass.frames += n as u64;
        pass.flood_frames += (n - 4) as u64;
        pass.sent += 2;
    }
    pass.secs = t.elapsed().as_secs_f64();
    pass.delivered = sink.internet;
    pass
}

struct Flood {
    /// Legitimate datagrams reassembled and translated, of those sent, under the flood
    /// from one B4 and from a new B4 address for every fragment.
    delivery: f64,
    delivery_many: f64,
    /// All frames per second under the flood from one B4, Mpps.
    mpps: f64,
    /// Legitimate datagrams per second, under that flood and without it.
    legit_dps: f64,
    alone_dps: f64,
    /// The engine's fragment drops over the passes with the flood from one B4, by reason.
    drops: Vec<(&'static str, u64)>,
}

/// The fragment-flood row: `rounds` passes with the flood from one B4, without it, and
/// with the flood from many B4 addresses (on an engine of its own, so that each flood
/// starts from tables the other did not fill).
fn frag_flood(rounds: usize, budget: Duration) -> Outcome<Flood> {
    let mut w = Worker::new(1 << 16, LEGIT_B4S + 1, UDP, 1, 0);
    let mut w_many = Worker::new(1 << 16, LEGIT_B4S + 1, UDP, 1, 0);
    let cut = |b4n: u32| {
        let t = generator::softwire(b4n, L4::Udp, 1024, FRAG_DATAGRAM);
        dataplane::testing::frames::softwire_fragments(&t.bytes, &[512], 0)
    };
    let legit: Vec<Vec<Vec<u8>>> = (0..LEGIT_B4S).map(cut).collect();
    let flood = cut(FLOODER).swap_remove(0);
    let c = w.e.counters();
    let reasons = [
        Counter::DropFragSourceLimit,
        Counter::DropFragFairShare,
        Counter::DropFragTableFull,
        Counter::DropFragTimeout,
        Counter::DropFragOverlap,
    ];
    let mut drops = vec![0u64; reasons.len()];
    let (mut under, mut alone) = (vec![], vec![]);
    let mut one = FloodPass::default();
    let mut many = FloodPass::default();
    for _ in 0..rounds {
        let before: Vec<u64> = reasons.iter().map(|&r| c.get(r)).collect();
        let p = flood_pass(&mut w, &legit, &flood, Flooder::One, budget);
        for ((d, &r), b) in drops.iter_mut().zip(&reasons).zip(before) {
            *d += c.get(r) - b;
        }
        (one.sent, one.delivered, one.flood_frames) =
            (one.sent + p.sent, one.delivered + p.delivered, one.flood_frames + p.flood_frames);
        under.push((p.frames as f64 / p.secs / 1e6, p.delivered as f64 / p.secs));
        let q = flood_pass(&mut w, &legit, &flood, Flooder::None, budget);
        if q.delivered == 0 {
            return Err(format!("fragment flood: no datagram went through without the flood, {:?}", c.nonzero()));
        }
        alone.push(q.delivered as f64 / q.secs);
        let m = flood_pass(&mut w_many, &legit, &flood, Flooder::Many, budget);
        (many.sent, many.delivered, many.flood_frames) =
            (many.sent + m.sent, many.delivered + m.delivered, many.flood_frames + m.flood_frames);
    }
    if one.sent == 0 || one.flood_frames == 0 || many.sent == 0 || many.flood_frames == 0 {
        return Err("fragment flood: a pass sent no legitimate datagram or no flood".into());
    }
    Ok(Flood {
        delivery: one.delivered as f64 / one.sent as f64,
        delivery_many: many.delivered as f64 / many.sent as f64,
        mpps: median(&mut under.iter().map(|u| u.0).collect::<Vec<_>>()),
        legit_dps: median(&mut under.iter().map(|u| u.1).collect::<Vec<_>>()),
        alone_dps: median(&mut alone),
        drops: reasons.iter().map(|r| r.name()).zip(drops).collect(),
    })
}

fn flood_row(f: &Flood) {
    println!(
        "fragment flood (7 of 8 frames: first fragments that never complete), {LEGIT_B4S} B4s sending datagrams in two fragments: from one B4, {:.2}% of their datagrams delivered, {:.2} Mpps all frames, {:.0} legitimate datagrams/s ({:.0}/s without the flood), drops {}; from a new B4 address each fragment, {:.2}% delivered",
        f.delivery * 100.0,
        f.mpps,
        f.legit_dps,
        f.alone_dps,
        f.drops.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" "),
        f.delivery_many * 100.0,
    );
}

fn flood_summary(f: &Flood) -> String {
    format!(
        "fragflood_delivery={:.4} fragflood_many_delivery={:.4} fragflood_mpps={:.2} fragflood_legit_dps={:.0} fragflood_alone_dps={:.0}",
        f.delivery, f.delivery_many, f.mpps, f.legit_dps, f.alone_dps
    )
}

/// The forwarding-table row's figures (in2out Mpps, medians).
struct FibFigures {
    /// The engine's one next hop, no table.
    fixed: f64,
    /// A table of one default route.
    default_only: f64,
    /// A table of `routes` prefixes and a default.
    full: f64,
    routes: usize,
    /// Building the full table, in milliseconds (median).
    build_ms: f64,
}

/// A table shaped like the Internet's: `n` prefixes from /8 to /24 (most /24, a few
/// longer: /25 to /28), anywhere in 1.0.0.0-223.255.255.255, through 16 gateways
/// and some two-way ECMP groups, and a default route.
fn internet_table(n: usize) -> Vec<dataplane::fib::Route> {
    use dataplane::fib::{Hop, Route};
    use std::net::Ipv4Addr;
    let gw = |i: u64| Hop::Gateway(Ipv4Addr::new(192, 0, 2, 1 + (i % 16) as u8));
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut routes = vec![Route { addr: Ipv4Addr::UNSPECIFIED, len: 0, hops: vec![gw(0)] }];
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = match x % 100 {
            0..=59 => 24,
            60..=69 => 23,
            70..=79 => 22,
            80..=86 => 21,
            87..=91 => 20,
            92..=98 => 16 + (x >> 40) % 4,
            _ => 25 + (x >> 40) % 4,
        } as u8;
        let addr = (1 << 24) + (x >> 32) as u32 % (223 << 24);
        let hops = if x.is_multiple_of(10) { vec![gw(x >> 20), gw((x >> 20) + 1)] } else { vec![gw(x >> 20)] };
        routes.push(Route { addr: Ipv4Addr::from(addr & (u32::MAX << (32 - len))), len, hops });
    }
    routes
}

/// A forwarding table of `routes` whose gateways all answer with the bench's next hop.
fn fib_of(routes: &[dataplane::fib::Route]) -> Outcome<dataplane::fib::FibHandle> {
    use dataplane::fib::{Fib, RouteTable};
    let table = RouteTable::build(routes).map_err(|e| e.to_string())?;
    let macs = table.gateways().iter().map(|&g| (g, frames::PEER_MAC)).collect();
    Ok(Arc::new(arc_swap::ArcSwap::from_pointee(Fib::new(Arc::new(table), &macs, true))))
}

/// Established UDP in2out with `n` sessions towards servers spread over the address
/// space, by the engine's one next hop, a table of one default route, and an
/// Internet-sized table of `routes` prefixes: passes alternate, medians.
fn fib_rates(n: u32, routes: usize, rounds: usize, budget: Duration) -> Outcome<FibFigures> {
    let subs: Vec<u32> = (0..n.div_ceil(SESSIONS_PER_SUB)).collect();
    let mut w = Worker::new(n, subs.len() as u32, UDP, 1, 0);
    // Servers in 11.0.0.0-99.255.255.255: no martian, not the pool.
    let server = |k: u32, _| (11 << 24) + (k.wrapping_mul(0x9e37_79b1) % (89 << 24));
    let fl = flows_to(&mut w, n, UDP, &subs, server)?;
    let table = internet_table(routes);
    let mut builds = Vec::new();
    let mut full = None;
    for _ in 0..rounds.max(3) {
        let t = Instant::now();
        full = Some(fib_of(&table)?);
        builds.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let full = full.expect("built");
    let default_only = fib_of(&table[..1])?;
    let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        for (fib, out) in [(None, &mut a), (Some(default_only.clone()), &mut b), (Some(full.clone()), &mut c)] {
            w.e.set_fib(fib);
            out.push(pump(&fl.in2out, budget, |f, v| w.batch(f, v, Egress::Internet))?);
        }
    }
    Ok(FibFigures {
        fixed: median(&mut a),
        default_only: median(&mut b),
        full: median(&mut c),
        routes: table.len(),
        build_ms: median(&mut builds),
    })
}

fn fib_row(n: u32, f: &FibFigures) {
    println!(
        "forwarding table, in2out, {n} sessions to spread servers: one next hop {:.2} Mpps | default route only {:.2} Mpps | {} routes {:.2} Mpps ({:.3}x default only, {:.3}x one next hop) | table built in {:.0} ms",
        f.fixed,
        f.default_only,
        f.routes,
        f.full,
        f.full / f.default_only,
        f.full / f.fixed,
        f.build_ms
    );
}

fn fib_summary(f: &FibFigures) -> String {
    format!(
        "fib_fixed_mpps={:.2} fib_default_mpps={:.2} fib_full_mpps={:.2} fib_full_ratio={:.3} fib_build_ms={:.0}",
        f.fixed,
        f.default_only,
        f.full,
        f.full / f.default_only,
        f.build_ms
    )
}

fn row(label: &str, e: &Est) {
    println!(
        "{label}: baseline {:6.2} Mpps | in2out {:6.2} Mpps ({:.3}x baseline) | out2in {:6.2} Mpps ({:.3}x) | {} refresh and other events drained, {} dropped",
        e.base,
        e.in2out,
        e.in2out / e.base,
        e.out2in,
        e.out2in / e.base,
        e.events,
        e.dropped_events
    );
}

const USAGE: &str = "usage: engine-bench [--quick] [--skip-10m] [--frag-flood] [--fib] [--rounds N] [--seconds S]";

/// What the command line asks for.
struct Options {
    quick: bool,
    skip_10m: bool,
    /// The fragment flood row alone.
    frag_flood: bool,
    /// The forwarding-table row alone.
    fib: bool,
    rounds: usize,
    secs: f64,
}

fn options(args: &[String]) -> Result<Options, String> {
    known_options(args, &["--rounds", "--seconds"], &["--quick", "--skip-10m", "--frag-flood", "--fib"])?;
    let fib = args.iter().any(|a| a == "--fib");
    let quick = args.iter().any(|a| a == "--quick");
    let frag_flood = args.iter().any(|a| a == "--frag-flood");
    let skip_10m = quick || args.iter().any(|a| a == "--skip-10m");
    let rounds: usize = arg(args, "--rounds")?.unwrap_or(if quick { 1 } else { 3 });
    let secs: f64 = arg(args, "--seconds")?.unwrap_or(if quick { 0.2 } else { 1.0 });
    if rounds == 0 || secs.is_nan() || secs <= 0.0 {
        return Err("--rounds and --seconds must be positive".into());
    }
    Ok(Options { quick, skip_10m, frag_flood, fib, rounds, secs })
}

/// `1m` for 1,000,000, `100k` for 100,000: how the summary names a table size.
fn size_label(n: u32) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) { format!("{}m", n / 1_000_000) } else { format!("{}k", n / 1000) }
}

fn run(o: &Options) -> Outcome<()> {
    let Options { quick, skip_10m, frag_flood: flood_only, fib: fib_only, rounds, secs } = *o;
    let budget = Duration::from_secs_f64(secs);
    let (fib_sessions, fib_routes) = if quick { (10_000, 100_000) } else { (100_000, 1_000_000) };
    if fib_only {
        println!("engine-bench: forwarding table, {rounds} rounds of {secs} s passes, medians");
        let f = fib_rates(fib_sessions, fib_routes, rounds, budget)?;
        fib_row(fib_sessions, &f);
        println!("summary: {}", fib_summary(&f));
        return Ok(());
    }
    if flood_only {
        println!("engine-bench: fragment flood, {rounds} rounds of {secs} s passes, medians");
        let f = frag_flood(rounds, budget)?;
        flood_row(&f);
        println!("summary: {}", flood_summary(&f));
        return Ok(());
    }
    let (small, large, mixed, per_worker) =
        if quick { (10_000, 100_000, 25_000, 10_000) } else { (10_000, 1_000_000, 250_000, 100_000) };

    println!(
        "engine-bench: frames in memory, 60-byte IPv4 frames ({SIZE}-byte class), {rounds} rounds of {secs} s passes, medians"
    );
    let s = established(small, UDP, rounds, budget)?;
    row(&format!("established UDP, {small:>8} sessions"), &s);
    let l = established(large, UDP, rounds, budget)?;
    row(&format!("established UDP, {large:>8} sessions"), &l);
    let m = established(mixed, MIXED, rounds, budget)?;
    row(
        &format!(
            "mix UDP/TCP/ICMP 70/25/5, address-and-port-dependent filtering, {mixed} sessions x {} remotes",
            MIXED.remotes
        ),
        &m,
    );
    let ns = new_sessions(if quick { 200_000 } else { 2_000_000 }, rounds.min(3))?;
    println!("new sessions: {:.2} M/s ({:.3}x baseline packet rate)", ns / 1e6, ns / 1e6 / s.base);
    let (m1, t1) = memory(large);
    println!("memory at {large} sessions: {m1:.1} B/session resident ({t1:.1} B/session of table capacity)");
    let mut ten_million = String::new();
    if !skip_10m {
        let (m10, t10) = memory(10_000_000);
        println!("memory at 10000000 sessions: {m10:.1} B/session resident ({t10:.1} B/session of table capacity)");
        ten_million = format!(" bytes_per_session_10m={m10:.1}");
    }
    let cores = core_affinity::get_core_ids().map_or(0, |c| c.len());
    if cores < 2 {
        return Err(format!("scaling needs two cores; this machine has {cores}"));
    }
    let mut scale = Vec::new();
    for dir in [Egress::Internet, Egress::Softwire] {
        let name = if dir == Egress::Internet { "in2out" } else { "out2in" };
        let sc = scaling(per_worker, dir, rounds, budget).map_err(|e| format!("{name}: {e}"))?;
        println!(
            "scaling {name}, {per_worker} sessions per worker: one worker {:.2} Mpps | two workers {:.2} Mpps ({:.2}x) | two workers, {:.0}% handed over: {:.2} Mpps ({:.2}x), {} lost to full lanes",
            sc.one,
            sc.two,
            sc.two / sc.one,
            sc.handed_share * 100.0,
            sc.two_half,
            sc.two_half / sc.one,
            sc.handoff_full
        );
        scale.push(sc);
    }
    let flood = frag_flood(rounds, budget)?;
    flood_row(&flood);
    let fib = fib_rates(fib_sessions, fib_routes, rounds, budget)?;
    fib_row(fib_sessions, &fib);
    let (k, big) = (size_label(small), size_label(large));
    println!(
        "summary: baseline_mpps={:.2} est{k}_in2out_mpps={:.2} est{k}_out2in_mpps={:.2} est{k}_ratio={:.3} est{big}_in2out_mpps={:.2} est{big}_out2in_mpps={:.2} est{big}_ratio={:.3} mix_in2out_mpps={:.2} mix_out2in_mpps={:.2} mix_ratio={:.3} new_sessions_per_sec={:.0} bytes_per_session_{big}={:.1}{ten_million} scale2_in2out={:.2} scale2_half_in2out={:.2} scale2_out2in={:.2} scale2_half_out2in={:.2} {} {}",
        s.base,
        s.in2out,
        s.out2in,
        (s.in2out.min(s.out2in)) / s.base,
        l.in2out,
        l.out2in,
        (l.in2out.min(l.out2in)) / l.base,
        m.in2out,
        m.out2in,
        (m.in2out.min(m.out2in)) / m.base,
        ns,
        m1,
        scale[0].two / scale[0].one,
        scale[0].two_half / scale[0].one,
        scale[1].two / scale[1].one,
        scale[1].two_half / scale[1].one,
        flood_summary(&flood),
        fib_summary(&fib),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, n] = &args[..]
        && flag == "--memory-child"
        && let Ok(n) = n.parse()
    {
        memory_child(n);
        return ExitCode::SUCCESS;
    }
    let o = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("engine-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine-bench: {e}");
            ExitCode::from(1)
        }
    }
}
