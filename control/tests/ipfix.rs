//! NAT logs by IPFIX, read by an independent decoder: the logger sends every kind of
//! event to a UDP socket; what arrived is written as a capture and read by tshark's
//! IPFIX dissector (`cflow`), whose field values are checked. Needs tshark (Debian
//! `tshark`, installed by scripts/setup.sh); elsewhere it says so and passes.

use std::net::{Ipv6Addr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use control::config::{LogFormat, LogHost, NatLog};
use control::natlog::NatLogger;
use dataplane::nat::events::{BlockRecord, Limit, LimitRecord, SessionEvent, SessionRecord};
use dataplane::testing::skip;

const PORT: u16 = 4739;

/// A pcap of `datagrams` as IPv4/UDP from 192.0.2.1 to 192.0.2.2 port [`PORT`]
/// (link type raw IPv4; UDP checksum 0, which IPv4 allows).
fn pcap(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 228] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    for (k, d) in datagrams.iter().enumerate() {
        let len = 28 + d.len();
        let mut ip =
            vec![0x45, 0, (len >> 8) as u8, len as u8, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
        let sum = !ip.chunks(2).fold(0u32, |s, w| {
            let s = s + u16::from_be_bytes([w[0], w[1]]) as u32;
            (s & 0xffff) + (s >> 16)
        }) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip.extend_from_slice(&40000u16.to_be_bytes());
        ip.extend_from_slice(&PORT.to_be_bytes());
        ip.extend_from_slice(&((8 + d.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(d);
        for v in [1_700_000_000 + k as u32, 0, ip.len() as u32, ip.len() as u32] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&ip);
    }
    f
}

fn tshark(file: &std::path::Path, fields: &[&str]) -> Vec<String> {
    let mut args = vec!["-r".to_string(), file.display().to_string(), "-d".into(), format!("udp.port=={PORT},cflow")];
    args.extend(["-T", "fields", "-E", "separator=;", "-E", "occurrence=a"].map(String::from));
    for f in fields {
        args.extend(["-e".to_string(), f.to_string()]);
    }
    let out = Command::new("tshark").args(&args).output().expect("tshark");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

#[test]
fn every_kind_of_event_decodes_in_tshark_with_its_fields() {
    if Command::new("tshark").arg("-v").output().is_err() {
        return skip("no tshark (scripts/setup.sh installs it)");
    }
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let log = NatLog {
        hosts: vec![LogHost { addr: collector.local_addr().unwrap(), format: LogFormat::Ipfix, source: None }],
        sessions: true,
        template_refresh_packets: 4,
        ..NatLog::default()
    };
    let mut l = NatLogger::new(&log, "aftr-test", 7).unwrap();
    let b4 = "2001:db8:b4::2".parse::<Ipv6Addr>().unwrap().octets();
    let at = 1_795_995_045;
    let s = SessionRecord {
        inst: 1,
        b4,
        inner_addr: 0xc0a8_010a,
        inner_port: 5000,
        ext_addr: 0xc633_6407,
        ext_port: 1600,
        proto: 17,
        flags: 0,
        created: at,
        last_seen: at + 9,
        mac: [0; 6],
        pcp: None,
    };
    let b = BlockRecord { inst: 1, b4, ext_addr: 0xc633_6407, first_port: 1536, size: 512, at };
    let limit =
        |limit, value| LimitRecord { inst: 1, b4, inner_addr: 0xc0a8_010a, ext_addr: 0xc633_6407, limit, value, at };
    let events = [
        SessionEvent::BlockAllocated(b),
        SessionEvent::Created(s),
        SessionEvent::Refreshed(s), // not carried
        SessionEvent::Deleted(s),
        SessionEvent::BlockReleased(b),
        SessionEvent::Limit(limit(Limit::AddressesExhausted, 0)),
        SessionEvent::Limit(limit(Limit::PortsExhausted, 0)),
        SessionEvent::Limit(limit(Limit::SessionLimit, 4096)),
        SessionEvent::Limit(limit(Limit::SessionTable, 65536)),
        SessionEvent::Limit(limit(Limit::SubscriberTable, 16384)),
    ];
    for e in &events {
        l.log(e);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..9 {
        let n = collector.recv(&mut buf).unwrap();
        got.push(buf[..n].to_vec());
    }
    assert_eq!(l.stats[2].sent.load(std::sync::atomic::Ordering::Relaxed), 9);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ipfix.pcap");
    std::fs::write(&file, pcap(&got)).unwrap();

    // The message headers: version 10, the board's observation domain, the sequence
    // number counting the data records sent before (RFC 7011 section 3.1), and the
    // templates in the first message and again after 4 messages.
    let headers = tshark(&file, &["cflow.version", "cflow.od_id", "cflow.sequence", "cflow.template_id"]);
    let seqs: Vec<String> = headers.iter().map(|l| l.split(';').nth(2).unwrap().to_string()).collect();
    assert_eq!(seqs, (0..9).map(|n| n.to_string()).collect::<Vec<_>>(), "{headers:?}");
    assert!(headers.iter().all(|l| l.starts_with("10;7;")), "{headers:?}");
    let with_templates: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.ends_with(";256,257,258,259,260,261,262"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(with_templates, vec![0, 4, 8], "{headers:?}");

    let records = tshark(
        &file,
        &[
            "cflow.nat_event",
            "cflow.observation_time_milliseconds",
            "cflow.srcaddrv6",
            "cflow.srcaddr",
            "cflow.srcport",
            "cflow.post_natsource_ipv4_address",
            "cflow.post_naptsource_transport_port",
            "cflow.protocol",
            "cflow.port_range_start",
            "cflow.port_range_end",
            "cflow.port_range_num_ports",
            "cflow.nat_pool_id",
            "cflow.nat_quota_exceeded_event",
            "cflow.max_entries_per_user",
            "cflow.max_session_entries",
            "cflow.max_subscribers",
        ],
    );
    // Every field of every record, as tshark reads it (empty: not in the record's
    // template). Port block allocation (14) and release (15): the B4, the address, the
    // range; session create (1) and delete (2): inside and outside address and port,
    // protocol, never a destination; NAT addresses exhausted (3), ports exhausted (10);
    // quota exceeded (11): entries per user (3), session entries (1), subscribers (4),
    // each with its limit. The B4's IPv6 address in each; natPoolId the instance.
    let t = |s: u32| format!("Nov 29, 2026 23:30:{s}.000000000 UTC;2001:db8:b4::2");
    let want = [
        format!("14;{};;;198.51.100.7;;;1536;2047;512;1;;;;", t(45)),
        format!("1;{};192.168.1.10;5000;198.51.100.7;1600;17;;;;1;;;;", t(45)),
        format!("2;{};192.168.1.10;5000;198.51.100.7;1600;17;;;;1;;;;", t(54)),
        format!("15;{};;;198.51.100.7;;;1536;2047;512;1;;;;", t(45)),
        format!("3;{};192.168.1.10;;;;;;;;1;;;;", t(45)),
        format!("10;{};192.168.1.10;;198.51.100.7;;;;;;1;;;;", t(45)),
        format!("11;{};192.168.1.10;;;;;;;;1;3;4096;;", t(45)),
        format!("11;{};192.168.1.10;;;;;;;;;1;;65536;", t(45)),
        format!("11;{};192.168.1.10;;;;;;;;;4;;;16384", t(45)),
    ];
    assert_eq!(records, want);
}
