//! Steering by service-location (decision 0012): a board of two locations serves each
//! B4 from its location's pool share, only while it is active for that location, and
//! leaves B4s of another board pair's locations and addresses of a standby location
//! alone, each counted.

mod common;
use common::*;
use dataplane::config::{BUCKETS, ELSEWHERE, Ipv4Prefix, bucket_of};
use dataplane::counters::Counter;
use dataplane::{Egress, Verdict};

/// B4 number `n` of the authorised /40.
fn b4(n: u16) -> [u8; 16] {
    let mut a = B4_A;
    a[14..16].copy_from_slice(&n.to_be_bytes());
    a
}

/// Two locations: the pool's first /30 is location 0's, the next location 1's; even
/// buckets are location 0's, odd ones location 1's, and every bucket that is a multiple
/// of 7 another board pair's.
fn two_locations() -> Harness {
    let mut i = instance();
    let base = u32::from_be_bytes(POOL);
    i.pool = vec![Ipv4Prefix { addr: base, len: 30 }, Ipv4Prefix { addr: base + 4, len: 30 }];
    i.pool_locations = vec![0, 1];
    i.buckets = (0..BUCKETS).map(kind).collect();
    let mut c = config(i);
    c.locations = vec![1, 2];
    Harness::new(c)
}

/// The location of bucket `b` in `two_locations`.
fn kind(b: usize) -> u8 {
    if b.is_multiple_of(7) { ELSEWHERE } else { (b % 2) as u8 }
}

/// The first B4 (by number) whose bucket's location is `want`: 0, 1 or ELSEWHERE.
fn b4_of(want: u8) -> [u8; 16] {
    (1..u16::MAX).map(b4).find(|a| kind(bucket_of(a)) == want).expect("some B4 of each kind")
}

#[test]
fn each_b4_gets_an_address_of_its_locations_share() {
    let mut h = two_locations();
    let base = u32::from_be_bytes(POOL);
    for (loc, share) in [(0u8, base..base + 4), (1, base + 4..base + 8)] {
        let b = b4_of(loc);
        let out = h.forward(&softwire(b, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")), Egress::Internet);
        let ext = u32::from_be_bytes(out_src(&out));
        assert!(share.contains(&ext), "location {loc}: {ext:#x} not in its share {share:x?}");
    }
    h.dropped(&softwire(b4_of(ELSEWHERE), &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")), Counter::DropB4Elsewhere);
    assert_eq!(h.counter(Counter::SessionsCreated), 2);
}

#[test]
fn a_standby_location_is_left_to_the_peer_both_ways() {
    let mut h = two_locations();
    let (b0, b1) = (b4_of(0), b4_of(1));
    let q = ip4_udp(HOST, SERVER, 5000, 53, 64, b"q");
    let out1 = h.forward(&softwire(b1, &q), Egress::Internet);
    let ext1 = out_src(&out1);
    let port1 = u16::from_be_bytes([out1[34], out1[35]]);
    // Active for location 0 only (slot 1 in mutual backup, its peer active for 2).
    h.eng.set_active_locations(0b01);
    h.forward(&softwire(b0, &q), Egress::Internet);
    h.dropped(&softwire(b1, &q), Counter::DropLocationStandby);
    let reply = from_internet(&ip4_udp(SERVER, ext1, 53, port1, 50, b"a"));
    h.dropped(&reply, Counter::DropLocationStandby);
    // Location 1 comes back: its session is still there and answers.
    h.eng.set_active_locations(0b11);
    let back = h.run(&reply);
    assert_eq!(back.verdict, Verdict::Forward(Egress::Softwire));
    assert_eq!(h.counter(Counter::DropLocationStandby), 2);
}

#[test]
fn hairpin_to_a_standby_locations_address_goes_out_to_the_routers() {
    let mut h = two_locations();
    let (b0, b1) = (b4_of(0), b4_of(1));
    let out1 = h.forward(&softwire(b1, &ip4_udp(HOST, SERVER, 6000, 53, 64, b"q")), Egress::Internet);
    let (ext1, port1) = (out_src(&out1), u16::from_be_bytes([out1[34], out1[35]]));
    let to_peer = ip4_udp(HOST, ext1, 5000, port1, 64, b"hi");
    // Both active: hairpinned inside the board.
    let o = h.run(&softwire(b0, &to_peer));
    assert_eq!(o.verdict, Verdict::Forward(Egress::Softwire));
    assert_eq!(h.counter(Counter::Hairpin), 1);
    // Location 1 is the peer's: the datagram leaves for the Internet side, where the
    // routers bring it to the peer, which answers for that share.
    h.eng.set_active_locations(0b01);
    let out = h.forward(&softwire(b0, &to_peer), Egress::Internet);
    assert_eq!(out_src(&out)[..3], POOL[..3]);
    assert_eq!(h.counter(Counter::Hairpin), 1);
}

#[test]
fn a_b4_of_the_peers_location_goes_on_to_the_peer_one_hop_further() {
    const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x22];
    let mut h = two_locations();
    h.eng.set_active_locations(0b01);
    let frame = softwire(b4_of(1), &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q"));
    // The peer is not known to be active for location 1 (yet): dropped.
    h.dropped(&frame, Counter::DropLocationStandby);
    // Nor without its MAC: nothing goes to 00:00:00:00:00:00.
    h.eng.set_peer([0; 6], 0b10);
    h.dropped(&frame, Counter::DropLocationStandby);
    h.eng.set_peer(PEER_MAC, 0b10);
    let out = h.forward(&frame, Egress::Softwire);
    // The same IPv6 packet, to the peer's MAC from ours, its hop limit one less.
    let mut want = frame.clone();
    want[..6].copy_from_slice(&PEER_MAC);
    want[6..12].copy_from_slice(&AFTR_MAC);
    want[14 + 7] -= 1;
    assert_eq!(out, want);
    assert_eq!(h.counter(Counter::SteeredToPeer), 1);
    assert_eq!(h.counter(Counter::SessionsCreated), 0, "no state here");
    // A loop between two boards ends with the hop limit.
    let mut tired = frame.clone();
    tired[14 + 7] = 1;
    h.dropped(&tired, Counter::DropPeerHopLimit);
    // B4s of this board's own active location are served here, whatever the peer says.
    h.eng.set_peer(PEER_MAC, 0b11);
    h.forward(&softwire(b4_of(0), &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")), Egress::Internet);
    // Unauthorised sources are not forwarded anywhere.
    let mut rogue = B4_ROGUE;
    rogue[15] = 7;
    let o = h.run(&softwire(rogue, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")));
    assert!(matches!(o.verdict, Verdict::Drop(_)), "{:?}", o.verdict);
    assert_eq!(h.counter(Counter::SteeredToPeer), 1);
}
