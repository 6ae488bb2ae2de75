//! The PCP server (issue 19 part 3, decision 0023) through a running `aftrd`, end to end
//! over namespaces: PCP requests built by scapy from RFC 6887's wire format as raw
//! bytes, sent through the softwire; the answers recorded by tcpdump and read back by
//! scapy (addresses, ports, IPv4 and UDP checksums against the ones scapy computes, the
//! PCP message octet by octet); the forwarding a mapping opens, and closes; and the
//! engine's counters through `aftrctl`. Needs root, scapy and tcpdump (elsewhere it says
//! so and passes); everything it creates is removed, even when it fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dataplane::testing::{Lab, can_capture, skip, statistic};

use common::capture_for as capture;

mod common;

/// `pcp IFACE HOST HEX`: the PCP message HEX (raw bytes) from HOST port 40001 to the
/// server through the softwire of B4 2001:db8:b4::2; `inet DST SPORT DPORT DATA`: a
/// datagram from the Internet; `read PCAP`: one line per IPv4 packet captured (inside
/// the softwire if there is one): addresses and ports, TTL, whether both checksums are
/// the ones scapy computes, and the payload in hex.
const SCRIPT: &str = r#"
import sys
from scapy.config import conf
from scapy.layers.l2 import Ether
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.sendrecv import send, sendp
from scapy.utils import rdpcap
conf.verb = 0
side = sys.argv[1]
if side == "pcp":
    iface, host, msg = sys.argv[2:5]
    sendp(Ether()/IPv6(src="2001:db8:b4::2", dst="2001:db8::1")/IP(src=host, dst="192.0.0.1")/UDP(sport=40001, dport=5351)/Raw(bytes.fromhex(msg)), iface=iface)
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
        print("%sUDP %s:%d > %s:%d ttl %d checksums %s payload %s" % (outer, i.src, i[UDP].sport, i.dst, i[UDP].dport, i.ttl, ok, bytes(i[UDP].payload).hex()))
"#;

const NONCE: &str = "0102030405060708090a0b0c";

/// An IPv4-mapped IPv6 address, in hex.
fn mapped(v4: [u8; 4]) -> String {
    format!("00000000000000000000ffff{}", hex(&v4))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A PCP request header (RFC 6887 section 7.1): version, opcode, reserved, requested
/// lifetime, client address.
fn header(version: u8, opcode: u8, lifetime: u32, client: [u8; 4]) -> String {
    format!("{version:02x}{opcode:02x}0000{lifetime:08x}{}", mapped(client))
}

/// A MAP request (section 11.1) for UDP `port`, no suggestion.
fn map(lifetime: u32, client: [u8; 4], port: u16) -> String {
    format!("{}{NONCE}11000000{port:04x}0000{}", header(2, 1, lifetime, client), mapped([0; 4]))
}

/// What `read` printed of one packet: the line before the payload, and the payload.
fn answer(out: &str) -> (String, Vec<u8>) {
    let line = out.lines().next().unwrap_or_else(|| panic!("no answer captured: {out:?}"));
    let (head, payload) = line.split_once(" payload ").unwrap();
    let bytes = (0..payload.len()).step_by(2).map(|i| u8::from_str_radix(&payload[i..i + 2], 16).unwrap()).collect();
    (head.to_string(), bytes)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

/// The board's configuration: the PCP server at 192.0.0.1, lifetimes 120-1800 s, two
/// PCP mappings per subscriber.
fn config(p: &str) -> String {
    format!(
        "slot 1\n worker-cores 0\n interface softwire {p}sw\n interface internet {p}in\nslot 2\n worker-cores 1\n\
         service-location 1\n location slot 1\nservice-instance-group g\n service-location 1\n\
         ds-lite address-group pool\n section 0 198.51.100.0 mask 25\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n \
         pcp server enable address 192.0.0.1\n pcp lifetime min 120 max 1800\n pcp max-mappings 2\n"
    )
}

#[test]
fn pcp_map_renew_delete_errors_and_limit_through_aftrd() {
    if let Err(why) = can_capture() {
        return skip(why);
    }
    let mut lab = Lab::up("pc", std::path::Path::new(".."));
    let (p, dir) = (lab.prefix.clone(), lab.dir.clone());
    let cfg = dir.join("aftr.conf");
    std::fs::write(&cfg, config(&p)).unwrap();
    let sock = dir.join("slot1.sock");
    common::start_aftrd(&mut lab, &cfg, &sock);
    let script = dir.join("pcp.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let sub_if = lab.name("b4");
    let py = |ns: &str, args: &[&str]| -> String {
        let o = lab.exec(ns, &[&["python3", script.to_str().unwrap()], args].concat()).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let ctl = |args: &[&str]| -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_aftrctl")).arg("--socket").arg(&sock).args(args).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let counter = |name: &str| statistic(&ctl(&["display", "statistics"]), name);
    let read = |pcap: PathBuf| py("sub", &["read", pcap.to_str().unwrap()]);
    // UDP inside the softwire towards the B4, from the server's port.
    let answers = "ip6 proto 4 and dst host 2001:db8:b4::2 and ip6[49] = 17 and ip6[60:2] = 5351";
    let ask = |host: &str, msg: &str| -> (String, Vec<u8>) {
        let pcap = capture(&lab, "sub", &sub_if, answers, 1, Duration::from_secs(10), || {
            py("sub", &["pcp", &sub_if, host, msg]);
        });
        let (head, a) = answer(&read(pcap));
        assert!(head.starts_with("from 2001:db8::1 to 2001:db8:b4::2 UDP 192.0.0.1:5351 > "), "{head}");
        assert!(head.ends_with(":40001 ttl 64 checksums True"), "{head}");
        (head, a)
    };
    const HOST: [u8; 4] = [192, 168, 1, 10];
    let host = "192.168.1.10";

    // MAP UDP 8080 for an hour: SUCCESS, the lifetime clamped to 1800 s, a pool address.
    let (_, a) = ask(host, &map(3600, HOST, 8080));
    assert_eq!(a.len(), 60, "{a:?}");
    assert_eq!(&a[..4], &[2, 0x81, 0, 0], "version 2, R and MAP, SUCCESS");
    assert_eq!(be32(&a[4..]), 1800, "lifetime");
    let epoch = be32(&a[8..]);
    assert!(epoch < 600, "seconds since aftrd started: {epoch}");
    assert_eq!(&a[12..24], &[0; 12], "reserved");
    assert_eq!(hex(&a[24..36]), NONCE);
    assert_eq!(&a[36..42], &[17, 0, 0, 0, 0x1f, 0x90], "protocol and internal port");
    let port = u16::from_be_bytes([a[42], a[43]]);
    assert!(port >= 1024, "{port}");
    assert_eq!(&a[44..56], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    assert_eq!(&a[56..59], &[198, 51, 100]);
    assert!(a[59] < 128, "in 198.51.100.0/25: {}", a[59]);
    let ext = format!("198.51.100.{}", a[59]);
    assert_eq!(counter("pcp_result_success"), 1);
    assert_eq!(counter("pcp_mappings_created"), 1);

    // From the Internet to the mapping: through the softwire to the host.
    let to_host = "ip6 proto 4 and dst host 2001:db8:b4::2 and ip6[49] = 17 and ip6[62:2] = 8080";
    let pcap = capture(&lab, "sub", &sub_if, to_host, 1, Duration::from_secs(10), || {
        py("inet", &["inet", &ext, "9999", &port.to_string(), "to-pcp"]);
    });
    let (head, data) = answer(&read(pcap));
    assert_eq!(
        head,
        "from 2001:db8::1 to 2001:db8:b4::2 UDP 203.0.113.80:9999 > 192.168.1.10:8080 ttl 63 checksums True"
    );
    assert_eq!(data, b"to-pcp");
    assert_eq!(counter("out2in"), 1);

    // Renewed for 600 s: the same port, the epoch gone on.
    let (_, a) = ask(host, &map(600, HOST, 8080));
    assert_eq!((a[3], be32(&a[4..]), u16::from_be_bytes([a[42], a[43]])), (0, 600, port));
    assert!(be32(&a[8..]) >= epoch);
    assert_eq!(counter("pcp_mappings_renewed"), 1);

    // Deleted (lifetime 0): SUCCESS with lifetime 0; then the datagram is dropped.
    let (_, a) = ask(host, &map(0, HOST, 8080));
    assert_eq!((a[3], be32(&a[4..])), (0, 0));
    assert_eq!(counter("pcp_mappings_deleted"), 1);
    let before = counter("drop_no_session");
    py("inet", &["inet", &ext, "9999", &port.to_string(), "too-late"]);
    common::wait_for("the drop counted", 5, || counter("drop_no_session") > before);
    assert_eq!(counter("drop_no_session"), before + 1);

    // A MAP cut short: MALFORMED_REQUEST, the request's words copied, a long lifetime.
    let short = &map(600, HOST, 8080)[..96];
    let (_, a) = ask(host, short);
    assert_eq!(&a[..4], &[2, 0x81, 0, 3]);
    assert_eq!(be32(&a[4..]), 1800);
    assert_eq!(hex(&a[24..]), short[48..]);
    // Opcode 9: UNSUPP_OPCODE; version 1: UNSUPP_VERSION answered as version 2.
    let (_, a) = ask(host, &header(2, 9, 600, HOST));
    assert_eq!((a.len(), &a[..4]), (24, &[2, 0x89, 0, 4][..]));
    let (_, a) = ask(host, &header(1, 1, 600, HOST));
    assert_eq!(&a[..4], &[2, 0x81, 0, 1]);
    // ANNOUNCE: SUCCESS, lifetime 0.
    let (_, a) = ask(host, &header(2, 0, 0, HOST));
    assert_eq!((a.len(), &a[..8]), (24, &[2, 0x80, 0, 0, 0, 0, 0, 0][..]));

    // Two PCP mappings per subscriber: the third is over the quota.
    for (n, p) in [(1, 8081), (2, 8082)] {
        let (_, a) = ask(host, &map(600, HOST, p));
        assert_eq!(a[3], 0, "mapping {n}");
    }
    let (_, a) = ask("192.168.1.11", &map(600, [192, 168, 1, 11], 8083));
    assert_eq!((a[3], be32(&a[4..])), (10, 30), "USER_EX_QUOTA, a short error");

    let stats = ctl(&["display", "statistics"]);
    for (name, n) in [
        ("pcp_requests", 10),
        ("pcp_result_success", 6),
        ("pcp_result_malformed_request", 1),
        ("pcp_result_unsupp_opcode", 1),
        ("pcp_result_unsupp_version", 1),
        ("pcp_result_user_ex_quota", 1),
    ] {
        assert_eq!(statistic(&stats, name), n, "{name}: {stats}");
    }
    // Not a PCP request at all (a response): a counted drop, no answer.
    let response = map(600, HOST, 8084).replacen("0201", "0281", 1);
    let pcap = capture(&lab, "sub", &sub_if, answers, 1, Duration::from_secs(1), || {
        py("sub", &["pcp", &sub_if, host, &response]);
    });
    assert_eq!(read(pcap), "");
    common::wait_for("the drop counted", 5, || counter("drop_pcp_ignored") == 1);
    // The other mappings are there, with their leases.
    let sessions = ctl(&["display", "sessions"]);
    let line = sessions.lines().find(|l| l.contains("192.168.1.10:8081")).unwrap_or_else(|| panic!("{sessions}"));
    let left: u32 = line.split_whitespace().last().unwrap().trim_end_matches('s').parse().unwrap();
    assert!(line.contains(" pcp map ") && (590..=600).contains(&left), "{line}");
}
