//! End to end over real namespaces and veth pairs: `aftrd` (AF_PACKET rings) between a
//! subscriber namespace and an Internet namespace. Packets are crafted and checked by
//! an independent tool (scapy); the servers are real applications (Python sockets).
//! Needs root and scapy, as CI has (the set-up installs scapy); elsewhere it says so
//! and passes. Everything it creates is removed, even when it fails.

use std::process::{Command, Stdio};

use dataplane::testing::{Lab, is_root, skip, statistic};
use std::time::{Duration, Instant};

fn have_scapy() -> bool {
    Command::new("python3").args(["-c", "import scapy"]).status().map(|s| s.success()).unwrap_or(false)
}

const SERVERS: &str = r#"
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("203.0.113.80", 7))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("203.0.113.80", 80))
t.listen(16)
def tcp():
    while True:
        c, _ = t.accept()
        c.close()
threading.Thread(target=tcp, daemon=True).start()
print("ready", flush=True)
while True:
    data, peer = u.recvfrom(2048)
    u.sendto(data, peer)
"#;

const SUBSCRIBER: &str = r#"
import sys
from scapy.all import *
conf.verb = 0
iface = sys.argv[1]
def outer(p):
    return IPv6 in p and p[IPv6].nh == 4 and p[IPv6].src == "2001:db8::1"
def fresh(p):
    # The checksums the packet should carry, computed by scapy itself.
    c = IP(bytes(p[IP])); del c.chksum
    l4 = c.payload
    if hasattr(l4, "chksum"):
        del l4.chksum
    return IP(bytes(c))
import threading
ready = threading.Event()
sniffer = AsyncSniffer(iface=iface, lfilter=outer, started_callback=ready.set)
sniffer.start()
ready.wait(10)
base = Ether()/IPv6(src="2001:db8:b4::2", dst="2001:db8::1")
sendp(base/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=5000, dport=7)/Raw(b"echo me"), iface=iface)
sendp(base/IP(src="192.168.1.10", dst="203.0.113.80")/TCP(sport=40000, dport=80, flags="S", seq=1000, options=[("MSS", 1460)]), iface=iface)
sendp(base/IP(src="192.168.1.10", dst="203.0.113.80")/ICMP(type=8, id=0x4242, seq=1)/Raw(b"ping"), iface=iface)
time.sleep(2)
pk = sniffer.stop()
for p in pk:
    i = p[IP]
    f = fresh(p)
    ok = i.chksum == f.chksum and (not hasattr(i.payload, "chksum") or i.payload.chksum == f.payload.chksum)
    l4 = i.payload
    if UDP in i:
        print("UDP", i.src, i.dst, i.ttl, l4.sport, l4.dport, bytes(l4.payload).decode(), "checksums", ok)
    elif TCP in i:
        mss = dict(l4.options).get("MSS")
        print("TCP", i.src, i.dst, l4.sport, l4.dport, l4.flags, "mss", mss, "checksums", ok)
    elif ICMP in i:
        print("ICMP", i.src, i.dst, l4.type, l4.id, bytes(l4.payload).decode(), "checksums", ok)
"#;

/// The servers: real sockets in the Internet namespace (UDP echo on 7, TCP on 80).
fn start_servers(lab: &mut Lab) {
    let script = lab.dir.join("servers.py");
    std::fs::write(&script, SERVERS).unwrap();
    let mut servers = lab.exec("inet", &["python3", script.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        std::io::BufReader::new(servers.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    }
    lab.keep(servers);
    assert_eq!(line.trim(), "ready");
}

#[test]
fn udp_tcp_and_icmp_across_aftrd_both_ways_over_af_xdp() {
    udp_tcp_and_icmp_both_ways("e", "af-xdp");
}

#[test]
fn udp_tcp_and_icmp_across_aftrd_both_ways_over_af_packet() {
    udp_tcp_and_icmp_both_ways("ep", "af-packet");
}

/// One exchange of each protocol through `aftrd` with `packet-io IO`.
fn udp_tcp_and_icmp_both_ways(name: &str, io: &str) {
    if !is_root() || !have_scapy() {
        return skip("needs root and scapy");
    }
    let mut lab = Lab::up(name, std::path::Path::new(".."));
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());
    let config = format!(
        "sysname e2e\nslot 1\n worker-cores 0\n interface softwire {p}sw\n interface internet {p}in\n packet-io {io}\nslot 2\n worker-cores 1\n\
         service-location 1\n location slot 1 backup slot 2\nservice-instance-group g\n service-location 1\n\
         ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n",
        p = prefix
    );
    let cfg = dir.join("aftr.conf");
    std::fs::write(&cfg, config).unwrap();
    let sock = dir.join("slot1.sock");

    start_servers(&mut lab);

    let aftrd = lab
        .exec(
            "aftr",
            &[
                env!("CARGO_BIN_EXE_aftrd"),
                "--config",
                cfg.to_str().unwrap(),
                "--slot",
                "1",
                "--socket",
                sock.to_str().unwrap(),
            ],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.keep(aftrd);
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "aftrd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let sub = dir.join("subscriber.py");
    std::fs::write(&sub, SUBSCRIBER).unwrap();
    let out = lab.exec("sub", &["python3", sub.to_str().unwrap(), &format!("{prefix}b4")]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The UDP echo came back to the host, through the softwire, checksums right, the
    // TTL decremented once by the AFTR (the server sends 64).
    assert!(text.contains("UDP 203.0.113.80 192.168.1.10 63 7 5000 echo me checksums True"), "{text}");
    // The SYN reached the real listener, the SYN-ACK came back with the MSS clamped
    // (tunnel MTU 1500 - 80).
    assert!(text.contains("TCP 203.0.113.80 192.168.1.10 80 40000 SA mss 1420 checksums True"), "{text}");
    // The ping was answered by the Internet host's kernel, and the reply translated back.
    assert!(text.contains("ICMP 203.0.113.80 192.168.1.10 0 16962 ping checksums True"), "{text}");

    let ctl = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_aftrctl")).arg("--socket").arg(&sock).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let sessions = ctl(&["display", "sessions", "b4", "2001:db8:b4::2"]);
    assert!(sessions.contains("total 3 sessions"), "{sessions}");
    let stats = ctl(&["display", "statistics"]);
    let value = |name: &str| statistic(&stats, name);
    assert!(value("in2out") >= 3 && value("out2in") >= 3, "{stats}");
    assert_eq!(value("drop_no_next_hop"), 0, "{stats}");
    if io == "af-xdp" {
        // Our XDP program carried the traffic: the three packets each way, and nothing
        // else of the kernel's (neighbour discovery, ARP) was taken from it.
        assert!(stats.contains("AF_XDP (native XDP"), "{stats}");
        assert!(value("xdp_redirected") >= 6, "{stats}");
        assert!(value("xdp_passed_not_ours") > 0, "{stats}");
    } else {
        assert!(stats.contains("AF_PACKET rings"), "{stats}");
        assert!(!stats.contains("xdp_redirected"), "{stats}");
    }
    drop(lab);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains(&prefix), "namespaces removed");
}

const CRAFTED: &str = r#"
import sys, time
from scapy.all import *
conf.verb = 0
side, iface = sys.argv[1], sys.argv[2]
import threading
def start(f):
    ready = threading.Event()
    s = AsyncSniffer(iface=iface, lfilter=f, started_callback=ready.set)
    s.start()
    ready.wait(10)
    return s
def inner(p):
    return IP(bytes(p[IPv6].payload))
EP = "2001:db8::1"
if side == "sub-bad":
    base = Ether()/IPv6(dst=EP)
    # Unauthorised B4, inner source outside policy, then malformed frames of all kinds.
    sendp(Ether()/IPv6(src="2001:db8:66::1", dst=EP)/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=1, dport=7), iface=iface)
    sendp(Ether()/IPv6(src="2001:db8:b4::2", dst=EP)/IP(src="8.8.8.8", dst="203.0.113.80")/UDP(sport=1, dport=7), iface=iface)
    good = bytes(Ether()/IPv6(src="2001:db8:b4::2", dst=EP)/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=6000, dport=7)/Raw(b"x" * 40))
    frames = [Raw(good[:n]) for n in range(1, len(good))]
    bad = bytearray(good); bad[14 + 40 + 10] ^= 0xff
    frames.append(Raw(bytes(bad)))
    import random
    random.seed(7)
    for _ in range(300):
        b = bytearray(good)
        for _ in range(random.randint(1, 4)):
            b[random.randrange(len(b))] = random.randrange(256)
        frames.append(Raw(bytes(b)))
    sendp(frames, iface=iface)
    print("sent")
elif side == "sub-flow":
    s = start(lambda p: IPv6 in p and p[IPv6].nh == 4 and p[IPv6].src == EP)
    sendp(Ether()/IPv6(src="2001:db8:b4::2", dst=EP)/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=5000, dport=7)/Raw(b"still forwarding"), iface=iface)
    time.sleep(1.5)
    for p in s.stop():
        i = inner(p)
        if UDP in i: print("UDP", i.dst, i[UDP].dport, bytes(i[UDP].payload).decode())
elif side == "sub-hairpin":
    # B4 ::3 opens a mapping; the test reads it from aftrctl, then ::2 sends to it.
    ext, port = sys.argv[3], int(sys.argv[4])
    s = start(lambda p: IPv6 in p and p[IPv6].nh == 4 and p[IPv6].dst == "2001:db8:b4::3")
    sendp(Ether()/IPv6(src="2001:db8:b4::2", dst=EP)/IP(src="192.168.1.10", dst=ext)/UDP(sport=5001, dport=port)/Raw(b"hairpin"), iface=iface)
    time.sleep(1.5)
    for p in s.stop():
        i = inner(p)
        if UDP in i:
            c = IP(bytes(i)); del c.chksum; del c[UDP].chksum; c = IP(bytes(c))
            print("HAIRPIN", i.src, i.dst, i[UDP].dport, bytes(i[UDP].payload).decode(), c.chksum == i.chksum and c[UDP].chksum == i[UDP].chksum)
elif side == "sub-open":
    sendp(Ether()/IPv6(src="2001:db8:b4::3", dst=EP)/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=5002, dport=9)/Raw(b"open"), iface=iface)
    print("opened")
elif side == "sub-frags":
    s = start(lambda p: IPv6 in p and p[IPv6].nh == 4 and p[IPv6].src == EP)
    print("ready", flush=True)
    # Until both fragments came (or a time limit).
    t = time.time()
    while time.time() - t < 10 and sum(1 for p in s.results or [] if IP(bytes(p[IPv6].payload)).flags.MF or IP(bytes(p[IPv6].payload)).frag) < 2:
        time.sleep(0.1)
    time.sleep(0.3)
    got = []
    for p in s.stop():
        i = inner(p)
        if i.flags.MF or i.frag > 0: got.append(i)
    data = b"".join(bytes(i.payload) for i in sorted(got, key=lambda i: i.frag))
    print("FRAGS", len(got), len(data), data[8:].count(b"F"))
elif side == "inet-frags":
    ext, port = sys.argv[3], int(sys.argv[4])
    pk = IP(src="203.0.113.80", dst=ext, id=777, flags=0)/UDP(sport=7, dport=port)/Raw(b"F" * 1000)
    frags = fragment(pk, fragsize=512)
    for f in reversed(frags):
        sendp(Ether()/f, iface=iface)
    print("sent", len(frags))
elif side == "inet-big":
    ext, port = sys.argv[3], int(sys.argv[4])
    s = start(lambda p: ICMP in p and p[ICMP].type == 3)
    sendp(Ether()/IP(src="203.0.113.80", dst=ext, flags="DF")/UDP(sport=7, dport=port)/Raw(b"B" * 1400), iface=iface)
    time.sleep(1.5)
    for p in s.stop():
        print("ICMP", p[IP].src, p[ICMP].type, p[ICMP].code, p[ICMP].nexthopmtu)
"#;

#[test]
fn crafted_cases_against_the_running_aftrd() {
    if !is_root() || !have_scapy() {
        return skip("needs root and scapy");
    }
    let mut lab = Lab::up("c", std::path::Path::new(".."));
    let (p, dir) = (lab.prefix.clone(), lab.dir.clone());
    let cfg = dir.join("aftr.conf");
    std::fs::write(
        &cfg,
        format!(
            "slot 1\n worker-cores 0\n interface softwire {p}sw\n interface internet {p}in\nslot 2\n worker-cores 1\n\
             service-location 1\n location slot 1 backup slot 2\nservice-instance-group g\n service-location 1\n\
             ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
             ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n tunnel-mtu 1300\n"
        ),
    )
    .unwrap();
    let sock = dir.join("slot1.sock");
    let d = lab
        .exec(
            "aftr",
            &[
                env!("CARGO_BIN_EXE_aftrd"),
                "--config",
                cfg.to_str().unwrap(),
                "--slot",
                "1",
                "--socket",
                sock.to_str().unwrap(),
            ],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.keep(d);
    start_servers(&mut lab);
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "aftrd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let script = dir.join("crafted.py");
    std::fs::write(&script, CRAFTED).unwrap();
    let (sub_if, inet_if) = (lab.name("b4"), lab.name("srv"));
    let py = |lab: &Lab, ns: &str, args: &[&str]| -> String {
        let o = lab.exec(ns, &[&["python3", script.to_str().unwrap()], args].concat()).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let ctl = |args: &[&str]| -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_aftrctl")).arg("--socket").arg(&sock).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let counter = |name: &str| statistic(&ctl(&["display", "statistics"]), name);

    // Bad input: counted drops, and aftrd keeps forwarding.
    assert_eq!(py(&lab, "sub", &["sub-bad", &sub_if]).trim(), "sent");
    std::thread::sleep(Duration::from_millis(500));
    // (The random mutations add more of these: at least the crafted one each.)
    assert!(counter("drop_b4_not_authorised") >= 1);
    assert!(counter("drop_inner_source_policy") >= 1);
    assert!(counter("drop_malformed_ipv6") + counter("drop_malformed_ipv4") + counter("drop_malformed_l2") > 20);
    assert!(counter("drop_bad_ipv4_checksum") >= 1);
    let out = py(&lab, "sub", &["sub-flow", &sub_if]);
    assert!(out.contains("UDP 192.168.1.10 5000 still forwarding"), "{out}");

    // The mapping of B4 ::2, UDP 5000 (the echo reply above used it).
    let sessions = ctl(&["display", "sessions", "b4", "2001:db8:b4::2"]);
    let ext = sessions
        .lines()
        .find(|l| l.contains("192.168.1.10:5000"))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("session of port 5000")
        .to_string();
    let (ext_addr, ext_port) = ext.split_once(':').unwrap();

    // Inbound IPv4 fragments, last first: both reach the B4, whole.
    let mut sniff = lab
        .exec("sub", &["python3", script.to_str().unwrap(), "sub-frags", &sub_if])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Sent only once the sniffer runs.
    let mut out = std::io::BufReader::new(sniff.stdout.take().unwrap());
    {
        use std::io::BufRead;
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
    }
    assert!(py(&lab, "inet", &["inet-frags", &inet_if, ext_addr, ext_port]).starts_with("sent"));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    sniff.wait().unwrap();
    assert_eq!(rest.trim(), "FRAGS 2 1008 1000");

    // DF and too big for the 1300-byte tunnel: ICMPv4 3/4 with MTU 1260 to the sender.
    let out = py(&lab, "inet", &["inet-big", &inet_if, ext_addr, ext_port]);
    assert!(out.contains(&format!("ICMP {ext_addr} 3 4 1260")), "{out}");
    assert_eq!(counter("frag_needed_sent"), 1);

    // Hairpinning: B4 ::3 opens a mapping, B4 ::2 sends to its external address.
    assert_eq!(py(&lab, "sub", &["sub-open", &sub_if]).trim(), "opened");
    std::thread::sleep(Duration::from_millis(300));
    let s3 = ctl(&["display", "sessions", "b4", "2001:db8:b4::3"]);
    let ext3 = s3
        .lines()
        .find(|l| l.contains(":5002"))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("session of ::3")
        .to_string();
    let (a3, p3) = ext3.split_once(':').unwrap();
    let out = py(&lab, "sub", &["sub-hairpin", &sub_if, a3, p3]);
    assert!(out.contains(&format!("HAIRPIN {ext_addr} 192.168.1.10 5002 hairpin True")), "{out}");
    assert_eq!(counter("hairpin"), 1);
}
