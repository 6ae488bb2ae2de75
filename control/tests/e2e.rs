//! End to end over real namespaces and veth pairs: `aftrd` (AF_XDP or AF_PACKET rings)
//! between a subscriber namespace and an Internet namespace. Packets are crafted by an
//! independent tool (scapy); what comes back is recorded by tcpdump and then read and
//! checked by scapy (record first, analyse afterwards: decision 0009); the servers are
//! real applications (Python sockets). Needs root, scapy and tcpdump, as CI has (the
//! set-up installs them); elsewhere it says so and passes. Everything it creates is
//! removed, even when it fails.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dataplane::testing::{Capture, Lab, can_capture, skip, statistic};

mod common;

/// Records in namespace `ns` on `iface` the frames matching `filter` that `send` brings
/// about: waits for `n` of them (10 s at most), then `linger` longer where a frame too
/// many would matter; returns the capture file (in the lab's directory).
fn capture(lab: &Lab, ns: &str, iface: &str, filter: &str, n: usize, linger: Duration, send: impl FnOnce()) -> PathBuf {
    static CAPTURES: AtomicUsize = AtomicUsize::new(0);
    let path = lab.dir.join(format!("capture-{}.pcap", CAPTURES.fetch_add(1, Ordering::Relaxed)));
    let cap = Capture::start(&lab.name(ns), iface, filter, &path);
    send();
    let got = cap.wait_for(n, Duration::from_secs(10));
    if got >= n && !linger.is_zero() {
        cap.wait_for(n + 1, linger);
    }
    cap.stop()
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

/// `send IFACE`: one packet of each protocol from the B4 through the softwire;
/// `read PCAP`: what came back.
const SUBSCRIBER: &str = r#"
import sys
from scapy.all import *
conf.verb = 0
side = sys.argv[1]
if side == "send":
    iface = sys.argv[2]
    base = Ether()/IPv6(src="2001:db8:b4::2", dst="2001:db8::1")
    sendp(base/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=5000, dport=7)/Raw(b"echo me"), iface=iface)
    sendp(base/IP(src="192.168.1.10", dst="203.0.113.80")/TCP(sport=40000, dport=80, flags="S", seq=1000, options=[("MSS", 1460)]), iface=iface)
    sendp(base/IP(src="192.168.1.10", dst="203.0.113.80")/ICMP(type=8, id=0x4242, seq=1)/Raw(b"ping"), iface=iface)
    sys.exit()
def fresh(p):
    # The checksums the packet should carry, computed by scapy itself.
    c = IP(bytes(p[IP])); del c.chksum
    l4 = c.payload
    if hasattr(l4, "chksum"):
        del l4.chksum
    return IP(bytes(c))
for p in rdpcap(sys.argv[2]):
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
    common::spawn_ready(lab, "inet", &["python3", script.to_str().unwrap()]);
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
    if let Err(why) = can_capture() {
        return skip(why);
    }
    let mut lab = Lab::up(name, std::path::Path::new(".."));
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());
    let config = format!(
        "sysname e2e\nslot 1\n worker-cores 0\n interface softwire {p}sw\n interface internet {p}in\n packet-io {io}\nslot 2\n worker-cores 1\n\
         service-location 1\n location slot 1\nservice-instance-group g\n service-location 1\n\
         ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n",
        p = prefix
    );
    let cfg = dir.join("aftr.conf");
    std::fs::write(&cfg, config).unwrap();
    let sock = dir.join("slot1.sock");

    start_servers(&mut lab);

    common::start_aftrd(&mut lab, &cfg, &sock);

    let sub = dir.join("subscriber.py");
    std::fs::write(&sub, SUBSCRIBER).unwrap();
    let python = |args: &[&str]| {
        let out = lab.exec("sub", &[&["python3", sub.to_str().unwrap()], args].concat()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let b4 = format!("{prefix}b4");
    // The three replies: IPv4 in IPv6 from the AFTR's endpoint.
    let pcap = capture(&lab, "sub", &b4, "ip6 proto 4 and src host 2001:db8::1", 3, Duration::ZERO, || {
        python(&["send", &b4]);
    });
    let text = python(&["read", pcap.to_str().unwrap()]);

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
        json_against_text_and_reset(&ctl);
    }
    drop(lab);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains(&prefix), "namespaces removed");
}

/// The JSON form of the displays against their text, field by field, on the board of
/// the three sessions of subscriber 2001:db8:b4::2; then `reset statistics` and `reset
/// session` (by port, then by B4), each seen in the displays.
fn json_against_text_and_reset(ctl: &dyn Fn(&[&str]) -> String) {
    let json = |args: &[&str]| -> serde_json::Value {
        let text = ctl(&[&["--json"], args].concat());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    };
    // Sessions: each JSON record is a line of the text.
    let text = ctl(&["display", "sessions", "b4", "2001:db8:b4::2"]);
    let j = json(&["display", "sessions", "b4", "2001:db8:b4::2"]);
    assert_eq!(j["total"], 3, "{j}");
    let sessions = j["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    let mut protocols: Vec<&str> = Vec::new();
    for s in sessions {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("{}:{} ", s["inside_address"].as_str().unwrap(), s["inside_port"])))
            .unwrap_or_else(|| panic!("{s} is not in the text: {text}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], s["b4"].as_str().unwrap());
        assert_eq!(words[2], format!("{}:{}", s["external_address"].as_str().unwrap(), s["external_port"]));
        assert_eq!(words[3], s["protocol"].as_str().unwrap());
        assert!(s["age_s"].as_u64().unwrap() < 60 && s["idle_s"].as_u64().unwrap() <= s["age_s"].as_u64().unwrap());
        protocols.push(s["protocol"].as_str().unwrap());
    }
    protocols.sort();
    assert_eq!(protocols, ["icmp", "tcp", "udp"]);
    // Statistics: every counter of the table, total and per worker, between the JSON
    // read before and the one read after (the kernel's own packets go on counting); the
    // JSON has every counter.
    let before = json(&["display", "statistics"]);
    let text = ctl(&["display", "statistics"]);
    let j = json(&["display", "statistics"]);
    assert!(text.starts_with(&format!("packet-io: {}", j["packet_io"].as_str().unwrap())), "{text}");
    let counters = j["counters"].as_object().unwrap();
    assert_eq!(counters.len(), dataplane::counters::COUNTERS);
    let mut rows = 0;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let Some(after) = w.first().and_then(|n| counters.get(*n)) else { continue };
        let was = &before["counters"][w[0]];
        let values: Vec<u64> = w[1..].iter().map(|v| v.parse().unwrap()).collect();
        let json_values = |c: &serde_json::Value| -> Vec<u64> {
            let per = c["per_worker"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap());
            std::iter::once(c["total"].as_u64().unwrap()).chain(per).collect()
        };
        let (lo, hi) = (json_values(was), json_values(after));
        assert_eq!(values.len(), hi.len(), "{line}");
        for i in 0..values.len() {
            assert!(lo[i] <= values[i] && values[i] <= hi[i], "{line}: {lo:?} {hi:?}");
        }
        assert_eq!(hi[0], hi[1..].iter().sum::<u64>(), "{line}");
        rows += 1;
    }
    assert!(rows >= 30, "{text}");
    assert!(counters["in2out"]["total"].as_u64().unwrap() >= 3, "{j}");
    // Subscribers and the pool's use.
    let j = json(&["display", "subscribers"]);
    assert_eq!(j["total"], 1, "{j}");
    let sub = &j["subscribers"][0];
    assert_eq!(sub["b4"], "2001:db8:b4::2");
    assert_eq!(sub["sessions"], 3);
    let ext = sub["external_address"].as_str().unwrap();
    assert!(ctl(&["display", "subscribers"]).contains(ext));
    let j = json(&["display", "ds-lite", "address-usage"]);
    let loc = &j["instances"][0]["locations"][0];
    assert_eq!(j["instances"][0]["name"], "d", "{j}");
    assert_eq!(loc["addresses"], 256, "{j}");
    assert_eq!(loc["addresses_in_use"], 1, "{j}");
    assert_eq!(loc["subscribers"], 1, "{j}");
    assert_eq!(loc["port_blocks_in_use"], sub["port_blocks"].as_array().unwrap().len(), "{j}");
    assert_eq!(loc["top_subscribers"][0]["b4"], "2001:db8:b4::2", "{j}");
    assert_eq!(loc["top_subscribers"][0]["sessions"], 3, "{j}");
    let text = ctl(&["dis", "ds-lite", "address-usage"]);
    assert!(text.contains("addresses            : 256 (1 in use)"), "{text}");
    // reset statistics: the displays count again from zero.
    assert!(ctl(&["reset", "statistics"]).contains("start again from zero"));
    let j = json(&["display", "statistics"]);
    assert_eq!(j["counters"]["in2out"]["total"], 0, "{j}");
    assert_eq!(j["counters"]["sessions_created"]["total"], 0, "{j}");
    // reset session: those of one external port, then the rest of the B4's. Each
    // protocol draws its ports on its own, so another session may share the port (about
    // one run in 250): every session of that port ends.
    let port = &sessions[0]["external_port"];
    let of_port = sessions.iter().filter(|s| s["external_port"] == *port).count();
    let ended = ctl(&["reset", "session", "b4", "2001:db8:b4::2", "port", &port.to_string()]);
    assert!(ended.contains(&format!("Info: {of_port} sessions ended")), "{ended}");
    assert_eq!(json(&["display", "sessions"])["total"], 3 - of_port);
    let ended = ctl(&["res", "sess", "b4", "2001:db8:b4::2"]);
    assert!(ended.contains(&format!("Info: {} sessions ended", 3 - of_port)), "{ended}");
    assert_eq!(json(&["display", "sessions"])["total"], 0);
    assert_eq!(json(&["display", "subscribers"])["total"], 0, "a subscriber without sessions goes");
}

/// `SIDE IFACE ...` sends from the subscriber (`sub-*`) or the Internet (`inet-*`);
/// `read-* PCAP` reads what a capture recorded.
const CRAFTED: &str = r#"
import sys
from scapy.all import *
conf.verb = 0
side, iface = sys.argv[1], sys.argv[2]
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
    sendp(Ether()/IPv6(src="2001:db8:b4::2", dst=EP)/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=5000, dport=7)/Raw(b"still forwarding"), iface=iface)
elif side == "read-flow":
    for p in rdpcap(sys.argv[2]):
        i = inner(p)
        if UDP in i: print("UDP", i.dst, i[UDP].dport, bytes(i[UDP].payload).decode())
elif side == "sub-hairpin":
    # B4 ::3 opens a mapping; the test reads it from aftrctl, then ::2 sends to it.
    ext, port = sys.argv[3], int(sys.argv[4])
    sendp(Ether()/IPv6(src="2001:db8:b4::2", dst=EP)/IP(src="192.168.1.10", dst=ext)/UDP(sport=5001, dport=port)/Raw(b"hairpin"), iface=iface)
elif side == "read-hairpin":
    for p in rdpcap(sys.argv[2]):
        i = inner(p)
        if UDP in i:
            c = IP(bytes(i)); del c.chksum; del c[UDP].chksum; c = IP(bytes(c))
            print("HAIRPIN", i.src, i.dst, i[UDP].dport, bytes(i[UDP].payload).decode(), c.chksum == i.chksum and c[UDP].chksum == i[UDP].chksum)
elif side == "sub-open":
    sendp(Ether()/IPv6(src="2001:db8:b4::3", dst=EP)/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=5002, dport=9)/Raw(b"open"), iface=iface)
    print("opened")
elif side == "read-frags":
    got = []
    for p in rdpcap(sys.argv[2]):
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
    sendp(Ether()/IP(src="203.0.113.80", dst=ext, flags="DF")/UDP(sport=7, dport=port)/Raw(b"B" * 1400), iface=iface)
elif side == "read-big":
    for p in rdpcap(sys.argv[2]):
        print("ICMP", p[IP].src, p[ICMP].type, p[ICMP].code, p[ICMP].nexthopmtu)
"#;

#[test]
fn crafted_cases_against_the_running_aftrd() {
    if let Err(why) = can_capture() {
        return skip(why);
    }
    let mut lab = Lab::up("c", std::path::Path::new(".."));
    let (p, dir) = (lab.prefix.clone(), lab.dir.clone());
    let cfg = dir.join("aftr.conf");
    std::fs::write(
        &cfg,
        format!(
            "slot 1\n worker-cores 0\n interface softwire {p}sw\n interface internet {p}in\nslot 2\n worker-cores 1\n\
             service-location 1\n location slot 1\nservice-instance-group g\n service-location 1\n\
             ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
             ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n tunnel-mtu 1300\n"
        ),
    )
    .unwrap();
    let sock = dir.join("slot1.sock");
    common::start_aftrd(&mut lab, &cfg, &sock);
    start_servers(&mut lab);
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
    // The echo's reply to the B4 (inner UDP destination port at 40 + 20 + 2 in the IPv6
    // packet: the mutated frames above may have brought replies to port 6000).
    let to_5000 = "ip6 proto 4 and src host 2001:db8::1 and ip6[62:2] = 5000";
    let pcap = capture(&lab, "sub", &sub_if, to_5000, 1, Duration::ZERO, || {
        py(&lab, "sub", &["sub-flow", &sub_if]);
    });
    let out = py(&lab, "sub", &["read-flow", pcap.to_str().unwrap()]);
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

    // Inbound IPv4 fragments, last first: both reach the B4, whole, and no more (the
    // inner IPv4 flags and offset at 40 + 6: more fragments or an offset).
    let fragments = "ip6 proto 4 and src host 2001:db8::1 and ip6[46:2] & 0x3fff != 0";
    let pcap = capture(&lab, "sub", &sub_if, fragments, 2, Duration::from_millis(300), || {
        assert!(py(&lab, "inet", &["inet-frags", &inet_if, ext_addr, ext_port]).starts_with("sent"));
    });
    assert_eq!(py(&lab, "sub", &["read-frags", pcap.to_str().unwrap()]).trim(), "FRAGS 2 1008 1000");

    // DF and too big for the 1300-byte tunnel: ICMPv4 3/4 with MTU 1260 to the sender.
    let pcap = capture(&lab, "inet", &inet_if, "icmp[icmptype] = icmp-unreach", 1, Duration::ZERO, || {
        py(&lab, "inet", &["inet-big", &inet_if, ext_addr, ext_port]);
    });
    let out = py(&lab, "inet", &["read-big", pcap.to_str().unwrap()]);
    assert!(out.contains(&format!("ICMP {ext_addr} 3 4 1260")), "{out}");
    assert_eq!(counter("frag_needed_sent"), 1);

    // Hairpinning: B4 ::3 opens a mapping, B4 ::2 sends to its external address.
    assert_eq!(py(&lab, "sub", &["sub-open", &sub_if]).trim(), "opened");
    // The session shows once the worker has taken the frame: a moment on a loaded host.
    let session3 = || {
        let s3 = ctl(&["display", "sessions", "b4", "2001:db8:b4::3"]);
        s3.lines().find(|l| l.contains(":5002")).and_then(|l| l.split_whitespace().nth(2)).map(str::to_string)
    };
    let t = std::time::Instant::now();
    let ext3 = loop {
        match session3() {
            Some(e) => break e,
            None if t.elapsed() < Duration::from_secs(5) => std::thread::sleep(Duration::from_millis(50)),
            None => panic!("no session of ::3 port 5002 within 5 s"),
        }
    };
    let (a3, p3) = ext3.split_once(':').unwrap();
    // To B4 ::3, UDP inside (inner protocol at 40 + 9; its first packet to port 9 was
    // answered with an ICMP error).
    let to_b4_3 = "ip6 proto 4 and dst host 2001:db8:b4::3 and ip6[49] = 17";
    let pcap = capture(&lab, "sub", &sub_if, to_b4_3, 1, Duration::ZERO, || {
        py(&lab, "sub", &["sub-hairpin", &sub_if, a3, p3]);
    });
    let out = py(&lab, "sub", &["read-hairpin", pcap.to_str().unwrap()]);
    assert!(out.contains(&format!("HAIRPIN {ext_addr} 192.168.1.10 5002 hairpin True")), "{out}");
    assert_eq!(counter("hairpin"), 1);
}
