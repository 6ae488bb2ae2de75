//! Fragments under hostile traffic (issue 15): floods that never complete, fragments
//! from unauthorised B4s, filtering that fragments must not bypass, extension headers
//! after the Fragment header, atomic fragments, outer fragments written in place and
//! the bounds of the tunnel MTU. Each case checks the bytes that leave and the counters.

mod common;
use common::*;
use dataplane::config::{ConfigError, Filtering};
use dataplane::counters::Counter;
use dataplane::{Egress, Engine, Verdict};
use etherparse::IpNumber;

/// Sets up a UDP mapping for HOST:5000 of `b4` towards SERVER:53; returns (external
/// address, port).
fn udp_mapping(h: &mut Harness, b4: [u8; 16]) -> ([u8; 4], u16) {
    let out = h.forward(&softwire(b4, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"query")), Egress::Internet);
    (out_src(&out), out_sport(&out))
}

/// Sends the fragments of one 1028-byte UDP datagram from `b4` (HOST:5000 to
/// SERVER:53), the last fragment first; returns what was emitted after the last one.
fn fragmented_datagram(h: &mut Harness, b4: [u8; 16], ident: u32) -> Vec<(Egress, Vec<u8>)> {
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 64, &[9u8; 1000]);
    let frags = ipv6_fragments(b4, &inner, &[512], ident);
    assert_eq!(h.run(&frags[1]).verdict, Verdict::Consumed);
    let o = h.run(&frags[0]);
    assert_eq!(o.verdict, Verdict::Consumed);
    o.sink.emitted
}

/// `emitted` is the one frame the AFTR sends to the Internet for `fragmented_datagram`
/// (its external address and port taken from it).
fn assert_translated(h: &Harness, emitted: &[(Egress, Vec<u8>)]) {
    assert_eq!(emitted.len(), 1, "counters: {:?}", h.eng.counters().nonzero());
    let (e, out) = &emitted[0];
    assert_eq!(*e, Egress::Internet);
    assert_eq!(*out, to_internet(&ip4_udp(out_src(out), SERVER, out_sport(out), 53, 63, &[9u8; 1000])));
}

/// A B4 that sends first fragments that never complete, far more than the table holds,
/// takes its share and no more: another B4's datagram is still reassembled and
/// translated.
#[test]
fn a_fragment_flood_from_one_b4_leaves_room_for_another() {
    let mut h = Harness::default();
    let junk = ip4_udp(HOST, SERVER, 7000, 53, 64, &[1u8; 1000]);
    for ident in 0..1000 {
        let f = &ipv6_fragments(B4_B, &junk, &[512], ident)[0];
        assert_eq!(h.run(f).verdict, Verdict::Consumed);
    }
    let out = fragmented_datagram(&mut h, B4_A, 1);
    assert_translated(&h, &out);
    assert_eq!(h.counter(Counter::Reassembled), 1);
    // The flooder evicted its own oldest datagrams, past its limit of 16.
    assert_eq!(h.counter(Counter::DropFragSourceLimit), 1000 - 16);
    assert_eq!(h.counter(Counter::DropFragTableFull), 0);
    assert_eq!(h.counter(Counter::DropFragFairShare), 0);
}

/// Many B4s that fill the table between them: a newcomer takes a slot from the B4 that
/// holds the most, never from one that holds less than two more than the newcomer; once
/// every B4 holds one, the oldest datagram gives way; a B4 that holds one replaces its
/// own.
#[test]
fn a_full_fragment_table_is_shared_fairly() {
    let mut cfg = config(instance());
    cfg.frag.max_reassemblies = 8;
    cfg.frag.max_per_source = 4;
    let mut h = Harness::new(cfg);
    let junk = ip4_udp(HOST, SERVER, 7000, 53, 64, &[1u8; 1000]);
    let b4 = |n: u8| {
        let mut a = B4_A;
        a[7] = 0x10 + n;
        a
    };
    let start = |h: &mut Harness, n: u8, ident: u32| {
        assert_eq!(h.run(&ipv6_fragments(b4(n), &junk, &[512], ident)[0]).verdict, Verdict::Consumed);
    };
    // Whether datagram `ident` of B4 `n` was still held: its last fragment completes it.
    let completes = |h: &mut Harness, n: u8, ident: u32| {
        let o = h.run(&ipv6_fragments(b4(n), &junk, &[512], ident)[1]);
        assert_eq!(o.verdict, Verdict::Consumed);
        o.sink.emitted.len() == 1
    };
    // Two B4s hold 4 each: the table is full.
    for n in 0..2 {
        for ident in 0..4 {
            start(&mut h, n, ident);
        }
    }
    // Six newcomers take a slot each from the B4s that hold the most: then all hold one
    // (B4 0 and B4 1 their newest, ident 3).
    for n in 2..8 {
        start(&mut h, n, 0);
    }
    assert_eq!(h.counter(Counter::DropFragFairShare), 6);
    // A ninth B4: the oldest datagram of the table, B4 0's, gives way.
    start(&mut h, 8, 0);
    assert_eq!(h.counter(Counter::DropFragFairShare), 7);
    // A B4 that holds one and starts another datagram replaces its own.
    start(&mut h, 7, 1);
    assert_eq!(h.counter(Counter::DropFragFairShare), 8);
    assert!(completes(&mut h, 1, 3), "counters: {:?}", h.eng.counters().nonzero());
    assert!(completes(&mut h, 7, 1));
    assert!(!completes(&mut h, 7, 0));
    assert!(!completes(&mut h, 0, 3));
    assert_eq!(h.counter(Counter::Reassembled), 2);
    assert_eq!(h.counter(Counter::DropFragTableFull), 0);
}

/// Fragments from a B4 outside the instance's prefixes never reach the reassembly table.
#[test]
fn fragments_of_an_unauthorised_b4_are_dropped_before_reassembly() {
    let mut h = Harness::default();
    let junk = ip4_udp(HOST, SERVER, 7000, 53, 64, &[1u8; 1000]);
    for ident in 0..300 {
        h.dropped(&ipv6_fragments(B4_ROGUE, &junk, &[512], ident)[0], Counter::DropB4NotAuthorised);
    }
    let out = fragmented_datagram(&mut h, B4_A, 1);
    assert_translated(&h, &out);
    assert_eq!(h.counter(Counter::DropB4NotAuthorised), 300);
    assert_eq!(h.counter(Counter::DropFragTableFull), 0);
}

/// An IPv4 datagram from the Internet to HOST:5000 through (ext, port), fragmented at
/// 400 with identification `ident`: the two fragments and the two frames that should
/// reach the B4 (flow labels taken from `actual`).
fn inbound_pair(src: [u8; 4], ext: [u8; 4], port: u16, ident: u16) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let (f1, f2) = ipv4_fragments_id(&ip4_udp(src, ext, 53, port, 64, &[3u8; 800]), 400, ident);
    let (w1, w2) = ipv4_fragments_id(&ip4_udp(src, HOST, 53, 5000, 63, &[3u8; 800]), 400, ident);
    (from_internet(&f1), from_internet(&f2), w1, w2)
}

/// One Internet source that sends first fragments that never complete, far more than
/// the table holds, leaves room for another source's datagram.
#[test]
fn a_fragment_flood_from_one_internet_source_leaves_room_for_another() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h, B4_A);
    for ident in 0..1000 {
        let (f1, ..) = inbound_pair(SERVER2, ext, port, ident);
        h.forward(&f1, Egress::Softwire);
    }
    let (f1, f2, w1, w2) = inbound_pair(SERVER, ext, port, 7);
    let o1 = h.forward(&f1, Egress::Softwire);
    let o2 = h.forward(&f2, Egress::Softwire);
    assert_eq!(o1, to_b4(B4_A, &w1, &o1));
    assert_eq!(o2, to_b4(B4_A, &w2, &o2));
    assert_eq!(h.counter(Counter::DropFragSourceLimit), 1000 - 16);
    assert_eq!(h.counter(Counter::DropFragTableFull), 0);
}

/// One Internet source that sends only later fragments (held until a first fragment that
/// never comes) leaves room for another source's fragments that arrive out of order.
#[test]
fn held_fragments_of_one_internet_source_leave_room_for_another() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h, B4_A);
    for ident in 0..1000 {
        let (_, f2, ..) = inbound_pair(SERVER2, ext, port, ident);
        assert_eq!(h.run(&f2).verdict, Verdict::Consumed);
    }
    let (f1, f2, w1, w2) = inbound_pair(SERVER, ext, port, 7);
    assert_eq!(h.run(&f2).verdict, Verdict::Consumed, "held until the first comes");
    let o = h.run(&f1);
    assert_eq!(o.verdict, Verdict::Forward(Egress::Softwire));
    assert_eq!(o.frame, to_b4(B4_A, &w1, &o.frame));
    assert_eq!(o.sink.emitted.len(), 1, "counters: {:?}", h.eng.counters().nonzero());
    let (e, held) = &o.sink.emitted[0];
    assert_eq!(*e, Egress::Softwire);
    assert_eq!(*held, to_b4(B4_A, &w2, held));
    assert_eq!(h.counter(Counter::DropFragSourceLimit), (1000 - 8) as u64);
    assert_eq!(h.counter(Counter::DropFragTableFull), 0);
}

fn filtering_harness() -> Harness {
    let mut inst = instance();
    inst.filtering = Filtering::AddressAndPortDependent;
    Harness::new(config(inst))
}

/// With address-and-port-dependent filtering, a remote the subscriber never sent to is
/// refused for every fragment of its datagram, in any order; a permitted remote is not.
#[test]
fn every_fragment_gets_the_filtering_verdict_of_the_first() {
    for reversed in [false, true] {
        let mut h = filtering_harness();
        let (ext, port) = udp_mapping(&mut h, B4_A);
        let (f1, f2, ..) = inbound_pair(SERVER2, ext, port, 9);
        if reversed {
            assert_eq!(h.run(&f2).verdict, Verdict::Consumed);
            let o = h.run(&f1);
            assert_eq!(o.verdict, Verdict::Drop(Counter::DropFiltered));
            assert!(o.sink.emitted.is_empty(), "the held fragment is not released");
        } else {
            h.dropped(&f1, Counter::DropFiltered);
            h.dropped(&f2, Counter::DropFiltered);
        }
        assert_eq!(h.counter(Counter::DropFiltered), 2);
        assert_eq!(h.counter(Counter::Out2In), 0);
        // The permitted remote's fragments pass.
        let (f1, f2, w1, w2) = inbound_pair(SERVER, ext, port, 9);
        let o1 = h.forward(&f1, Egress::Softwire);
        let o2 = h.forward(&f2, Egress::Softwire);
        assert_eq!(o1, to_b4(B4_A, &w1, &o1));
        assert_eq!(o2, to_b4(B4_A, &w2, &o2));
    }
}

/// With two workers, the worker that tracks a datagram's fragments hands them to the
/// owner of the port, which filters each of them as it filtered the first.
#[test]
fn fragments_handed_to_the_port_owner_are_filtered_there() {
    let mut inst = instance();
    inst.filtering = Filtering::AddressAndPortDependent;
    let mut cfg = config(inst);
    cfg.workers = 2;
    let mut w = Harness::board(cfg);
    let out = w[0].forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"query")), Egress::Internet);
    let (ext, port) = (out_src(&out), out_sport(&out));
    assert_eq!(w[0].eng.owner_of_port(u32::from_be_bytes(ext), port), Some(0));
    for (src, permitted) in [(SERVER2, false), (SERVER, true)] {
        let (f1, f2, w1, w2) = inbound_pair(src, ext, port, 11);
        for (f, want) in [(f1, w1), (f2, w2)] {
            // Fragments land on worker 1, which hands them over with the ports.
            let o = w[1].run(&f);
            assert_eq!(o.verdict, Verdict::Handoff(0));
            let o = w[0].run_hint(&o.frame, o.frame_hint);
            if permitted {
                assert_eq!(o.verdict, Verdict::Forward(Egress::Softwire));
                assert_eq!(o.frame, to_b4(B4_A, &want, &o.frame));
            } else {
                assert_eq!(o.verdict, Verdict::Drop(Counter::DropFiltered));
            }
        }
    }
    assert_eq!(w[0].counter(Counter::DropFiltered), 2);
    assert_eq!(w[0].counter(Counter::Out2In), 2);
}

/// Of ICMP, only echo replies are taken in fragments: an ICMP error's translation needs
/// the whole message, and its first fragment is no echo to take the identifier of.
#[test]
fn a_fragmented_icmp_error_is_dropped() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h, B4_A);
    let quoted = ip4_udp(ext, SERVER, port, 53, 63, &[7u8; 600]);
    let err = ip4_icmp_error(SERVER, ext, 3, 3, 0, &quoted);
    let (f1, f2) = ipv4_fragments_id(&err, 320, 5);
    h.dropped(&from_internet(&f1), Counter::DropUnsupportedIcmp);
    assert_eq!(h.run(&from_internet(&f2)).verdict, Verdict::Consumed, "held for a first that never comes");
    assert_eq!(h.counter(Counter::Out2In), 0);
}

/// RFC 8200 section 4.5: headers after the Fragment header belong to the fragmentable
/// part; a Destination Options header there is reassembled with the rest, then skipped.
#[test]
fn extension_headers_after_the_fragment_header_are_reassembled() {
    let mut h = Harness::default();
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 64, &[9u8; 1000]);
    // Destination Options (8 bytes: next header IPv4, PadN of 4) then the IPv4 packet.
    let mut part = vec![4, 0, 1, 4, 0, 0, 0, 0];
    part.extend_from_slice(&inner);
    let frags = ipv6_fragments_nh(B4_A, 60, &part, &[512], 3);
    assert_eq!(h.run(&frags[0]).verdict, Verdict::Consumed);
    let o = h.run(&frags[1]);
    assert_translated(&h, &o.sink.emitted);
    assert_eq!(h.counter(Counter::Reassembled), 1);
}

/// A reassembled packet that holds another Fragment header (or a Hop-by-Hop header,
/// which must come first) is refused and counted.
#[test]
fn a_fragment_header_inside_the_fragmentable_part_is_refused() {
    let mut h = Harness::default();
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 64, &[9u8; 1000]);
    for nh in [44u8, 0] {
        // A header of 8 bytes with next header IPv4.
        let mut part = vec![4, 0, 0, 0, 0, 0, 0, 0];
        part.extend_from_slice(&inner);
        let frags = ipv6_fragments_nh(B4_A, nh, &part, &[512], nh as u32);
        h.dropped(&frags[0], Counter::DropIpv6Extension);
    }
    assert_eq!(h.counter(Counter::Reassembled), 0);
}

/// RFC 6946: an atomic fragment (offset 0, no more fragments) is processed on its own,
/// never mixed with a datagram in progress that has the same identification.
#[test]
fn atomic_fragments_are_processed_alone() {
    let mut h = Harness::default();
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 64, &[9u8; 1000]);
    let frags = ipv6_fragments(B4_A, &inner, &[512], 5);
    assert_eq!(h.run(&frags[1]).verdict, Verdict::Consumed);
    let small = ip4_udp(HOST, SERVER, 5000, 53, 64, b"atomic");
    let atomic = &ipv6_fragments(B4_A, &small, &[], 5)[0];
    let out = h.forward(atomic, Egress::Internet);
    assert_eq!(out, to_internet(&ip4_udp(out_src(&out), SERVER, out_sport(&out), 53, 63, b"atomic")));
    // The datagram in progress completes.
    let o = h.run(&frags[0]);
    assert_translated(&h, &o.sink.emitted);
    assert_eq!(h.counter(Counter::Reassembled), 1);
}

/// The tunnel MTU is at most 9000 (a jumbo frame): above it the engine refuses the
/// configuration instead of fragmenting into buffers that cannot hold the result.
#[test]
fn the_tunnel_mtu_has_an_upper_bound() {
    let mut inst = instance();
    inst.tunnel_mtu = 9001;
    assert!(matches!(Engine::new(&config(inst.clone()), 0, 1), Err(ConfigError::TunnelMtu(..))));
    inst.tunnel_mtu = 9000;
    assert!(Engine::new(&config(inst), 0, 1).is_ok());
}

/// `ip` without DF, its header checksum fixed.
fn without_df(mut ip: Vec<u8>) -> Vec<u8> {
    ip[6] &= !0x40;
    let mut h = etherparse::Ipv4HeaderSlice::from_slice(&ip).unwrap().to_header();
    h.header_checksum = h.calc_header_checksum();
    ip[..20].copy_from_slice(&h.to_bytes());
    ip
}

/// The outer fragment the AFTR should send to `b4` carrying bytes `off..off + take` of
/// `inner`, behind a VLAN tag if any; the identification and flow label are taken from
/// `actual` (chosen by the engine).
fn outer_fragment(b4: [u8; 16], inner: &[u8], off: usize, take: usize, vlan: Option<u16>, actual: &[u8]) -> Vec<u8> {
    let mut f = B4_SIDE_NH.to_vec();
    f.extend_from_slice(&AFTR_MAC);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x86, 0xdd]);
    let l3 = f.len();
    let flow = u32::from_be_bytes([0, actual[l3 + 1] & 0x0f, actual[l3 + 2], actual[l3 + 3]]);
    f.extend(ip6_header(ENDPOINT, b4, IpNumber::IPV6_FRAGMENTATION_HEADER, 8 + take, 64, inner[1], flow));
    let more = off + take < inner.len();
    f.extend_from_slice(&[4, 0]);
    f.extend_from_slice(&((off as u16) | more as u16).to_be_bytes());
    f.extend_from_slice(&actual[l3 + 44..l3 + 48]);
    f.extend_from_slice(&inner[off..off + take]);
    f
}

/// Outer fragments are written in place, behind a VLAN tag too: every byte of every
/// fragment as RFC 8200 section 4.5 lays it out, one identification for all.
#[test]
fn outer_fragments_are_written_in_place_behind_a_vlan_tag() {
    let mut inst = instance();
    inst.tunnel_mtu = 1280;
    let mut cfg = config(inst);
    cfg.softwire_l2.vlan = Some(100);
    let mut h = Harness::new(cfg);
    let (ext, port) = udp_mapping(&mut h, B4_A);
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let o = h.run(&from_internet(&without_df(ip4_udp(SERVER, ext, 53, port, 64, &payload))));
    assert_eq!(o.verdict, Verdict::Consumed);
    let inner = without_df(ip4_udp(SERVER, HOST, 53, 5000, 63, &payload));
    let sizes = [1232, 1232, inner.len() - 2464];
    assert_eq!(o.sink.emitted.len(), 3);
    let ident = &o.sink.emitted[0].1[18 + 44..18 + 48];
    for (k, (e, f)) in o.sink.emitted.iter().enumerate() {
        assert_eq!(*e, Egress::Softwire);
        assert_eq!(*f, outer_fragment(B4_A, &inner, 1232 * k, sizes[k], Some(100), f));
        assert_eq!(&f[18 + 44..18 + 48], ident, "one identification");
        assert!(f.len() - 18 <= 1280);
    }
    assert_eq!(h.counter(Counter::OuterFragmented), 1);
    assert_eq!(h.counter(Counter::OuterFragmentsSent), 3);
}

/// The largest datagram the reassembly takes, hairpinned to a B4 behind the largest
/// tunnel MTU: fragmented from the reassembly buffer, nothing out of bounds.
#[test]
fn a_reassembled_jumbo_datagram_is_hairpinned_in_outer_fragments() {
    let mut inst = instance();
    inst.tunnel_mtu = dataplane::config::MAX_TUNNEL_MTU;
    let mut h = Harness::new(config(inst));
    let (ext_a, port_a) = udp_mapping(&mut h, B4_A);
    let b_host = [192, 168, 7, 7];
    let payload: Vec<u8> = (0..9216 - 28).map(|i| (i % 251) as u8).collect();
    let sent = without_df(ip4_udp(b_host, ext_a, 6000, port_a, 64, &payload));
    assert_eq!(sent.len(), 9216);
    let cuts: Vec<usize> = (1..8).map(|k| k * 1232).collect();
    let frags = ipv6_fragments(B4_B, &sent, &cuts, 21);
    for f in &frags[..7] {
        assert_eq!(h.run(f).verdict, Verdict::Consumed);
    }
    let o = h.run(&frags[7]);
    assert_eq!(o.sink.emitted.len(), 2, "counters: {:?}", h.eng.counters().nonzero());
    let first = &o.sink.emitted[0].1;
    let ip = &first[14 + 48..];
    let (ext_b, sport_b) = (<[u8; 4]>::try_from(&ip[12..16]).unwrap(), u16::from_be_bytes([ip[20], ip[21]]));
    // The identification is the AFTR's own for a non-atomic datagram (RFC 6864).
    let id = u16::from_be_bytes([ip[4], ip[5]]);
    let inner = edit_ipv4(&without_df(ip4_udp(ext_b, HOST, sport_b, 5000, 63, &payload)), |h| h.identification = id);
    let sizes = [8952, inner.len() - 8952];
    for (k, (e, f)) in o.sink.emitted.iter().enumerate() {
        assert_eq!(*e, Egress::Softwire);
        assert_eq!(*f, outer_fragment(B4_A, &inner, 8952 * k, sizes[k], None, f));
    }
    assert_eq!(h.counter(Counter::Reassembled), 1);
    assert_eq!(h.counter(Counter::Hairpin), 1);
}
