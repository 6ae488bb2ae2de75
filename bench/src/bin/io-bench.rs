//! io-bench: `aftrd` with one worker against the bare AF_XDP forwarder (`xdp-forward`)
//! on the same veth pairs, with the same generator and sink, side by side in one run.
//!
//! Topology (made here, removed on exit, even on failure):
//!   [gen] g-sw <-> d-sw [dut] d-in <-> g-in [gen]
//! The generator sends softwire frames on g-sw (softwire to IPv4) or IPv4 frames to
//! mapped ports on g-in (IPv4 to softwire) with AF_PACKET sendmmsg, pinned to core 0;
//! the sink counts what comes out on the other interface (frames carrying the
//! benchmark's mark) with a TPACKET_V3 ring; the device under test is pinned to core 1.
//! Each round starts each DUT afresh; `aftrd` first sees every flow once (the sessions),
//! then the figures are for established flows. Medians over the rounds.
//!
//! Usage: io-bench [--rounds N] [--seconds S] [--flows F] [--poll busy|blocking]
//! (as root, with the workspace binaries built)

use std::io::BufRead;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::frames::{self, SW_B4_AT, SW_SPORT_AT};
use bench::measure::median;
use dataplane::io::af_packet::{PacketRing, PacketTx, RingOptions};

/// The last bytes of every generated frame; they cross translation and encapsulation.
const MARK: &[u8; 8] = b"AFTRBNCH";
const PAYLOAD: usize = 18;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The namespaces of the run; removed on drop.
struct Topology {
    gen_ns: String,
    dut_ns: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Topology {
    fn up() -> Result<Topology, String> {
        let id = std::process::id();
        let t = Topology { gen_ns: format!("iob-gen-{id}"), dut_ns: format!("iob-dut-{id}") };
        let (g, d) = (t.gen_ns.as_str(), t.dut_ns.as_str());
        for ns in [g, d] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["-n", g, "link", "add", "g-sw", "type", "veth", "peer", "name", "d-sw", "netns", d])?;
        ip(&["-n", g, "link", "add", "g-in", "type", "veth", "peer", "name", "d-in", "netns", d])?;
        for (ns, dev) in [(g, "g-sw"), (g, "g-in"), (d, "d-sw"), (d, "d-in")] {
            ip(&["-n", ns, "link", "set", dev, "mtu", "1600", "up"])?;
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "rx", "off", "gso", "off", "tso", "off"])
                .args(["gro", "off"])
                .output();
        }
        // The board's addresses and its upstream router (the generator's interface, by a
        // permanent neighbour entry: the generator's kernel owns no address, so it
        // answers nothing and sends nothing back).
        let gmac =
            Command::new("ip").args(["-n", g, "-br", "link", "show", "g-in"]).output().map_err(|e| e.to_string())?;
        let gmac = String::from_utf8_lossy(&gmac.stdout).split_whitespace().nth(2).unwrap_or("").to_string();
        ip(&["-n", d, "-6", "addr", "add", "2001:db8:b4::1/64", "dev", "d-sw", "nodad"])?;
        ip(&["-n", d, "addr", "add", "203.0.113.1/24", "dev", "d-in"])?;
        ip(&["-n", d, "neigh", "add", "203.0.113.80", "lladdr", &gmac, "dev", "d-in", "nud", "permanent"])?;
        ip(&["-n", d, "route", "add", "default", "via", "203.0.113.80"])?;
        Ok(t)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.gen_ns, &self.dut_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A device under test, started in the DUT namespace; stopped (SIGTERM) on drop.
struct Dut(Child);

impl Drop for Dut {
    fn drop(&mut self) {
        // Through kill(1): this crate keeps its unsafe code in `tun`.
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        // What the DUT says as it stops (the forwarder: its sockets' drop counters).
        if let Some(err) = self.0.stderr.take() {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("  {line}");
            }
        }
        let _ = self.0.wait();
    }
}

fn bin(name: &str) -> String {
    let me = std::env::current_exe().expect("own path");
    me.with_file_name(name).to_string_lossy().into_owned()
}

fn start_forwarder(t: &Topology, poll: &str) -> Result<Dut, String> {
    let mut c = Command::new("ip")
        .args(["netns", "exec", &t.dut_ns, &bin("xdp-forward"), "--softwire", "d-sw", "--internet", "d-in"])
        .args(["--core", "1", "--poll", poll])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("xdp-forward: {e}"))?;
    let mut line = String::new();
    std::io::BufReader::new(c.stderr.as_mut().expect("piped")).read_line(&mut line).map_err(|e| e.to_string())?;
    if !line.contains("XDP on") {
        return Err(format!("xdp-forward did not start: {line}"));
    }
    Ok(Dut(c))
}

fn start_aftrd(t: &Topology, dir: &std::path::Path, poll: &str) -> Result<Dut, String> {
    let cfg = dir.join("aftr.conf");
    std::fs::write(
        &cfg,
        format!("sysname io-bench\nslot 1\n worker-cores 1\n interface softwire d-sw\n interface internet d-in\n packet-io af-xdp\n packet-poll {poll}\n\
         slot 2\n worker-cores 0\nservice-location 1\n location slot 1 backup slot 2\nservice-instance-group g\n service-location 1\n\
         ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b400:: prefix-length 48\n\
         ds-lite address-group pool\n"),
    )
    .map_err(|e| e.to_string())?;
    let sock = dir.join("slot1.sock");
    let c = Command::new("ip")
        .args(["netns", "exec", &t.dut_ns, &bin("aftrd"), "--config"])
        .arg(&cfg)
        .args(["--slot", "1", "--socket"])
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("aftrd: {e}"))?;
    let dut = Dut(c);
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("aftrd did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(dut)
}

/// Softwire frames of `flows` flows from 64 B4s, each ending with the mark.
fn softwire_frames(flows: usize) -> Vec<Vec<u8>> {
    let mut tmpl = frames::softwire_udp(&frames::b4(0), 1, PAYLOAD);
    let n = tmpl.len();
    tmpl[n - MARK.len()..].copy_from_slice(MARK);
    frames::udp_checksum(&mut tmpl, 54);
    (0..flows)
        .map(|i| {
            let mut f = tmpl.clone();
            f[SW_B4_AT..SW_B4_AT + 16].copy_from_slice(&frames::b4(i as u32 % 64));
            frames::patch_udp_port(&mut f, 54, SW_SPORT_AT, 10_000 + i as u16);
            f
        })
        .collect()
}

/// IPv4 frames from the server to the mapped `(address, port)`s, ending with the mark.
fn inbound_frames(mapped: &[(u32, u16)]) -> Vec<Vec<u8>> {
    mapped
        .iter()
        .map(|&(a, p)| {
            let mut f = frames::inbound_udp(a, p, PAYLOAD);
            let n = f.len();
            f[n - MARK.len()..].copy_from_slice(MARK);
            frames::udp_checksum(&mut f, 14);
            f
        })
        .collect()
}

fn marked(b: &[u8]) -> bool {
    b.len() > MARK.len() && &b[b.len() - MARK.len()..] == MARK
}

/// Counts marked frames arriving on `iface` until `stop`, noting the IPv4 source
/// address and port of each (the mappings of translated frames).
fn sink(
    ns: String,
    iface: &'static str,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    got: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Vec<(u32, u16)>> {
    std::thread::spawn(move || {
        dataplane::io::netns::enter(&ns).expect("enter the generator namespace");
        let opts = RingOptions { block_size: 1 << 20, blocks: 64, block_timeout_ms: 2, fanout: None };
        let mut ring = PacketRing::open(iface, opts).expect("sink ring");
        ready.store(true, Ordering::Release);
        let mut seen = std::collections::HashSet::new();
        while !stop.load(Ordering::Acquire) {
            let _ = ring.wait(20);
            ring.recv_block(|fs| {
                let mut n = 0;
                for f in fs.iter() {
                    let b = f.bytes();
                    if marked(b) {
                        n += 1;
                        if b.len() >= 38 && b[12..14] == [8, 0] && seen.len() < 1 << 16 {
                            let a = u32::from_be_bytes([b[26], b[27], b[28], b[29]]);
                            seen.insert((a, u16::from_be_bytes([b[34], b[35]])));
                        }
                    }
                }
                got.fetch_add(n, Ordering::Relaxed);
            });
        }
        seen.into_iter().collect()
    })
}

/// Sends `frames` round robin on `iface` for `secs` (or `count` frames at most), in
/// batches of 64, from core 0, as fast as it can or at `rate` frames per second.
/// Returns the frames sent.
fn generate(ns: &str, iface: &str, frames: &[Vec<u8>], secs: f64, count: u64, rate: Option<f64>) -> u64 {
    std::thread::scope(|s| {
        s.spawn(|| {
            dataplane::io::netns::enter(ns).expect("enter the generator namespace");
            core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
            let tx = PacketTx::open(iface).expect("generator socket");
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            let (t0, mut sent, mut at) = (Instant::now(), 0u64, 0usize);
            while t0.elapsed().as_secs_f64() < secs && sent < count {
                // Paced: a batch goes when it is due.
                if let Some(r) = rate {
                    while (sent as f64) > r * t0.elapsed().as_secs_f64() {
                        std::hint::spin_loop();
                    }
                }
                let end = (at + 64).min(refs.len());
                sent += tx.send_batch(&refs[at..end]).unwrap_or(0) as u64;
                at = if end == refs.len() { 0 } else { end };
            }
            sent
        })
        .join()
        .expect("generator")
    })
}

/// Frames received by `iface` in namespace `ns` so far (the kernel's interface counter).
fn rx_packets(ns: &str, iface: &str) -> u64 {
    let out = Command::new("ip").args(["-n", ns, "-s", "link", "show", iface]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    // "RX:  bytes packets errors ..." then the figures.
    let mut lines = text.lines().skip_while(|l| !l.trim_start().starts_with("RX:"));
    lines.nth(1).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// One measurement: offered and forwarded frames per second, and the mappings seen.
struct Trial {
    offered: f64,
    forwarded: f64,
    mapped: Vec<(u32, u16)>,
}

/// Sends `frames` on `tx_if` for `secs` (at most `count` frames) and counts what arrives
/// on `rx_if`: at full rate by the interface's counter (a ring in the sink cannot keep up
/// on a shared core and would measure itself), and, with `watch`, through a ring that
/// checks the mark and notes the mappings (the warm-up, at a pace the ring holds).
struct Load<'a> {
    tx_if: &'a str,
    rx_if: &'static str,
    frames: &'a [Vec<u8>],
    secs: f64,
    count: u64,
    rate: Option<f64>,
}

fn trial(t: &Topology, l: Load, watch: bool) -> Trial {
    let Load { tx_if, rx_if, frames, secs, count, rate } = l;
    let (stop, ready, got) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let h = watch.then(|| sink(t.gen_ns.clone(), rx_if, stop.clone(), ready.clone(), got.clone()));
    while h.is_some() && !ready.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = rx_packets(&t.gen_ns, rx_if);
    let t0 = Instant::now();
    let sent = generate(&t.gen_ns, tx_if, frames, secs, count, rate);
    let took = t0.elapsed().as_secs_f64();
    // What is still in flight arrives within the drain time.
    std::thread::sleep(Duration::from_millis(300));
    let arrived = rx_packets(&t.gen_ns, rx_if) - before;
    stop.store(true, Ordering::Release);
    let mapped = h.map(|h| h.join().expect("sink")).unwrap_or_default();
    let forwarded = if watch { got.load(Ordering::Relaxed) } else { arrived };
    Trial { offered: sent as f64 / took, forwarded: forwarded as f64 / took, mapped }
}

#[derive(Default)]
struct Figures {
    offered: Vec<f64>,
    forwarded: Vec<f64>,
}

impl Figures {
    fn add(&mut self, tr: &Trial) {
        self.offered.push(tr.offered);
        self.forwarded.push(tr.forwarded);
    }
    fn mpps(&mut self) -> (f64, f64) {
        (median(&mut self.offered) / 1e6, median(&mut self.forwarded) / 1e6)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = arg(&args, "--rounds", 3);
    let secs: f64 = arg(&args, "--seconds", 2.0);
    let flows: usize = arg(&args, "--flows", 1024);
    let poll: String = arg(&args, "--poll", "busy".to_string());
    if poll != "busy" && poll != "blocking" {
        eprintln!("io-bench: --poll takes busy or blocking");
        return ExitCode::from(2);
    }
    match run(rounds, secs, flows, &poll) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("io-bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(rounds: usize, secs: f64, flows: usize, poll: &str) -> Result<(), String> {
    let t = Topology::up()?;
    let dir = std::env::temp_dir().join(format!("io-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = measure(&t, &dir, rounds, secs, flows, poll);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The figures of both DUTs in both directions: `[bare in2out, bare out2in, aftrd
/// in2out, aftrd out2in]`, each DUT started afresh every round.
fn pass(
    t: &Topology,
    dir: &std::path::Path,
    rounds: usize,
    secs: f64,
    flows: usize,
    poll: &str,
    rate: Option<f64>,
) -> Result<[Figures; 4], String> {
    let sw_frames = softwire_frames(flows);
    // For the bare forwarder any pool address and port will do.
    let fake: Vec<(u32, u16)> = (0..flows).map(|i| (0xc633_6400 + (i % 250) as u32 + 1, 2000 + i as u16)).collect();
    let mut f: [Figures; 4] = Default::default();
    for round in 0..rounds {
        for dut in 0..2 {
            let (_dut, back) = if dut == 0 {
                (start_forwarder(t, poll)?, inbound_frames(&fake))
            } else {
                let d = start_aftrd(t, dir, poll)?;
                // Every flow a few times: the sessions, and their mappings for the way back.
                let warm = Load {
                    tx_if: "g-sw",
                    rx_if: "g-in",
                    frames: &sw_frames,
                    secs: 5.0,
                    count: 3 * flows as u64,
                    rate: Some(100_000.0),
                };
                let warm = trial(t, warm, true);
                if warm.mapped.len() < flows {
                    return Err(format!("aftrd mapped {} of {flows} flows in the warm-up", warm.mapped.len()));
                }
                (d, inbound_frames(&warm.mapped))
            };
            let a =
                trial(t, Load { tx_if: "g-sw", rx_if: "g-in", frames: &sw_frames, secs, count: u64::MAX, rate }, false);
            let b = trial(t, Load { tx_if: "g-in", rx_if: "g-sw", frames: &back, secs, count: u64::MAX, rate }, false);
            eprintln!(
                "round {round}: {:<16} {:.3} / {:.3} Mpps (offered {:.3} / {:.3})",
                ["bare forwarder", "aftrd, 1 worker"][dut],
                a.forwarded / 1e6,
                b.forwarded / 1e6,
                a.offered / 1e6,
                b.offered / 1e6
            );
            f[2 * dut].add(&a);
            f[2 * dut + 1].add(&b);
        }
    }
    Ok(f)
}

/// Prints one pass as a table; returns the forwarded Mpps (bare, aftrd) per direction.
fn table(title: &str, f: &mut [Figures; 4]) -> [(f64, f64, f64); 2] {
    let loss = |o: f64, fw: f64| if o > 0.0 { (1.0 - fw / o).max(0.0) * 100.0 } else { 0.0 };
    println!("\n{title}");
    println!("{:<18} {:>22} {:>22} {:>8}", "direction", "bare AF_XDP forwarder", "aftrd, 1 worker", "ratio");
    println!("{:<18} {:>22} {:>22}", "", "Mpps (offered, loss)", "Mpps (offered, loss)");
    let mut out = [(0.0, 0.0, 0.0); 2];
    for (d, name) in ["softwire -> IPv4", "IPv4 -> softwire"].iter().enumerate() {
        let (bo, bf) = f[d].mpps();
        let (ao, af) = f[2 + d].mpps();
        println!(
            "{name:<18} {:>22} {:>22} {:>8.2}",
            format!("{bf:.3} ({bo:.3}, {:.1}%)", loss(bo, bf)),
            format!("{af:.3} ({ao:.3}, {:.1}%)", loss(ao, af)),
            af / bf.max(1e-9)
        );
        out[d] = (bf, af, ao);
    }
    out
}

fn measure(
    t: &Topology,
    dir: &std::path::Path,
    rounds: usize,
    secs: f64,
    flows: usize,
    poll: &str,
) -> Result<(), String> {
    println!(
        "io-bench: {rounds} rounds of {secs} s, {flows} flows, {}-byte softwire / {}-byte IPv4 frames, {poll} poll",
        softwire_frames(1)[0].len(),
        inbound_frames(&[(0, 1)])[0].len()
    );
    // First as fast as the generator goes; the generator's rate moves with what else
    // runs on the machine, so the DUTs are then compared at one paced load below the
    // lowest rate it reached.
    let mut full = pass(t, dir, rounds, secs, flows, poll, None)?;
    let lowest = full.iter().flat_map(|f| f.offered.iter().copied()).fold(f64::MAX, f64::min);
    let rate = (0.9 * lowest / 1e4).floor() * 1e4;
    eprintln!("paced at {:.3} Mpps", rate / 1e6);
    let mut paced = pass(t, dir, rounds, secs, flows, poll, Some(rate))?;
    table("as fast as the generator sends (medians)", &mut full);
    let [(b1, a1, _), (b2, a2, _)] =
        table(&format!("at one paced load of {:.3} Mpps (medians)", rate / 1e6), &mut paced);
    let [(fb1, fa1, fo1), (fb2, fa2, fo2)] = {
        let mut again = full;
        [(0, 2), (1, 3)].map(|(b, a)| {
            let (_, bf) = again[b].mpps();
            let (ao, af) = again[a].mpps();
            (bf, af, ao)
        })
    };
    println!(
        "summary: paced_mpps={:.3} bare_in2out_mpps={b1:.3} aftrd_in2out_mpps={a1:.3} ratio_in2out={:.2} bare_out2in_mpps={b2:.3} aftrd_out2in_mpps={a2:.3} ratio_out2in={:.2} full_bare_in2out_mpps={fb1:.3} full_aftrd_in2out_mpps={fa1:.3} full_offered_in2out_mpps={fo1:.3} full_bare_out2in_mpps={fb2:.3} full_aftrd_out2in_mpps={fa2:.3} full_offered_out2in_mpps={fo2:.3}",
        rate / 1e6,
        a1 / b1.max(1e-9),
        a2 / b2.max(1e-9)
    );
    Ok(())
}
