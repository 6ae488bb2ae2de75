//! The PCP server (decision 0023) in the engine: requests built from RFC 6887's wire
//! format, answers checked byte by byte (etherparse checks the checksums), and the
//! forwarding that follows.

mod common;
use common::*;
use dataplane::config::{Filtering, PcpConfig};
use dataplane::counters::Counter;
use dataplane::nat::events::SessionEvent;
use dataplane::{Egress, Verdict};

const PCP_SERVER: [u8; 4] = [192, 0, 0, 1];
const B4_ELEMENT: [u8; 4] = [192, 0, 0, 2];
const HOST2: [u8; 4] = [192, 168, 1, 20];
const NONCE: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

fn mapped(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

/// A request header (RFC 6887 figure 2).
fn header(version: u8, opcode: u8, lifetime: u32, client: [u8; 4]) -> Vec<u8> {
    let mut m = vec![version, opcode, 0, 0];
    m.extend_from_slice(&lifetime.to_be_bytes());
    m.extend_from_slice(&mapped(client));
    m
}

/// A MAP request (figure 9) from `client` for `proto` `port`, suggesting `suggest`.
fn map(lifetime: u32, client: [u8; 4], nonce: [u8; 12], proto: u8, port: u16, suggest: u16) -> Vec<u8> {
    let mut m = header(2, 1, lifetime, client);
    m.extend_from_slice(&nonce);
    m.extend_from_slice(&[proto, 0, 0, 0]);
    m.extend_from_slice(&port.to_be_bytes());
    m.extend_from_slice(&suggest.to_be_bytes());
    m.extend_from_slice(&mapped([0; 4]));
    m
}

fn instance_with_pcp() -> dataplane::config::InstanceConfig {
    let mut inst = instance();
    inst.pcp = Some(PcpConfig {
        server: u32::from_be_bytes(PCP_SERVER),
        min_lifetime: 120,
        max_lifetime: 1800,
        max_mappings: 2,
    });
    // MAP opens a mapping to every remote even where the instance filters.
    inst.filtering = Filtering::AddressAndPortDependent;
    inst
}

/// Sends `msg` from `src`:`sport` behind B4_A to the server; returns the answer's PCP
/// message, after checking its headers (through the softwire, from the server's port
/// 5351 to the client's) and checksums.
fn ask(h: &mut Harness, src: [u8; 4], sport: u16, msg: &[u8]) -> Vec<u8> {
    let f = h.forward(&softwire(B4_A, &ip4_udp(src, PCP_SERVER, sport, 5351, 64, msg)), Egress::Softwire);
    assert_checksums(&f);
    assert_eq!(&f[14 + 8..14 + 24], &ENDPOINT, "from the endpoint");
    assert_eq!(&f[14 + 24..14 + 40], &B4_A, "to the B4");
    let ip = &f[54..];
    assert_eq!(&ip[12..16], &PCP_SERVER);
    assert_eq!(&ip[16..20], &src);
    assert_eq!(ip[9], 17);
    assert_eq!(u16::from_be_bytes([ip[20], ip[21]]), 5351);
    assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), sport);
    assert_eq!(u16::from_be_bytes([ip[24], ip[25]]) as usize, ip.len() - 20);
    ip[28..].to_vec()
}

fn result(answer: &[u8]) -> u8 {
    answer[3]
}
fn lifetime(answer: &[u8]) -> u32 {
    u32::from_be_bytes(answer[4..8].try_into().unwrap())
}
fn epoch(answer: &[u8]) -> u32 {
    u32::from_be_bytes(answer[8..12].try_into().unwrap())
}
fn ext_port(answer: &[u8]) -> u16 {
    u16::from_be_bytes([answer[42], answer[43]])
}

#[test]
fn map_opens_a_port_renewal_keeps_it_delete_closes_it() {
    let mut h = Harness::new(config(instance_with_pcp()));
    h.advance(7);
    let a = ask(&mut h, HOST, 40001, &map(3600, HOST, NONCE, 17, 8080, 0));
    // Header: version 2, R and MAP, SUCCESS, the lifetime clamped to 1800, the epoch.
    assert_eq!(&a[..4], &[2, 0x81, 0, 0]);
    assert_eq!(lifetime(&a), 1800);
    assert_eq!(epoch(&a), 7);
    assert_eq!(&a[12..24], &[0; 12]);
    // MAP: the nonce, protocol and internal port back, a port and address of the pool.
    assert_eq!(a.len(), 60);
    assert_eq!(&a[24..36], &NONCE);
    assert_eq!(&a[36..40], &[17, 0, 0, 0]);
    assert_eq!(&a[40..42], &8080u16.to_be_bytes());
    let port = ext_port(&a);
    assert!(port >= 1024, "a dynamic port for a dynamic internal port: {port}");
    assert_eq!(&a[44..56], &mapped([0; 4])[..12]);
    let ext: [u8; 4] = a[56..60].try_into().unwrap();
    assert_eq!(&ext[..3], &POOL[..3]);
    assert_eq!(h.counter(Counter::PcpResultSuccess), 1);
    assert_eq!(h.counter(Counter::PcpMappingsCreated), 1);

    // Unsolicited from anywhere: through the softwire to the host.
    let o = h.forward(&from_internet(&ip4_udp(SERVER2, ext, 9999, port, 64, b"hello")), Egress::Softwire);
    assert_eq!(o, to_b4(B4_A, &ip4_udp(SERVER2, HOST, 9999, 8080, 63, b"hello"), &o));

    // Idle past the UDP timeout (300 s), within the lifetime: still there.
    h.advance(1000);
    h.eng.expire(1000);
    h.forward(&from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b"x")), Egress::Softwire);

    // A renewal: the same port; another nonce for it: not authorised.
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8080, 0));
    assert_eq!((result(&a), lifetime(&a), ext_port(&a), epoch(&a)), (0, 600, port, 1007));
    assert_eq!(h.counter(Counter::PcpMappingsRenewed), 1);
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, [9; 12], 17, 8080, 0));
    assert_eq!((result(&a), lifetime(&a)), (2, 1800), "NOT_AUTHORIZED, a long error");
    assert_eq!(&a[24..], &map(600, HOST, [9; 12], 17, 8080, 0)[24..], "the request copied");

    // Deleted (lifetime 0): SUCCESS, and the port is closed.
    let a = ask(&mut h, HOST, 40001, &map(0, HOST, NONCE, 17, 8080, 0));
    assert_eq!((result(&a), lifetime(&a), ext_port(&a)), (0, 0, port));
    assert_eq!(h.counter(Counter::PcpMappingsDeleted), 1);
    h.dropped(&from_internet(&ip4_udp(SERVER2, ext, 9999, port, 64, b"late")), Counter::DropNoSession);
    assert_eq!(h.eng.session_count(), 0);
    // Deleting it again succeeds.
    assert_eq!(result(&ask(&mut h, HOST, 40001, &map(0, HOST, NONCE, 17, 8080, 0))), 0);
}

#[test]
fn a_lease_ends_and_its_session_expires() {
    let mut h = Harness::new(config(instance_with_pcp()));
    let a = ask(&mut h, HOST, 40001, &map(100, HOST, NONCE, 6, 2222, 0));
    assert_eq!(lifetime(&a), 120, "the minimum lifetime");
    let (ext, port): ([u8; 4], u16) = (a[56..60].try_into().unwrap(), ext_port(&a));
    // TCP transitory timeout 240 s: the lease (120 s) ends first, then the idle time.
    h.advance(241);
    h.eng.expire(1000);
    assert_eq!(h.eng.session_count(), 0);
    h.dropped(&from_internet(&ip4_tcp(SERVER, ext, 80, port, 64, "S", None, b"")), Counter::DropNoSession);
}

#[test]
fn the_suggested_port_prefer_failure_and_the_limit() {
    let mut h = Harness::new(config(instance_with_pcp()));
    let first = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8080, 0));
    // A port of the same block is given as suggested.
    let want = ext_port(&first) ^ 1;
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8081, want));
    assert_eq!((result(&a), ext_port(&a)), (0, want));
    // A third mapping is over `max-mappings` (2): USER_EX_QUOTA, a short error.
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8082, 0));
    assert_eq!((result(&a), lifetime(&a)), (10, 30));
    assert_eq!(h.counter(Counter::PcpResultUserExQuota), 1);
    // Once one is deleted, a port taken with PREFER_FAILURE: CANNOT_PROVIDE_EXTERNAL.
    assert_eq!(result(&ask(&mut h, HOST, 40001, &map(0, HOST, NONCE, 17, 8081, 0))), 0);
    let mut m = map(600, HOST, NONCE, 17, 8082, ext_port(&first));
    m.extend_from_slice(&[2, 0, 0, 0]);
    let a = ask(&mut h, HOST, 40001, &m);
    assert_eq!(result(&a), 11);
    assert_eq!(&a[60..], &[2, 0, 0, 0], "the option copied back");
    // The session limit is shared with traffic's mappings.
    let mut inst = instance_with_pcp();
    inst.limits.max_sessions = 1;
    let mut h = Harness::new(config(inst));
    h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")), Egress::Internet);
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8080, 0));
    assert_eq!(result(&a), 10, "USER_EX_QUOTA");
    // ...and the mapping of that traffic can be taken over by PCP.
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 5000, 0));
    assert_eq!(result(&a), 0);
}

#[test]
fn third_party_only_from_the_b4() {
    let mut h = Harness::new(config(instance_with_pcp()));
    let mut m = map(600, B4_ELEMENT, NONCE, 17, 8080, 0);
    m.extend_from_slice(&[1, 0, 0, 16]);
    m.extend_from_slice(&mapped(HOST2));
    let a = ask(&mut h, B4_ELEMENT, 5351, &m);
    assert_eq!(result(&a), 0);
    assert_eq!(&a[60..80], &m[60..80], "THIRD_PARTY in the answer");
    let (ext, port): ([u8; 4], u16) = (a[56..60].try_into().unwrap(), ext_port(&a));
    let o = h.forward(&from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b"3p")), Egress::Softwire);
    assert_eq!(&o[54 + 16..54 + 20], &HOST2, "to the third party");
    // A host may not ask for another.
    let mut m = map(600, HOST, NONCE, 17, 8080, 0);
    m.extend_from_slice(&[1, 0, 0, 16]);
    m.extend_from_slice(&mapped(HOST2));
    assert_eq!(result(&ask(&mut h, HOST, 5351, &m)), 2);
    assert_eq!(h.counter(Counter::PcpResultNotAuthorized), 1);
}

#[test]
fn peer_and_announce() {
    let mut h = Harness::new(config(instance_with_pcp()));
    let mut m = header(2, 2, 300, HOST);
    m.extend_from_slice(&map(0, HOST, NONCE, 17, 6000, 0)[24..]);
    m.extend_from_slice(&443u16.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&mapped(SERVER));
    let a = ask(&mut h, HOST, 40001, &m);
    assert_eq!((a.len(), result(&a), lifetime(&a)), (80, 0, 300));
    assert_eq!(&a[60..80], &m[60..80]);
    let (ext, port): ([u8; 4], u16) = (a[56..60].try_into().unwrap(), ext_port(&a));
    // The peer may answer; another remote may not (the instance filters).
    h.forward(&from_internet(&ip4_udp(SERVER, ext, 443, port, 64, b"p")), Egress::Softwire);
    h.dropped(&from_internet(&ip4_udp(SERVER2, ext, 443, port, 64, b"p")), Counter::DropFiltered);
    // The host's own traffic from that port uses the same mapping.
    let o = h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 6000, 443, 64, b"o")), Egress::Internet);
    assert_eq!((out_src(&o), out_sport(&o)), (ext, port));

    // A MAP of the same port opens it; a PEER delete then leaves the MAP alone.
    assert_eq!(result(&ask(&mut h, HOST, 40001, &map(300, HOST, NONCE, 17, 6000, 0))), 0);
    let mut delete = m.clone();
    delete[4..8].copy_from_slice(&[0; 4]);
    assert_eq!(result(&ask(&mut h, HOST, 40001, &delete)), 0);
    h.forward(&from_internet(&ip4_udp(SERVER2, ext, 443, port, 64, b"open")), Egress::Softwire);
    // A MAP delete closes it.
    assert_eq!(result(&ask(&mut h, HOST, 40001, &map(0, HOST, NONCE, 17, 6000, 0))), 0);
    h.dropped(&from_internet(&ip4_udp(SERVER2, ext, 443, port, 64, b"shut")), Counter::DropNoSession);

    let a = ask(&mut h, HOST, 40001, &header(2, 0, 0, HOST));
    assert_eq!(&a, &[2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn malformed_and_unsupported_requests_get_their_result_codes() {
    let mut h = Harness::new(config(instance_with_pcp()));
    // Version 1: UNSUPP_VERSION, answered with version 2.
    let a = ask(&mut h, HOST, 40001, &header(1, 1, 600, HOST));
    assert_eq!(&a[..4], &[2, 0x81, 0, 1]);
    // A MAP too short: MALFORMED_REQUEST, the request's words copied.
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8080, 0)[..48]);
    assert_eq!((a.len(), result(&a), lifetime(&a)), (48, 3, 1800));
    // Opcode 9: UNSUPP_OPCODE.
    assert_eq!(&ask(&mut h, HOST, 40001, &header(2, 9, 600, HOST))[..4], &[2, 0x89, 0, 4]);
    // An unknown mandatory option: UNSUPP_OPTION.
    let mut m = map(600, HOST, NONCE, 17, 8080, 0);
    m.extend_from_slice(&[0x7f, 0, 0, 0]);
    assert_eq!(result(&ask(&mut h, HOST, 40001, &m)), 5);
    // The client's address is not the source: ADDRESS_MISMATCH.
    assert_eq!(result(&ask(&mut h, HOST, 40001, &map(600, HOST2, NONCE, 17, 8080, 0))), 12);
    // ICMP mappings: UNSUPP_PROTOCOL.
    assert_eq!(result(&ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 1, 8080, 0))), 9);
    for (c, n) in [
        (Counter::PcpResultUnsuppVersion, 1),
        (Counter::PcpResultMalformedRequest, 1),
        (Counter::PcpResultUnsuppOpcode, 1),
        (Counter::PcpResultUnsuppOption, 1),
        (Counter::PcpResultAddressMismatch, 1),
        (Counter::PcpResultUnsuppProtocol, 1),
        (Counter::PcpRequests, 6),
    ] {
        assert_eq!(h.counter(c), n, "{c:?}");
    }
    assert_eq!(h.eng.session_count(), 0);
    // Dropped: a response (R set), one octet, a bad UDP checksum, an answer with no room.
    let mut resp = map(600, HOST, NONCE, 17, 8080, 0);
    resp[1] |= 0x80;
    h.dropped(&softwire(B4_A, &ip4_udp(HOST, PCP_SERVER, 1, 5351, 64, &resp)), Counter::DropPcpIgnored);
    h.dropped(&softwire(B4_A, &ip4_udp(HOST, PCP_SERVER, 1, 5351, 64, &[2])), Counter::DropPcpIgnored);
    let mut bad = ip4_udp(HOST, PCP_SERVER, 1, 5351, 64, &map(600, HOST, NONCE, 17, 8080, 0));
    bad[27] ^= 1;
    h.dropped(&softwire(B4_A, &bad), Counter::DropPcpBadChecksum);
    h.dropped(&softwire(B4_A, &ip4_udp(HOST, PCP_SERVER, 1, 5351, 64, &[0, 0, 0, 0])), Counter::DropPcpNoRoom);
    // Not from an authorised B4: dropped as any softwire frame.
    h.dropped(
        &softwire(B4_ROGUE, &ip4_udp(HOST, PCP_SERVER, 1, 5351, 64, &map(600, HOST, NONCE, 17, 8080, 0))),
        Counter::DropB4NotAuthorised,
    );
    assert_eq!(h.counter(Counter::PcpRequests), 10);
}

#[test]
fn without_a_server_the_address_is_no_one() {
    let mut h = Harness::new(config(instance()));
    // 192.0.0.1 is then an ordinary destination: translated and sent on.
    let o = h.run(&softwire(B4_A, &ip4_udp(HOST, PCP_SERVER, 1, 5351, 64, &map(600, HOST, NONCE, 17, 8080, 0))));
    assert_eq!(o.verdict, Verdict::Forward(Egress::Internet));
    // And 0.0.0.0, the address of no server, a martian as ever.
    let zero = ip4_udp(HOST, [0; 4], 1, 5351, 64, &map(600, HOST, NONCE, 17, 8080, 0));
    h.dropped(&softwire(B4_A, &zero), Counter::DropMartian);
    assert_eq!(h.counter(Counter::PcpRequests), 0);
}

#[test]
fn the_lease_travels_in_session_records() {
    let mut h = Harness::new(config(instance_with_pcp()));
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8080, 0));
    let leased: Vec<_> = h
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Refreshed(r) => r.pcp.map(|l| (r, l)),
            _ => None,
        })
        .collect();
    assert_eq!(leased.len(), 1, "one event carries the lease");
    let (r, l) = leased[0];
    assert_eq!((r.ext_port, l.open, l.nonce), (ext_port(&a), true, NONCE));
    assert_eq!(l.until, (h.now_ms / 1000) as u32 + 600);
    // A board that installs it keeps the session for the lease, open to all.
    let mut standby = Harness::new(config(instance_with_pcp()));
    for e in h.eng.subscribers().iter().flat_map(|s| s.block_records()) {
        standby.eng.install_block(&e).unwrap();
    }
    standby.eng.install_session(&r).unwrap();
    standby.advance(400);
    standby.eng.expire(1000);
    let ext: [u8; 4] = a[56..60].try_into().unwrap();
    standby.forward(&from_internet(&ip4_udp(SERVER2, ext, 1, ext_port(&a), 64, b"s")), Egress::Softwire);
    // A renewal there finds it, with the same nonce.
    let a2 = ask(&mut standby, HOST, 40001, &map(600, HOST, NONCE, 17, 8080, 0));
    assert_eq!((result(&a2), ext_port(&a2)), (0, ext_port(&a)));
    assert_eq!(standby.counter(Counter::PcpMappingsRenewed), 1);
}

#[test]
fn the_worker_that_owns_the_b4_serves_its_requests() {
    let mut cfg = config(instance_with_pcp());
    cfg.workers = 2;
    let mut w = Harness::board(cfg);
    // Worker 1 meets the B4 first (by traffic) and holds it.
    let out = w[1].forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")), Egress::Internet);
    // Its PCP request at worker 0: handed over untouched, nothing made there.
    let request = softwire(B4_A, &ip4_udp(HOST, PCP_SERVER, 40001, 5351, 64, &map(600, HOST, NONCE, 17, 5000, 0)));
    let o = w[0].run(&request);
    assert_eq!((o.verdict, &o.frame), (Verdict::Handoff(1), &request));
    assert_eq!((w[0].counter(Counter::PcpRequests), w[0].eng.session_count()), (0, 0));
    // Worker 1 takes the traffic's mapping over: the same port, now leased.
    let a = ask(&mut w[1], HOST, 40001, &map(600, HOST, NONCE, 17, 5000, 0));
    assert_eq!((result(&a), ext_port(&a), &a[56..60]), (0, out_sport(&out), &out_src(&out)[..]));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Any message to the server is answered (a well-formed PCP response, checksums
    /// right) or dropped for a `drop_pcp_` reason, and counted once either way.
    #[test]
    fn any_message_is_answered_or_a_counted_drop(
        mut msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1200),
        pcp_header in proptest::prelude::any::<bool>(),
    ) {
        if pcp_header && msg.len() >= 24 {
            // Mostly well-formed headers, so that the opcodes' paths are reached.
            msg[0] = 2;
            msg[1] &= 0x03;
            msg[8..24].copy_from_slice(&mapped(HOST));
        }
        let mut h = Harness::new(config(instance_with_pcp()));
        let o = h.run(&softwire(B4_A, &ip4_udp(HOST, PCP_SERVER, 40001, 5351, 64, &msg)));
        let results: u64 = Counter::ALL.iter().filter(|c| c.name().starts_with("pcp_result_")).map(|&c| h.counter(c)).sum();
        let drops: u64 = Counter::ALL.iter().filter(|c| c.name().starts_with("drop_pcp_")).map(|&c| h.counter(c)).sum();
        proptest::prop_assert_eq!(h.counter(Counter::PcpRequests), 1);
        proptest::prop_assert_eq!(results + drops, 1);
        match o.verdict {
            Verdict::Forward(Egress::Softwire) => {
                assert_checksums(&o.frame);
                let a = &o.frame[54 + 28..];
                proptest::prop_assert!(a.len() >= 24 && a.len() <= 1100 && a.len().is_multiple_of(4), "{}", a.len());
                proptest::prop_assert_eq!(a[0], 2);
                proptest::prop_assert!(a[1] & 0x80 != 0);
            }
            Verdict::Drop(c) => proptest::prop_assert!(c.name().starts_with("drop_pcp_"), "{:?}", c),
            v => proptest::prop_assert!(false, "{:?}", v),
        }
    }
}

/// A PEER request (figure 10) from HOST, for its UDP `port`, to SERVER port 443.
fn peer(lifetime: u32, nonce: [u8; 12], port: u16) -> Vec<u8> {
    let mut m = header(2, 2, lifetime, HOST);
    m.extend_from_slice(&map(0, HOST, nonce, 17, port, 0)[24..]);
    m.extend_from_slice(&443u16.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&mapped(SERVER));
    m
}

fn lease_events(h: &Harness) -> usize {
    h.drain_events().iter().filter(|e| matches!(e, SessionEvent::Refreshed(r) if r.pcp.is_some())).count()
}

#[test]
fn repeats_peers_and_an_ended_lease_change_nothing_they_should_not() {
    let mut h = Harness::new(config(instance_with_pcp()));
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8080, 0));
    let (ext, port): ([u8; 4], u16) = (a[56..60].try_into().unwrap(), ext_port(&a));
    assert_eq!(lease_events(&h), 1);
    // The same request again and again within the second: answered, but hot backup
    // and logging hear nothing new (a flood would crowd out other subscribers' events).
    for _ in 0..100 {
        assert_eq!(result(&ask(&mut h, HOST, 40001, &map(600, HOST, NONCE, 17, 8080, 0))), 0);
    }
    assert_eq!(h.counter(Counter::PcpMappingsRenewed), 100);
    assert_eq!(lease_events(&h), 0, "an unchanged lease is not sent again");
    // A PEER of the mapped host, shorter than the MAP: the MAP's lease stays.
    assert_eq!(lifetime(&ask(&mut h, HOST, 40001, &peer(120, NONCE, 8080))), 120);
    // Past the PEER's end, within the MAP's: still open to any remote.
    h.advance(300);
    h.forward(&from_internet(&ip4_udp(SERVER2, ext, 9999, port, 64, b"open")), Egress::Softwire);
    // The lease ends while the host's traffic keeps the session.
    h.advance(200);
    h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 8080, 53, 64, b"k")), Egress::Internet);
    h.advance(200);
    h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 8080, 53, 64, b"k")), Egress::Internet);
    h.dropped(&from_internet(&ip4_udp(SERVER2, ext, 9999, port, 64, b"shut")), Counter::DropFiltered);
    // A client restarted with another nonce gets the mapping: the ended lease is gone.
    let a = ask(&mut h, HOST, 40001, &map(600, HOST, [9; 12], 17, 8080, 0));
    assert_eq!((result(&a), ext_port(&a)), (0, port), "the session's port, a new lease");
    h.forward(&from_internet(&ip4_udp(SERVER2, ext, 9999, port, 64, b"again")), Egress::Softwire);
}
