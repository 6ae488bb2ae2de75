//! The packet generator over a real veth pair, checked by an independent tool: scapy
//! captures what `dslite-gen` sends (AF_XDP and AF_PACKET, both directions, a mix of
//! UDP, TCP and ICMP) and recomputes every checksum; the generator's own tap (a classic
//! BPF filter on the sample flag) must keep exactly the sampled frames. Needs root and
//! scapy, as CI has; elsewhere it says so and passes. The namespaces are removed even
//! when it fails.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use dataplane::testing::{Netns, is_root, skip};

const CAPTURE: &str = r#"
import sys, threading
from scapy.all import *
conf.verb = 0
iface, n, direction = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ready = threading.Event()
s = AsyncSniffer(iface=iface, count=n, started_callback=ready.set, lfilter=lambda p: bytes(p).endswith(b"AFTRBNCH"))
s.start()
ready.wait(10)
print("listening", flush=True)
s.join(timeout=30)
pk = s.results or []
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

fn have_scapy() -> bool {
    Command::new("python3").args(["-c", "import scapy"]).status().map(|s| s.success()).unwrap_or(false)
}

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
    let mut capture = Command::new("ip")
        .args(["netns", "exec", &b.0, "python3", "-c", CAPTURE, "sink0", &n.to_string(), direction])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(capture.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("capture starts");
    assert_eq!(line.trim(), "listening");
    let sent = Command::new(env!("CARGO_BIN_EXE_dslite-gen"))
        .args(["--iface", "gen0", "--netns", &a.0, "--dir", direction, "--io", io, "--count", &n.to_string()])
        .args(["--rate", "5000", "--mix", "udp=1,tcp=1,icmp=1", "--sample", "3", "--flows", "30", "--b4s", "7"])
        .args(["--to", "198.51.100.7:2000-2029", "--sink", "sink0", "--sink-netns", &b.0])
        .output()
        .expect("dslite-gen");
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.status.success(), "dslite-gen: {said}{}", String::from_utf8_lossy(&sent.stderr));
    let mut seen = String::new();
    out.read_line(&mut seen).expect("capture result");
    let _ = capture.wait();
    let f = |w| figure(&seen, w).unwrap_or_else(|| panic!("{w} in {seen:?}"));
    assert_eq!((f("frames"), f("outer"), f("bad")), (n, n, 0), "{io} {direction}: {seen}");
    assert_eq!((f("udp"), f("tcp"), f("icmp"), f("sampled")), (100, 100, 100, 100), "{io} {direction}: {seen}");
    // The generator's tap kept the sampled frames and no others.
    assert_eq!(figure(&said, "sent"), Some(n), "{said}");
    assert!(said.contains(&format!("; {} sampled frames", n / 3)), "{said}");
}

#[test]
fn generator_frames_are_valid_on_the_wire() {
    if !is_root() || !have_scapy() {
        return skip("needs root and scapy");
    }
    for io in ["af-xdp", "af-packet"] {
        for direction in ["in2out", "out2in"] {
            run(io, direction);
        }
    }
}
