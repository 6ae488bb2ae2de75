//! engine-bench: the packet engine's figures on one core, frames already in memory.
//!
//! Frames carry real UDP checksums, which the engine updates incrementally.
//!
//! Prints, each beside the baseline measured in the same run (copy the frame into the
//! receive buffer, parse Ethernet, swap MACs: what any forwarder does):
//! - established flows, softwire to IPv4 (in2out) and IPv4 to softwire (out2in), with
//!   10k and 1M sessions, in a random order over the sessions;
//! - new sessions per second;
//! - memory per session at 1M and 10M sessions, measured as resident memory.
//!
//! Ends with one `summary:` line (DESIGN.md). Options: `--quick` (smaller, for a smoke
//! run), `--rounds N`, `--skip-10m`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench::frames;
use bench::generator::{self, L4};
use bench::measure::{median, rss_bytes, shuffle};
use dataplane::config::{EgressL2, EngineConfig, InstanceConfig, Ipv4Prefix, Ipv6Prefix};
use dataplane::wire::ethernet;
use dataplane::{Egress, Engine, Frame, HEADROOM, Sink, Verdict, WorkerId};

struct NullSink;
impl Sink for NullSink {
    fn emit(&mut self, _: Egress, _: &[u8]) {}
    fn handoff(&mut self, _: WorkerId, _: &[u8], _: Option<u16>) {}
}

const STRIDE: usize = 128;
/// 64-byte class frames: 60 bytes (and the FCS) on the IPv4 side, 100 on the softwire.
const SIZE: usize = 64;
const SESSIONS_PER_SUB: u32 = 100;

fn config(max_sessions: u32, subscribers: u32) -> EngineConfig {
    let b4net = frames::b4(0);
    let mut inst = InstanceConfig::new(
        "bench",
        frames::ENDPOINT,
        Ipv6Prefix { addr: b4net, len: 48 },
        Ipv4Prefix { addr: 0xc633_6000, len: 20 },
    );
    inst.limits.max_sessions = 1 << 20;
    let mut c = EngineConfig::new(vec![inst]);
    c.max_sessions = max_sessions;
    c.max_subscribers = subscribers + 16;
    c.event_ring = 1024;
    c.softwire_l2 = EgressL2 { src: frames::AFTR_MAC, dst: frames::PEER_MAC, vlan: None };
    c.internet_l2 = EgressL2 { src: frames::AFTR_MAC, dst: frames::PEER_MAC, vlan: None };
    c
}

fn engine(max_sessions: u32, subscribers: u32) -> Engine {
    let (mut e, events) = Engine::new(&config(max_sessions, subscribers), 0, 1).expect("config");
    // Nobody consumes events here: the ring fills and further events are counted.
    drop(events);
    e.set_clock(1_700_000_000_000);
    e
}

/// Creates `n` sessions (100 per subscriber) and returns, if `keep`, the flows' frames:
/// (in2out templates, out2in templates), each `STRIDE` bytes apart.
fn populate(e: &mut Engine, n: u32, keep: bool) -> (Vec<u8>, Vec<u8>, Duration) {
    let base = generator::softwire(0, L4::Udp, 1024, SIZE);
    let mut tmpl = base.bytes.clone();
    let len = tmpl.len();
    let mut buf = vec![0u8; HEADROOM + STRIDE];
    let (mut ins, mut outs) = (Vec::new(), Vec::new());
    if keep {
        ins.reserve(n as usize * STRIDE);
        outs.reserve(n as usize * STRIDE);
    }
    let t = Instant::now();
    for k in 0..n {
        let (sub, flow) = (k / SESSIONS_PER_SUB, k % SESSIONS_PER_SUB);
        generator::renew(&mut tmpl, &base, sub, 1024 + flow as u16 * 2);
        buf[HEADROOM..HEADROOM + len].copy_from_slice(&tmpl);
        let mut f = Frame::new(&mut buf, HEADROOM, len);
        let v = e.process(&mut f, &mut NullSink);
        assert_eq!(v, Verdict::Forward(Egress::Internet), "flow {k}: {:?}", e.counters().nonzero());
        if keep {
            let out = f.bytes();
            let ext = u32::from_be_bytes(out[26..30].try_into().unwrap());
            let port = u16::from_be_bytes([out[34], out[35]]);
            let mut a = tmpl.clone();
            a.resize(STRIDE, 0);
            ins.extend_from_slice(&a);
            let mut b = generator::inbound(L4::Udp, ext, port, SIZE).bytes;
            b.resize(STRIDE, 0);
            outs.extend_from_slice(&b);
        }
    }
    (ins, outs, t.elapsed())
}

const BATCH: usize = 32;

/// Runs the frames in `order`, `BATCH` at a time, through `step` for about `budget`;
/// returns Mpps. Each frame is first copied into its receive buffer, as a NIC would.
fn pump(
    templates: &[u8],
    len: usize,
    order: &[u32],
    budget: Duration,
    mut step: impl FnMut(&mut [Frame], &mut [Verdict]) -> usize,
) -> f64 {
    let slot = HEADROOM + STRIDE;
    let mut bufs = vec![0u8; slot * BATCH];
    let mut frames: Vec<Frame> = bufs.chunks_mut(slot).map(|b| Frame::new(b, HEADROOM, len)).collect();
    let mut verdicts = [Verdict::Pass; BATCH];
    let t = Instant::now();
    let (mut done, mut ok) = (0u64, 0u64);
    while t.elapsed() < budget {
        for batch in order.chunks(BATCH) {
            for (f, &i) in frames.iter_mut().zip(batch) {
                let at = i as usize * STRIDE;
                f.buf[HEADROOM..HEADROOM + len].copy_from_slice(&templates[at..at + len]);
                f.start = HEADROOM;
                f.len = len;
                f.hint = None;
            }
            let n = batch.len();
            ok += step(&mut frames[..n], &mut verdicts[..n]) as u64;
            done += n as u64;
        }
    }
    assert_eq!(ok, done, "every frame forwarded");
    done as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn forwarded(v: &[Verdict], e: Egress) -> usize {
    v.iter().filter(|&&x| x == Verdict::Forward(e)).count()
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

/// The frames of `t` (STRIDE apart) in the order `arrival`.
fn permute(t: &[u8], arrival: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len());
    for &i in arrival {
        out.extend_from_slice(&t[i as usize * STRIDE..(i as usize + 1) * STRIDE]);
    }
    out
}

struct Est {
    base: f64,
    in2out: f64,
    out2in: f64,
}

/// Established-flow throughput with `n` sessions, `rounds` interleaved rounds.
fn established(n: u32, rounds: usize, budget: Duration) -> Est {
    let mut e = engine(n, n / SESSIONS_PER_SUB + 1);
    let (ins, outs, _) = populate(&mut e, n, true);
    let in_len = generator::softwire(0, L4::Udp, 1, SIZE).bytes.len();
    let out_len = generator::inbound(L4::Udp, 0, 1, SIZE).bytes.len();
    // Flows arrive in a random order, but a receive ring is read front to back: lay the
    // frames out in arrival order and read them in sequence, so only the engine's
    // tables see random access.
    let mut arrival: Vec<u32> = (0..n).collect();
    shuffle(&mut arrival, 0x9e37_79b9_7f4a_7c15);
    let ins = permute(&ins, &arrival);
    let outs = permute(&outs, &arrival);
    let order: Vec<u32> = (0..n).collect();
    let (mut b, mut i, mut o) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        b.push(pump(&ins, in_len, &order, budget, baseline));
        i.push(pump(&ins, in_len, &order, budget, |f, v| {
            e.process_batch(f, v, &mut NullSink);
            forwarded(v, Egress::Internet)
        }));
        o.push(pump(&outs, out_len, &order, budget, |f, v| {
            e.process_batch(f, v, &mut NullSink);
            forwarded(v, Egress::Softwire)
        }));
    }
    Est { base: median(&mut b), in2out: median(&mut i), out2in: median(&mut o) }
}

/// New sessions per second, median of `rounds` fresh engines creating `n` each.
fn new_sessions(n: u32, rounds: usize) -> f64 {
    let mut r = vec![];
    for _ in 0..rounds {
        let mut e = engine(n, n / SESSIONS_PER_SUB + 1);
        let (_, _, d) = populate(&mut e, n, false);
        r.push(n as f64 / d.as_secs_f64());
    }
    median(&mut r)
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
    let mut e = engine(n, n / SESSIONS_PER_SUB + 1);
    populate(&mut e, n, false);
    let after = rss_bytes();
    assert_eq!(e.session_count(), n);
    println!("{} {}", after.saturating_sub(before) as f64 / n as f64, e.table_memory() as f64 / n as f64);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(n) =
        args.iter().position(|a| a == "--memory-child").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
    {
        return memory_child(n);
    }
    if let Some(n) =
        args.iter().position(|a| a == "--established").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
    {
        // One figure only, for profiling.
        let e = established(n, 3, Duration::from_millis(500));
        println!("established {n}: baseline {:.2} in2out {:.2} out2in {:.2} Mpps", e.base, e.in2out, e.out2in);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let skip_10m = quick || args.iter().any(|a| a == "--skip-10m");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 5 });
    let budget = Duration::from_millis(if quick { 100 } else { 400 });
    let (small, large) = if quick { (10_000, 100_000) } else { (10_000, 1_000_000) };

    println!(
        "engine-bench: one core, frames in memory, 60-byte IPv4 frames (UDP, {SIZE}-byte class), {rounds} rounds, medians"
    );
    let s = established(small, rounds, budget);
    println!(
        "established {:>8} sessions: baseline {:6.2} Mpps | in2out {:6.2} Mpps ({:.2}x baseline) | out2in {:6.2} Mpps ({:.2}x)",
        small,
        s.base,
        s.in2out,
        s.in2out / s.base,
        s.out2in,
        s.out2in / s.base
    );
    let l = established(large, rounds, budget);
    println!(
        "established {:>8} sessions: baseline {:6.2} Mpps | in2out {:6.2} Mpps ({:.2}x baseline) | out2in {:6.2} Mpps ({:.2}x)",
        large,
        l.base,
        l.in2out,
        l.in2out / l.base,
        l.out2in,
        l.out2in / l.base
    );
    let ns = new_sessions(if quick { 200_000 } else { 2_000_000 }, rounds.min(3));
    println!("new sessions: {:.2} M/s ({:.3}x baseline packet rate)", ns / 1e6, ns / 1e6 / s.base);
    let (m1, t1) = memory(large);
    println!("memory at {large} sessions: {m1:.1} B/session resident ({t1:.1} B/session of table capacity)");
    let (m10, t10) = if skip_10m { (0.0, 0.0) } else { memory(10_000_000) };
    if !skip_10m {
        println!("memory at 10000000 sessions: {m10:.1} B/session resident ({t10:.1} B/session of table capacity)");
    }
    println!(
        "summary: baseline_mpps={:.2} est10k_in2out_mpps={:.2} est10k_out2in_mpps={:.2} est10k_ratio={:.3} est1m_in2out_mpps={:.2} est1m_out2in_mpps={:.2} est1m_ratio={:.3} new_sessions_per_sec={:.0} bytes_per_session_1m={:.1} bytes_per_session_10m={:.1}",
        s.base,
        s.in2out,
        s.out2in,
        (s.in2out.min(s.out2in)) / s.base,
        l.in2out,
        l.out2in,
        (l.in2out.min(l.out2in)) / l.base,
        ns,
        m1,
        m10
    );
}
