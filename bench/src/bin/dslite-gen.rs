//! dslite-gen: the DS-Lite packet generator on its own (pktgen-style), with a sink.
//! Sends softwire frames from many B4s (`--dir in2out`) or IPv4 frames from a server to
//! mapped ports (`--dir out2in`) out of an interface, with AF_XDP (default) or AF_PACKET,
//! at a rate or as fast as it goes, printing each second what it sent and, with
//! `--sink`, what arrived there (interface counter) and the latency of sampled frames.
//! With `--attack KIND` it sends one of `hostile-bench`'s attacks instead
//! (`bench::attack`: fragment floods, a session flood, forged Packet Too Big, malformed
//! frames), from B4 number `--attacker N` (65536) where it comes from a B4, aimed at the
//! legitimate flows of `--flows` and `--b4s`.
//!
//! Usage: dslite-gen --iface IF [--netns NS] [--dir in2out|out2in] [--size BYTES]
//!   [--flows N] [--b4s N] [--mix udp=70,tcp=25,icmp=5] [--new-flows]
//!   [--to ADDR:FIRST-LAST] [--rate PPS] [--seconds S] [--count N]
//!   [--io af-xdp|af-packet] [--queues N] [--sample N]
//!   [--sink IF [--sink-netns NS] [--check]] [--attack KIND [--attacker N]]
//!   [--aftr ADDR6] [--b4-first ADDR6] [--b4-shift BITS] [--inner-src ADDR] [--inner-srcs N]
//!   [--server ADDR] [--server-port PORT] [--pool PREFIX] [--src-mac MAC] [--dst-mac MAC]
//! `--size` is the IPv4-side frame on the wire with FCS (64: the smallest; softwire
//! frames are 40 bytes more). `--to` (out2in) names the mapped address and ports.
//! `--check` checks kept frames as translated by the AFTR. The addresses default to the
//! benchmarks' lab; with them it can be aimed at any AFTR (bench/README.md lists every
//! option and its default).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;

use bench::attack::{Aim, Attack, AttackFrames};
use bench::generator::{self, Addresses, Direction, Io, L4, Mix, Plan, Traffic};
use bench::measure::{arg, known_options, percentiles};
use bench::tap::{self, Check};
use dataplane::config::Ipv4Prefix;

const USAGE: &str = "usage: dslite-gen --iface IF [--netns NS] [--dir in2out|out2in] [--size BYTES] [--flows N] \
[--b4s N] [--mix udp=70,tcp=25,icmp=5] [--new-flows] [--to ADDR:FIRST-LAST] [--rate PPS] [--seconds S] [--count N] \
[--io af-xdp|af-packet] [--queues N] [--sample N] [--sink IF [--sink-netns NS] [--check]] \
[--aftr ADDR6] [--b4-first ADDR6] [--b4-shift BITS] [--inner-src ADDR] [--inner-srcs N] [--server ADDR] \
[--server-port PORT] [--pool PREFIX] [--src-mac MAC] [--dst-mac MAC] \
[--attack frag-softwire|frag-internet|session-flood|ptb|malformed-softwire|malformed-internet [--attacker N]]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let o = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dslite-gen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dslite-gen: {e}");
            ExitCode::from(1)
        }
    }
}

/// `ADDR:FIRST-LAST`.
fn parse_to(s: &str) -> Result<(u32, u16, u16), String> {
    let bad = || format!("--to {s:?}: expected ADDR:FIRST-LAST");
    let (a, ports) = s.split_once(':').ok_or_else(bad)?;
    let (lo, hi) = ports.split_once('-').ok_or_else(bad)?;
    let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let (lo, hi): (u16, u16) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
    if lo > hi {
        return Err(bad());
    }
    Ok((u32::from(a), lo, hi))
}

/// `aa:bb:cc:dd:ee:ff`.
fn parse_mac(name: &str, s: &str) -> Result<[u8; 6], String> {
    let bytes: Vec<u8> = s.split(':').filter_map(|b| u8::from_str_radix(b, 16).ok().filter(|_| b.len() == 2)).collect();
    bytes.try_into().map_err(|_| format!("{name} {s:?}: not a MAC address (aa:bb:cc:dd:ee:ff)"))
}

/// `A.B.C.D/LEN`.
fn parse_prefix(name: &str, s: &str) -> Result<Ipv4Prefix, String> {
    let bad = || format!("{name} {s:?}: not an IPv4 prefix (A.B.C.D/LEN)");
    let (a, len) = s.split_once('/').ok_or_else(bad)?;
    let (a, len): (Ipv4Addr, u8) = (a.parse().map_err(|_| bad())?, len.parse().map_err(|_| bad())?);
    if len > 32 {
        return Err(bad());
    }
    Ok(Ipv4Prefix { addr: u32::from(a), len })
}

/// The addresses of the traffic: the lab's, but for those the options give.
fn addresses(args: &[String], b4s: u32) -> Result<Addresses, String> {
    let lab = Addresses::default();
    let a = Addresses {
        aftr: arg::<Ipv6Addr>(args, "--aftr")?.map(|a| a.octets()).unwrap_or(lab.aftr),
        b4_first: arg::<Ipv6Addr>(args, "--b4-first")?.map(|a| a.octets()).unwrap_or(lab.b4_first),
        b4_shift: arg(args, "--b4-shift")?.unwrap_or(lab.b4_shift),
        inner_first: arg::<Ipv4Addr>(args, "--inner-src")?.map(u32::from).unwrap_or(lab.inner_first),
        inner_count: arg(args, "--inner-srcs")?.unwrap_or(lab.inner_count),
        server: arg::<Ipv4Addr>(args, "--server")?.map(u32::from).unwrap_or(lab.server),
        server_port: arg(args, "--server-port")?.or(lab.server_port),
        pool: arg::<String>(args, "--pool")?.map(|p| parse_prefix("--pool", &p)).transpose()?.unwrap_or(lab.pool),
        src_mac: arg::<String>(args, "--src-mac")?
            .map(|m| parse_mac("--src-mac", &m))
            .transpose()?
            .unwrap_or(lab.src_mac),
        dst_mac: arg::<String>(args, "--dst-mac")?
            .map(|m| parse_mac("--dst-mac", &m))
            .transpose()?
            .unwrap_or(lab.dst_mac),
    };
    if a.b4_shift > 96 {
        return Err(format!("--b4-shift {}: 0 to 96 (B4 n is --b4-first + n * 2^BITS)", a.b4_shift));
    }
    a.check(b4s).map_err(|e| format!("--b4-first, --b4-shift, --inner-src, --inner-srcs: {e}"))?;
    Ok(a)
}

/// A run as the command line asks for it.
struct Options {
    iface: String,
    dir: Direction,
    io: Io,
    queues: u32,
    traffic: Traffic,
    plan: Plan,
    netns: Option<String>,
    sink: Option<String>,
    sink_ns: String,
    check: Check,
    /// An attack's frames instead of `traffic`.
    attack: Option<(Attack, AttackFrames)>,
}

const WITH_VALUE: &[&str] = &[
    "--iface",
    "--netns",
    "--dir",
    "--size",
    "--flows",
    "--b4s",
    "--mix",
    "--to",
    "--rate",
    "--seconds",
    "--count",
    "--io",
    "--queues",
    "--sample",
    "--sink",
    "--sink-netns",
    "--aftr",
    "--b4-first",
    "--b4-shift",
    "--inner-src",
    "--inner-srcs",
    "--server",
    "--server-port",
    "--pool",
    "--src-mac",
    "--dst-mac",
    "--attack",
    "--attacker",
];

fn options(args: &[String]) -> Result<Options, String> {
    known_options(args, WITH_VALUE, &["--new-flows", "--check"])?;
    let iface: String = arg(args, "--iface")?.ok_or("--iface is required")?;
    let dir = match arg::<String>(args, "--dir")?.as_deref() {
        None | Some("in2out") => Direction::In2Out,
        Some("out2in") => Direction::Out2In,
        Some(d) => return Err(format!("--dir {d:?}: in2out or out2in")),
    };
    let size: usize = arg(args, "--size")?.unwrap_or(64);
    if !(64..=1518).contains(&size) {
        return Err(format!("--size {size}: 64 to 1518"));
    }
    let flows: usize = arg(args, "--flows")?.unwrap_or(1024);
    let b4s: u32 = arg(args, "--b4s")?.unwrap_or(64);
    if flows == 0 || b4s == 0 {
        return Err("--flows and --b4s: 1 or more".into());
    }
    let mix = match arg::<String>(args, "--mix")? {
        Some(m) => Mix::parse(&m)?,
        None => Mix::UDP,
    };
    let io = match arg::<String>(args, "--io")?.as_deref() {
        None | Some("af-xdp") => Io::AfXdp,
        Some("af-packet") => Io::AfPacket,
        Some(o) => return Err(format!("--io {o:?}: af-xdp or af-packet")),
    };
    let queues: u32 = arg(args, "--queues")?.unwrap_or(1);
    if queues == 0 {
        return Err("--queues: 1 or more".into());
    }
    let a = addresses(args, b4s)?;
    let traffic = match dir {
        Direction::In2Out if args.iter().any(|a| a == "--new-flows") => Traffic::new_flows(&a, b4s, size),
        Direction::In2Out => Traffic::softwire(&a, flows, b4s, mix, size, queues),
        Direction::Out2In => {
            let (addr, lo, hi) = parse_to(&arg::<String>(args, "--to")?.ok_or("out2in needs --to ADDR:FIRST-LAST")?)?;
            let mapped: Vec<(L4, u32, u16)> = (lo..=hi).enumerate().map(|(i, p)| (mix.pick(i), addr, p)).collect();
            Traffic::inbound(&a, &mapped, size, queues)
        }
    };
    let plan = Plan {
        rate: arg(args, "--rate")?,
        secs: arg(args, "--seconds")?.unwrap_or(10.0),
        count: arg(args, "--count")?.unwrap_or(u64::MAX),
        sample_every: arg(args, "--sample")?.unwrap_or(1024),
    };
    if plan.rate.is_some_and(|r| !(r > 0.0 && r.is_finite()))
        || plan.secs.is_nan()
        || plan.secs <= 0.0
        || plan.sample_every == 0
    {
        return Err("--rate, --seconds and --sample: more than 0".into());
    }
    let netns: Option<String> = arg(args, "--netns")?;
    let sink: Option<String> = arg(args, "--sink")?;
    let sink_ns: String = arg(args, "--sink-netns")?.or_else(|| netns.clone()).unwrap_or_default();
    let check = if args.iter().any(|a| a == "--check") { Check::Translated(dir, a) } else { Check::Mark };
    let attacker: u32 = arg(args, "--attacker")?.unwrap_or(1 << 16);
    if attacker < b4s {
        return Err(format!("--attacker {attacker}: a B4 number from --b4s ({b4s}) up, not a legitimate one"));
    }
    let attack = arg::<String>(args, "--attack")?
        .map(|k| {
            let kind = Attack::parse(&k).map_err(|e| format!("--attack {e}"))?;
            Ok::<_, String>((kind, AttackFrames::new(kind, Aim { addrs: a, attacker, b4s, flows })))
        })
        .transpose()?;
    Ok(Options { iface, dir, io, queues, traffic, plan, netns, sink, sink_ns, check, attack })
}

fn run(o: Options) -> Result<(), String> {
    let Options { iface, dir, io: io_kind, queues, traffic, plan, netns, sink, sink_ns, check: what, mut attack } = o;
    let tap = sink.clone().map(|s| tap::start(sink_ns.clone(), s, false, what)).transpose()?;
    let count_sink = |s: &str| tap::rx_packets(&sink_ns, s);
    let base = sink.as_deref().map(count_sink).transpose()?.unwrap_or(0);
    let pace = plan.rate.map(|r| format!("{:.3} Mpps", r / 1e6)).unwrap_or("as fast as it goes".into());
    match &attack {
        Some((kind, _)) => println!("dslite-gen: attack {} out of {iface} by {io_kind:?}, {pace}", kind.name()),
        None => println!(
            "dslite-gen: {} frames of {} bytes ({} templates) out of {iface} by {io_kind:?}, {pace}",
            dir.name(),
            traffic.templates[0].bytes.len(),
            traffic.templates.len(),
        ),
    }
    let sent = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(ns) = &netns {
                dataplane::io::netns::enter(ns).map_err(|e| format!("netns {ns}: {e}"))?;
            }
            let (mut last_t, mut last_n, mut last_rx) = (0.0, 0u64, base);
            let progress = |t: f64, n: u64| {
                let rate = (n - last_n) as f64 / (t - last_t) / 1e6;
                let mut line = format!("{t:5.1} s  sent {rate:.3} Mpps  (total {n})");
                if let Some(s) = &sink {
                    match count_sink(s) {
                        Ok(rx) => {
                            line +=
                                &format!("  sink {:.3} Mpps", rx.saturating_sub(last_rx) as f64 / (t - last_t) / 1e6);
                            last_rx = rx;
                        }
                        Err(e) => line += &format!("  sink: {e}"),
                    }
                }
                println!("{line}");
                (last_t, last_n) = (t, n);
            };
            match &mut attack {
                Some((_, frames)) => generator::send_frames(&iface, io_kind, queues, frames, &plan, progress),
                None => generator::send(&iface, io_kind, queues, &traffic, &plan, progress),
            }
            .map_err(|e| format!("{iface}: {e}"))
        })
        .join()
        .expect("generator thread")
    })?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    print!("sent {} frames in {:.2} s: {:.3} Mpps", sent.frames, sent.secs, sent.rate() / 1e6);
    if sent.frames == 0 {
        println!();
        return Err(format!("nothing was sent out of {iface}"));
    }
    let (Some(s), Some(tap)) = (&sink, tap) else {
        println!();
        return Ok(());
    };
    let got = count_sink(s)?.saturating_sub(base);
    let mut r = tap.finish();
    let loss = (100.0 * (1.0 - got as f64 / sent.frames as f64)).max(0.0);
    print!("; sink received {got} ({loss:.2}% lost); {} sampled frames, {} failed the check", r.frames, r.bad);
    if r.frames > 0 {
        let p = percentiles(&mut r.latency_ns, &[50.0, 90.0, 99.0, 99.9]);
        print!(
            "; latency p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} us",
            p[0] as f64 / 1e3,
            p[1] as f64 / 1e3,
            p[2] as f64 / 1e3,
            p[3] as f64 / 1e3
        );
    }
    println!();
    if got == 0 {
        return Err(format!("the sink {s} counted nothing"));
    }
    // A run long enough to sample must have kept samples: else there is no latency.
    if r.frames == 0 && sent.frames >= plan.sample_every {
        return Err(format!("the tap on {s} kept no sampled frame: no latency"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::checksum;

    fn opts(line: &str) -> Result<Options, String> {
        options(&line.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    /// The IPv4 header and transport checksums of the packet at `at` are right.
    fn valid(f: &[u8], at: usize) -> bool {
        let p = &f[at..];
        let c = 20 + [6, 16, 2][L4::of_proto(p[9]).unwrap() as usize];
        checksum::checksum(&p[..20]) == 0 && u16::from_be_bytes([p[c], p[c + 1]]) == generator::l4_checksum(p)
    }

    #[test]
    fn the_defaults_are_the_lab() {
        let o = opts("--iface x").unwrap();
        assert_eq!(o.traffic.addrs, Addresses::default());
        let lab = Traffic::softwire(&Addresses::default(), 1024, 64, Mix::UDP, 64, 1);
        assert!(o.traffic.templates.iter().zip(&lab.templates).all(|(a, b)| a.bytes == b.bytes));
    }

    #[test]
    fn the_address_options_change_the_frames_and_keep_them_valid() {
        let o = opts(
            "--iface x --b4s 4 --flows 8 --mix udp=1,tcp=1,icmp=1 --aftr 2001:db8:aaaa::1 --b4-first 2001:db8:bbbb::10 \
             --b4-shift 4 --inner-src 10.1.1.1 --inner-srcs 2 --server 192.0.2.9 --server-port 8080 \
             --src-mac 0a:0b:0c:0d:0e:0f --dst-mac 02:aa:bb:cc:dd:ee",
        )
        .unwrap();
        for (i, t) in o.traffic.templates.iter().enumerate() {
            let f = &t.bytes;
            assert!(valid(f, 54), "flow {i}");
            assert_eq!(&f[0..12], &[2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]);
            // Flow i: B4 i % 4 (2001:db8:bbbb::10 + 16 n), its flow i / 4, host 10.1.1.1 + (i / 4) % 2.
            let b4: Ipv6Addr = format!("2001:db8:bbbb::{:x}", 0x10 + 16 * (i % 4)).parse().unwrap();
            assert_eq!(&f[22..38], &b4.octets(), "flow {i}");
            assert_eq!(&f[38..54], &"2001:db8:aaaa::1".parse::<Ipv6Addr>().unwrap().octets());
            assert_eq!(&f[54 + 12..54 + 20], &[10, 1, 1, 1 + (i / 4 % 2) as u8, 192, 0, 2, 9], "flow {i}");
            if t.l4 != L4::Icmp {
                assert_eq!(&f[76..78], &8080u16.to_be_bytes(), "flow {i}");
            }
        }
        let o =
            opts("--iface x --dir out2in --to 192.0.2.100:5000-5003 --server 192.0.2.9 --server-port 8080").unwrap();
        for t in &o.traffic.templates {
            assert!(valid(&t.bytes, 14));
            assert_eq!(&t.bytes[26..34], &[192, 0, 2, 9, 192, 0, 2, 100]);
            assert_eq!(&t.bytes[34..36], &8080u16.to_be_bytes());
        }
        let o = opts("--iface x --check --pool 100.64.0.0/10").unwrap();
        assert!(
            matches!(o.check, Check::Translated(Direction::In2Out, a) if a.in_pool(0x647f_ffff) && !a.in_pool(0xc633_6401))
        );
    }

    #[test]
    fn attacks_are_chosen_by_name_from_a_b4_that_is_not_legitimate() {
        let o = opts("--iface x --attack ptb --b4s 8 --flows 64 --attacker 100").unwrap();
        assert!(matches!(o.attack, Some((Attack::Ptb, _))));
        assert!(opts("--iface x").unwrap().attack.is_none());
        assert!(opts("--iface x --attack smurf").err().is_some_and(|e| e.contains("--attack")));
        assert!(opts("--iface x --attack ptb --b4s 64 --attacker 3").err().is_some_and(|e| e.contains("--attacker")));
    }

    #[test]
    fn bad_address_options_are_errors() {
        for bad in [
            "--aftr 10.0.0.1",
            "--b4-first 2001:db8::zz",
            "--b4-shift 97",
            "--b4-first ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0 --b4-shift 4",
            "--inner-src 10.0.0",
            "--inner-srcs 0",
            "--inner-src 255.255.255.255 --inner-srcs 2",
            "--server ::1",
            "--server-port 70000",
            "--pool 10.0.0.0",
            "--pool 10.0.0.0/33",
            "--src-mac 02:00:00:00:00",
            "--dst-mac 02:00:00:00:00:0g",
            "--dst-mac 2:0:0:0:0:1",
            "--size 63",
            "--rate 0",
        ] {
            let e = opts(&format!("--iface x {bad}")).err();
            let option = bad.split_whitespace().next().unwrap();
            assert!(e.as_ref().is_some_and(|e| e.contains(option) || e.contains("--b4-first")), "{bad}: {e:?}");
        }
    }
}
