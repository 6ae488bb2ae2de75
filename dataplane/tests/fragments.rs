//! Fragments that must not upset the packet path: extension headers after the
//! Fragment header and atomic fragments (issue 15). Each case checks the bytes that
//! leave and the counters.

mod common;
use common::*;
use dataplane::counters::Counter;
use dataplane::{Egress, Verdict};

/// The frame the AFTR sends to the Internet for a 1028-byte UDP datagram from
/// HOST:5000 to SERVER:53 (its first frame `out`: the external address and port).
fn translated_datagram(out: &[u8]) -> Vec<u8> {
    to_internet(&ip4_udp(out_src(out), SERVER, out_sport(out), 53, 63, &[9u8; 1000]))
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
    assert_eq!(o.sink.emitted.len(), 1, "counters: {:?}", h.eng.counters().nonzero());
    assert_eq!(o.sink.emitted[0].1, translated_datagram(&o.sink.emitted[0].1));
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
    assert_eq!(o.sink.emitted.len(), 1, "counters: {:?}", h.eng.counters().nonzero());
    assert_eq!(o.sink.emitted[0].1, translated_datagram(&o.sink.emitted[0].1));
    assert_eq!(h.counter(Counter::Reassembled), 1);
}
