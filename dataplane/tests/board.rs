//! The packet path end to end without the daemon: a `dataplane::board::Board` with two
//! workers on veth pairs in a namespace the test creates (and removes, even when it
//! fails), driven through its handle. Frames go in on the B4's and the gateway's ends
//! of the veths and are read back there: translated out and back, handed between the
//! workers, dropped while standby, re-addressed when the next hop changes; the handle's
//! typed commands (sessions, snapshot in chunks, install, remove) reach every worker,
//! and a commit reaches every part of the running board.
//! Needs root, as CI has.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use dataplane::board::{Board, BoardSpec, Neighbours};
use dataplane::config::{EgressL2, EngineConfig, InstanceConfig, Ipv4Prefix};
use dataplane::counters::Counter;
use dataplane::io::af_packet::{PacketRing, PacketTx, RingOptions};
use dataplane::io::port::{Interfaces, PacketIo, Ports};
use dataplane::io::xdp::Mode;
use dataplane::io::xsk::PollMode;
use dataplane::nat::events::{BlockRecord, SessionEvent, SessionRecord, SweepKeys};
use dataplane::testing::{Netns, is_root, skip};
use dataplane::worker::{Cursor, SessionFilter};

const NEW_GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0x98];
const ENDPOINT2: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const POOL2: [u8; 4] = [198, 51, 100, 64];

/// What the board told its neighbours: changes of role, and the endpoints of each new
/// set of addresses.
#[derive(Default)]
struct Told {
    roles: Mutex<Vec<u64>>,
    reannounced: Mutex<Vec<u64>>,
    endpoints: Mutex<Vec<Vec<[u8; 16]>>>,
}

impl Neighbours for Told {
    fn set_active(&self, locations: u64) {
        self.roles.lock().unwrap().push(locations);
    }
    fn reannounce(&self, locations: u64) {
        self.reannounced.lock().unwrap().push(locations);
    }
    fn set_addresses(&self, cfg: &EngineConfig) {
        self.endpoints.lock().unwrap().push(cfg.instances.iter().map(|i| i.endpoint).collect());
    }
}

/// The lab's configuration plus a second instance with its own endpoint and pool.
fn with_second_instance(mut cfg: EngineConfig) -> EngineConfig {
    let first = cfg.instances[0].clone();
    let mut second = InstanceConfig::new(
        "dslite2",
        ENDPOINT2,
        first.b4_prefixes[0],
        Ipv4Prefix { addr: u32::from_be_bytes(POOL2), len: 30 },
    );
    second.port_block_size = first.port_block_size;
    cfg.instances.push(second);
    cfg
}

/// A softwire frame from `b4` to the second instance's endpoint.
fn softwire_to_second(b4: [u8; 16], inner: &[u8]) -> Vec<u8> {
    let mut f = eth(AFTR_MAC, B4_SIDE_NH, etherparse::EtherType::IPV6);
    f.extend(ip6_header(b4, ENDPOINT2, etherparse::IpNumber::IPV4, inner.len(), 64, 0, 0));
    f.extend_from_slice(inner);
    f
}

fn mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Veths `sw`-`b4` and `in`-`gw`, with the MACs the frame builders use.
fn lab(tag: &str) -> Netns {
    let ns = Netns::new(&format!("dpboard-{tag}-{}", std::process::id()));
    ns.ip(&["link", "add", "sw", "type", "veth", "peer", "name", "b4"]);
    ns.ip(&["link", "add", "in", "type", "veth", "peer", "name", "gw"]);
    for (d, m) in [("sw", AFTR_MAC), ("b4", B4_SIDE_NH), ("in", INET_MAC), ("gw", INET_GW)] {
        ns.ip(&["link", "set", d, "address", &mac(m), "mtu", "1600", "up"]);
    }
    ns
}

/// Reads frames of one end until `want` matched `keep` or `wait` passed.
fn collect(ring: &mut PacketRing, want: usize, wait: Duration, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < want && t.elapsed() < wait {
        ring.wait(20).unwrap();
        ring.recv_block(|fs| got.extend(fs.iter().map(|f| f.bytes().to_vec()).filter(|b| keep(b))));
    }
    got
}

fn is_ipv4(f: &[u8]) -> bool {
    f.len() > 34 && f[12..14] == [0x08, 0x00] && f[23] == 17
}

fn is_softwire(f: &[u8]) -> bool {
    f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[20] == 4
}

/// B4 number `k` (distinct /64s inside the instance's /40).
fn b4(k: u8) -> [u8; 16] {
    let mut a = B4_A;
    a[7] = k;
    a
}

fn run(io: PacketIo, tag: &str) {
    let ns = lab(tag);
    let name = ns.0.clone();
    let h = std::thread::spawn(move || {
        dataplane::io::netns::enter(&name).unwrap();
        let mut cfg = config(instance());
        cfg.workers = 2;
        let interfaces =
            Interfaces { softwire: "sw".into(), internet: "in".into(), packet_io: io, poll: PollMode::Block };
        let ports = Ports::open(&interfaces, &cfg, 9, 2, true).expect("ports open");
        let (ev_tx, ev_rx) = unbounded();
        let moved = Arc::new(AtomicBool::new(false));
        let told = Arc::new(Told::default());
        let m = moved.clone();
        let (sw_l2, in_l2) = (cfg.softwire_l2, cfg.internet_l2);
        let mut board = Board::start(BoardSpec {
            slot: 9,
            cfg: cfg.clone(),
            cores: vec![],
            ports,
            seed: 7,
            active: true,
            next_hops: Some(Box::new(move || {
                let gw = if m.load(Ordering::Relaxed) { NEW_GW } else { INET_GW };
                (sw_l2, EgressL2 { dst: gw, ..in_l2 })
            })),
            fib: None,
            on_events: Box::new(move |events: &[(SessionEvent, bool)]| {
                for &e in events {
                    let _ = ev_tx.send(e);
                }
            }),
            neighbours: Some(told.clone()),
        })
        .expect("board starts");
        assert!(board.io.contains(if io == PacketIo::AfPacket { "AF_PACKET" } else { "AF_XDP" }), "{}", board.io);
        let handle = board.handle();
        let tx_b4 = PacketTx::open("b4").unwrap();
        let tx_gw = PacketTx::open("gw").unwrap();
        let opts = RingOptions { block_size: 1 << 16, blocks: 8, block_timeout_ms: 1, fanout: None };
        let mut at_gw = PacketRing::open("gw", opts).unwrap();
        let mut at_b4 = PacketRing::open("b4", opts).unwrap();

        // Out: one datagram from each of 16 B4s (spread over both workers).
        let inners: Vec<Vec<u8>> =
            (0..16u8).map(|k| ip4_udp(HOST, SERVER, 5000 + k as u16, 53, 64, &[k; 12])).collect();
        for (k, inner) in inners.iter().enumerate() {
            tx_b4.send_batch(&[&softwire(b4(k as u8), inner)]).unwrap();
        }
        let out = collect(&mut at_gw, 16, Duration::from_secs(5), is_ipv4);
        assert_eq!(out.len(), 16, "every datagram translated to the Internet");
        let mut mapped = Vec::new();
        for o in &out {
            let (ext, port) = (out_src(o), out_sport(o));
            let k = o[o.len() - 1];
            assert_eq!(o, &to_internet(&ip4_udp(ext, SERVER, port, 53, 63, &[k; 12])), "datagram of B4 {k}");
            assert_checksums(o);
            mapped.push((k, ext, port));
        }

        // Back: a reply to each mapping reaches its B4 (the IPv4 side lands on one
        // worker; the owner of the port block forwards).
        for &(k, ext, port) in &mapped {
            tx_gw.send_batch(&[&from_internet(&ip4_udp(SERVER, ext, 53, port, 50, &[k; 12]))]).unwrap();
        }
        let back = collect(&mut at_b4, 16, Duration::from_secs(5), is_softwire);
        assert_eq!(back.len(), 16, "every reply encapsulated to its B4");
        for f in &back {
            let k = f[f.len() - 1];
            let want = to_b4(b4(k), &ip4_udp(SERVER, HOST, 53, 5000 + k as u16, 49, &[k; 12]), f);
            assert_eq!(f, &want, "reply to B4 {k}");
        }

        // The handle reaches every worker: sessions, a snapshot read in chunks of one.
        let sessions = handle.sessions(&SessionFilter::default());
        assert_eq!(sessions.len(), 16);
        let (mut snap_sessions, mut snap_blocks) = (Vec::new(), Vec::new());
        for w in 0..handle.workers() {
            let mut at = Some(Cursor::default());
            let mut chunks = 0;
            while let Some(from) = at {
                let c = handle.snapshot(w, from, 1).expect("worker answers");
                assert!(c.blocks.len() + c.sessions.len() <= 1, "chunks are bounded");
                snap_sessions.extend(c.sessions);
                snap_blocks.extend(c.blocks);
                at = c.next;
                chunks += 1;
                assert!(chunks < 100);
            }
        }
        assert_eq!(snap_sessions.len(), 16);
        assert_eq!(snap_blocks.len(), 16, "one block per subscriber");
        let (t_sessions, t_blocks) = handle.table();
        assert_eq!((t_sessions.len(), t_blocks.len()), (16, 16));
        let counters = board.counters();
        let sum = |c: Counter| counters.iter().map(|w| w.get(c)).sum::<u64>();
        assert_eq!(sum(Counter::In2Out), 16);
        assert_eq!(sum(Counter::Out2In), 16);
        assert_eq!(sum(Counter::SessionsCreated), 16);

        // Events: one creation per session.
        let t = Instant::now();
        let mut created = 0;
        while created < 16 && t.elapsed() < Duration::from_secs(2) {
            if let Ok((SessionEvent::Created(_), true)) = ev_rx.recv_timeout(Duration::from_millis(100)) {
                created += 1;
            }
        }
        assert_eq!(created, 16, "the board's event thread delivers every creation");

        // Remove one session through the handle, then install it back (as from the peer).
        let one = sessions[0];
        assert_eq!(handle.remove(vec![one]), 1);
        assert_eq!(handle.sessions(&SessionFilter::default()).len(), 15);
        // Its subscriber went with its last session: its block comes back first.
        let block = *t_blocks.iter().find(|b| b.b4 == one.b4).expect("the session's block");
        assert_eq!(handle.install(vec![], vec![one]).sessions, 1, "no session without its block");
        assert_eq!(handle.install(vec![block], vec![one]).total(), 0);
        assert_eq!(handle.sessions(&SessionFilter::default()).len(), 16);

        // Hot backup's mark and sweep: a bulk sync that brought all but four sessions
        // and their blocks. A sweep of no location removes nothing; of the board's one
        // location, those four and their blocks (their subscribers go with them).
        let all = handle.sessions(&SessionFilter::default());
        let brought: Vec<SessionRecord> = all[4..].to_vec();
        let brought_blocks: Vec<BlockRecord> =
            t_blocks.iter().filter(|b| brought.iter().any(|s| s.b4 == b.b4)).copied().collect();
        let keep = Arc::new(SweepKeys::new(
            brought.iter().map(SessionRecord::key).collect(),
            brought_blocks.iter().map(BlockRecord::key).collect(),
        ));
        assert_eq!(handle.sweep(keep.clone(), 0), Ok(0), "no location covered");
        // A location the board is active for is its own: never swept (a takeover may
        // come between a bulk's end and its sweep).
        assert_eq!(handle.sweep(keep.clone(), 1), Ok(0), "active: nothing swept");
        handle.set_active(0, false);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(handle.sweep(keep.clone(), 1), Ok(8), "four sessions and their four blocks");
        let left = handle.sessions(&SessionFilter::default());
        assert_eq!(left.len(), 12);
        assert!(left.iter().all(|s| brought.contains(s)));
        assert_eq!(handle.subscribers().len(), 12);
        assert_eq!(handle.sweep(keep, 1), Ok(0), "nothing more");
        let gone: Vec<SessionRecord> = all[..4].to_vec();
        let gone_blocks: Vec<BlockRecord> =
            t_blocks.iter().filter(|b| gone.iter().any(|s| s.b4 == b.b4)).copied().collect();
        assert_eq!(handle.install(gone_blocks, gone).total(), 0, "installed back");
        handle.set_active(0, true);

        // A new next hop reaches the workers (polled every 200 ms off their cores).
        moved.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(600));
        tx_b4.send_batch(&[&softwire(b4(0), &inners[0])]).unwrap();
        let again = collect(&mut at_gw, 1, Duration::from_secs(5), is_ipv4);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0][0..6], NEW_GW, "the frame goes to the new next hop");

        // A commit reaches every part of the running board. A second instance with its
        // own endpoint and pool, and a new UDP timer for the first: every session stays,
        // the counters go on, the XDP program steers the new endpoint, the neighbours
        // answer for it.
        let in2out_before = sum(Counter::In2Out);
        let mut two = with_second_instance(cfg.clone());
        two.instances[0].timeouts.udp = 120;
        let carried = board.reconfigure(two.clone()).expect("commit applies");
        assert_eq!((carried.kept, carried.ended), (16, 0), "every session the new settings allow stays");
        assert_eq!(handle.sessions(&SessionFilter::default()).len(), 16);
        assert_eq!(told.endpoints.lock().unwrap().last().unwrap(), &vec![ENDPOINT, ENDPOINT2]);
        for k in 0..5u8 {
            let inner = ip4_udp(HOST, SERVER, 7000 + k as u16, 53, 64, &[k; 12]);
            tx_b4.send_batch(&[&softwire_to_second(b4(k), &inner)]).unwrap();
        }
        let second = collect(&mut at_gw, 5, Duration::from_secs(5), is_ipv4);
        assert_eq!(second.len(), 5, "the new instance forwards at once");
        for o in &second {
            assert_eq!(out_src(o)[..3], POOL2[..3], "from the new instance's pool");
            assert_checksums(o);
        }
        assert_eq!(sum(Counter::In2Out), in2out_before + 5, "the counters go on counting");
        while ev_rx.try_recv().is_ok() {}

        // A commit that removes the first instance ends its sessions, and says so.
        let only_second = EngineConfig { instances: vec![two.instances[1].clone()], ..two };
        let carried = board.reconfigure(only_second).expect("commit applies");
        assert_eq!((carried.kept, carried.ended), (5, 16));
        assert_eq!(sum(Counter::SessionsEndedByCommit), 16);
        let t = Instant::now();
        let mut deleted = 0;
        while deleted < 16 && t.elapsed() < Duration::from_secs(2) {
            if let Ok((SessionEvent::Deleted(r), _)) = ev_rx.recv_timeout(Duration::from_millis(100)) {
                assert_eq!(r.ext_addr.to_be_bytes()[..3], POOL[..3], "an ended session of the first pool");
                deleted += 1;
            }
        }
        assert_eq!(deleted, 16, "every ended session is logged as deleted");
        tx_b4.send_batch(&[&softwire(b4(0), &inners[0])]).unwrap();
        assert!(collect(&mut at_gw, 1, Duration::from_millis(500), is_ipv4).is_empty(), "the old endpoint is gone");

        // Standby: nothing is forwarded, and the neighbours hear of it.
        handle.set_active(0, false);
        let standby_before = sum(Counter::DropStandby);
        for k in 0..16u8 {
            let inner = ip4_udp(HOST, SERVER, 7000 + k as u16, 53, 64, &[k; 12]);
            tx_b4.send_batch(&[&softwire_to_second(b4(k), &inner)]).unwrap();
        }
        let leak = collect(&mut at_gw, 1, Duration::from_millis(500), is_ipv4);
        assert!(leak.is_empty(), "a standby forwards nothing: {leak:02x?}");
        if io == PacketIo::AfPacket {
            // AF_PACKET sees the kernel's own frames (neighbour discovery) too.
            let dropped = sum(Counter::DropStandby) - standby_before;
            assert!(dropped >= 16, "counted as standby drops: {dropped}");
        }
        // A standby's events say so (NAT logging leaves them to the active board).
        while ev_rx.try_recv().is_ok() {}
        let gone = handle.sessions(&SessionFilter::default())[0];
        assert_eq!(handle.remove(vec![gone]), 1);
        match ev_rx.recv_timeout(Duration::from_secs(2)) {
            Ok((SessionEvent::Deleted(r), active)) => {
                assert_eq!(r, gone);
                assert!(!active, "taken while the board was standby");
            }
            other => panic!("no deletion event: {other:?}"),
        }
        handle.set_active(0, true);
        // (The sweep above went standby and back once.)
        assert_eq!(*told.roles.lock().unwrap(), vec![0, 1, 0, 1]);
        // Active again while active (both boards were, and this one keeps the role):
        // the neighbours are told again, the roles are not.
        handle.set_active(0, true);
        assert_eq!(*told.reannounced.lock().unwrap(), vec![1]);
        assert_eq!(*told.roles.lock().unwrap(), vec![0, 1, 0, 1]);
        board.stop();
        assert_eq!(*told.roles.lock().unwrap(), vec![0, 1, 0, 1, 0], "an active board withdraws at stop");
    });
    let r = h.join();
    drop(ns);
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn board_over_af_packet() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    run(PacketIo::AfPacket, "pkt");
}

#[test]
fn board_over_af_xdp() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    run(PacketIo::AfXdp(Mode::Auto), "xdp");
}
