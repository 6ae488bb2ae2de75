//! Sessions over time: timers, limits, filtering, events, installing a peer's state,
//! and ownership between workers.

mod common;
use common::*;
use dataplane::config::Filtering;
use dataplane::counters::Counter;
use dataplane::nat::events::{InstallError, SessionEvent};
use dataplane::{Egress, Verdict};

fn udp_from(h: &mut Harness, b4: [u8; 16], host: [u8; 4], sport: u16) -> ([u8; 4], u16) {
    let out = h.forward(&softwire(b4, &ip4_udp(host, SERVER, sport, 53, 64, b"q")), Egress::Internet);
    (out_src(&out), out_sport(&out))
}

#[test]
fn udp_mapping_expires_after_five_minutes_and_refreshes_on_outbound() {
    let mut h = Harness::default();
    let (ext, port) = udp_from(&mut h, B4_A, HOST, 5000);
    h.advance(200);
    udp_from(&mut h, B4_A, HOST, 5000); // refresh
    h.advance(200);
    assert_eq!(h.eng.expire(100), 0, "refreshed 200 s ago");
    h.forward(&from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b"")), Egress::Softwire);
    h.advance(301);
    assert_eq!(h.eng.expire(100), 1);
    h.dropped(&from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b"")), Counter::DropNoSession);
    assert_eq!(h.eng.subscriber_count(), 0, "idle subscriber released with its block");
    assert_eq!(h.counter(Counter::BlocksReleased), 1);
}

#[test]
fn timeouts_per_protocol_and_tcp_state() {
    let mut h = Harness::default();
    // ICMP: 60 s.
    h.forward(&softwire(B4_A, &ip4_echo(HOST, SERVER, 1, 1, 64, true, b"")), Egress::Internet);
    // TCP established: 2 h 4 min.
    let syn = h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40000, 80, 64, "S", None, b"")), Egress::Internet);
    let (ext, p) = (out_src(&syn), out_sport(&syn));
    h.forward(&from_internet(&ip4_tcp(SERVER, ext, 80, p, 64, "SA", None, b"")), Egress::Softwire);
    h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40000, 80, 64, "A", None, b"")), Egress::Internet);
    // TCP half-open (only a SYN): transitory, 4 min.
    h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40002, 80, 64, "S", None, b"")), Egress::Internet);
    assert_eq!(h.eng.session_count(), 3);
    h.advance(61);
    assert_eq!(h.eng.expire(100), 1, "ICMP gone after 60 s");
    h.advance(240);
    assert_eq!(h.eng.expire(100), 1, "half-open TCP gone after 4 min");
    h.advance(7440 - 301 - 1);
    assert_eq!(h.eng.expire(100), 0, "established TCP kept for 2 h 4 min");
    h.advance(2);
    assert_eq!(h.eng.expire(100), 1);
}

#[test]
fn tcp_rst_keeps_the_transitory_timer() {
    let mut h = Harness::default();
    let syn = h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40000, 80, 64, "S", None, b"")), Egress::Internet);
    let (ext, p) = (out_src(&syn), out_sport(&syn));
    h.forward(&from_internet(&ip4_tcp(SERVER, ext, 80, p, 64, "SA", None, b"")), Egress::Softwire);
    h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40000, 80, 64, "A", None, b"")), Egress::Internet);
    h.forward(&from_internet(&ip4_tcp(SERVER, ext, 80, p, 64, "R", None, b"")), Egress::Softwire);
    assert_eq!(h.eng.session_count(), 1, "RFC 7857 2.2: not deleted at once");
    h.advance(239);
    assert_eq!(h.eng.expire(10), 0);
    h.advance(2);
    assert_eq!(h.eng.expire(10), 1);
}

/// An established connection HOST:40000 <-> SERVER:80; returns the mapping.
fn established(h: &mut Harness) -> ([u8; 4], u16) {
    let syn = h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40000, 80, 64, "S", None, b"")), Egress::Internet);
    let (ext, p) = (out_src(&syn), out_sport(&syn));
    h.forward(&from_internet(&ip4_tcp(SERVER, ext, 80, p, 64, "SA", None, b"")), Egress::Softwire);
    h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40000, 80, 64, "A", None, b"")), Egress::Internet);
    (ext, p)
}

#[test]
fn tcp_rst_counts_only_from_the_connections_remote() {
    let mut h = Harness::default();
    let (ext, p) = established(&mut h);
    // Endpoint-independent filtering lets anyone reach the mapping; an RST from another
    // address, or from the server's address but another port, reaches the host but
    // leaves the session established.
    for (from, sport) in [(SERVER2, 80), (SERVER, 81)] {
        let rst = ip4_tcp(from, ext, sport, p, 64, "R", None, b"");
        let back = h.forward(&from_internet(&rst), Egress::Softwire);
        assert_eq!(back, to_b4(B4_A, &ip4_tcp(from, HOST, sport, 40000, 63, "R", None, b""), &back));
    }
    assert_eq!(h.counter(Counter::TcpRstIgnored), 2);
    // A second connection from the same inside port to another server does not take the
    // session over while the first is established.
    h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER2, 40000, 443, 64, "S", None, b"")), Egress::Internet);
    h.forward(&from_internet(&ip4_tcp(SERVER2, ext, 443, p, 64, "R", None, b"")), Egress::Softwire);
    assert_eq!(h.counter(Counter::TcpRstIgnored), 3);
    h.advance(241);
    assert_eq!(h.eng.expire(10), 0, "still on the established timer");
}

#[test]
fn tcp_traffic_after_an_rst_takes_the_session_back_to_established() {
    let mut h = Harness::default();
    let (ext, p) = established(&mut h);
    // An RST the endpoints did not take (RFC 6146 3.5.2.2: TRANS back to ESTABLISHED).
    h.forward(&from_internet(&ip4_tcp(SERVER, ext, 80, p, 64, "R", None, b"")), Egress::Softwire);
    h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 40000, 80, 64, "A", None, b"more")), Egress::Internet);
    h.forward(&from_internet(&ip4_tcp(SERVER, ext, 80, p, 64, "A", None, b"data")), Egress::Softwire);
    h.advance(241);
    assert_eq!(h.eng.expire(10), 0, "established again");
    h.advance(7440);
    assert_eq!(h.eng.expire(10), 1);
}

#[test]
fn unsolicited_inbound_is_dropped_silently() {
    let mut h = Harness::default();
    let ext = [198, 51, 100, 1];
    let o = h.run(&from_internet(&ip4_tcp(SERVER, ext, 80, 2000, 64, "S", None, b"")));
    assert_eq!(o.verdict, Verdict::Drop(Counter::DropNoSession));
    assert!(o.sink.emitted.is_empty(), "no RST, no ICMP (RFC 5382 REQ-4)");
}

#[test]
fn address_and_port_dependent_filtering() {
    let mut inst = instance();
    inst.filtering = Filtering::AddressAndPortDependent;
    let mut h = Harness::new(config(inst));
    let (ext, port) = udp_from(&mut h, B4_A, HOST, 5000);
    h.forward(&from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b"")), Egress::Softwire);
    h.dropped(&from_internet(&ip4_udp(SERVER2, ext, 53, port, 64, b"")), Counter::DropFiltered);
    h.dropped(&from_internet(&ip4_udp(SERVER, ext, 54, port, 64, b"")), Counter::DropFiltered);
    // After sending to SERVER2, both remotes may answer.
    h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER2, 5000, 53, 64, b"")), Egress::Internet);
    h.forward(&from_internet(&ip4_udp(SERVER2, ext, 53, port, 64, b"")), Egress::Softwire);
    h.forward(&from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b"")), Egress::Softwire);
}

#[test]
fn unauthorised_b4s_and_inner_sources_outside_policy() {
    let mut h = Harness::default();
    h.dropped(&softwire(B4_ROGUE, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"")), Counter::DropB4NotAuthorised);
    h.dropped(&softwire(B4_A, &ip4_udp([8, 8, 8, 8], SERVER, 5000, 53, 64, b"")), Counter::DropInnerSourcePolicy);
    h.dropped(&softwire(B4_A, &ip4_udp(HOST, [127, 0, 0, 1], 5000, 53, 64, b"")), Counter::DropMartian);
    h.dropped(&softwire(B4_A, &ip4_udp(HOST, [224, 0, 0, 5], 5000, 53, 64, b"")), Counter::DropMartian);
    assert_eq!(h.eng.session_count(), 0);
    // 192.0.0.2 (the B4's own address, RFC 6333 5.7) is a normal inner source.
    udp_from(&mut h, B4_A, [192, 0, 0, 2], 5000);
    let mut inst = instance();
    inst.allow_public_inner = true;
    let mut h = Harness::new(config(inst));
    udp_from(&mut h, B4_A, [8, 8, 8, 8], 5000);
}

#[test]
fn per_subscriber_session_limit_never_hurts_others() {
    let mut inst = instance();
    inst.limits.max_sessions = 3;
    let mut h = Harness::new(config(inst));
    for p in 0..3 {
        udp_from(&mut h, B4_A, HOST, 5000 + p);
    }
    h.refused(&softwire(B4_A, &ip4_udp(HOST, SERVER, 6000, 53, 64, b"")), Counter::DropSessionLimit);
    udp_from(&mut h, B4_A, HOST, 5000); // existing flows go on
    udp_from(&mut h, B4_B, HOST, 6000); // other subscribers unaffected
}

#[test]
fn block_limit_and_exhaustion() {
    let mut inst = instance();
    inst.port_block_size = 8;
    inst.limits.max_blocks = 2;
    let mut h = Harness::new(config(inst));
    let mut ports = std::collections::HashSet::new();
    for p in 0..16 {
        ports.insert(udp_from(&mut h, B4_A, HOST, 5000 + p));
    }
    assert_eq!(ports.len(), 16, "16 distinct mappings in two blocks of 8");
    h.refused(&softwire(B4_A, &ip4_udp(HOST, SERVER, 6000, 53, 64, b"")), Counter::DropBlockLimit);
    // The same ports may serve another protocol (no port overloading within one).
    h.forward(&softwire(B4_A, &ip4_tcp(HOST, SERVER, 6000, 80, 64, "S", None, b"")), Egress::Internet);
}

#[test]
fn new_session_rate_limit() {
    let mut inst = instance();
    inst.limits.new_sessions_per_sec = 5;
    let mut h = Harness::new(config(inst));
    for p in 0..5 {
        udp_from(&mut h, B4_A, HOST, 5000 + p);
    }
    h.refused(&softwire(B4_A, &ip4_udp(HOST, SERVER, 6000, 53, 64, b"")), Counter::DropRateLimited);
    udp_from(&mut h, B4_B, HOST, 6000);
    h.advance(1);
    udp_from(&mut h, B4_A, HOST, 6000);
}

#[test]
fn full_table_drops_new_flows_only() {
    let mut cfg = config(instance());
    cfg.max_sessions = 4;
    let mut h = Harness::new(cfg);
    let first = udp_from(&mut h, B4_A, HOST, 5000);
    for p in 1..4 {
        udp_from(&mut h, B4_B, HOST, 5000 + p);
    }
    h.refused(&softwire(B4_B, &ip4_udp(HOST, SERVER, 7000, 53, 64, b"")), Counter::DropSessionTableFull);
    assert_eq!(udp_from(&mut h, B4_A, HOST, 5000), first, "established flow of another subscriber kept");
}

#[test]
fn events_for_sessions_and_blocks() {
    let mut h = Harness::default();
    let (ext, port) = udp_from(&mut h, B4_A, HOST, 5000);
    let ev = h.drain_events();
    assert!(
        matches!(ev[0], SessionEvent::BlockAllocated(b) if b.b4 == B4_A && b.ext_addr == u32::from_be_bytes(ext) && b.size == 512)
    );
    match ev[1] {
        SessionEvent::Created(r) => {
            assert_eq!(
                (r.b4, r.inner_addr, r.inner_port, r.ext_port, r.proto),
                (B4_A, u32::from_be_bytes(HOST), 5000, port, 17)
            );
        }
        e => panic!("{e:?}"),
    }
    h.advance(15);
    udp_from(&mut h, B4_A, HOST, 5000);
    assert!(matches!(h.drain_events()[..], [SessionEvent::Refreshed(_)]));
    udp_from(&mut h, B4_A, HOST, 5000);
    assert!(h.drain_events().is_empty(), "at most one refresh event per interval");
    h.advance(400);
    h.eng.expire(10);
    let ev = h.drain_events();
    assert!(matches!(ev[..], [SessionEvent::Deleted(_), SessionEvent::BlockReleased(_)]), "{ev:?}");
}

#[test]
fn a_full_event_ring_never_blocks_the_worker() {
    let mut cfg = config(instance());
    cfg.event_ring = 2;
    let mut h = Harness::new(cfg);
    for p in 0..4 {
        udp_from(&mut h, B4_A, HOST, 5000 + p);
    }
    // A block and four sessions: two on the ring, three waiting, nothing lost.
    assert_eq!(h.drain_events().len(), 2);
    h.eng.flush_events();
    assert_eq!(h.drain_events().len(), 2);
    h.eng.flush_events();
    assert_eq!(h.drain_events().len(), 1);
    assert_eq!(h.counter(Counter::EventsDropped), 0);
}

#[test]
fn installing_sessions_from_a_peer() {
    let mut active = Harness::default();
    let (ext, port) = udp_from(&mut active, B4_A, HOST, 5000);
    let events = active.drain_events();
    let mut standby = Harness::default();
    for e in &events {
        match e {
            SessionEvent::BlockAllocated(b) => standby.eng.install_block(b).unwrap(),
            SessionEvent::Created(s) => standby.eng.install_session(s).unwrap(),
            _ => {}
        }
    }
    assert_eq!(standby.counter(Counter::SessionsInstalled), 1);
    // Traffic continues on the standby with the same mapping, both ways.
    let back = standby.forward(&from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b"r")), Egress::Softwire);
    assert_eq!(back, to_b4(B4_A, &ip4_udp(SERVER, HOST, 53, 5000, 63, b"r"), &back));
    assert_eq!(udp_from(&mut standby, B4_A, HOST, 5000), (ext, port));
    // Installing twice is harmless.
    for e in &events {
        if let SessionEvent::Created(s) = e {
            standby.eng.install_session(s).unwrap();
        }
    }
    assert_eq!(standby.eng.session_count(), 1);

    // A block already allocated here to another subscriber is refused, and so is a
    // session whose port another session holds.
    let mut other = Harness::default();
    udp_from(&mut other, B4_B, HOST, 5000);
    let b_block = match other.drain_events()[0] {
        SessionEvent::BlockAllocated(b) => b,
        e => panic!("{e:?}"),
    };
    let mut clash = b_block;
    clash.b4 = B4_A;
    let mut fresh = Harness::default();
    udp_from(&mut fresh, B4_B, HOST, 5000);
    assert_eq!(fresh.eng.install_block(&clash), Err(InstallError::BlockCollision));
    let mut rec = match events[1] {
        SessionEvent::Created(s) => s,
        e => panic!("{e:?}"),
    };
    rec.inner_port = 5001;
    assert_eq!(standby.eng.install_session(&rec), Err(InstallError::PortCollision));
    rec.ext_addr = 0x0a000001;
    assert_eq!(standby.eng.install_session(&rec), Err(InstallError::AddressMismatch));
}

#[test]
fn two_workers_own_subscribers_and_ports() {
    let mut cfg = config(instance());
    cfg.workers = 2;
    let mut w = Harness::board(cfg);
    let (b0, b1) = (B4_A, B4_B);
    for (b4, me) in [(b0, 0usize), (b1, 1usize)] {
        let frame = softwire(b4, &ip4_udp(HOST, SERVER, 5000, 53, 64, b""));
        // The worker whose queue the B4's first frame reaches makes and holds it.
        let out = w[me].forward(&frame, Egress::Internet);
        // At the other worker a frame of it is handed off, untouched.
        let o = w[1 - me].run(&frame);
        assert_eq!(o.verdict, Verdict::Handoff(me as u16));
        assert_eq!(o.frame, frame);
        let (ext, port) = (out_src(&out), out_sport(&out));
        let reply = from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b""));
        // The port tells the owner.
        assert_eq!(w[1 - me].run(&reply).verdict, Verdict::Handoff(me as u16));
        w[me].forward(&reply, Egress::Softwire);
    }
}

#[test]
fn the_peer_block_of_a_b4_another_worker_holds_is_refused_as_such() {
    let mut cfg = config(instance());
    cfg.workers = 2;
    // The peer's board: worker 0 makes B4_A's subscriber and a block from its ports.
    let mut peer = Harness::board(cfg.clone());
    peer[0].forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"")), Egress::Internet);
    let block = peer[0]
        .drain_events()
        .into_iter()
        .find_map(|e| if let SessionEvent::BlockAllocated(b) = e { Some(b) } else { None })
        .expect("a block");
    // This board: worker 1 already holds B4_A; worker 0, which owns the block's ports, may
    // not make a second subscriber for it.
    let mut w = Harness::board(cfg);
    w[1].forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 6000, 53, 64, b"")), Egress::Internet);
    assert_eq!(w[0].eng.install_block(&block), Err(InstallError::WrongWorker));
    assert_eq!(w[0].eng.owners().owner(&B4_A), Some(1), "the claim stays with worker 1");
}

#[test]
fn a_claim_goes_with_its_subscriber() {
    let mut cfg = config(instance());
    cfg.workers = 2;
    let mut w = Harness::board(cfg);
    let frame = softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b""));
    w[0].forward(&frame, Egress::Internet);
    assert_eq!(w[1].run(&frame).verdict, Verdict::Handoff(0));
    assert_eq!(w[0].eng.owners().len(), 1);
    // The session times out, the subscriber goes, and so does the claim: the B4's
    // frames now reach worker 1 (say, the NIC moved it), which takes it over.
    w[0].advance(400);
    w[0].eng.expire(1000);
    assert_eq!(w[0].eng.session_count(), 0);
    assert!(w[0].eng.owners().is_empty(), "claim released");
    w[1].forward(&frame, Egress::Internet);
    assert_eq!(w[0].run(&frame).verdict, Verdict::Handoff(1));
}

#[test]
fn frames_at_the_wrong_worker_reach_the_owner_through_the_mesh() {
    use dataplane::handoff::mesh;
    let mut cfg = config(instance());
    cfg.workers = 2;
    let mut w = Harness::board(cfg);
    let boxes = mesh(2, 64, 2048);
    let mut delivered = Vec::new();
    // Twenty subscribers, each made by the worker its first frame reaches (k % 2); a
    // later frame of each lands on the other worker.
    for k in 1u8..=20 {
        let mut b4 = B4_A;
        b4[7] = k;
        let owner = k as usize % 2;
        w[owner].forward(&softwire(b4, &ip4_udp(HOST, SERVER, 4000, 53, 64, b"first")), Egress::Internet);
        let frame = softwire(b4, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"x"));
        let o = w[1 - owner].run(&frame);
        let Verdict::Handoff(to) = o.verdict else { panic!("{:?}", o.verdict) };
        assert_eq!(to as usize, owner);
        boxes[1 - owner].send(to, &o.frame, None).unwrap();
        boxes[1 - owner].flush();
        let mut sink = dataplane::VecSink::default();
        let h = &mut w[owner];
        boxes[owner].receive(64, |f| delivered.push((owner, h.eng.process(f, &mut sink), f.bytes().to_vec())));
    }
    assert_eq!(delivered.len(), 20);
    for (owner, v, out) in &delivered {
        assert_eq!(*v, Verdict::Forward(Egress::Internet));
        assert_checksums(out);
        // The reply is owned by the same worker, through its port block.
        let reply = from_internet(&ip4_udp(SERVER, out_src(out), 53, out_sport(out), 64, b""));
        assert_eq!(w[1 - *owner].run(&reply).verdict, Verdict::Handoff(*owner as u16));
    }
    assert_eq!(w[0].eng.session_count() + w[1].eng.session_count(), 40);
    assert!(w[0].eng.session_count() > 0 && w[1].eng.session_count() > 0, "both workers own some");
}

#[test]
fn icmpv6_errors_go_to_the_worker_of_the_quoted_b4() {
    let mut cfg = config(instance());
    cfg.workers = 2;
    let mut w = Harness::board(cfg);
    for k in 1u8..=8 {
        let mut b4 = B4_A;
        b4[7] = k;
        let owner = k as usize % 2;
        w[owner].forward(&softwire(b4, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"")), Egress::Internet);
        let mut quoted = ip6_header(ENDPOINT, b4, etherparse::IpNumber::IPV4, 28, 64, 0, 0);
        quoted.extend(ip4_udp(SERVER, HOST, 53, 5000, 63, b""));
        let mut ptb = Vec::new();
        etherparse::PacketBuilder::ethernet2(B4_SIDE_NH, AFTR_MAC)
            .ipv6(ROUTER6, ENDPOINT, 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(&mut ptb, &quoted)
            .unwrap();
        assert_eq!(w[1 - owner].run(&ptb).verdict, Verdict::Handoff(owner as u16));
    }
}

#[test]
fn sessions_from_a_peer_with_a_clock_ahead_do_not_expire_at_once() {
    let mut active = Harness::default();
    udp_from(&mut active, B4_A, HOST, 5000);
    let mut standby = Harness::default();
    for e in active.drain_events() {
        match e {
            SessionEvent::BlockAllocated(b) => standby.eng.install_block(&b).unwrap(),
            SessionEvent::Created(mut s) => {
                s.last_seen += 3600;
                s.created += 3600;
                standby.eng.install_session(&s).unwrap();
            }
            _ => {}
        }
    }
    standby.advance(1);
    assert_eq!(standby.eng.expire(10), 0);
    assert_eq!(standby.eng.session_count(), 1);
    standby.advance(300);
    assert_eq!(standby.eng.expire(10), 1, "expires by this board's clock");
}

#[test]
fn replies_go_to_the_next_hop_learned_from_the_subscriber() {
    let mut h = Harness::default();
    // B4_A's frames come from a router with its own MAC.
    let router = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let mut f = softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q"));
    f[6..12].copy_from_slice(&router);
    let out = h.forward(&f, Egress::Internet);
    let back =
        h.forward(&from_internet(&ip4_udp(SERVER, out_src(&out), 53, out_sport(&out), 64, b"r")), Egress::Softwire);
    assert_eq!(&back[0..6], &router, "to the learned next hop");
    assert_eq!(&back[6..12], &AFTR_MAC);
    // A subscriber installed from the peer (no frame seen here yet) goes to the next hop
    // the peer learned, which its session record carries; without one, to the default.
    let events = h.drain_events();
    for (carried, expect) in [(true, router), (false, B4_SIDE_NH)] {
        let mut standby = Harness::default();
        for e in &events {
            match *e {
                SessionEvent::BlockAllocated(b) => standby.eng.install_block(&b).unwrap(),
                SessionEvent::Created(mut s) => {
                    if !carried {
                        s.mac = [0; 6];
                    }
                    standby.eng.install_session(&s).unwrap()
                }
                _ => {}
            }
        }
        let back = standby
            .forward(&from_internet(&ip4_udp(SERVER, out_src(&out), 53, out_sport(&out), 64, b"r")), Egress::Softwire);
        assert_eq!(&back[0..6], &expect);
    }
    // Echo replies and errors go back to whoever sent the frame.
    let mut req = Vec::new();
    etherparse::PacketBuilder::ethernet2(router, AFTR_MAC)
        .ipv6(B4_B, ENDPOINT, 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut req, b"")
        .unwrap();
    assert_eq!(&h.forward(&req, Egress::Softwire)[0..6], &router);
}

/// B4 number `n` of the authorised prefix.
fn b4_n(n: u8) -> [u8; 16] {
    let mut b = B4_A;
    b[7] = n;
    b
}

#[test]
fn well_known_ports_fall_back_to_dynamic_ones() {
    // One address, blocks of 512: ports below 1024 make two blocks (0 and 1).
    let mut inst = instance();
    inst.pool = vec![dataplane::config::Ipv4Prefix { addr: u32::from_be_bytes(POOL), len: 32 }];
    let mut h = Harness::new(config(inst.clone()));
    let ntp = |b4: [u8; 16], h: &mut Harness| {
        let o = h.forward(&softwire(b4, &ip4_udp(HOST, SERVER, 123, 123, 64, b"ntp")), Egress::Internet);
        let (ext, port) = (out_src(&o), out_sport(&o));
        assert_eq!(o, to_internet(&ip4_udp(ext, SERVER, port, 123, 63, b"ntp")));
        port
    };
    assert!(ntp(b4_n(1), &mut h) < 1024);
    assert!(ntp(b4_n(2), &mut h) < 1024);
    assert_eq!(h.counter(Counter::WellKnownPortFallbacks), 0);
    // A third subscriber finds no well-known block left: a dynamic port, parity kept.
    let p = ntp(b4_n(3), &mut h);
    assert!(p >= 1024 && p & 1 == 1, "port {p}");
    assert_eq!(h.counter(Counter::WellKnownPortFallbacks), 1);
    assert_eq!(h.counter(Counter::DropPortsExhausted), 0);

    // A subscriber at its block limit with a dynamic block gets a port there.
    inst.limits.max_blocks = 1;
    let mut h = Harness::new(config(inst));
    udp_from(&mut h, B4_A, HOST, 5000);
    let p = ntp(B4_A, &mut h);
    assert!(p >= 1024, "port {p}");
    assert_eq!(h.counter(Counter::WellKnownPortFallbacks), 1);
    assert_eq!(h.counter(Counter::DropBlockLimit), 0);
}

#[test]
fn a_released_block_is_held_down_before_another_subscriber_gets_it() {
    // One address, blocks of 16384: block 0 is the well-known one, three are dynamic.
    let mut inst = instance();
    inst.pool = vec![dataplane::config::Ipv4Prefix { addr: u32::from_be_bytes(POOL), len: 32 }];
    inst.port_block_size = 16384;
    let mut h = Harness::new(config(inst));
    let block = |p: u16| p / 16384;
    let (_, p) = udp_from(&mut h, b4_n(1), HOST, 5000);
    let released = block(p);
    h.advance(301);
    assert_eq!(h.eng.expire(10), 1);
    assert_eq!(h.counter(Counter::BlocksReleased), 1);
    // RFC 6888 REQ-8: the two other dynamic blocks go to the next subscribers, and the
    // fourth gets none while the released one is held down.
    for n in 2..4 {
        let (_, p) = udp_from(&mut h, b4_n(n), HOST, 5000);
        assert_ne!(block(p), released, "subscriber {n} got the block held down");
    }
    h.refused(&softwire(b4_n(4), &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")), Counter::DropPortsExhausted);
    h.advance(119);
    h.eng.expire(10);
    h.refused(&softwire(b4_n(4), &ip4_udp(HOST, SERVER, 5000, 53, 64, b"q")), Counter::DropPortsExhausted);
    // Twice the hold-down after the release at the latest, it is free.
    h.advance(121);
    h.eng.expire(10);
    let (_, p) = udp_from(&mut h, b4_n(4), HOST, 5000);
    assert_eq!(block(p), released);
}

#[test]
fn timers_run_on_the_timer_clock_and_records_carry_unix_time() {
    let mut h = Harness::default();
    // As a worker runs it: a monotonic timer clock, and the Unix time beside it.
    let unix_ms = 1_700_000_000_000;
    h.now_ms = 1_000_000_000_000;
    h.eng.set_clock(h.now_ms);
    h.eng.set_unix_time(unix_ms);
    udp_from(&mut h, B4_A, HOST, 5000);
    let created = h.drain_events().into_iter().find_map(|e| match e {
        SessionEvent::Created(r) => Some(r),
        _ => None,
    });
    let r = created.expect("a created event");
    assert_eq!((r.created, r.last_seen), (1_700_000_000, 1_700_000_000), "Unix seconds in records");
    // The wall clock is stepped a day ahead (NTP): no session ages; records follow it.
    h.advance(10);
    h.eng.set_unix_time(unix_ms + 10_000 + 86_400_000);
    assert_eq!(h.eng.expire(100), 0);
    assert_eq!(h.eng.sessions()[0].created, 1_700_086_400);
    // On a standby whose clocks read the same, a record from the peer is read in Unix
    // time: last seen 250 s ago, it expires 50 s from now (UDP, 300 s).
    let mut standby = Harness::default();
    standby.now_ms = h.now_ms;
    standby.eng.set_clock(h.now_ms);
    standby.eng.set_unix_time(unix_ms + 10_000 + 86_400_000);
    for b in h.eng.subscribers().iter().flat_map(|s| s.block_records().collect::<Vec<_>>()) {
        standby.eng.install_block(&b).expect("block installed");
    }
    let mut peer = r;
    peer.last_seen = 1_700_086_410 - 250;
    peer.created = peer.last_seen;
    standby.eng.install_session(&peer).expect("installed");
    assert_eq!(standby.eng.sessions()[0].last_seen, peer.last_seen);
    standby.advance(49);
    assert_eq!(standby.eng.expire(100), 0);
    standby.advance(2);
    assert_eq!(standby.eng.expire(100), 1);
}

#[test]
fn block_events_wait_for_room_in_order_and_are_never_dropped() {
    // A ring of 4 events: 40 subscribers make 80 (a block, then a session, each).
    let mut cfg = config(instance());
    cfg.event_ring = 4;
    let mut h = Harness::new(cfg);
    for k in 0..40u8 {
        let mut b4 = B4_A;
        b4[15] = k + 1;
        h.forward(&softwire(b4, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"x")), Egress::Internet);
    }
    // The event thread drains the ring between batches; the worker flushes what waited.
    let mut got = Vec::new();
    for _ in 0..100 {
        got.extend(h.drain_events());
        h.eng.flush_events();
    }
    let blocks: Vec<[u8; 16]> =
        got.iter().filter_map(|e| if let SessionEvent::BlockAllocated(b) = e { Some(b.b4) } else { None }).collect();
    assert_eq!(blocks.len(), 40, "every block allocation");
    // Each subscriber's block comes before its session, as they happened.
    for (i, e) in got.iter().enumerate() {
        if let SessionEvent::Created(s) = e {
            let at = got.iter().position(|x| matches!(x, SessionEvent::BlockAllocated(b) if b.b4 == s.b4));
            assert!(at.is_some_and(|at| at < i), "the block of {:?} before its session", s.b4);
        }
    }
    assert_eq!(got.len(), 80);
    assert_eq!(h.counter(Counter::EventsDropped), 0);
}

#[test]
fn past_the_waiting_room_session_events_are_dropped_but_block_events_are_not() {
    let mut cfg = config(instance());
    cfg.event_ring = 1;
    cfg.max_sessions = 1 << 16;
    let mut h = Harness::new(cfg);
    // 64 subscribers of 300 sessions, one after the other: far more session events
    // than wait, and the blocks of the last subscribers allocated when the waiting room
    // is already full of session events.
    let n = 64 * 300;
    assert!(n > dataplane::nat::table::PENDING_SESSION_EVENTS + 5 * 300);
    for k in 0..64u8 {
        for port in 0..300u16 {
            let mut b4 = B4_A;
            b4[15] = k + 1;
            h.forward(&softwire(b4, &ip4_udp(HOST, SERVER, 1024 + port, 53, 64, b"x")), Egress::Internet);
        }
    }
    let mut got = Vec::new();
    for _ in 0..(2 * n) {
        got.extend(h.drain_events());
        h.eng.flush_events();
    }
    let blocks = got.iter().filter(|e| matches!(e, SessionEvent::BlockAllocated(_))).count();
    let sessions = got.iter().filter(|e| matches!(e, SessionEvent::Created(_))).count();
    let dropped = h.counter(Counter::EventsDropped);
    assert!(dropped > 0, "the waiting room overflowed");
    assert_eq!(sessions as u64 + dropped, n as u64, "each session event arrived or was counted");
    assert_eq!(blocks as u64, h.counter(Counter::BlocksAllocated), "but every block event arrived");
    assert_eq!(blocks, 64);
}

/// `display sessions` and `reset session` read the table in bounded pieces: each piece
/// looks at most `max` sessions, copies only those the filter selects, and says where
/// the next begins; ending sessions in pieces logs each as deleted.
#[test]
fn sessions_are_filtered_and_ended_in_bounded_pieces() {
    let mut h = Harness::default();
    for port in 0..10 {
        udp_from(&mut h, B4_A, HOST, 5000 + port);
    }
    for port in 0..5 {
        udp_from(&mut h, B4_B, HOST, 6000 + port);
    }
    h.drain_events();
    let of_a = |r: &dataplane::nat::events::SessionRecord| r.b4 == B4_A;
    let (mut seen, mut pieces, mut at) = (Vec::new(), 0, Some(0));
    while let Some(from) = at {
        let (some, next) = h.eng.sessions_matching(of_a, from, 4);
        assert!(some.len() <= 4);
        seen.extend(some);
        pieces += 1;
        at = next;
    }
    assert_eq!(pieces, 4, "15 sessions, 4 a piece");
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(of_a));
    let (mut gone, mut at) = (0, Some(0));
    while let Some(from) = at {
        let (n, next) = h.eng.end_sessions(|r| r.b4 == B4_B && r.inner_port != 6000, from, 4);
        gone += n;
        at = next;
    }
    assert_eq!(gone, 4);
    assert_eq!(h.eng.session_count(), 11);
    let deleted =
        h.drain_events().into_iter().filter(|e| matches!(e, SessionEvent::Deleted(r) if r.b4 == B4_B)).count();
    assert_eq!(deleted, 4, "each ended session is logged and goes to the peer");
}

/// The limit events of `h` since the last drain.
fn limit_events(h: &mut Harness) -> Vec<dataplane::nat::events::LimitRecord> {
    h.drain_events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Limit(l) => Some(l),
            _ => None,
        })
        .collect()
}

#[test]
fn limits_met_are_events_at_most_fifty_a_second() {
    use dataplane::nat::events::Limit;
    use dataplane::nat::table::LIMIT_EVENTS_PER_SEC;
    let mut inst = instance();
    inst.limits.max_sessions = 3;
    inst.port_block_size = 32768; // 4 addresses: 4 dynamic blocks in the pool
    let mut h = Harness::new(config(inst));
    let mut ext = [0; 4];
    for p in 0..3 {
        ext = udp_from(&mut h, B4_A, HOST, 5000 + p).0;
    }
    assert!(limit_events(&mut h).is_empty());
    // A flood of refused packets: every one counted, 50 of them logged this second.
    for p in 0..100 {
        h.run(&softwire(B4_A, &ip4_udp(HOST, SERVER, 6000 + p, 53, 64, b"")));
    }
    assert_eq!(h.counter(Counter::DropSessionLimit), 100);
    let ev = limit_events(&mut h);
    assert_eq!(ev.len(), LIMIT_EVENTS_PER_SEC as usize);
    let l = ev[0];
    assert_eq!((l.limit, l.value, l.b4, l.inner_addr), (Limit::SessionLimit, 3, B4_A, u32::from_be_bytes(HOST)));
    assert_eq!(l.ext_addr, u32::from_be_bytes(ext));
    h.advance(1);
    h.run(&softwire(B4_A, &ip4_udp(HOST, SERVER, 7000, 53, 64, b"")));
    assert_eq!(h.counter(Counter::DropSessionLimit), 101);
    assert_eq!(limit_events(&mut h).len(), 1, "a new second, a new allowance");
    // The pool's dynamic blocks all taken: the next B4 finds no address.
    let b4 = |n: u8| {
        let mut a = B4_B;
        a[15] = n;
        a
    };
    for n in 1..4 {
        udp_from(&mut h, b4(n), HOST, 5000);
    }
    h.run(&softwire(b4(9), &ip4_udp(HOST, SERVER, 5000, 53, 64, b"")));
    assert_eq!(h.counter(Counter::DropPortsExhausted), 1);
    let ev = limit_events(&mut h);
    assert_eq!((ev.len(), ev[0].limit, ev[0].b4, ev[0].ext_addr), (1, Limit::AddressesExhausted, b4(9), 0));
}
