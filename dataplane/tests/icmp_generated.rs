//! The ICMP errors the AFTR generates itself: only about packets that belong to a
//! session, within the worker's budget (RFC 1812 section 4.3.2.8), and where RFC 6888
//! and RFC 5508 ask for one (no mapping could be made); and what an ICMPv6 Packet Too
//! Big about a softwire does (RFC 8201 path MTU per B4).

mod common;
use common::*;
use dataplane::counters::Counter;
use dataplane::{Egress, Verdict};

/// Sets up a UDP mapping for HOST:5000 of B4_A; returns (external address, port).
fn udp_mapping(h: &mut Harness) -> ([u8; 4], u16) {
    let out = h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"query")), Egress::Internet);
    (out_src(&out), out_sport(&out))
}

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
