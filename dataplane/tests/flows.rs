//! Packet-level cases for the basic flows, in the spirit of VPP's DS-Lite test
//! (test_dslite.py): UDP, TCP and ICMP echo out and back, ICMPv6 echo to the endpoint,
//! and two B4s using the same private address and port at once. Each case gives the
//! input frame, the expected output frame (built independently with etherparse) and
//! the expected counters.

mod common;
use common::*;
use dataplane::counters::Counter;
use dataplane::{Egress, Verdict};
use etherparse::{EtherType, IpNumber};

#[test]
fn udp_out_and_back() {
    let mut h = Harness::default();
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 64, b"query");
    let out = h.forward(&softwire(B4_A, &inner), Egress::Internet);
    let (ext, port) = (out_src(&out), out_sport(&out));
    assert_eq!(&ext[..3], &POOL[..3], "external address from the pool");
    assert!(port >= 1024, "port range class kept");
    assert_eq!(port & 1, 5000 & 1, "parity kept");
    assert_eq!(out, to_internet(&ip4_udp(ext, SERVER, port, 53, 63, b"query")));
    assert_checksums(&out);

    let reply = ip4_udp(SERVER, ext, 53, port, 50, b"answer");
    let back = h.forward(&from_internet(&reply), Egress::Softwire);
    assert_eq!(back, to_b4(B4_A, &ip4_udp(SERVER, HOST, 53, 5000, 49, b"answer"), &back));
    assert_checksums(&back);

    // The same flow again uses the same mapping.
    let again = h.forward(&softwire(B4_A, &inner), Egress::Internet);
    assert_eq!(out_sport(&again), port);
    assert_eq!(h.counter(Counter::In2Out), 2);
    assert_eq!(h.counter(Counter::Out2In), 1);
    assert_eq!(h.counter(Counter::SessionsCreated), 1);
    assert_eq!(h.counter(Counter::BlocksAllocated), 1);
    assert_eq!(h.eng.counters().drops(), 0);
}

#[test]
fn tcp_out_and_back_with_mss_clamp_and_state() {
    let mut h = Harness::default();
    let syn = ip4_tcp(HOST, SERVER, 40000, 80, 64, "S", Some(1460), b"");
    let out = h.forward(&softwire(B4_A, &syn), Egress::Internet);
    let (ext, port) = (out_src(&out), out_sport(&out));
    // Tunnel MTU 1500: MSS at most 1500 - 80 (RFC 6908 section 4).
    assert_eq!(out, to_internet(&ip4_tcp(ext, SERVER, port, 80, 63, "S", Some(1420), b"")));
    assert_checksums(&out);
    assert_eq!(h.counter(Counter::MssClamped), 1);

    let synack = ip4_tcp(SERVER, ext, 80, port, 60, "SA", Some(1460), b"");
    let back = h.forward(&from_internet(&synack), Egress::Softwire);
    assert_eq!(back, to_b4(B4_A, &ip4_tcp(SERVER, HOST, 80, 40000, 59, "SA", Some(1420), b""), &back));
    assert_checksums(&back);

    let ack = ip4_tcp(HOST, SERVER, 40000, 80, 64, "A", None, b"GET / HTTP/1.0\r\n\r\n");
    let out = h.forward(&softwire(B4_A, &ack), Egress::Internet);
    assert_eq!(out, to_internet(&ip4_tcp(ext, SERVER, port, 80, 63, "A", None, b"GET / HTTP/1.0\r\n\r\n")));
    let s = h.eng.sessions();
    assert_eq!(s.len(), 1);
    assert_ne!(s[0].flags & dataplane::nat::session::tcp_flags::EST, 0, "established after SYN, SYN-ACK, ACK");
}

#[test]
fn icmp_echo_out_and_back() {
    let mut h = Harness::default();
    let req = ip4_echo(HOST, SERVER, 0x1234, 1, 64, true, b"ping");
    let out = h.forward(&softwire(B4_A, &req), Egress::Internet);
    let (ext, id) = (out_src(&out), out_icmp_id(&out));
    assert_eq!(out, to_internet(&ip4_echo(ext, SERVER, id, 1, 63, true, b"ping")));
    assert_checksums(&out);
    let rep = ip4_echo(SERVER, ext, id, 1, 60, false, b"ping");
    let back = h.forward(&from_internet(&rep), Egress::Softwire);
    assert_eq!(back, to_b4(B4_A, &ip4_echo(SERVER, HOST, 0x1234, 1, 59, false, b"ping"), &back));
    assert_checksums(&back);
}

#[test]
fn icmpv6_echo_to_endpoint_is_answered() {
    let mut h = Harness::default();
    let mut req = Vec::new();
    etherparse::PacketBuilder::ethernet2(B4_SIDE_NH, AFTR_MAC)
        .ipv6(B4_A, ENDPOINT, 64)
        .icmpv6_echo_request(7, 3)
        .write(&mut req, b"hello")
        .unwrap();
    let out = h.forward(&req, Egress::Softwire);
    let mut want = Vec::new();
    etherparse::PacketBuilder::ethernet2(AFTR_MAC, B4_SIDE_NH)
        .ipv6(ENDPOINT, B4_A, 64)
        .icmpv6_echo_reply(7, 3)
        .write(&mut want, b"hello")
        .unwrap();
    assert_eq!(out, want);
    assert_eq!(h.counter(Counter::EndpointEchoReplies), 1);
    // A corrupted checksum is not answered.
    let mut bad = req.clone();
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    h.dropped(&bad, Counter::DropMalformedL4);
}

#[test]
fn two_b4s_with_the_same_private_address_and_port() {
    let mut h = Harness::default();
    let inner = ip4_udp(HOST, SERVER, 5000, 5000, 64, b"x");
    let a = h.forward(&softwire(B4_A, &inner), Egress::Internet);
    let b = h.forward(&softwire(B4_B, &inner), Egress::Internet);
    let (ea, pa) = (out_src(&a), out_sport(&a));
    let (eb, pb) = (out_src(&b), out_sport(&b));
    assert_ne!((ea, pa), (eb, pb), "distinct mappings");
    let ra = h.forward(&from_internet(&ip4_udp(SERVER, ea, 5000, pa, 64, b"to-a")), Egress::Softwire);
    let rb = h.forward(&from_internet(&ip4_udp(SERVER, eb, 5000, pb, 64, b"to-b")), Egress::Softwire);
    assert_eq!(ra, to_b4(B4_A, &ip4_udp(SERVER, HOST, 5000, 5000, 63, b"to-a"), &ra));
    assert_eq!(rb, to_b4(B4_B, &ip4_udp(SERVER, HOST, 5000, 5000, 63, b"to-b"), &rb));
    assert_eq!(h.eng.subscriber_count(), 2);
}

#[test]
fn endpoint_independent_mapping_and_paired_address() {
    let mut h = Harness::default();
    let o1 = h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 6000, 1, 64, b"")), Egress::Internet);
    let o2 = h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER2, 6000, 2, 64, b"")), Egress::Internet);
    assert_eq!(
        (out_src(&o1), out_sport(&o1)),
        (out_src(&o2), out_sport(&o2)),
        "same mapping to any destination (RFC 4787 REQ-1)"
    );
    let o3 =
        h.forward(&softwire(B4_A, &ip4_tcp([192, 168, 1, 11], SERVER, 7000, 80, 64, "S", None, b"")), Egress::Internet);
    assert_eq!(out_src(&o3), out_src(&o1), "one external address per subscriber (paired pooling)");
    // Endpoint-independent filtering (the default): another server may answer.
    let r = h.forward(&from_internet(&ip4_udp(SERVER2, out_src(&o1), 9999, out_sport(&o1), 64, b"")), Egress::Softwire);
    assert_checksums(&r);
}

#[test]
fn well_known_source_ports_keep_their_class() {
    let mut h = Harness::default();
    let o = h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 500, 500, 64, b"ike")), Egress::Internet);
    let p = out_sport(&o);
    assert!(p > 0 && p < 1024, "port {p} in the well-known class");
    let blocks = &h.eng.subscribers()[0].blocks;
    assert!(
        blocks.iter().any(|&(first, n)| p >= first && p < first + n),
        "port inside a block of the subscriber: {blocks:?}"
    );
}

#[test]
fn ports_are_randomised_inside_the_block() {
    let mut h = Harness::default();
    let ports: Vec<u16> = (0..20)
        .map(|k| {
            out_sport(&h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 10000 + 2 * k, 53, 64, b"")), Egress::Internet))
        })
        .collect();
    let sorted = {
        let mut s = ports.clone();
        s.sort();
        s
    };
    assert_ne!(ports, sorted, "not sequential (RFC 6056)");
    let (first, n) = h.eng.subscribers()[0].blocks[0];
    assert!(ports.iter().all(|&p| p >= first && p < first + n));
    assert_eq!(h.eng.subscribers()[0].blocks.len(), 1, "20 flows fit one block of 512");
}

#[test]
fn vlan_tagged_input_and_tagged_egress() {
    let mut cfg = config(instance());
    cfg.internet_l2.vlan = Some(300);
    let mut h = Harness::new(cfg);
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 64, b"q");
    let plain = softwire(B4_A, &inner);
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&plain[12..]);
    let out = h.forward(&tagged, Egress::Internet);
    assert_eq!(&out[12..18], &[0x81, 0x00, 0x01, 0x2c, 0x08, 0x00], "tag 300 then IPv4");
    let ip = &out[18..];
    etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap();
    check_ipv4_packet(ip);
}

#[test]
fn frames_not_for_the_data_plane_go_to_the_kernel() {
    let mut h = Harness::default();
    // ARP.
    let mut arp = eth([0xff; 6], INET_GW, EtherType::ARP);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(h.run(&arp).verdict, Verdict::Pass);
    // IPv4 to an address that is not in a pool (e.g. the HA channel).
    assert_eq!(h.run(&from_internet(&ip4_udp(SERVER, [10, 9, 9, 9], 1, 2, 64, b""))).verdict, Verdict::Pass);
    // IPv6 to another address, and neighbour solicitation to the endpoint.
    let mut other = eth(AFTR_MAC, B4_SIDE_NH, EtherType::IPV6);
    other.extend(ip6_header(B4_A, ROUTER6, IpNumber::UDP, 0, 64, 0, 0));
    assert_eq!(h.run(&other).verdict, Verdict::Pass);
    let mut ns = Vec::new();
    etherparse::PacketBuilder::ethernet2(B4_SIDE_NH, AFTR_MAC)
        .ipv6(B4_A, ENDPOINT, 255)
        .icmpv6(etherparse::Icmpv6Type::Unknown { type_u8: 135, code_u8: 0, bytes5to8: [0; 4] })
        .write(&mut ns, &ENDPOINT)
        .unwrap();
    assert_eq!(h.run(&ns).verdict, Verdict::Pass);
    assert_eq!(h.counter(Counter::PassedToKernel), 4);
    // On AF_XDP the kernel never sees what the engine got: dropped and counted, not
    // said to be passed.
    h.eng.set_kernel_sees_frames(false);
    for f in [&arp, &other, &ns] {
        assert_eq!(h.run(f).verdict, Verdict::Drop(Counter::DropNotSteered));
    }
    assert_eq!((h.counter(Counter::PassedToKernel), h.counter(Counter::DropNotSteered)), (4, 3));
}

/// RFC 6040 section 4.2: CE on the outer header of a Not-ECT inner packet is dropped
/// (its endpoints could not see the congestion); on an ECN-capable one it marks the inner
/// packet CE; outer ECT(1) over inner ECT(0) gives ECT(1); inner CE stays CE.
#[test]
fn ecn_at_decapsulation_follows_rfc_6040() {
    let mut h = Harness::default();
    let inner = |ecn: u8| edit_ipv4(&ip4_udp(HOST, SERVER, 5000, 53, 64, b"ecn"), |i| i.ecn = ecn.try_into().unwrap());
    h.dropped(&softwire_tc(B4_A, 0x03, &inner(0)), Counter::DropEcnCeNotEct);
    assert_eq!(h.eng.session_count(), 0, "dropped before any session is made");
    let cases = [(0x03, 2, 3), (0x03, 1, 3), (0x01, 2, 1), (0x02, 3, 3), (0x02, 0, 0), (0xb8 | 0x02, 2, 2)];
    for (tc, ecn_in, ecn_out) in cases {
        let out = h.forward(&softwire_tc(B4_A, tc, &inner(ecn_in)), Egress::Internet);
        let (ext, port) = (out_src(&out), out_sport(&out));
        let want = edit_ipv4(&ip4_udp(ext, SERVER, port, 53, 63, b"ecn"), |i| i.ecn = ecn_out.try_into().unwrap());
        assert_eq!(out, to_internet(&want), "outer {tc:#x}, inner {ecn_in}");
        assert_checksums(&out);
    }
    assert_eq!(h.counter(Counter::DropEcnCeNotEct), 1);
}

/// RFC 6864, RFC 7857: the identification of outbound non-atomic datagrams is rewritten,
/// so that two hosts behind one external address choosing the same value do not meet in
/// a server's reassembly; the fragments of one datagram keep one new value; atomic (DF)
/// datagrams keep theirs.
#[test]
fn ipv4_identification_of_non_atomic_datagrams_is_rewritten() {
    let mut inst = instance();
    inst.pool = vec![dataplane::config::Ipv4Prefix { addr: u32::from_be_bytes(POOL), len: 32 }];
    let mut h = Harness::new(config(inst));
    let non_df = |sport: u16, id: u16| {
        edit_ipv4(&ip4_udp(HOST, SERVER, sport, 53, 64, b"id"), |i| {
            i.dont_fragment = false;
            i.identification = id;
        })
    };
    let ident = |f: &[u8]| u16::from_be_bytes([f[18], f[19]]);
    let a = h.forward(&softwire(B4_A, &non_df(5000, 0x1234)), Egress::Internet);
    let b = h.forward(&softwire(B4_B, &non_df(5000, 0x1234)), Egress::Internet);
    assert_eq!(out_src(&a), out_src(&b), "one external address");
    assert_ne!(ident(&a), ident(&b), "two hosts, two identifications");
    for f in [&a, &b] {
        let want = edit_ipv4(&ip4_udp(out_src(f), SERVER, out_sport(f), 53, 63, b"id"), |i| {
            i.dont_fragment = false;
            i.identification = ident(f);
        });
        assert_eq!(*f, to_internet(&want));
        assert_checksums(f);
    }
    // The host's next datagram: the same shift, so its own sequence stays unique.
    let a2 = h.forward(&softwire(B4_A, &non_df(5000, 0x1235)), Egress::Internet);
    assert_eq!(ident(&a2), ident(&a).wrapping_add(1));
    // A DF datagram is atomic: its identification is left as it is.
    let df = edit_ipv4(&ip4_udp(HOST, SERVER, 5000, 53, 64, b"id"), |i| i.identification = 0x1234);
    let o = h.forward(&softwire(B4_A, &df), Egress::Internet);
    assert_eq!(ident(&o), 0x1234);
    // Both fragments of a datagram, whichever comes first, leave with one new value.
    let (f1, f2) = ipv4_fragments(&ip4_udp(HOST, SERVER, 5000, 53, 64, &[9u8; 600]), 304);
    let o2 = h.forward(&softwire(B4_A, &f2), Egress::Internet);
    let o1 = h.forward(&softwire(B4_A, &f1), Egress::Internet);
    assert_eq!(ident(&o1), ident(&o2));
    assert_ne!(ident(&o1), 0x4242);
    assert_eq!(ident(&o1), 0x4242u16.wrapping_add(ident(&a).wrapping_sub(0x1234)), "the host's shift");
    for o in [&o1, &o2] {
        let p = etherparse::Ipv4HeaderSlice::from_slice(&o[14..]).unwrap();
        assert_eq!(p.header_checksum(), p.to_header().calc_header_checksum());
    }
}
