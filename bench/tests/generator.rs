//! The packet generator over a real veth pair, checked by an independent tool: tcpdump
//! records what `dslite-gen` sends (AF_XDP and AF_PACKET, both directions, a mix of
//! UDP, TCP and ICMP) and scapy then reads the capture and recomputes every checksum;
//! the generator's own tap (a classic BPF filter on the sample flag) must keep exactly
//! the sampled frames. Recording first and analysing afterwards (decision 0009): live
//! dissection in scapy missed some of the 300 frames on a 2-vCPU machine. Needs root,
//! scapy and tcpdump, as CI has; elsewhere it says so and passes. The namespaces and
//! the capture are removed even when it fails.

use std::process::Command;
use std::time::Duration;

use dataplane::testing::{Capture, Netns, can_capture, skip};

/// Reads the capture (argument 1) and says what the generator's frames (they end with
/// its mark) carried in direction argument 2.
const ANALYSE: &str = r#"
import sys
from scapy.all import *
conf.verb = 0
path, direction = sys.argv[1], sys.argv[2]
pk = [p for p in rdpcap(path) if bytes(p).endswith(b"AFTRBNCH")]
bad = outer = sampled = 0
kinds = {"UDP": 0, "TCP": 0, "ICMP": 0}
for p in pk:
    raw = bytes(p)
    if direction == "in2out":
        ok = IPv6 in p and p[IPv6].nh == 4 and p[IPv6].dst == "2001:db8::1" and p[IPv6].src.startswith("2001:db8:b400:")
    else:
        ok = IPv6 not in p and p[IP].src == "203.0.113.80" and p[IP].dst == "198.51.100.7"
    outer += bool(ok)
    i = p[IP]
    c = IP(bytes(i)); del c.chksum
    if hasattr(c.payload, "chksum"):
        del c.payload.chksum
    f = IP(bytes(c))
    if i.chksum != f.chksum or i.payload.chksum != f.payload.chksum:
        bad += 1
    for k in kinds:
        if i.haslayer(k):
            kinds[k] += 1
    sampled += raw[-18] == 1
print("frames", len(pk), "outer", outer, "bad", bad, "sampled", sampled, "udp", kinds["UDP"], "tcp", kinds["TCP"], "icmp", kinds["ICMP"], flush=True)
"#;

/// `word N` in `text`.
fn figure(text: &str, word: &str) -> Option<u64> {
    let mut it = text.split(|c: char| c.is_whitespace() || c == ';' || c == ',');
    while let Some(w) = it.next() {
        if w == word {
            return it.next().and_then(|v| v.parse().ok());
        }
    }
    None
}

fn run(io: &str, direction: &str) {
    let tag = format!("{}{}", &io[3..4], &direction[..2]);
    let (a, b) = (Netns::new(&format!("gent-a-{tag}")), Netns::new(&format!("gent-b-{tag}")));
    a.ip(&["link", "add", "gen0", "type", "veth", "peer", "name", "sink0", "netns", &b.0]);
    a.ip(&["link", "set", "gen0", "up"]);
    b.ip(&["link", "set", "sink0", "up"]);
    let n = 300;
    // Exactly the generator's frames: on these links the kernel sends only IPv6 of its
    // own (ND, MLD), never IPv4 nor IPv4 in IPv6.
    let filter = if direction == "in2out" { "ip6 proto 4" } else { "ip" };
    let pcap = std::env::temp_dir().join(format!("aftr-gent-{tag}-{}.pcap", std::process::id()));
    let capture = Capture::start(&b.0, "sink0", filter, &pcap);
    let sent = Command::new(env!("CARGO_BIN_EXE_dslite-gen"))
        .args(["--iface", "gen0", "--netns", &a.0, "--dir", direction, "--io", io, "--count", &n.to_string()])
        .args(["--rate", "5000", "--mix", "udp=1,tcp=1,icmp=1", "--sample", "3", "--flows", "30", "--b4s", "7"])
        .args(["--to", "198.51.100.7:2000-2029", "--sink", "sink0", "--sink-netns", &b.0])
        .output()
        .expect("dslite-gen");
    // Every frame is on its way once the generator has ended: wait for them (or 10 s),
    // then read them.
    let got = capture.wait_for(n as usize, Duration::from_secs(10));
    let pcap = capture.stop();
    let read = Command::new("python3").args(["-c", ANALYSE]).arg(&pcap).arg(direction).output().expect("python3");
    let _ = std::fs::remove_file(&pcap);
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.status.success(), "dslite-gen: {said}{}", String::from_utf8_lossy(&sent.stderr));
    let seen = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "{io} {direction}: {got} frames captured: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let f = |w| figure(&seen, w).unwrap_or_else(|| panic!("{w} in {seen:?}"));
    assert_eq!((f("frames"), f("outer"), f("bad")), (n, n, 0), "{io} {direction}: {got} captured: {seen}");
    assert_eq!((f("udp"), f("tcp"), f("icmp"), f("sampled")), (100, 100, 100, 100), "{io} {direction}: {seen}");
    // The generator's tap kept the sampled frames and no others.
    assert_eq!(figure(&said, "sent"), Some(n), "{said}");
    assert!(said.contains(&format!("; {} sampled frames", n / 3)), "{said}");
}

#[test]
fn generator_frames_are_valid_on_the_wire() {
    if let Err(why) = can_capture() {
        return skip(why);
    }
    for io in ["af-xdp", "af-packet"] {
        for direction in ["in2out", "out2in"] {
            run(io, direction);
        }
    }
}
