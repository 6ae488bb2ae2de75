//! End to end over real namespaces and veth pairs: `aftrd` (AF_PACKET rings) between a
//! subscriber namespace and an Internet namespace. Packets are crafted and checked by
//! an independent tool (scapy); the servers are real applications (Python sockets).
//! Needs root and scapy, as CI has (the set-up installs scapy); elsewhere it says so
//! and passes. Everything it creates is removed, even when it fails.

use std::process::{Command, Stdio};

use dataplane::testing::{Lab, is_root, skip};
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
sniffer = AsyncSniffer(iface=iface, lfilter=outer)
sniffer.start()
time.sleep(0.5)
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

#[test]
fn udp_tcp_and_icmp_across_aftrd_both_ways() {
    if !is_root() || !have_scapy() {
        return skip("needs root and scapy");
    }
    let mut lab = Lab::up("e", std::path::Path::new(".."));
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());
    let config = format!(
        "sysname e2e\nslot 1\n worker-cores 0\n interface softwire {p}sw\n interface internet {p}in\nslot 2\n worker-cores 1\n\
         service-location 1\n location slot 1 backup slot 2\nservice-instance-group g\n service-location 1\n\
         ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n",
        p = prefix
    );
    let cfg = dir.join("aftr.conf");
    std::fs::write(&cfg, config).unwrap();
    let sock = dir.join("slot1.sock");

    // The servers: real sockets in the Internet namespace.
    let script = dir.join("servers.py");
    std::fs::write(&script, SERVERS).unwrap();
    let mut servers = lab.exec("inet", &["python3", script.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(servers.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
    }
    lab.keep(servers);

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
    let value = |name: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(value("in2out") >= 3 && value("out2in") >= 3, "{stats}");
    assert_eq!(value("drop_no_next_hop"), 0, "{stats}");
    drop(lab);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains(&prefix), "namespaces removed");
}
