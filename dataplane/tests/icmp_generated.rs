//! The ICMP errors the AFTR generates itself: only about packets that belong to a
//! session, within the worker's budget (RFC 1812 section 4.3.2.8), and where RFC 6888
//! and RFC 5508 ask for one (no mapping could be made); and what an ICMPv6 Packet Too
//! Big about a softwire does (RFC 8201 path MTU per B4).

mod common;
use common::*;
use dataplane::counters::Counter;
use dataplane::{Egress, Verdict};

#[test]
fn ttl_expired_probes_of_the_pool_get_no_answer() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h);
    // No session at that port: silently dropped, like any unsolicited packet.
    let o = h.run(&from_internet(&ip4_udp(SERVER, ext, 53, port ^ 2, 1, b"probe")));
    assert_eq!(o.verdict, Verdict::Drop(Counter::DropNoSession));
    assert!(o.sink.emitted.is_empty());
    assert_eq!(h.counter(Counter::TimeExceededSent), 0);
    // The session's own port: time exceeded from the mapping's address.
    let late = ip4_udp(SERVER, ext, 53, port, 1, b"x");
    let out = h.forward(&from_internet(&late), Egress::Internet);
    assert_eq!(out, to_internet(&icmp4_error_as_sent(ext, SERVER, 11, 0, 0, &late, &out)));
    assert_checksums(&out);
    assert_eq!(h.counter(Counter::TimeExceededSent), 1);
}

#[test]
fn generated_icmp_errors_are_rate_limited_per_worker() {
    let mut h = Harness::default();
    let trace = softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 1, b"trace"));
    // The default budget: a burst of 50, then 1000 a second (Linux's defaults).
    for _ in 0..50 {
        h.forward(&trace, Egress::Softwire);
    }
    for _ in 0..10 {
        let o = h.run(&trace);
        assert_eq!(o.verdict, Verdict::Drop(Counter::DropTtlExpired));
        assert!(o.sink.emitted.is_empty());
    }
    assert_eq!(h.counter(Counter::TimeExceededSent), 50);
    assert_eq!(h.counter(Counter::IcmpErrorsSuppressed), 10);
    assert_eq!(h.counter(Counter::DropTtlExpired), 60);
    h.advance_ms(1);
    h.forward(&trace, Egress::Softwire);
    h.dropped(&trace, Counter::DropTtlExpired);
    // A second refills the burst, no more.
    h.advance(1);
    for _ in 0..50 {
        h.forward(&trace, Egress::Softwire);
    }
    h.dropped(&trace, Counter::DropTtlExpired);
    assert_eq!(h.counter(Counter::IcmpErrorsSuppressed), 12);
}

#[test]
fn a_packet_that_gets_no_mapping_is_answered_host_unreachable() {
    let mut inst = instance();
    inst.limits.max_sessions = 1;
    let mut h = Harness::new(config(inst));
    udp_mapping(&mut h);
    // RFC 6888 REQ-11: dropped, and the host hears host unreachable from 192.0.0.1
    // through its softwire, quoting its packet as it sent it.
    let refused = ip4_udp(HOST, SERVER, 5001, 53, 64, b"second");
    let back = h.forward(&softwire(B4_A, &refused), Egress::Softwire);
    let want = icmp4_error_as_sent([192, 0, 0, 1], HOST, 3, 1, 0, &refused, &back);
    assert_eq!(back, to_b4(B4_A, &want, &back));
    assert_checksums(&back);
    assert_eq!(h.counter(Counter::DropSessionLimit), 1);
    assert_eq!(h.counter(Counter::UnreachableSent), 1);
    assert_eq!(h.eng.session_count(), 1, "the existing mapping is kept (REQ-11 d)");
    // A TCP segment and an echo request refused the same way.
    let syn = ip4_tcp(HOST, SERVER, 40000, 80, 64, "S", None, b"");
    let back = h.forward(&softwire(B4_A, &syn), Egress::Softwire);
    assert_eq!(back, to_b4(B4_A, &icmp4_error_as_sent([192, 0, 0, 1], HOST, 3, 1, 0, &syn, &back), &back));
    let ping = ip4_echo(HOST, SERVER, 7, 1, 64, true, b"ping");
    let back = h.forward(&softwire(B4_A, &ping), Egress::Softwire);
    assert_eq!(back, to_b4(B4_A, &icmp4_error_as_sent([192, 0, 0, 1], HOST, 3, 1, 0, &ping, &back), &back));
    assert_eq!(h.counter(Counter::UnreachableSent), 3);
    assert_eq!(h.counter(Counter::DropSessionLimit), 3);
}

#[test]
fn no_mapping_answers_share_the_icmp_budget() {
    let mut inst = instance();
    inst.limits.max_sessions = 1;
    let mut cfg = config(inst);
    cfg.icmp_errors_burst = 2;
    let mut h = Harness::new(cfg);
    udp_mapping(&mut h);
    let refused = softwire(B4_A, &ip4_udp(HOST, SERVER, 5001, 53, 64, b"x"));
    h.forward(&refused, Egress::Softwire);
    h.forward(&refused, Egress::Softwire);
    let o = h.run(&refused);
    assert_eq!(o.verdict, Verdict::Drop(Counter::DropSessionLimit));
    assert!(o.sink.emitted.is_empty());
    assert_eq!(h.counter(Counter::UnreachableSent), 2);
    assert_eq!(h.counter(Counter::IcmpErrorsSuppressed), 1);
}

/// The softwire frame the AFTR sends B4_A for a reply of `len` payload bytes from
/// SERVER to the mapping, with DF as given.
fn reply_through_tunnel(h: &mut Harness, ext: [u8; 4], port: u16, len: usize, df: bool) -> Vec<u8> {
    let reply = edit_ipv4(&ip4_udp(SERVER, ext, 53, port, 64, &vec![7u8; len]), |i| i.dont_fragment = df);
    h.forward(&from_internet(&reply), Egress::Softwire)
}

/// An ICMPv6 Packet Too Big from a router on the way to the B4 quoting `sent` (the
/// IPv6 packet of a softwire frame), as much of it as fits in 1280 bytes.
fn packet_too_big(mtu: u32, sent: &[u8]) -> Vec<u8> {
    let quoted = &sent[..sent.len().min(1280 - 48)];
    let mut ptb = Vec::new();
    etherparse::PacketBuilder::ethernet2(B4_SIDE_NH, AFTR_MAC)
        .ipv6(ROUTER6, ENDPOINT, 64)
        .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu })
        .write(&mut ptb, quoted)
        .unwrap();
    ptb
}

#[test]
fn packet_too_big_sets_the_path_mtu_towards_that_b4() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h);
    let b_out = h.forward(&softwire(B4_B, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")), Egress::Internet);
    let (ext_b, port_b) = (out_src(&b_out), out_sport(&b_out));
    let sent = reply_through_tunnel(&mut h, ext, port, 1400, true);
    // A router on the way to B4_A carries 1400 bytes: the sender of the DF packet hears
    // fragmentation needed with 1360, quoted as it sent the packet.
    let out = h.forward(&packet_too_big(1400, &sent[14..]), Egress::Internet);
    // The PTB quotes 1280 - 48 bytes of our packet, the ICMPv4 error 576 - 28 of those.
    let as_sent = ip4_udp(SERVER, ext, 53, port, 63, &[7u8; 1400]);
    let quoted_len = 576 - 28;
    let want = icmp4_error_as_sent(ext, SERVER, 3, 4, 1360, &as_sent[..quoted_len], &out);
    assert_eq!(out, to_internet(&want));
    assert_checksums(&out);
    assert_eq!(h.counter(Counter::SoftwireMtuLearned), 1);
    // From now on towards B4_A: a DF packet of 1400 bytes (1440 in IPv6) is refused
    // with 1360, a non-DF one leaves in IPv6 fragments of at most 1400 bytes.
    let big = ip4_udp(SERVER, ext, 53, port, 64, &[1u8; 1372]);
    let out = h.forward(&from_internet(&big), Egress::Internet);
    assert_eq!(&out[14 + 20..14 + 22], &[3, 4]);
    assert_eq!(u32::from_be_bytes(out[14 + 24..14 + 28].try_into().unwrap()), 1360);
    let big_nodf = edit_ipv4(&big, |i| i.dont_fragment = false);
    let o = h.run(&from_internet(&big_nodf));
    assert_eq!(o.verdict, Verdict::Consumed);
    assert_eq!(o.sink.emitted.len(), 2);
    assert!(o.sink.emitted.iter().all(|(e, f)| *e == Egress::Softwire && f.len() - 14 <= 1400));
    // Another B4's path is its own.
    h.forward(&from_internet(&ip4_udp(SERVER, ext_b, 53, port_b, 64, &[1u8; 1372])), Egress::Softwire);
    // RFC 8201: after 10 minutes the estimate goes back to the tunnel MTU.
    h.advance(599);
    h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"keep")), Egress::Internet);
    assert_eq!(h.run(&from_internet(&big)).verdict, Verdict::Forward(Egress::Internet), "still 1400");
    h.advance(1);
    h.forward(&from_internet(&big), Egress::Softwire);
}

#[test]
fn packet_too_big_about_a_non_df_packet_gets_no_answer() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h);
    let sent = reply_through_tunnel(&mut h, ext, port, 1400, false);
    let o = h.run(&packet_too_big(1400, &sent[14..]));
    assert_eq!(o.verdict, Verdict::Consumed, "learned; the AFTR fragments such packets itself");
    assert!(o.sink.emitted.is_empty());
    assert_eq!(h.counter(Counter::SoftwireMtuLearned), 1);
    assert_eq!(h.counter(Counter::FragNeededSent), 0);
}

#[test]
fn packet_too_big_below_1280_or_not_about_our_packets_is_ignored() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h);
    let sent = reply_through_tunnel(&mut h, ext, port, 1200, true);
    // RFC 8200: every IPv6 link carries 1280; a smaller MTU is forged or broken.
    let o = h.run(&packet_too_big(1000, &sent[14..]));
    assert_eq!(o.verdict, Verdict::Drop(Counter::DropPtbBelowMinimum));
    assert!(o.sink.emitted.is_empty());
    // RFC 8201 section 4: no larger than the MTU the packet was sent at (the tunnel's).
    h.dropped(&packet_too_big(1500, &sent[14..]), Counter::DropPtbNotSmaller);
    h.dropped(&packet_too_big(9000, &sent[14..]), Counter::DropPtbNotSmaller);
    // Quoting a packet the B4 sent us rather than one we sent, or one to a B4 we do not
    // serve: not about our softwires.
    let from_b4 = softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, &[0u8; 1300]));
    h.dropped(&packet_too_big(1300, &from_b4[14..]), Counter::DropIcmpErrorNoSession);
    let mut to_other = sent.clone();
    to_other[14 + 24..14 + 40].copy_from_slice(&B4_B);
    h.dropped(&packet_too_big(1300, &to_other[14..]), Counter::DropIcmpErrorNoSession);
    assert_eq!(h.counter(Counter::SoftwireMtuLearned), 0);
    // The path keeps the tunnel MTU: 1460 bytes go whole.
    h.forward(&from_internet(&ip4_udp(SERVER, ext, 53, port, 64, &[1u8; 1432])), Egress::Softwire);
}
