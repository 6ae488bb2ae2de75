//! Static port forwardings and B4s with an address of their own (decision 0019): the
//! engine's side, frames checked with etherparse (the harness's second opinion).

mod common;
use common::*;
use dataplane::config::{Ipv4Prefix, OwnAddress, StaticMapping};
use dataplane::counters::Counter;
use dataplane::wire::proto;
use dataplane::{Egress, Verdict};

const EXT: [u8; 4] = [198, 51, 100, 0];
const STATIC_PORT: u16 = 40000;
const OWN: [u8; 4] = [198, 51, 100, 200];
const SHARED: [u8; 4] = [198, 51, 100, 201];

fn forwarding() -> StaticMapping {
    StaticMapping {
        b4: B4_A,
        proto: proto::UDP,
        inside_addr: u32::from_be_bytes(HOST),
        inside_port: 5000,
        ext_addr: u32::from_be_bytes(EXT),
        ext_port: STATIC_PORT,
    }
}

#[test]
fn a_static_port_is_never_allocated_dynamically() {
    // One address, blocks of 512: blocks 0 and 1 well-known, 126 dynamic, the
    // forwarding's (block 78) reserved. One block per subscriber: subscribers take blocks
    // until none is left, and none gets the forwarding's.
    let mut inst = instance();
    inst.pool = vec![Ipv4Prefix { addr: u32::from_be_bytes(EXT), len: 32 }];
    inst.limits.max_blocks = 1;
    inst.statics = vec![forwarding()];
    let mut h = Harness::new(config(inst));
    let mut blocks = std::collections::BTreeSet::new();
    for n in 0..200u16 {
        let mut b4 = B4_B;
        b4[14..16].copy_from_slice(&n.to_be_bytes());
        let o = h.run(&softwire(b4, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")));
        if o.verdict != Verdict::Forward(Egress::Internet) {
            break;
        }
        let p = out_sport(&o.frame);
        assert_ne!(p / 512, STATIC_PORT / 512, "port {p} of the static forwarding's block handed out");
        blocks.insert(p / 512);
    }
    assert_eq!(blocks.len(), 125, "every other dynamic block, and no more");
    assert_eq!(h.counter(Counter::DropPortsExhausted), 1);
    // The forwarding still works, from the Internet to the inside host.
    let o = h.forward(&from_internet(&ip4_udp(SERVER, EXT, 53, STATIC_PORT, 64, b"in")), Egress::Softwire);
    assert_eq!(o, to_b4(B4_A, &ip4_udp(SERVER, HOST, 53, 5000, 63, b"in"), &o));
    assert_eq!(h.counter(Counter::StaticOut2In), 1);
}

#[test]
fn static_forwarding_both_ways_and_hairpinned() {
    let mut inst = instance();
    inst.statics = vec![forwarding()];
    let mut h = Harness::new(config(inst));
    // Outbound from the inside end: the external address and port, no session.
    let o = h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"out")), Egress::Internet);
    assert_eq!(o, to_internet(&ip4_udp(EXT, SERVER, STATIC_PORT, 53, 63, b"out")));
    assert_eq!(h.eng.session_count(), 0);
    assert_eq!(h.counter(Counter::StaticIn2Out), 1);
    // Another port of the same host is dynamic NAT as ever.
    let o = h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5001, 53, 64, b"dyn")), Egress::Internet);
    assert_ne!((out_src(&o), out_sport(&o)), (EXT, STATIC_PORT));
    // Hairpinned from another B4: its own mapping as source, the inside end as target.
    let o = h.run(&softwire(B4_B, &ip4_udp(HOST, EXT, 6000, STATIC_PORT, 64, b"hp")));
    let f = &o.frame;
    assert_eq!(h.counter(Counter::Hairpin), 1);
    assert_eq!(h.counter(Counter::StaticOut2In), 1);
    let inner = &f[14 + 40..];
    assert_eq!(&inner[16..20], &HOST, "inner destination");
    assert_eq!(u16::from_be_bytes([inner[22], inner[23]]), 5000);
    assert_eq!(&f[14 + 24..14 + 40], &B4_A, "to the static B4");
    // TCP to the UDP forwarding's port: no such forwarding.
    h.dropped(&from_internet(&ip4_tcp(SERVER, EXT, 80, STATIC_PORT, 64, "S", None, b"")), Counter::DropNoSession);
}

#[test]
fn own_addresses_forwarded_untranslated_and_checked() {
    let mut inst = instance();
    inst.own_addresses = vec![
        OwnAddress { b4: B4_A, addr: u32::from_be_bytes(OWN), first: 1, last: u16::MAX },
        OwnAddress { b4: B4_B, addr: u32::from_be_bytes(SHARED), first: 2048, last: 4095 },
    ];
    let mut h = Harness::new(config(inst));
    // No-NAT: untranslated both ways.
    let o = h.forward(&softwire(B4_A, &ip4_udp(OWN, SERVER, 7, 53, 64, b"x")), Egress::Internet);
    assert_eq!(o, to_internet(&ip4_udp(OWN, SERVER, 7, 53, 63, b"x")));
    let o = h.forward(&from_internet(&ip4_udp(SERVER, OWN, 53, 7, 64, b"y")), Egress::Softwire);
    assert_eq!(o, to_b4(B4_A, &ip4_udp(SERVER, OWN, 53, 7, 63, b"y"), &o));
    // A+P: in range both ways; out of range or spoofed, counted drops.
    let o = h.forward(&softwire(B4_B, &ip4_udp(SHARED, SERVER, 3000, 53, 64, b"x")), Egress::Internet);
    assert_eq!(o, to_internet(&ip4_udp(SHARED, SERVER, 3000, 53, 63, b"x")));
    let o = h.forward(&from_internet(&ip4_udp(SERVER, SHARED, 53, 3000, 64, b"y")), Egress::Softwire);
    assert_eq!(o, to_b4(B4_B, &ip4_udp(SERVER, SHARED, 53, 3000, 63, b"y"), &o));
    h.dropped(&softwire(B4_B, &ip4_udp(SHARED, SERVER, 5000, 53, 64, b"x")), Counter::DropOwnAddressPort);
    h.dropped(&from_internet(&ip4_udp(SERVER, SHARED, 53, 5000, 64, b"y")), Counter::DropOwnAddressPort);
    h.dropped(&softwire(B4_B, &ip4_udp(OWN, SERVER, 7, 53, 64, b"x")), Counter::DropOwnAddressSpoofed);
    h.dropped(&softwire(B4_A, &ip4_udp(SHARED, SERVER, 3000, 53, 64, b"x")), Counter::DropOwnAddressSpoofed);
    // Any other public source is still refused by policy.
    h.dropped(&softwire(B4_A, &ip4_udp([8, 8, 8, 8], SERVER, 7, 53, 64, b"x")), Counter::DropInnerSourcePolicy);
    assert_eq!(h.counter(Counter::OwnAddressIn2Out), 2);
    assert_eq!(h.counter(Counter::OwnAddressOut2In), 2);
}
