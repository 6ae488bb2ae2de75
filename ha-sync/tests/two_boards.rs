//! Two boards' HA threads over loopback UDP, each in front of a real engine: sessions
//! older than delay-time reach the standby and younger ones do not, deletions follow,
//! a silent active is replaced within the dead interval and the standby then translates
//! the old flows to the same external address and port, a returning board syncs in
//! bulk and gets its role back after preempt-time, and forged messages are refused.

#[path = "../../dataplane/tests/common/mod.rs"]
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use dataplane::nat::events::{BlockRecord, Refused, SessionRecord, SweepKeys};
use dataplane::{Egress, Engine, Frame, HEADROOM, VecSink, Verdict};
use ha_sync::node::{Local, Location, Node, Settings, Status};
use ha_sync::role::Role;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A board: one engine, and whether it forwards.
#[derive(Clone)]
struct Board {
    eng: Arc<Mutex<Engine>>,
    active: Arc<AtomicBool>,
}

impl Board {
    fn new() -> (Board, crossbeam_channel::Receiver<dataplane::nat::events::SessionEvent>) {
        let (mut eng, events) = Engine::new(&config(instance()), 0, 7).unwrap();
        eng.set_clock(unix_ms());
        (Board { eng: Arc::new(Mutex::new(eng)), active: Arc::new(AtomicBool::new(false)) }, events)
    }

    fn run(&self, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let mut eng = self.eng.lock().unwrap();
        eng.set_clock(unix_ms());
        let mut buf = vec![0u8; HEADROOM + frame.len()];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut f = Frame::new(&mut buf, HEADROOM, frame.len());
        let v = eng.process(&mut f, &mut VecSink::default());
        (v, f.bytes().to_vec())
    }

    fn sessions(&self) -> Vec<SessionRecord> {
        self.eng.lock().unwrap().sessions()
    }
}

impl Local for Board {
    fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> Refused {
        let mut eng = self.eng.lock().unwrap();
        eng.set_clock(unix_ms());
        eng.install(&blocks, &sessions)
    }
    fn sweep(&self, keep: Arc<SweepKeys>, locations: u64) -> Result<usize, (usize, String)> {
        Ok(self.eng.lock().unwrap().sweep(&keep, locations))
    }
    fn remove(&self, sessions: Vec<SessionRecord>) -> usize {
        let mut eng = self.eng.lock().unwrap();
        sessions.iter().filter(|s| eng.remove_session(s)).count()
    }
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        let eng = self.eng.lock().unwrap();
        let subs = eng.subscribers();
        let blocks = subs.iter().flat_map(|s| s.block_records()).collect();
        (eng.sessions(), blocks)
    }
    fn set_peer(&self, _: [u8; 6], _: u64) {}
    fn set_active(&self, _location: usize, on: bool) {
        self.active.store(on, Ordering::SeqCst);
    }
}

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn settings(slot: u16, bind: SocketAddr, peer: SocketAddr, preferred: bool) -> Settings {
    Settings {
        slot,
        peer_slot: 3 - slot,
        bind,
        peer,
        witness: None,
        links: Vec::new(),
        secret: ha_sync::wire::Secret::new(*b"lab-only-secret-0123456789"),
        locations: vec![Location { id: 1, preferred }],
        shares: Default::default(),
        softwire_mac: [0; 6],
        hot_backup: true,
        delay_secs: 1,
        preempt_ms: 1500,
        heartbeat_ms: 20,
        dead_count: 5,
        queue: 4096,
        rto_ms: 50,
        pace_per_ms: 16,
        config_digest: 0,
        instance_ids: Vec::new(),
        notify: None,
    }
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Forwards a board's engine events to its HA thread until `stop`.
fn pump(
    events: crossbeam_channel::Receiver<dataplane::nat::events::SessionEvent>,
    node: Arc<Node>,
    stop: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for e in events.try_iter() {
                node.event(e);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

fn status(n: &Node) -> Status {
    n.status()
}

#[test]
fn sessions_survive_the_death_of_the_active_board() {
    let (a_addr, b_addr) = (free_port(), free_port());
    let (a, a_events) = Board::new();
    let (b, b_events) = Board::new();
    let na = Arc::new(Node::start(settings(1, a_addr, b_addr, true), a.clone()).unwrap());
    let nb = Arc::new(Node::start(settings(2, b_addr, a_addr, false), b.clone()).unwrap());
    let (stop_a, stop_b) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    pump(a_events, na.clone(), stop_a.clone());
    pump(b_events, nb.clone(), stop_b.clone());
    wait_for("roles", 5, || status(&na).role == Role::Active && status(&nb).role == Role::Standby);
    assert!(a.active.load(Ordering::SeqCst) && !b.active.load(Ordering::SeqCst));
    wait_for("the standby in sync", 5, || status(&nb).in_sync);

    // An old flow (outlives delay-time) and a flow that ends young.
    let old = softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"old"));
    let (v, out) = a.run(&old);
    assert_eq!(v, Verdict::Forward(Egress::Internet));
    let (ext, port) = (out_src(&out), out_sport(&out));
    std::thread::sleep(Duration::from_millis(2200));
    let young = softwire(B4_B, &ip4_udp(HOST, SERVER, 6000, 53, 64, b"young"));
    assert_eq!(a.run(&young).0, Verdict::Forward(Egress::Internet));
    wait_for("the old session on the standby", 5, || b.sessions().iter().any(|s| s.ext_port == port));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!b.sessions().iter().any(|s| s.b4 == B4_B), "a session younger than delay-time is not sent");
    let st = status(&na);
    assert!(st.records_sent >= 2 && st.replicated == 1 && st.young == 1, "{st:?}");

    // A forged message (another key) is refused and counted.
    let mut forger = ha_sync::wire::Builder::new(&ha_sync::wire::Header {
        kind: ha_sync::wire::Kind::Switchover,
        flags: ha_sync::wire::FLAG_RELEASED,
        slot: 1,
        epoch: u64::MAX,
        nonce: 1,
        echo: 1,
        seq: 1,
        ack: 0,
    });
    forger.raw(&[]);
    let d = forger.finish(&ha_sync::wire::Key::new(b"guessed"));
    UdpSocket::bind("127.0.0.1:0").unwrap().send_to(&d, b_addr).unwrap();
    wait_for("the forgery counted", 5, || status(&nb).rejected_auth >= 1);
    assert_eq!(status(&nb).role, Role::Standby, "a forged release changes nothing");

    // The active board dies.
    stop_a.store(true, Ordering::Relaxed);
    let died = Instant::now();
    na.stop();
    wait_for("the takeover", 5, || b.active.load(Ordering::SeqCst));
    let gap = died.elapsed();
    assert!(gap < Duration::from_millis(400), "took over after {gap:?}");
    let why = status(&nb).last_change.unwrap().1;
    assert!(why.contains("the peer went silent"), "{why}");

    // Inbound traffic to the mapped port reaches the B4; the flow keeps its mapping.
    let back = from_internet(&ip4_udp(SERVER, ext, 53, port, 64, b"reply"));
    let (v, out) = b.run(&back);
    assert_eq!(v, Verdict::Forward(Egress::Softwire));
    assert_eq!(out[38..54], B4_A, "to the B4 of the session");
    let (v, out) = b.run(&old);
    assert_eq!(v, Verdict::Forward(Egress::Internet));
    assert_eq!((out_src(&out), out_sport(&out)), (ext, port), "same external address and port");

    // The preferred board comes back: standby, bulk sync, then after preempt-time the
    // role goes back to it, gracefully.
    let (a2, a2_events) = Board::new();
    let na2 = Arc::new(Node::start(settings(1, a_addr, b_addr, true), a2.clone()).unwrap());
    let stop_a2 = Arc::new(AtomicBool::new(false));
    pump(a2_events, na2.clone(), stop_a2.clone());
    wait_for("the returning board in sync", 5, || status(&na2).in_sync && status(&na2).role == Role::Standby);
    assert!(a2.sessions().iter().any(|s| s.ext_port == port && s.b4 == B4_A), "bulk carried the old session");
    let synced = Instant::now();
    wait_for("preempt", 10, || a2.active.load(Ordering::SeqCst));
    assert!(synced.elapsed() >= Duration::from_millis(1000), "not before preempt-time");
    wait_for("the other board standby", 5, || !b.active.load(Ordering::SeqCst) && status(&nb).role == Role::Standby);
    let (v, out) = a2.run(&old);
    assert_eq!(v, Verdict::Forward(Egress::Internet));
    assert_eq!((out_src(&out), out_sport(&out)), (ext, port));

    // A switchover on command goes back the other way, once the peer is in sync.
    // The active board's view of its peer: in sync, as the peer's heartbeats say.
    wait_for("the other board in sync", 5, || status(&nb).in_sync && status(&na2).in_sync);
    na2.switchover(None).unwrap();
    wait_for("switchover", 5, || b.active.load(Ordering::SeqCst) && !a2.active.load(Ordering::SeqCst));

    stop_a2.store(true, Ordering::Relaxed);
    stop_b.store(true, Ordering::Relaxed);
}

/// A board whose table walk is slow (a million sessions on a busy machine), and whose
/// one worker can be stopped (stuck in a loop, say): its rounds stop.
#[derive(Clone)]
struct Faulty {
    board: Board,
    walk: Duration,
    rounds: Arc<std::sync::atomic::AtomicU64>,
    stuck: Arc<AtomicBool>,
    /// Session events its workers dropped.
    lost: Arc<std::sync::atomic::AtomicU64>,
}

impl Faulty {
    fn new(board: &Board) -> Faulty {
        let (rounds, stuck, lost) = Default::default();
        Faulty { board: board.clone(), walk: Duration::ZERO, rounds, stuck, lost }
    }
}

impl Local for Faulty {
    fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> Refused {
        self.board.install(blocks, sessions)
    }
    fn sweep(&self, keep: Arc<SweepKeys>, locations: u64) -> Result<usize, (usize, String)> {
        self.board.sweep(keep, locations)
    }
    fn remove(&self, sessions: Vec<SessionRecord>) -> usize {
        self.board.remove(sessions)
    }
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        std::thread::sleep(self.walk);
        self.board.table()
    }
    fn set_peer(&self, _: [u8; 6], _: u64) {}
    fn set_active(&self, _location: usize, on: bool) {
        self.board.set_active(0, on)
    }
    fn progress(&self) -> Vec<u64> {
        if !self.stuck.load(Ordering::SeqCst) {
            self.rounds.fetch_add(1, Ordering::SeqCst);
        }
        vec![self.rounds.load(Ordering::SeqCst)]
    }
    fn events_lost(&self) -> u64 {
        self.lost.load(Ordering::SeqCst)
    }
}

#[test]
fn events_the_workers_dropped_bring_a_bulk_sync() {
    let (a_addr, b_addr) = (free_port(), free_port());
    let (a, _a_events) = Board::new();
    let (b, _b_events) = Board::new();
    let fa = Faulty::new(&a);
    let lost = fa.lost.clone();
    let na = Node::start(settings(1, a_addr, b_addr, true), fa).unwrap();
    wait_for("slot 1 active alone", 5, || status(&na).role == Role::Active);
    let nb = Node::start(settings(2, b_addr, a_addr, false), b.clone()).unwrap();
    wait_for("the standby in sync", 5, || status(&nb).in_sync && status(&na).in_sync);
    let bulks = status(&na).bulk_syncs;
    // The active board's workers lost events (their rings were full): what the standby
    // holds may lack them, so the active sends the whole table again.
    lost.store(3, Ordering::SeqCst);
    wait_for("a bulk sync", 5, || status(&na).bulk_syncs > bulks);
    assert_eq!(status(&na).events_dropped, 3);
    wait_for("in sync again", 5, || status(&nb).in_sync);
    nb.stop();
    na.stop();
}

#[test]
fn heartbeats_never_wait_behind_a_bulk_sync() {
    let (a_addr, b_addr) = (free_port(), free_port());
    let (a, _a_events) = Board::new();
    let (b, _b_events) = Board::new();
    // The active board takes 1.5 s to walk its table, five dead intervals (100 ms).
    let slow = Faulty { walk: Duration::from_millis(1500), ..Faulty::new(&a) };
    let na = Node::start(settings(1, a_addr, b_addr, true), slow).unwrap();
    wait_for("slot 1 active alone", 5, || status(&na).role == Role::Active);
    let nb = Node::start(settings(2, b_addr, a_addr, false), b.clone()).unwrap();
    // The standby asks for a bulk sync at once; the walk takes 1.5 s. Meanwhile the
    // heartbeats go on: the standby never takes over.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        assert!(!b.active.load(Ordering::SeqCst), "the standby took over during a bulk sync");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for("the standby in sync", 5, || status(&nb).in_sync);
    assert_eq!((status(&na).role, status(&nb).role), (Role::Active, Role::Standby));
    assert!(a.active.load(Ordering::SeqCst));
    nb.stop();
    na.stop();
}

#[test]
fn a_board_whose_worker_is_stuck_hands_its_location_to_the_peer() {
    let (a_addr, b_addr) = (free_port(), free_port());
    let (a, _a_events) = Board::new();
    let (b, _b_events) = Board::new();
    let stuck = Arc::new(AtomicBool::new(false));
    let sa = Faulty { stuck: stuck.clone(), ..Faulty::new(&a) };
    // The notify hook, as keepalived's: the program gets slot, location, role, reason.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("changes.log");
    let program = dir.path().join("notify.sh");
    std::fs::write(&program, format!("#!/bin/sh\necho \"$AFTR_SLOT|$1|$2|$3|$4\" >> {}\n", log.display())).unwrap();
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut s1 = settings(1, a_addr, b_addr, true);
    s1.notify = Some(program.display().to_string());
    let na = Node::start(s1, sa).unwrap();
    wait_for("slot 1 active alone", 5, || status(&na).role == Role::Active);
    let nb = Node::start(settings(2, b_addr, a_addr, false), b.clone()).unwrap();
    wait_for("the standby in sync", 5, || status(&nb).in_sync && status(&na).in_sync);
    // The active board's worker stops; its HA thread still heartbeats. After STUCK it
    // is unfit and hands the location over (gracefully), and says why.
    stuck.store(true, Ordering::SeqCst);
    let t = Instant::now();
    wait_for("the hand-over", 5, || status(&nb).role == Role::Active);
    let took = t.elapsed();
    // (Its rounds were last seen moving up to one look, 50 ms, before it stopped.)
    let stuck_for = ha_sync::node::STUCK - Duration::from_millis(100);
    assert!(took >= stuck_for, "not before the worker was stuck for {:?}: {took:?}", ha_sync::node::STUCK);
    let st = status(&na);
    assert_eq!(st.role, Role::Standby);
    assert!(!st.fit && st.unfit.as_deref().is_some_and(|w| w.starts_with("worker 0 made no progress for")), "{st:?}");
    assert!(!a.active.load(Ordering::SeqCst) && b.active.load(Ordering::SeqCst));
    // Running again: fit, in sync, and the preferred board takes the role back by
    // preempt-time (1.5 s).
    stuck.store(false, Ordering::SeqCst);
    wait_for("fit again", 2, || status(&na).fit && status(&na).unfit.is_none());
    wait_for("preempt", 10, || status(&na).role == Role::Active && status(&nb).role == Role::Standby);
    nb.stop();
    na.stop();
    let changes = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the hook's three runs", 5, || changes().lines().count() >= 3);
    assert_eq!(
        changes().lines().collect::<Vec<_>>(),
        vec![
            "1|1|1|active|no peer answered",
            "1|1|1|standby|this board is unfit (a link down or a worker stuck); the peer is fit",
            "1|1|1|active|the peer handed the role over",
        ]
    );
}

/// The NAT log of two boards as aftrd keeps it: a board's event is logged while the board
/// is active (decision 0020). Forwards the events to the HA thread as `pump` does.
fn pump_logging(
    slot: u16,
    events: crossbeam_channel::Receiver<dataplane::nat::events::SessionEvent>,
    board: &Board,
    node: Arc<Node>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(u16, dataplane::nat::events::SessionEvent)>>>,
) {
    let active = board.active.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for e in events.try_iter() {
                if active.load(Ordering::SeqCst) {
                    log.lock().unwrap().push((slot, e));
                }
                node.event(e);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

#[test]
fn a_moved_subscriber_s_block_is_logged_once_each_way_across_a_failover() {
    use dataplane::nat::events::SessionEvent::{BlockAllocated, BlockReleased};
    let (a_addr, b_addr) = (free_port(), free_port());
    let (a, a_events) = Board::new();
    let (b, b_events) = Board::new();
    let na = Arc::new(Node::start(settings(1, a_addr, b_addr, true), a.clone()).unwrap());
    let nb = Arc::new(Node::start(settings(2, b_addr, a_addr, false), b.clone()).unwrap());
    let (stop_a, stop_b) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let log = Arc::new(Mutex::new(Vec::new()));
    pump_logging(1, a_events, &a, na.clone(), stop_a.clone(), log.clone());
    pump_logging(2, b_events, &b, nb.clone(), stop_b.clone(), log.clone());
    wait_for("roles", 5, || status(&na).role == Role::Active && status(&nb).role == Role::Standby);
    wait_for("the standby in sync", 5, || status(&nb).in_sync);

    // Two subscribers with a block each on the active board, both backed up.
    for b4 in [B4_A, B4_B] {
        assert_eq!(
            a.run(&softwire(b4, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"x"))).0,
            Verdict::Forward(Egress::Internet)
        );
    }
    wait_for("both on the standby", 5, || b.sessions().len() == 2);
    // One ends on the active board: it logs the release; the standby, told, releases its
    // copy unlogged.
    a.eng.lock().unwrap().end_sessions(|s| s.b4 == B4_B, 0, usize::MAX);
    wait_for("the end on the standby", 5, || b.sessions().len() == 1);
    // The active board dies; the other, active now, releases the moved subscriber's block.
    stop_a.store(true, Ordering::Relaxed);
    na.stop();
    wait_for("the takeover", 5, || b.active.load(Ordering::SeqCst));
    b.eng.lock().unwrap().end_sessions(|_| true, 0, usize::MAX);
    std::thread::sleep(Duration::from_millis(100));
    stop_b.store(true, Ordering::Relaxed);

    let blocks: Vec<(u16, &str, [u8; 16])> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(slot, e)| match e {
            BlockAllocated(k) => Some((*slot, "allocated", k.b4)),
            BlockReleased(k) => Some((*slot, "released", k.b4)),
            _ => None,
        })
        .collect();
    // The allocation by the board that made it, the release by the board active then:
    // once each, none from the standby's installs or its copy's release.
    assert_eq!(blocks, [(1, "allocated", B4_A), (1, "allocated", B4_B), (1, "released", B4_B), (2, "released", B4_A)],);
}
