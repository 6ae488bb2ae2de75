//! Packet-level cases for ICMP error translation, TTL, hairpinning, the tunnel MTU and
//! fragments in every direction.

mod common;
use common::*;
use dataplane::counters::Counter;
use dataplane::{Egress, Verdict};
use etherparse::IpNumber;

#[test]
fn icmp_error_from_the_internet_reaches_the_host() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h);
    // A router says port unreachable about the translated packet it received.
    let sent = ip4_udp(ext, SERVER, port, 53, 63, b"query");
    let err = ip4_icmp_error([198, 18, 0, 1], ext, 3, 3, 0, &sent);
    let back = h.forward(&from_internet(&err), Egress::Softwire);
    // The host sees an error about the packet as it sent it.
    let orig = ip4_udp(HOST, SERVER, 5000, 53, 63, b"query");
    let mut want_ip = ip4_icmp_error([198, 18, 0, 1], HOST, 3, 3, 0, &orig);
    // TTL decremented on the way, header checksum fixed.
    want_ip[8] -= 1;
    let mut hdr = etherparse::Ipv4HeaderSlice::from_slice(&want_ip).unwrap().to_header();
    hdr.header_checksum = hdr.calc_header_checksum();
    want_ip[..20].copy_from_slice(&hdr.to_bytes());
    assert_eq!(back, to_b4(B4_A, &want_ip, &back));
    assert_checksums(&back);
    assert_eq!(h.counter(Counter::IcmpErrorsOut2In), 1);
    assert_eq!(h.eng.session_count(), 1, "an error never tears down a mapping");
}

#[test]
fn icmp_error_from_a_host_reaches_the_internet() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h);
    // The host rejects a packet the server sent to the mapping.
    let received = ip4_udp(SERVER, HOST, 53, 5000, 63, b"late");
    let err = ip4_icmp_error(HOST, SERVER, 3, 3, 0, &received);
    let out = h.forward(&softwire(B4_A, &err), Egress::Internet);
    let as_sent = ip4_udp(SERVER, ext, 53, port, 63, b"late");
    let mut want = ip4_icmp_error(ext, SERVER, 3, 3, 0, &as_sent);
    want[8] -= 1;
    let mut hdr = etherparse::Ipv4HeaderSlice::from_slice(&want).unwrap().to_header();
    hdr.header_checksum = hdr.calc_header_checksum();
    want[..20].copy_from_slice(&hdr.to_bytes());
    assert_eq!(out, to_internet(&want));
    assert_checksums(&out);
    assert_eq!(h.counter(Counter::IcmpErrorsIn2Out), 1);
}

#[test]
fn icmp_errors_without_a_session_or_about_errors_are_dropped() {
    let mut h = Harness::default();
    let (ext, _) = udp_mapping(&mut h);
    let stray = ip4_udp(ext, SERVER, 65000, 53, 63, b"");
    h.dropped(&from_internet(&ip4_icmp_error([198, 18, 0, 1], ext, 3, 3, 0, &stray)), Counter::DropIcmpErrorNoSession);
    let inner_err = ip4_icmp_error(ext, SERVER, 3, 3, 0, &stray);
    h.dropped(
        &from_internet(&ip4_icmp_error([198, 18, 0, 1], ext, 3, 1, 0, &inner_err)),
        Counter::DropIcmpErrorAboutError,
    );
    // Truncated quote.
    h.dropped(&from_internet(&ip4_icmp_error([198, 18, 0, 1], ext, 3, 3, 0, &stray[..24])), Counter::DropMalformedL4);
}

#[test]
fn ttl_expiry_in_both_directions_sends_time_exceeded() {
    let mut h = Harness::default();
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 1, b"trace");
    let back = h.forward(&softwire(B4_A, &inner), Egress::Softwire);
    assert_checksums(&back);
    let ip = &back[14 + 40..];
    let hdr = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap();
    assert_eq!(hdr.source(), [192, 0, 0, 1], "from the AFTR's softwire address (RFC 6333 5.7)");
    assert_eq!(hdr.destination(), HOST);
    assert_eq!(&ip[20..22], &[11, 0]);
    assert_eq!(&ip[28..28 + inner.len()], &inner[..], "quotes the packet as received");
    assert_eq!(h.eng.session_count(), 0, "no session for an expired packet");

    let (ext, port) = udp_mapping(&mut h);
    let late = ip4_udp(SERVER, ext, 53, port, 1, b"x");
    let out = h.forward(&from_internet(&late), Egress::Internet);
    assert_checksums(&out);
    assert_eq!(&out[14 + 12..14 + 20], &[ext, SERVER].concat()[..]);
    assert_eq!(&out[14 + 20..14 + 22], &[11, 0]);
    assert_eq!(h.counter(Counter::TimeExceededSent), 2);
}

#[test]
fn icmpv6_packet_too_big_becomes_icmpv4_frag_needed() {
    let mut h = Harness::default();
    let (ext, port) = udp_mapping(&mut h);
    let reply = ip4_udp(SERVER, ext, 53, port, 64, &[7u8; 600]);
    let tunnel = h.forward(&from_internet(&reply), Egress::Softwire);
    // A router on the IPv6 path cannot carry it: PTB with MTU 1280 quoting our packet.
    let quoted = &tunnel[14..];
    let mut ptb = Vec::new();
    etherparse::PacketBuilder::ethernet2(B4_SIDE_NH, AFTR_MAC)
        .ipv6(ROUTER6, ENDPOINT, 64)
        .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
        .write(&mut ptb, quoted)
        .unwrap();
    let out = h.forward(&ptb, Egress::Internet);
    assert_checksums(&out);
    let ip = &out[14..];
    let hdr = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap();
    assert_eq!((hdr.source(), hdr.destination()), (ext, SERVER), "to the inner source, from the mapping");
    assert_eq!(&ip[20..22], &[3, 4]);
    assert_eq!(u32::from_be_bytes(ip[24..28].try_into().unwrap()), 1240, "IPv6 MTU less 40");
    // The quoted packet is the one the server sent (towards the mapping), TTL as seen.
    let q = etherparse::Ipv4HeaderSlice::from_slice(&ip[28..]).unwrap();
    assert_eq!((q.source(), q.destination()), (SERVER, ext));
    assert_eq!(u16::from_be_bytes([ip[28 + 22], ip[28 + 23]]), port);
    assert_eq!(h.counter(Counter::Icmpv6ErrorsTranslated), 1);
}

#[test]
fn df_packets_too_big_for_the_tunnel_get_frag_needed() {
    let mut inst = instance();
    inst.tunnel_mtu = 1300;
    let mut h = Harness::new(config(inst));
    let (ext, port) = udp_mapping(&mut h);
    let big = ip4_udp(SERVER, ext, 53, port, 64, &[1u8; 1300]);
    let out = h.forward(&from_internet(&big), Egress::Internet);
    assert_checksums(&out);
    let ip = &out[14..];
    assert_eq!(&ip[16..20], &SERVER);
    assert_eq!(&ip[20..22], &[3, 4]);
    assert_eq!(u32::from_be_bytes(ip[24..28].try_into().unwrap()), 1260);
    assert_eq!(&ip[28..48], &big[..20], "quotes the header as sent");
    assert_eq!(h.counter(Counter::FragNeededSent), 1);
}

#[test]
fn non_df_packets_too_big_are_fragmented_in_ipv6() {
    let mut inst = instance();
    inst.tunnel_mtu = 1300;
    let mut h = Harness::new(config(inst));
    let (ext, port) = udp_mapping(&mut h);
    let payload: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
    let mut big = ip4_udp(SERVER, ext, 53, port, 64, &payload);
    // Clear DF and fix the header checksum.
    big[6] = 0;
    let mut hdr = etherparse::Ipv4HeaderSlice::from_slice(&big).unwrap().to_header();
    hdr.header_checksum = hdr.calc_header_checksum();
    big[..20].copy_from_slice(&hdr.to_bytes());
    let o = h.run(&from_internet(&big));
    assert_eq!(o.verdict, Verdict::Consumed);
    let frags = o.emitted_to(Egress::Softwire);
    assert_eq!(frags.len(), 2);
    // Reassemble with etherparse's IPv6 parser and compare with the expected inner packet.
    let mut data = Vec::new();
    for (k, f) in frags.iter().enumerate() {
        assert!(f.len() - 14 <= 1300, "fragment fits the tunnel MTU");
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(v6)) = p.net else { panic!() };
        assert_eq!(v6.header().destination(), B4_A);
        let fh = v6.extensions().first_header();
        assert_eq!(fh, Some(IpNumber::IPV6_FRAGMENTATION_HEADER));
        let off = u16::from_be_bytes([f[14 + 42], f[14 + 43]]);
        assert_eq!(((off & 1) == 1), k == 0, "more-fragments on the first only");
        data.extend_from_slice(&f[14 + 48..]);
    }
    let want = ip4_udp(SERVER, HOST, 53, 5000, 63, &payload);
    let mut want_nodf = want.clone();
    want_nodf[6] = 0;
    let mut hdr = etherparse::Ipv4HeaderSlice::from_slice(&want_nodf).unwrap().to_header();
    hdr.header_checksum = hdr.calc_header_checksum();
    want_nodf[..20].copy_from_slice(&hdr.to_bytes());
    assert_eq!(data, want_nodf);
    check_ipv4_packet(&data);
    assert_eq!(h.counter(Counter::OuterFragmentsSent), 2);
}

#[test]
fn df_packets_too_big_for_the_internet_get_frag_needed_through_their_softwire() {
    let mut inst = instance();
    inst.internet_mtu = 1400;
    let mut h = Harness::new(config(inst));
    let big = ip4_udp(HOST, SERVER, 5000, 53, 64, &[3u8; 1450]);
    let back = h.forward(&softwire(B4_A, &big), Egress::Softwire);
    assert_checksums(&back);
    let ip = &back[14 + 40..];
    let hdr = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap();
    assert_eq!((hdr.source(), hdr.destination()), ([192, 0, 0, 1], HOST), "from the AFTR (RFC 6333 5.7)");
    assert_eq!(&ip[20..22], &[3, 4], "fragmentation needed");
    assert_eq!(u16::from_be_bytes([ip[26], ip[27]]), 1400, "with the Internet MTU (RFC 1191)");
    assert_eq!(&ip[28..48], &big[..20], "quotes the packet as the host sent it");
    assert_eq!(h.counter(Counter::FragNeededSent), 1);
    assert_eq!(h.eng.session_count(), 0, "nothing went out");
    // One that fits goes out whole.
    let fits = ip4_udp(HOST, SERVER, 5000, 53, 64, &[3u8; 1400 - 28]);
    let out = h.forward(&softwire(B4_A, &fits), Egress::Internet);
    assert_eq!(out.len(), 14 + 1400);
}

#[test]
fn non_df_packets_too_big_for_the_internet_are_fragmented() {
    let mut inst = instance();
    inst.internet_mtu = 1400;
    let mut h = Harness::new(config(inst));
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let big = edit_ipv4(&ip4_udp(HOST, SERVER, 5000, 53, 64, &payload), |hdr| {
        hdr.dont_fragment = false;
        hdr.identification = 0x1234;
    });
    let o = h.run(&softwire(B4_A, &big));
    assert_eq!(o.verdict, Verdict::Consumed);
    let frags = o.emitted_to(Egress::Internet);
    assert_eq!(frags.len(), 3, "3008 bytes of payload in pieces of at most 1376");
    // Each a valid IPv4 fragment of one datagram: same identification, offsets in
    // order, more-fragments on all but the last, within the MTU, to the gateway.
    let mut data = Vec::new();
    let mut idents = Vec::new();
    for (k, f) in frags.iter().enumerate() {
        assert_eq!(&f[..12], &[INET_GW, INET_MAC].concat()[..]);
        let ip = &f[14..];
        assert!(ip.len() <= 1400);
        check_ipv4_packet(ip);
        let hdr = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap();
        assert_eq!(hdr.destination(), SERVER);
        assert_eq!(hdr.more_fragments(), k < 2);
        assert_eq!(hdr.fragments_offset().byte_offset() as usize, data.len());
        idents.push(hdr.identification());
        data.extend_from_slice(&ip[20..]);
    }
    assert!(idents.iter().all(|&i| i == idents[0]), "one datagram: {idents:?}");
    // Put together, the translated datagram: the mapping's source, the payload intact.
    let (src, sport) = (out_src(frags[0]), out_sport(frags[0]));
    assert_eq!(&data[8..], &payload[..]);
    let want = ip4_udp(src, SERVER, sport, 53, 63, &payload);
    assert_eq!(&data[..8], &want[20..28], "the UDP header as translated, checksum included");
    assert_eq!(h.counter(Counter::Ipv4Fragmented), 1);
    assert_eq!(h.counter(Counter::Ipv4FragmentsSent), 3);
}

#[test]
fn a_subscribers_own_fragments_larger_than_the_internet_mtu_are_cut_again() {
    let mut inst = instance();
    inst.internet_mtu = 1400;
    let mut h = Harness::new(config(inst));
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 13) as u8).collect();
    let whole = ip4_udp(HOST, SERVER, 5000, 53, 64, &payload);
    // The host sent it in two fragments of 1500 and 1548 bytes.
    let (first, second) = ipv4_fragments(&whole, 1480);
    let mut pieces = Vec::new();
    for frag in [&first, &second] {
        let o = h.run(&softwire(B4_A, frag));
        assert_eq!(o.verdict, Verdict::Consumed);
        pieces.extend(o.emitted_to(Egress::Internet).into_iter().cloned());
    }
    // Every piece fits; together they are one datagram: offsets contiguous from 0,
    // more-fragments on all but the very last, one identification.
    let mut at = 0;
    let mut idents = Vec::new();
    let mut data = Vec::new();
    for (k, f) in pieces.iter().enumerate() {
        let ip = &f[14..];
        assert!(ip.len() <= 1400, "piece {k}: {} bytes", ip.len());
        check_ipv4_packet(ip);
        let hdr = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap();
        assert_eq!(hdr.fragments_offset().byte_offset() as usize, at, "piece {k}");
        assert_eq!(hdr.more_fragments(), k + 1 < pieces.len(), "piece {k}");
        idents.push(hdr.identification());
        at += ip.len() - 20;
        data.extend_from_slice(&ip[20..]);
    }
    assert_eq!(at, 3008);
    assert!(idents.iter().all(|&i| i == idents[0]));
    assert_eq!(&data[8..], &payload[..]);
    assert_eq!(h.counter(Counter::Ipv4Fragmented), 2);
}

#[test]
fn fragmented_softwire_packets_are_reassembled_in_any_order() {
    let mut h = Harness::default();
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 64, &[9u8; 1000]);
    let frags = ipv6_fragments(B4_A, &inner, &[512], 77);
    // Last fragment first.
    assert_eq!(h.run(&frags[1]).verdict, Verdict::Consumed);
    let o = h.run(&frags[0]);
    assert_eq!(o.verdict, Verdict::Consumed);
    assert_eq!(o.sink.emitted.len(), 1);
    let (e, out) = &o.sink.emitted[0];
    assert_eq!(*e, Egress::Internet);
    let (ext, port) = (out_src(out), out_sport(out));
    assert_eq!(*out, to_internet(&ip4_udp(ext, SERVER, port, 53, 63, &[9u8; 1000])));
    assert_eq!(h.counter(Counter::Reassembled), 1);
}

#[test]
fn overlapping_ipv6_fragments_discard_the_datagram() {
    let mut h = Harness::default();
    let inner = ip4_udp(HOST, SERVER, 5000, 53, 64, &[9u8; 1000]);
    let a = ipv6_fragments(B4_A, &inner, &[512], 5);
    let b = ipv6_fragments(B4_A, &inner, &[256], 5);
    assert_eq!(h.run(&a[0]).verdict, Verdict::Consumed);
    h.dropped(&b[0], Counter::DropFragOverlap);
    // The datagram is gone: the last fragment alone starts a new one that never ends.
    assert_eq!(h.run(&a[1]).verdict, Verdict::Consumed);
    h.advance(3);
    h.eng.expire(100);
    assert_eq!(h.counter(Counter::DropFragTimeout), 1);
    assert_eq!(h.counter(Counter::Reassembled), 0);
}

#[test]
fn inbound_ipv4_fragments_in_order_and_out_of_order() {
    for reversed in [false, true] {
        let mut h = Harness::default();
        let (ext, port) = udp_mapping(&mut h);
        let reply = ip4_udp(SERVER, ext, 53, port, 64, &[3u8; 800]);
        let (f1, f2) = ipv4_fragments(&reply, 400);
        let (first, second) = (from_internet(&f1), from_internet(&f2));
        let mut outs = Vec::new();
        if reversed {
            assert_eq!(h.run(&second).verdict, Verdict::Consumed, "held until the first comes");
            let o = h.run(&first);
            assert_eq!(o.verdict, Verdict::Forward(Egress::Softwire));
            outs.push(o.frame);
            outs.extend(o.sink.emitted.into_iter().map(|(_, f)| f));
        } else {
            outs.push(h.forward(&first, Egress::Softwire));
            outs.push(h.forward(&second, Egress::Softwire));
        }
        assert_eq!(outs.len(), 2);
        // Reassemble the two inner fragments and compare with the expected translation.
        let inner: Vec<&[u8]> = outs.iter().map(|f| &f[14 + 40..]).collect();
        let p1 = etherparse::Ipv4HeaderSlice::from_slice(inner[0]).unwrap();
        let p2 = etherparse::Ipv4HeaderSlice::from_slice(inner[1]).unwrap();
        assert_eq!(p1.destination(), HOST);
        assert_eq!(p2.destination(), HOST);
        assert_eq!(p1.header_checksum(), p1.to_header().calc_header_checksum());
        assert_eq!(p2.header_checksum(), p2.to_header().calc_header_checksum());
        let mut whole = inner[0][..20].to_vec();
        whole.extend_from_slice(&inner[0][20..]);
        whole.extend_from_slice(&inner[1][20..]);
        let udp = etherparse::UdpHeaderSlice::from_slice(&whole[20..]).unwrap();
        assert_eq!(udp.destination_port(), 5000);
        assert_eq!(
            udp.checksum(),
            udp.to_header().calc_checksum_ipv4_raw(SERVER, HOST, &whole[28..]).unwrap(),
            "UDP checksum over the reassembled datagram"
        );
        assert_eq!(h.counter(Counter::Ipv4FragmentsTranslated), 1);
    }
}

#[test]
fn outbound_ipv4_fragments_are_translated() {
    let mut h = Harness::default();
    let pkt = ip4_udp(HOST, SERVER, 5000, 53, 64, &[5u8; 600]);
    let (f1, f2) = ipv4_fragments(&pkt, 304);
    // A later fragment before any session of the subscriber has nowhere to go.
    h.dropped(&softwire(B4_A, &f2), Counter::DropFragNoSubscriber);
    let o1 = h.forward(&softwire(B4_A, &f1), Egress::Internet);
    let o2 = h.forward(&softwire(B4_A, &f2), Egress::Internet);
    let ext = out_src(&o1);
    assert_eq!(out_src(&o2), ext);
    let mut whole = o1[14..14 + 20].to_vec();
    whole.extend_from_slice(&o1[14 + 20..]);
    whole.extend_from_slice(&o2[14 + 20..]);
    let udp = etherparse::UdpHeaderSlice::from_slice(&whole[20..]).unwrap();
    assert_eq!(udp.checksum(), udp.to_header().calc_checksum_ipv4_raw(ext, SERVER, &whole[28..]).unwrap());
    for o in [&o1, &o2] {
        let p = etherparse::Ipv4HeaderSlice::from_slice(&o[14..]).unwrap();
        assert_eq!(p.header_checksum(), p.to_header().calc_header_checksum());
        assert_eq!(p.ttl(), 63);
    }
}

#[test]
fn hairpinning_between_subscribers() {
    let mut h = Harness::default();
    // A opens a UDP mapping and a TCP mapping.
    let (ext_a, port_a) = udp_mapping(&mut h);
    let syn = h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40000, 80, 64, "S", None, b"")), Egress::Internet);
    let tport_a = out_sport(&syn);
    // B reaches A at A's external address and ports.
    let b_host = [192, 168, 7, 7];
    let u = h.forward(&softwire(B4_B, &ip4_udp(b_host, ext_a, 6000, port_a, 64, b"hi A")), Egress::Softwire);
    assert_checksums(&u);
    let ip = &u[14 + 40..];
    let hdr = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap();
    let ext_b = hdr.source();
    assert_eq!(&ext_b[..3], &POOL[..3], "B appears with its own external address");
    let sport_b = u16::from_be_bytes([ip[20], ip[21]]);
    assert_eq!(u, to_b4(B4_A, &ip4_udp(ext_b, HOST, sport_b, 5000, 63, b"hi A"), &u), "one TTL decrement");

    let t = h.forward(&softwire(B4_B, &ip4_tcp(b_host, ext_a, 6001, tport_a, 64, "SA", None, b"")), Egress::Softwire);
    assert_checksums(&t);
    assert_eq!(&t[14 + 8..14 + 24], &ENDPOINT);
    assert_eq!(&t[14 + 24..14 + 40], &B4_A);
    // ICMP hairpin: A's host answers B with port unreachable; it reaches B.
    let received = &u[14 + 40..];
    let err = ip4_icmp_error(HOST, ext_b, 3, 3, 0, received);
    let e = h.forward(&softwire(B4_A, &err), Egress::Softwire);
    assert_checksums(&e);
    assert_eq!(&e[14 + 24..14 + 40], &B4_B);
    assert_eq!(h.counter(Counter::Hairpin), 3);
}
