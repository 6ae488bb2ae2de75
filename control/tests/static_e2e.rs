//! Static port forwarding and B4s with an address of their own (issue 19 parts 1 and 2,
//! decision 0019) through a running `aftrd`, end to end over namespaces: frames crafted
//! by scapy, what leaves recorded by tcpdump and read back by scapy (addresses, ports,
//! the IPv4 and transport checksums against the ones scapy computes), and the engine's
//! counters through `aftrctl`. Commits while running add and take away a forwarding, and
//! a refused commit names the line and column. Needs root, scapy and tcpdump (elsewhere
//! it says so and passes); everything it creates is removed, even when it fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dataplane::testing::{Lab, can_capture, skip, statistic};

mod common;

/// Records in namespace `ns` on `iface` the frames matching `filter` that `send` brings
/// about, until `n` of them came (10 s at most); returns the capture file.
fn capture(lab: &Lab, ns: &str, iface: &str, filter: &str, n: usize, send: impl FnOnce()) -> PathBuf {
    common::capture_for(lab, ns, iface, filter, n, Duration::from_secs(10), send)
}

/// `send-*`: the crafted frames; `read PCAP`: one line per IPv4 packet captured (inside
/// the softwire if there is one): protocol, addresses and ports, payload, and whether
/// both checksums are the ones scapy computes.
const SCRIPT: &str = r#"
import sys
# The layers it uses only: `scapy.all` takes seconds to import on a busy machine.
from scapy.config import conf
from scapy.layers.l2 import Ether
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.sendrecv import send, sendp
from scapy.utils import rdpcap
conf.verb = 0
side = sys.argv[1]
EP = "2001:db8::1"
def softwire(b4, src, dst, sport, dport, data):
    return Ether()/IPv6(src=b4, dst=EP)/IP(src=src, dst=dst)/UDP(sport=sport, dport=dport)/Raw(data)
if side == "sub":
    iface, b4, src, dst, sport, dport, data = sys.argv[2:9]
    sendp(softwire(b4, src, dst, int(sport), int(dport), data.encode()), iface=iface)
elif side == "inet":
    dst, sport, dport, data = sys.argv[2:6]
    send(IP(src="203.0.113.80", dst=dst)/UDP(sport=int(sport), dport=int(dport))/Raw(data.encode()))
elif side == "read":
    for p in rdpcap(sys.argv[2]):
        outer = ""
        if IPv6 in p:
            outer = "from %s to %s " % (p[IPv6].src, p[IPv6].dst)
            i = IP(bytes(p[IPv6].payload))
        else:
            i = p[IP]
        c = IP(bytes(i)); del c.chksum; del c[UDP].chksum; c = IP(bytes(c))
        ok = c.chksum == i.chksum and c[UDP].chksum == i[UDP].chksum
        print("%sUDP %s:%d > %s:%d ttl %d %s checksums %s" % (outer, i.src, i[UDP].sport, i.dst, i[UDP].dport, i.ttl, bytes(i[UDP].payload).decode(), ok))
"#;

const FORWARDING: &str =
    " nat server protocol udp global 198.51.100.7 5000 inside 192.168.1.10 5000 b4 2001:db8:b4::2\n";

/// The board's configuration, with `entries` in the instance (from line 20 on).
fn config(p: &str, entries: &str) -> String {
    format!(
        "slot 1\n worker-cores 0\n interface softwire {p}sw\n interface internet {p}in\nslot 2\n worker-cores 1\n\
         service-location 1\n location slot 1\nservice-instance-group g\n service-location 1\n\
         ds-lite address-group pool\n section 0 198.51.100.0 mask 25\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n \
         nat no-translation b4 2001:db8:b4::3 address 198.51.100.200\n \
         nat no-translation b4 2001:db8:b4::4 address 198.51.100.201 port-range 2048 4095\n\
         {entries}"
    )
}

#[test]
fn static_forwarding_and_own_addresses_through_aftrd() {
    if let Err(why) = can_capture() {
        return skip(why);
    }
    let mut lab = Lab::up("st", std::path::Path::new(".."));
    let (p, dir) = (lab.prefix.clone(), lab.dir.clone());
    let cfg = dir.join("aftr.conf");
    std::fs::write(&cfg, config(&p, FORWARDING)).unwrap();
    let sock = dir.join("slot1.sock");
    common::start_aftrd(&mut lab, &cfg, &sock);
    // A sink on the Internet side, so that no port unreachable answers what is sent there.
    common::spawn_ready(
        &mut lab,
        "inet",
        &[
            "python3",
            "-c",
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('203.0.113.80', 9999))\nprint('ready', flush=True)\nwhile True: s.recv(2048)",
        ],
    );
    let script = dir.join("static.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let (sub_if, inet_if) = (lab.name("b4"), lab.name("srv"));
    let py = |ns: &str, args: &[&str]| -> String {
        let o = lab.exec(ns, &[&["python3", script.to_str().unwrap()], args].concat()).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let ctl = |args: &[&str]| -> (bool, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_aftrctl")).arg("--socket").arg(&sock).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        (o.status.success(), text)
    };
    let counter = |name: &str| statistic(&ctl(&["display", "statistics"]).1, name);
    let sub = |b4: &str, src: &str, dst: &str, sport: &str, dport: &str, data: &str| {
        py("sub", &["sub", &sub_if, b4, src, dst, sport, dport, data]);
    };
    let inet = |dst: &str, sport: &str, dport: &str, data: &str| {
        py("inet", &["inet", dst, sport, dport, data]);
    };
    let read = |pcap: PathBuf| py("sub", &["read", pcap.to_str().unwrap()]);
    // Softwire packets to one B4 (outer destination), UDP inside (at 40 + 9).
    let to_b4 = |b4: &str| format!("ip6 proto 4 and dst host {b4} and ip6[49] = 17");

    // Outbound from the inside host's port: the forwarding's address and port.
    let pcap = capture(&lab, "inet", &inet_if, "udp and src host 198.51.100.7", 1, || {
        sub("2001:db8:b4::2", "192.168.1.10", "203.0.113.80", "5000", "9999", "from-static")
    });
    let out = read(pcap);
    assert!(out.contains("UDP 198.51.100.7:5000 > 203.0.113.80:9999 ttl 63 from-static checksums True"), "{out}");
    assert_eq!(counter("static_in2out"), 1);
    assert_eq!(counter("sessions_created"), 0, "no session for a forwarding");

    // From the Internet to the forwarding: to the inside host through its B4's softwire
    // (towards the B4s, the next hop is learned from their frames: the one above).
    let pcap = capture(&lab, "sub", &sub_if, &to_b4("2001:db8:b4::2"), 1, || {
        inet("198.51.100.7", "9999", "5000", "to-static")
    });
    let out = read(pcap);
    assert!(
        out.contains(
            "from 2001:db8::1 to 2001:db8:b4::2 UDP 203.0.113.80:9999 > 192.168.1.10:5000 ttl 63 to-static checksums True"
        ),
        "{out} {}",
        ctl(&["display", "statistics"]).1
    );
    assert_eq!(counter("static_out2in"), 1);

    // Hairpinned from another host behind the same B4, then from another B4: their own
    // mapping as source, the inside host as destination.
    for (n, b4) in [(1, "2001:db8:b4::2"), (2, "2001:db8:b4::5")] {
        let pcap = capture(&lab, "sub", &sub_if, &to_b4("2001:db8:b4::2"), 1, || {
            sub(b4, "192.168.1.11", "198.51.100.7", "6000", "5000", "hairpin")
        });
        let out = read(pcap);
        let line = out.lines().find(|l| l.contains("hairpin")).unwrap_or_else(|| panic!("{b4}: {out}"));
        assert!(line.contains("> 192.168.1.10:5000 ttl 63 hairpin checksums True"), "{line}");
        assert!(line.contains("UDP 198.51.100."), "translated source: {line}");
        assert!(!line.contains("192.168.1.11"), "translated source: {line}");
        assert_eq!(counter("hairpin"), n);
    }
    assert_eq!(counter("static_out2in"), 3);

    // No-NAT: untranslated both ways.
    let pcap = capture(&lab, "inet", &inet_if, "udp and src host 198.51.100.200", 1, || {
        sub("2001:db8:b4::3", "198.51.100.200", "203.0.113.80", "7000", "9999", "no-nat")
    });
    assert!(read(pcap).contains("UDP 198.51.100.200:7000 > 203.0.113.80:9999 ttl 63 no-nat checksums True"));
    let pcap = capture(&lab, "sub", &sub_if, &to_b4("2001:db8:b4::3"), 1, || {
        inet("198.51.100.200", "9999", "7000", "to-no-nat")
    });
    let out = read(pcap);
    assert!(
        out.contains("to 2001:db8:b4::3 UDP 203.0.113.80:9999 > 198.51.100.200:7000 ttl 63 to-no-nat checksums True")
    );

    // A+P: in the range both ways.
    let pcap = capture(&lab, "inet", &inet_if, "udp and src host 198.51.100.201", 1, || {
        sub("2001:db8:b4::4", "198.51.100.201", "203.0.113.80", "3000", "9999", "a-p")
    });
    assert!(read(pcap).contains("UDP 198.51.100.201:3000 > 203.0.113.80:9999 ttl 63 a-p checksums True"));
    let pcap =
        capture(&lab, "sub", &sub_if, &to_b4("2001:db8:b4::4"), 1, || inet("198.51.100.201", "9999", "3000", "to-a-p"));
    assert!(
        read(pcap)
            .contains("to 2001:db8:b4::4 UDP 203.0.113.80:9999 > 198.51.100.201:3000 ttl 63 to-a-p checksums True")
    );
    let stats = ctl(&["display", "statistics"]).1;
    assert_eq!(statistic(&stats, "own_address_in2out"), 2, "{stats}");
    assert_eq!(statistic(&stats, "own_address_out2in"), 2, "{stats}");

    // Out of the range, or another B4's address: counted drops, nothing leaves.
    let pcap = common::capture_for(
        &lab,
        "inet",
        &inet_if,
        "udp and src net 198.51.100.192/26",
        1,
        Duration::from_secs(1),
        || {
            sub("2001:db8:b4::4", "198.51.100.201", "203.0.113.80", "5000", "9999", "out-of-range");
            sub("2001:db8:b4::4", "198.51.100.200", "203.0.113.80", "7000", "9999", "spoofed");
        },
    );
    assert_eq!(read(pcap), "", "nothing out");
    inet("198.51.100.201", "9999", "5000", "to-out-of-range");
    common::wait_for("the inbound drop counted", 5, || counter("drop_own_address_port") >= 2);
    assert_eq!(counter("drop_own_address_port"), 2);
    assert_eq!(counter("drop_own_address_spoofed"), 1);

    // A commit with an unauthorised B4 is refused where it is; nothing changes.
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, config(&p, &FORWARDING.replace("b4 2001:db8:b4::2", "b4 2001:db8:66::2"))).unwrap();
    let (ok, err) = ctl(&["commit", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("20:2: ds-lite instance d: b4 2001:db8:66::2 is not in a remote-ipv6 prefix"), "{err}");
    // Taken away by a commit: the forwarding's port is no one's.
    let without = dir.join("without.conf");
    std::fs::write(&without, config(&p, "")).unwrap();
    let (ok, err) = ctl(&["commit", without.to_str().unwrap()]);
    assert!(ok, "{err}");
    let before = counter("drop_no_session");
    inet("198.51.100.7", "9999", "5000", "to-nothing");
    common::wait_for("the drop counted", 5, || counter("drop_no_session") > before);
    assert_eq!(counter("drop_no_session"), before + 1);
    // And back: forwarded again.
    let (ok, err) = ctl(&["commit", cfg.to_str().unwrap()]);
    assert!(ok, "{err}");
    let pcap =
        capture(&lab, "sub", &sub_if, &to_b4("2001:db8:b4::2"), 1, || inet("198.51.100.7", "9999", "5000", "again"));
    assert!(read(pcap).contains("UDP 203.0.113.80:9999 > 192.168.1.10:5000 ttl 63 again checksums True"));
}
