//! Two protocol cores over a simulated link and clock: no sockets, no threads, no
//! sleeps. The link loses, delays (so reorders) and duplicates datagrams from a seeded
//! generator, so every run is the same; the boards are maps of sessions that record
//! what they were asked to do.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dataplane::nat::events::{BlockRecord, InstallError, Refused, SessionEvent, SessionRecord, SweepKeys};

use super::*;
use crate::wire::{Builder, Header, Key, Kind, Purpose, Secret};

const UNIX0_MS: u64 = 1_700_000_000_000;
const HEARTBEAT: u64 = 20;
const DEAD_COUNT: u32 = 5;
const DEAD: u64 = HEARTBEAT * DEAD_COUNT as u64;
const PREEMPT: u64 = 1500;
const DELAY_S: u32 = 1;
const KEY: &[u8] = b"lab-only-secret-0123456789";
/// When two boards started together first believe each other (ms): both send a
/// heartbeat at 0, which the other cannot believe yet (it does not echo its nonce) but
/// answers at once, at 1; the answers arrive at 2. One link round trip.
const MET: u64 = 2;

fn addr() -> SocketAddr {
    "127.0.0.1:62000".parse().expect("an address")
}

/// The key of `purpose` between slots 1 and 2.
fn key(purpose: Purpose) -> Key {
    Key::pair(&Secret::new(KEY), purpose, (1, addr()), (2, addr()))
}

fn settings(slot: u16, preferred: bool, dead_count: u32) -> Settings {
    Settings {
        slot,
        peer_slot: 3 - slot,
        bind: addr(),
        peer: addr(),
        witness: None,
        links: Vec::new(),
        secret: Secret::new(KEY),
        locations: vec![Location { id: 1, preferred }],
        shares: PoolShares::default(),
        softwire_mac: [0; 6],
        hot_backup: true,
        delay_secs: DELAY_S,
        preempt_ms: PREEMPT,
        heartbeat_ms: HEARTBEAT,
        dead_count,
        queue: 4096,
        rto_ms: 50,
        pace_per_ms: 16,
        config_digest: 0,
        instance_ids: Vec::new(),
        notify: None,
    }
}

/// splitmix64: a deterministic generator for the link's faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// What the link does to each datagram.
#[derive(Clone, Copy)]
struct Faults {
    loss_percent: u64,
    dup_percent: u64,
    /// Extra delay, 0 to this many milliseconds, on top of one: datagrams overtake.
    jitter_ms: u64,
    /// A fixed delay on top (as netem's), in milliseconds.
    delay_ms: u64,
    /// Only the HA link suffers (the witness path is clean).
    link_only: bool,
}

const CLEAN: Faults = Faults { loss_percent: 0, dup_percent: 0, jitter_ms: 0, delay_ms: 0, link_only: false };
const LOSSY: Faults = Faults { loss_percent: 20, dup_percent: 10, jitter_ms: 8, delay_ms: 0, link_only: false };

type SessionKey = (u8, [u8; 16], u32, u16, u8);

fn key_of(s: &SessionRecord) -> SessionKey {
    (s.inst, s.b4, s.inner_addr, s.inner_port, s.proto)
}

/// A board: its table, whether it forwards, and everything it was asked, with when.
#[derive(Default)]
struct Board {
    sessions: BTreeMap<SessionKey, SessionRecord>,
    blocks: Vec<BlockRecord>,
    /// Active for some location; for which, by index, in `locations`.
    active: bool,
    locations: u64,
    /// The peer's softwire MAC and active locations, as last told.
    peer: ([u8; 6], u64),
    done: Vec<(u64, Output)>,
    /// Which location each address is of (the board's settings).
    shares: PoolShares,
    /// The next this many sessions installed are refused (a port taken by a stale
    /// session, say).
    refuse_sessions: usize,
    /// Sweeps time out (a worker does not answer) before they remove anything.
    sweep_times_out: bool,
}

impl Board {
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        (self.sessions.values().copied().collect(), self.blocks.clone())
    }
    fn activations(&self) -> Vec<(u64, bool)> {
        self.done
            .iter()
            .filter_map(|(t, o)| match o {
                Output::SetActive(_, on) => Some((*t, *on)),
                _ => None,
            })
            .collect()
    }
    /// Hot backup's sweep, as the engine does it.
    fn sweep(&mut self, keep: &SweepKeys, locations: u64) -> usize {
        let covered = |shares: &PoolShares, inst: u8, addr: u32| {
            shares.location_of(inst, addr).is_some_and(|l| locations & (1 << l) != 0)
        };
        let before = self.sessions.len() + self.blocks.len();
        let shares = self.shares.clone();
        self.sessions
            .retain(|_, r| !covered(&shares, r.inst, r.ext_addr) || keep.sessions.binary_search(&r.key()).is_ok());
        let used: Vec<(u8, [u8; 16])> = self.sessions.values().map(|r| (r.inst, r.b4)).collect();
        self.blocks.retain(|b| {
            !covered(&shares, b.inst, b.ext_addr)
                || keep.blocks.binary_search(&b.key()).is_ok()
                || used.contains(&(b.inst, b.b4))
        });
        before - self.sessions.len() - self.blocks.len()
    }

    fn snapshots(&self) -> usize {
        self.done.iter().filter(|(_, o)| matches!(o, Output::TakeSnapshot(_))).count()
    }
}

struct InFlight {
    at: u64,
    order: u64,
    channel: Channel,
    bytes: Vec<u8>,
}

/// One side: its protocol (None: the board is down), board, and what is on its way
/// to it.
struct Side {
    proto: Option<Protocol>,
    board: Board,
    inbox: Vec<InFlight>,
    /// Every datagram it sent, with when.
    sent: Vec<(u64, Channel, Vec<u8>)>,
    /// Installs are finished only by [`Sim::finish_installs`] (a slow board thread).
    hold_installs: bool,
    held: usize,
    /// The board's table comes this many milliseconds after it was asked for (0: at
    /// once), as from the node's board thread; and the one asked for, read when asked
    /// (as the board reads its workers while they go on), with when it is due.
    table_delay_ms: u64,
    #[allow(clippy::type_complexity)]
    table_due: Vec<(u64, u64, Vec<SessionRecord>, Vec<BlockRecord>)>,
    /// The process is stopped (SIGSTOP): it does nothing, and what comes waits for it
    /// as in a socket buffer.
    paused: bool,
}

struct Sim {
    t0: Instant,
    ms: u64,
    rng: Rng,
    faults: Faults,
    /// Channels cut (Link, Witness).
    cut: [bool; 2],
    /// Everything to side 0 or 1 lost (a one-way cut).
    cut_to: [bool; 2],
    /// The next HA-link message of this kind from side 0 or 1 is lost.
    drop_next: [Option<Kind>; 2],
    order: u64,
    sides: [Side; 2],
    /// Calls of `handle_timeout`, to see that `poll_timeout` saves most of them.
    timeouts: u64,
    /// The next bulk Data message on the HA link gets a record that cannot be read
    /// after its first (a sender's fault: sealed as it was, so the tag holds).
    mangle_bulk: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Drive {
    /// Every millisecond, as the node's thread does.
    EveryMs,
    /// Only when `poll_timeout` or a datagram says so.
    PollTimeout,
}

impl Sim {
    fn new(seed: u64, faults: Faults) -> Sim {
        let side = || Side {
            proto: None,
            board: Board::default(),
            inbox: Vec::new(),
            sent: Vec::new(),
            hold_installs: false,
            held: 0,
            table_delay_ms: 0,
            table_due: Vec::new(),
            paused: false,
        };
        Sim {
            t0: Instant::now(),
            ms: 0,
            rng: Rng(seed),
            faults,
            cut: [false; 2],
            cut_to: [false; 2],
            drop_next: [None, None],
            order: 0,
            sides: [side(), side()],
            timeouts: 0,
            mangle_bulk: false,
        }
    }

    fn now(&self) -> Now {
        Now { at: self.t0 + Duration::from_millis(self.ms), unix_ms: UNIX0_MS + self.ms }
    }

    fn unix_s(&self) -> u32 {
        self.now().unix_s()
    }

    /// Starts (or restarts, as a new incarnation) side `i`; side 0 is slot 1, the
    /// preferred board.
    fn start(&mut self, i: usize, dead_count: u32, witness: bool) {
        self.start_with(i, settings(i as u16 + 1, i == 0, dead_count), witness);
    }

    fn start_with(&mut self, i: usize, s: Settings, witness: bool) {
        self.sides[i].board.shares = s.shares.clone();
        let epoch = (UNIX0_MS + self.ms) * 1000 + i as u64;
        // Any nonce that no other incarnation has.
        let me = Incarnation { epoch, nonce: (epoch as u128) << 64 | 0x5eed };
        self.sides[i].proto = Some(Protocol::new(s, me, 64, witness, self.now()));
    }

    fn stop(&mut self, i: usize) {
        self.sides[i].proto = None;
        self.sides[i].board.active = false;
        self.sides[i].board.locations = 0;
    }

    fn proto(&mut self, i: usize) -> &mut Protocol {
        self.sides[i].proto.as_mut().expect("a running side")
    }

    fn status(&self, i: usize) -> Status {
        self.sides[i].proto.as_ref().expect("a running side").status(self.now())
    }

    /// The board thread of side `i` catches up with the installs it was holding.
    fn finish_installs(&mut self, i: usize) {
        for _ in 0..std::mem::take(&mut self.sides[i].held) {
            let now = self.now();
            self.proto(i).installed(Refused::default(), now);
        }
        self.carry_out(i);
    }

    /// Hands a datagram to side `i` now, outside the link.
    fn inject(&mut self, i: usize, channel: Channel, d: &[u8]) {
        let now = self.now();
        self.proto(i).handle_datagram(channel, d, now);
        self.carry_out(i);
    }

    /// A session event on side `i`'s engine: its table changes and the protocol hears.
    fn event(&mut self, i: usize, e: SessionEvent) {
        let b = &mut self.sides[i].board;
        match e {
            SessionEvent::Created(s) | SessionEvent::Refreshed(s) => {
                b.sessions.insert(key_of(&s), s);
            }
            SessionEvent::Deleted(s) => {
                b.sessions.remove(&key_of(&s));
            }
            SessionEvent::BlockAllocated(k) => b.blocks.push(k),
            SessionEvent::BlockReleased(k) => b.blocks.retain(|x| *x != k),
            SessionEvent::Limit(_) => {}
        }
        let now = self.now();
        self.proto(i).handle_event(e, now);
    }

    fn carry_out(&mut self, i: usize) {
        let now = self.now();
        while let Some(o) = self.sides[i].proto.as_mut().and_then(|p| p.poll()) {
            let side = &mut self.sides[i];
            match &o {
                Output::Transmit(ch, d) => {
                    side.sent.push((self.ms, *ch, d.clone()));
                    self.send(1 - i, *ch, d.clone());
                    continue;
                }
                Output::Install { blocks, sessions } => {
                    side.board.blocks.extend(blocks);
                    let mut refused = Refused::default();
                    for s in sessions {
                        if side.board.refuse_sessions > 0 {
                            side.board.refuse_sessions -= 1;
                            refused.count(false, InstallError::PortCollision);
                        } else {
                            side.board.sessions.insert(key_of(s), *s);
                        }
                    }
                    if side.hold_installs {
                        side.held += 1;
                    } else {
                        side.proto.as_mut().expect("running").installed(refused, now);
                    }
                }
                Output::Sweep { .. } if side.board.sweep_times_out => {
                    let timed_out = Err((0, "worker 0 did not answer within 5 s".to_string()));
                    side.proto.as_mut().expect("running").swept(timed_out, now);
                }
                Output::Sweep { keep, locations } => {
                    let gone = side.board.sweep(&SweepKeys::new(keep.0.clone(), keep.1.clone()), *locations);
                    side.proto.as_mut().expect("running").swept(Ok(gone), now);
                }
                Output::Remove(sessions) => {
                    for s in sessions {
                        side.board.sessions.remove(&key_of(s));
                    }
                }
                Output::Peer { mac, active } => side.board.peer = (*mac, *active),
                Output::RoleChanged { .. } => {}
                Output::SetActive(l, on) => {
                    let bit = 1u64 << l;
                    side.board.locations = if *on { side.board.locations | bit } else { side.board.locations & !bit };
                    side.board.active = side.board.locations != 0;
                }
                Output::TakeSnapshot(number) if side.table_delay_ms > 0 => {
                    let (sessions, blocks) = side.board.table();
                    side.table_due.push((self.ms + side.table_delay_ms, *number, sessions, blocks));
                }
                Output::TakeSnapshot(number) => {
                    let (sessions, blocks) = side.board.table();
                    side.proto.as_mut().expect("running").handle_table(*number, sessions, blocks, now);
                }
            }
            side.board.done.push((self.ms, o));
        }
    }

    /// Puts a datagram on the link to side `to`: lost, delayed, duplicated.
    fn send(&mut self, to: usize, channel: Channel, bytes: Vec<u8>) {
        if self.cut[channel.index()] || self.cut_to[to] {
            return;
        }
        if let Some(k) = self.drop_next[1 - to]
            && channel == Channel::Link
            && wire::open(&key(Purpose::Link), &bytes).is_ok_and(|m| m.header.kind == k)
        {
            self.drop_next[1 - to] = None;
            return;
        }
        let mut bytes = bytes;
        if self.mangle_bulk
            && channel == Channel::Link
            && let Ok(m) = wire::open(&key(Purpose::Link), &bytes)
            && m.header.kind == Kind::Data
            && m.header.flags & wire::FLAG_BULK != 0
            && m.payload.len() > 6
        {
            // The record after the first (the cover) gets a type that does not exist.
            let mut payload = m.payload.to_vec();
            payload[6] = 99;
            bytes = sealed(&m.header, &payload, &key(Purpose::Link));
            self.mangle_bulk = false;
        }
        let f = if self.faults.link_only && channel == Channel::Witness { CLEAN } else { self.faults };
        let copies = if self.rng.chance(f.dup_percent) { 2 } else { 1 };
        for _ in 0..copies {
            if self.rng.chance(f.loss_percent) {
                continue;
            }
            let at = self.ms + 1 + f.delay_ms + self.rng.below(f.jitter_ms + 1);
            self.order += 1;
            self.sides[to].inbox.push(InFlight { at, order: self.order, channel, bytes: bytes.clone() });
        }
    }

    /// One moment for side `i`: what arrived by now, then its timers.
    fn visit(&mut self, i: usize) {
        if self.sides[i].paused {
            return;
        }
        let mut due: Vec<InFlight> = Vec::new();
        let inbox = std::mem::take(&mut self.sides[i].inbox);
        let (now_due, later): (Vec<_>, Vec<_>) = inbox.into_iter().partition(|d| d.at <= self.ms);
        self.sides[i].inbox = later;
        due.extend(now_due);
        due.sort_by_key(|d| (d.at, d.order));
        if self.sides[i].proto.is_none() {
            return;
        }
        for d in due {
            self.inject(i, d.channel, &d.bytes);
        }
        let now = self.now();
        // The board thread answers in the order asked.
        while self.sides[i].table_due.first().is_some_and(|t| t.0 <= self.ms) {
            let (_, number, sessions, blocks) = self.sides[i].table_due.remove(0);
            self.proto(i).handle_table(number, sessions, blocks, now);
            self.carry_out(i);
        }
        self.timeouts += 1;
        while self.proto(i).handle_timeout(now) {
            self.carry_out(i);
        }
        self.carry_out(i);
    }

    /// Runs until `end` (milliseconds since the start), driven as `drive` says.
    fn run_until(&mut self, end: u64, drive: Drive) {
        self.run_while(end, drive, |_| true);
    }

    /// Runs until `end` or until `go_on` says stop (checked after each moment).
    fn run_while(&mut self, end: u64, drive: Drive, mut go_on: impl FnMut(&Sim) -> bool) {
        let mut same_ms = 0;
        while self.ms <= end {
            self.visit(0);
            self.visit(1);
            if !go_on(self) {
                return;
            }
            let next = match drive {
                Drive::EveryMs => self.ms + 1,
                Drive::PollTimeout => self.next_moment(),
            };
            if next == self.ms {
                same_ms += 1;
                assert!(same_ms < 10_000, "poll_timeout keeps saying now at {} ms", self.ms);
            } else {
                same_ms = 0;
            }
            self.ms = next;
        }
    }

    /// The next millisecond at which anything is due: a datagram or a timer.
    fn next_moment(&self) -> u64 {
        let now = self.now();
        let mut next = u64::MAX;
        for side in &self.sides {
            if let Some(p) = &side.proto {
                let t = p.poll_timeout(now).saturating_duration_since(self.t0);
                next = next.min(t.as_millis() as u64 + u64::from(t.subsec_nanos() % 1_000_000 != 0));
            }
            next = side.inbox.iter().map(|d| d.at).fold(next, u64::min);
        }
        next.max(self.ms)
    }
}

fn block(n: u32) -> BlockRecord {
    BlockRecord {
        inst: 0,
        b4: b4(n),
        ext_addr: 0xc633_6401,
        first_port: 1024 + (n as u16 % 60) * 512,
        size: 512,
        at: 0,
    }
}

fn b4(n: u32) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[12..].copy_from_slice(&n.to_be_bytes());
    a
}

fn session(n: u32, created: u32) -> SessionRecord {
    SessionRecord {
        inst: 0,
        b4: b4(n),
        inner_addr: 0xc0a8_0002,
        inner_port: 5000,
        ext_addr: 0xc633_6401,
        ext_port: block(n).first_port + 7,
        proto: 17,
        flags: 0,
        created,
        last_seen: created,
        mac: [2, 0, 0, 0, 0, 1],
        pcp: None,
    }
}

/// Ten sessions (with their blocks) made on side 0, older than delay-time, replicated
/// to side 1; returns their creation time.
fn replicated_ten(sim: &mut Sim) -> u32 {
    let old = sim.unix_s() - 10;
    for n in 0..10 {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, old)));
    }
    sim.run_until(sim.ms + 300, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions.len(), 10);
    old
}

/// Side 0 (preferred) and side 1 started together, settled.
fn settled(seed: u64, faults: Faults, dead_count: u32, drive: Drive) -> Sim {
    let mut sim = Sim::new(seed, faults);
    sim.start(0, dead_count, false);
    sim.start(1, dead_count, false);
    sim.run_until(1000, drive);
    sim
}

#[test]
fn the_preferred_board_takes_the_role_and_the_other_goes_standby() {
    for drive in [Drive::EveryMs, Drive::PollTimeout] {
        let sim = settled(1, CLEAN, DEAD_COUNT, drive);
        let (a, b) = (sim.status(0), sim.status(1));
        assert_eq!((a.role, b.role), (Role::Active, Role::Standby));
        assert_eq!(sim.sides[0].board.activations(), vec![(MET, true)], "on the peer's first believed heartbeat");
        assert_eq!(sim.sides[1].board.activations(), vec![(MET, false)]);
        assert_eq!(a.last_change.as_ref().map(|c| c.1.as_str()), Some("active: the preferred board of the location"));
        assert_eq!(b.last_change.as_ref().map(|c| c.1.as_str()), Some("standby: the peer is the preferred board"));
        assert_eq!((a.peer_role, b.peer_role), (Some(Role::Standby), Some(Role::Active)));
        assert!(a.peer_alive && b.peer_alive);
        // The new standby asked for the table at once and holds it (empty here).
        assert_eq!((a.bulk_syncs, sim.sides[0].board.snapshots()), (1, 1));
        assert!(a.in_sync && b.in_sync, "{a:?} {b:?}");
        assert_eq!(a.rejected_auth + a.rejected_replay + a.rejected_malformed, 0);
        assert_eq!(b.rejected_auth + b.rejected_replay + b.rejected_malformed, 0);
    }
}

#[test]
fn the_standby_takes_over_after_dead_count_heartbeats_of_silence() {
    for drive in [Drive::EveryMs, Drive::PollTimeout] {
        let mut sim = settled(2, CLEAN, DEAD_COUNT, drive);
        // The active board's last heartbeat went out at 1000 ms (one every 20 ms).
        let last = sim.sides[0].sent.iter().rev().find(|(_, ch, d)| {
            *ch == Channel::Link && wire::open(&key(Purpose::Link), d).is_ok_and(|m| m.header.kind == Kind::Heartbeat)
        });
        assert_eq!(last.map(|l| l.0), Some(1000));
        sim.ms = 1001;
        sim.stop(0);
        sim.run_until(1099, drive);
        assert_eq!(sim.status(1).role, Role::Standby, "not before the dead interval");
        sim.run_until(1200, drive);
        // Heard at 1001; silent for the dead interval at 1101.
        assert_eq!(sim.sides[1].board.activations(), vec![(MET, false), (1001 + DEAD, true)]);
        let st = sim.status(1);
        assert_eq!(st.last_change.map(|c| c.1), Some("active: the peer went silent".to_string()));
        assert!(!st.peer_alive);
    }
}

#[test]
fn a_cut_ha_link_alone_makes_no_second_active_board() {
    let mut sim = Sim::new(3, CLEAN);
    sim.start(0, DEAD_COUNT, true);
    sim.start(1, DEAD_COUNT, true);
    sim.run_until(1000, Drive::EveryMs);
    assert!(sim.status(1).witness);
    sim.cut[Channel::Link.index()] = true;
    sim.run_until(3000, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby), "the witness still hears");
    assert!(sim.status(1).peer_alive);
    sim.cut[Channel::Witness.index()] = true;
    sim.run_until(3200, Drive::EveryMs);
    assert_eq!(sim.status(1).role, Role::Active, "both silent: takeover");
}

#[test]
fn the_preferred_board_returns_syncs_and_preempts_after_preempt_time() {
    for drive in [Drive::EveryMs, Drive::PollTimeout] {
        let mut sim = settled(4, CLEAN, DEAD_COUNT, drive);
        let old = sim.unix_s() - 10;
        for n in 0..50 {
            sim.event(0, SessionEvent::BlockAllocated(block(n)));
            sim.event(0, SessionEvent::Created(session(n, old)));
        }
        sim.run_until(1500, drive);
        assert_eq!(sim.sides[1].board.sessions.len(), 50);
        sim.stop(0);
        sim.run_until(2000, drive);
        assert_eq!(sim.status(1).role, Role::Active);
        // The preferred board comes back, empty, as a new incarnation.
        sim.sides[0].board = Board::default();
        sim.start(0, DEAD_COUNT, false);
        sim.run_while(10_000, drive, |s| !s.status(0).in_sync);
        let synced = sim.ms;
        assert_eq!(sim.status(0).role, Role::Standby);
        assert_eq!(sim.sides[0].board.sessions.len(), 50, "the bulk sync carried the table");
        // Started at 2001, it heard the peer at once but believes it a round trip later,
        // once the peer echoes the new nonce.
        assert_eq!(sim.sides[0].board.activations(), vec![(2003, false)], "the peer is active");
        sim.run_until(synced + 3000, drive);
        let a = sim.sides[0].board.activations();
        assert_eq!(a.len(), 2, "{a:?}");
        let took = a[1].0;
        assert!(a[1].1 && took >= synced + PREEMPT && took <= synced + PREEMPT + 10, "{took} {synced}");
        assert_eq!(sim.sides[1].board.activations().last().map(|x| x.1), Some(false));
        let (sa, sb) = (sim.status(0), sim.status(1));
        assert_eq!((sa.role, sb.role), (Role::Active, Role::Standby));
        assert_eq!(sa.last_change.map(|c| c.1), Some("active: the peer handed the role over".to_string()));
        assert_eq!(sb.last_change.map(|c| c.1), Some("standby: handed the role to the peer".to_string()));
    }
}

#[test]
fn sessions_go_after_delay_time_and_all_arrive_over_a_lossy_link() {
    // A longer dead interval: 20% loss must not look like a dead peer here.
    let mut sim = settled(5, LOSSY, 20, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    let created = sim.unix_s();
    const N: u32 = 600;
    for n in 0..N {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, created)));
    }
    assert_eq!(sim.status(0).young, N as usize);
    // Eligible once surely `delay` seconds old: whole seconds, so at created + delay + 1.
    let eligible_ms = (created + DELAY_S + 1) as u64 * 1000 - UNIX0_MS;
    sim.run_while(eligible_ms - 1, Drive::EveryMs, |s| s.sides[1].board.sessions.is_empty());
    assert_eq!(sim.ms, eligible_ms, "nothing reached the standby before delay-time");
    assert_eq!(sim.sides[1].board.sessions.len(), 0);
    sim.run_until(eligible_ms + 3000, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions, "all, despite loss");
    let (a, b) = (sim.status(0), sim.status(1));
    assert_eq!((a.replicated, a.young), (N as usize, 0));
    assert!(a.retransmitted > 0 && a.records_sent >= 2 * N as u64, "{a:?}");
    assert!(b.records_received >= 2 * N as u64, "{b:?}");
    assert_eq!(a.queue_depth, 0, "everything acknowledged");
    assert!(b.rejected_replay > 0, "duplicated control messages are refused as replays");
    assert_eq!(b.rejected_auth + b.rejected_malformed, 0);

    // Removals follow, over the same link.
    for n in (0..N).step_by(3) {
        sim.event(0, SessionEvent::Deleted(session(n, created)));
    }
    sim.run_until(sim.ms + 3000, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions.len(), (N - N.div_ceil(3)) as usize);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions);
    assert_eq!(sim.status(0).replicated, (N - N.div_ceil(3)) as usize);
    assert!(sim.sides[1].board.done.iter().any(|(_, o)| matches!(o, Output::Remove(_))));
    // No role changed on the way.
    assert_eq!(sim.sides[0].board.activations().iter().map(|x| x.1).collect::<Vec<_>>(), vec![true]);
    assert_eq!(sim.sides[1].board.activations().iter().map(|x| x.1).collect::<Vec<_>>(), vec![false]);
}

#[test]
fn thirty_seconds_of_loss_and_delay_on_the_ha_link_change_no_role_and_lose_no_record() {
    // tc netem on the HA link: 10% loss, 50 ms delay (a little jitter); the witness on
    // the softwire segment is clean. Traffic goes on: 20 new sessions a second.
    let netem = Faults { loss_percent: 10, dup_percent: 0, jitter_ms: 5, delay_ms: 50, link_only: true };
    let mut sim = Sim::new(17, netem);
    sim.start(0, DEAD_COUNT, true);
    sim.start(1, DEAD_COUNT, true);
    sim.run_until(1000, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    for second in 0..30u32 {
        let old = sim.unix_s() - 5;
        for k in 0..20 {
            let n = second * 20 + k;
            sim.event(0, SessionEvent::BlockAllocated(block(n)));
            sim.event(0, SessionEvent::Created(session(n, old)));
        }
        sim.run_until(sim.ms + 1000, Drive::EveryMs);
    }
    sim.run_until(sim.ms + 2000, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions.len(), 600);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions, "every record, despite the loss");
    assert!(sim.status(1).in_sync && sim.status(0).in_sync);
    assert!(sim.status(0).retransmitted > 0, "the loss was real");
    // No role changed on the way.
    assert_eq!(sim.sides[0].board.activations().iter().map(|x| x.1).collect::<Vec<_>>(), vec![true]);
    assert_eq!(sim.sides[1].board.activations().iter().map(|x| x.1).collect::<Vec<_>>(), vec![false]);
}

/// The last datagram of `kind` side `i` sent on the HA link.
fn last_sent(sim: &Sim, i: usize, kind: Kind) -> Vec<u8> {
    let key = key(Purpose::Link);
    let found = sim.sides[i]
        .sent
        .iter()
        .rev()
        .find(|(_, ch, d)| *ch == Channel::Link && wire::open(&key, d).is_ok_and(|m| m.header.kind == kind));
    found.expect("such a datagram").2.clone()
}

#[test]
fn replayed_forged_and_truncated_datagrams_are_refused_and_counted() {
    let mut sim = settled(6, CLEAN, DEAD_COUNT, Drive::EveryMs);
    // The heartbeat sent at 1000 ms arrives at 1001.
    sim.run_until(1005, Drive::EveryMs);
    let before = sim.status(1);
    // A replay: the peer's last heartbeat again.
    let hb = last_sent(&sim, 0, Kind::Heartbeat);
    let said = wire::open(&key(Purpose::Link), &hb).expect("authentic").header;
    sim.inject(1, Channel::Link, &hb);
    assert_eq!(sim.status(1).rejected_replay, before.rejected_replay + 1);
    // A forged release: the right shape, another key.
    let h = Header { kind: Kind::Switchover, flags: wire::FLAG_RELEASED, epoch: u64::MAX, seq: 1, ..said };
    sim.inject(1, Channel::Link, &Builder::new(&h).finish(&Key::new(b"guessed")));
    assert_eq!(sim.status(1).rejected_auth, before.rejected_auth + 1);
    // Truncated: shorter than a header and a tag.
    sim.inject(1, Channel::Link, &hb[..30]);
    assert_eq!(sim.status(1).rejected_malformed, before.rejected_malformed + 1);
    // Authentic, but a heartbeat with a role that does not exist (on the witness path,
    // whose counter nothing else moves here).
    let h = Header { seq: 1, ..said };
    let mut b = Builder::new(&h);
    b.raw(&[9, 1, 1]);
    sim.inject(1, Channel::Witness, &b.finish(&key(Purpose::Witness)));
    assert_eq!(sim.status(1).rejected_malformed, before.rejected_malformed + 2);
    // None of it changed a role or reached the board.
    assert!(sim.sides[1].proto.as_mut().expect("running").poll().is_none());
    sim.run_until(1200, Drive::EveryMs);
    assert_eq!(sim.status(1).role, Role::Standby);
    assert_eq!(sim.sides[1].board.activations(), vec![(MET, false)]);
}

/// A settled pair whose standby holds 20 sessions of the active board, replicated by
/// `until` (ms); and when the sessions were created (unix seconds).
fn replicated(seed: u64, until: u64) -> (Sim, u32) {
    let mut sim = settled(seed, CLEAN, DEAD_COUNT, Drive::EveryMs);
    let old = sim.unix_s() - 10;
    for n in 0..20 {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, old)));
    }
    sim.run_until(until, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions.len(), 20);
    (sim, old)
}

#[test]
fn a_peer_restart_starts_its_stream_over_and_old_incarnations_are_replays() {
    let (mut sim, _) = replicated(7, 1100);
    let old_hb = last_sent(&sim, 0, Kind::Heartbeat);
    // The active board restarts within the dead interval (kill -9, and systemd starts
    // it again at once), empty: the standby never declared it dead.
    sim.stop(0);
    sim.run_until(1120, Drive::EveryMs);
    sim.sides[0].board = Board::default();
    sim.start(0, DEAD_COUNT, false);
    let mut fewest = usize::MAX;
    sim.run_while(1500, Drive::EveryMs, |s| {
        fewest = fewest.min(s.sides[1].board.sessions.len());
        true
    });
    assert_eq!(fewest, 20, "the standby's table was never swept by the empty board");
    let (a, b) = (sim.status(0), sim.status(1));
    // The board that holds the table took the role, warm; the restarted one, which
    // holds nothing, did not take it cold: it went standby and synced.
    assert_eq!((a.role, b.role), (Role::Standby, Role::Active));
    assert_eq!(
        b.last_change.map(|c| c.1),
        Some("active: the active peer started again; this board holds its table".to_string())
    );
    assert!(sim.sides[0].board.activations().iter().all(|x| !x.1), "{:?}", sim.sides[0].board.activations());
    assert!(a.in_sync, "the restarted board synced");
    assert_eq!(sim.sides[0].board.sessions, sim.sides[1].board.sessions);
    assert!(sim.sides[1].board.snapshots() >= 1);
    // A datagram of the old incarnation is a replay now.
    let before = a.rejected_replay;
    sim.inject(1, Channel::Link, &old_hb);
    assert_eq!(sim.status(1).rejected_replay, b.rejected_replay + 1);
    assert_eq!(sim.status(0).rejected_replay, before);
    // Then the preferred board preempts, with the table.
    sim.run_until(1500 + PREEMPT + 500, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    assert_eq!(sim.sides[0].board.sessions.len(), 20);
    assert_eq!(sim.status(0).last_change.map(|c| c.1), Some("active: the peer handed the role over".to_string()));
}

#[test]
fn a_preferred_board_restarted_within_the_dead_interval_never_takes_the_role_cold() {
    // Both drives, and a restart at several moments of the dead interval (and of the
    // heartbeat period): the standby in sync always keeps the sessions.
    for drive in [Drive::EveryMs, Drive::PollTimeout] {
        for gap in [1, 7, 20, 55, DEAD - 5] {
            let (mut sim, _) = replicated(40 + gap, 1100);
            sim.stop(0);
            sim.run_until(1100 + gap, drive);
            sim.sides[0].board = Board::default();
            sim.start(0, DEAD_COUNT, false);
            sim.run_until(1100 + gap + 400, drive);
            let (a, b) = (sim.status(0), sim.status(1));
            assert_eq!((a.role, b.role), (Role::Standby, Role::Active), "restart after {gap} ms");
            assert_eq!(sim.sides[1].board.sessions.len(), 20, "restart after {gap} ms");
            assert!(a.in_sync, "restart after {gap} ms");
            assert!(!sim.sides[0].board.activations().iter().any(|x| x.1), "restart after {gap} ms");
        }
    }
}

/// What a holder of the secret can make: `h` and `payload`, sealed with `key`.
fn sealed(h: &Header, payload: &[u8], key: &Key) -> Vec<u8> {
    let mut b = Builder::new(h);
    b.raw(payload);
    b.finish(key)
}

/// The first heartbeat on the HA link of a board with settings `s`, which has heard
/// no one yet.
fn first_heartbeat(sim: &Sim, s: Settings) -> Vec<u8> {
    let me = Incarnation { epoch: (UNIX0_MS + sim.ms) * 1000 + 9, nonce: 0xbad };
    let mut p = Protocol::new(s, me, 64, false, sim.now());
    p.handle_timeout(sim.now());
    let link = |o| match o {
        Output::Transmit(Channel::Link, d) => Some(d),
        _ => None,
    };
    std::iter::from_fn(|| p.poll()).find_map(link).expect("a heartbeat")
}

/// How many things each side's board was asked to do so far.
fn work_done(sim: &Sim) -> [usize; 2] {
    [sim.sides[0].board.done.len(), sim.sides[1].board.done.len()]
}

#[test]
fn a_board_of_another_slot_is_refused_and_counted_even_with_the_secret() {
    let mut sim = settled(20, CLEAN, DEAD_COUNT, Drive::EveryMs);
    let before = [sim.status(0), sim.status(1)];
    let done = work_done(&sim);
    // Slot 3, paired with slot 1 elsewhere in the chassis, holds the same secret: its
    // heartbeats say it is the preferred board of location 1, and active.
    let mut three = settings(3, true, DEAD_COUNT);
    three.peer_slot = 1;
    let honest = first_heartbeat(&sim, three);
    // With the secret it can also derive this pair's key, and echo each board's nonce
    // from the heartbeats it hears: only its slot gives it away.
    let active = last_sent(&sim, 0, Kind::Heartbeat);
    let said = wire::open(&key(Purpose::Link), &active).expect("authentic");
    for i in 0..2 {
        let echo = sim.proto(i).me.nonce;
        let h = Header { slot: 3, epoch: said.header.epoch + 1, echo, seq: u64::MAX / 2, ..said.header };
        let forged = sealed(&h, said.payload, &key(Purpose::Link));
        sim.inject(i, Channel::Link, &honest);
        sim.inject(i, Channel::Link, &forged);
    }
    assert_eq!(work_done(&sim), done, "none of it reached a board");
    sim.run_until(2000, Drive::EveryMs);
    for (i, before) in before.iter().enumerate() {
        let st = sim.status(i);
        assert_eq!(st.rejected_slot, before.rejected_slot + 2, "side {i}");
        assert_eq!((st.rejected_auth, st.rejected_replay), (0, 0), "side {i}");
        assert!(st.in_sync && st.peer_alive, "side {i}: the pair goes on as before: {st:?}");
    }
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    assert_eq!(sim.sides[1].board.activations(), vec![(MET, false)]);
    assert_eq!(sim.sides[0].board.activations(), vec![(MET, true)]);
}

#[test]
fn a_board_of_another_pair_with_the_same_secret_and_slots_is_not_believed() {
    let mut sim = Sim::new(21, CLEAN);
    sim.start(0, DEAD_COUNT, true);
    sim.start(1, DEAD_COUNT, true);
    sim.run_until(1000, Drive::EveryMs);
    let before = sim.status(0);
    let done = work_done(&sim);
    // Slot 2 of another chassis (its own HA addresses) with the same secret, and the
    // best it can do: this board's nonce echoed, a newer epoch than the peer's.
    let mut other = settings(2, false, DEAD_COUNT);
    (other.bind, other.peer) = ("127.0.0.2:62000".parse().unwrap(), "127.0.0.3:62000".parse().unwrap());
    let standby = last_sent(&sim, 1, Kind::Heartbeat);
    let said = wire::open(&key(Purpose::Link), &standby).expect("authentic");
    let echo = sim.proto(0).me.nonce;
    let h = Header { epoch: said.header.epoch + 1, echo, seq: u64::MAX / 2, ..said.header };
    sim.inject(0, Channel::Link, &sealed(&h, said.payload, &other.key(Purpose::Link)));
    assert_eq!(sim.status(0).rejected_auth, before.rejected_auth + 1);
    // The peer's witness heartbeats, which any subscriber hears, are worth nothing on
    // the HA link: a key per path.
    let witness = sim.sides[1].sent.iter().rev().find(|(_, ch, _)| *ch == Channel::Witness);
    let witness = witness.expect("witness heartbeats").2.clone();
    assert!(wire::open(&key(Purpose::Witness), &witness).is_ok());
    sim.inject(0, Channel::Link, &witness);
    assert_eq!(sim.status(0).rejected_auth, before.rejected_auth + 2);
    // And the witness carries heartbeats only.
    let data = Header { kind: Kind::Data, seq: 1, ..wire::open(&key(Purpose::Witness), &witness).unwrap().header };
    sim.inject(0, Channel::Witness, &sealed(&data, &[], &key(Purpose::Witness)));
    assert_eq!(sim.status(0).rejected_malformed, before.rejected_malformed + 1);
    assert_eq!(work_done(&sim), done, "none of it reached the board");
    sim.run_until(1500, Drive::EveryMs);
    let st = sim.status(0);
    assert!(st.in_sync && st.peer_alive, "{st:?}");
    assert_eq!((st.role, sim.status(1).role), (Role::Active, Role::Standby));
}

#[test]
fn after_a_restart_what_was_recorded_before_is_refused_and_changes_nothing() {
    let (mut sim, old) = replicated(22, 1500);
    // What an eavesdropper recorded of the active board's messages to the standby: its
    // heartbeats (active), its stream (with the bulk and its reset), and switchovers as
    // it would send them (a release, a request), numbered past anything it has sent.
    let link = key(Purpose::Link);
    let kind = |d: &[u8]| wire::open(&link, d).expect("authentic").header.kind;
    let mut recorded: Vec<Vec<u8>> = (sim.sides[0].sent.iter())
        .filter(|(_, ch, d)| *ch == Channel::Link && matches!(kind(d), Kind::Heartbeat | Kind::Data))
        .map(|(_, _, d)| d.clone())
        .collect();
    let hb = wire::open(&link, &last_sent(&sim, 0, Kind::Heartbeat)).expect("authentic").header;
    for (n, flags) in [(1, wire::FLAG_RELEASED), (2, wire::FLAG_TAKE_OVER)] {
        let h = Header { kind: Kind::Switchover, flags, seq: hb.seq + 1_000_000 + n, ..hb };
        recorded.push(sealed(&h, &1u32.to_be_bytes(), &link));
    }
    assert!(recorded.iter().filter(|d| kind(d) == Kind::Data).count() >= 2);

    // The standby restarts, empty, and the recordings reach it before its peer does.
    sim.stop(1);
    sim.sides[1].board = Board::default();
    sim.start(1, DEAD_COUNT, false);
    let restarted = sim.ms;
    for d in &recorded {
        sim.inject(1, Channel::Link, d);
    }
    let done: Vec<&Output> = sim.sides[1].board.done.iter().map(|(_, o)| o).collect();
    assert!(done.is_empty(), "believed, the board was asked for {} things, first {:?}", done.len(), done.first());
    let st = sim.status(1);
    assert_eq!((st.role, st.peer_role, st.peer_alive, st.records_received), (Role::Init, None, false, 0));

    // The real peer: the handshake, the roles and the bulk sync as after any restart.
    sim.run_until(restarted + 500, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.activations(), vec![(restarted + MET, false)]);
    for n in 0..5 {
        sim.event(0, SessionEvent::Deleted(session(n, old)));
    }
    sim.run_until(sim.ms + 500, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions.len(), 15);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions);

    // Again, now that the standby believes its peer: each is refused as a replay (the
    // peer knows the new nonce, and they echo the old one), and nothing changes.
    let before = sim.status(1);
    let done = work_done(&sim);
    for d in &recorded {
        sim.inject(1, Channel::Link, d);
    }
    assert_eq!(sim.status(1).rejected_replay, before.rejected_replay + recorded.len() as u64);
    assert_eq!(work_done(&sim), done);
    sim.run_until(sim.ms + 500, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions, "no session came back");
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    assert!(sim.status(1).in_sync);
    assert_eq!(sim.sides[1].board.activations(), vec![(restarted + MET, false)]);
}

#[test]
fn recordings_of_an_earlier_run_replayed_all_along_do_not_delay_the_handshake() {
    let mut sim = settled(23, CLEAN, DEAD_COUNT, Drive::EveryMs);
    let first_run: Vec<Vec<u8>> =
        sim.sides[0].sent.iter().filter(|(_, ch, _)| *ch == Channel::Link).map(|(_, _, d)| d.clone()).collect();
    // The active board restarts; later the standby does, while a recording of the
    // active board's first run reaches it every millisecond.
    sim.stop(0);
    sim.sides[0].board = Board::default();
    sim.start(0, DEAD_COUNT, false);
    // The standby takes the role and the restarted board preempts it back, synced.
    sim.run_until(1000 + PREEMPT + 1000, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    sim.stop(1);
    sim.sides[1].board = Board::default();
    sim.start(1, DEAD_COUNT, false);
    let restarted = sim.ms;
    let sent_before = sim.sides[1].sent.len();
    for t in restarted..restarted + 300 {
        sim.inject(1, Channel::Link, &first_run[t as usize % first_run.len()]);
        sim.run_until(t, Drive::EveryMs);
    }
    assert_eq!(sim.sides[1].board.activations(), vec![(restarted + MET, false)], "as without the recordings");
    assert!(sim.status(1).in_sync && sim.status(0).in_sync);
    // Nor do they make the board talk: it answers a new incarnation once, not each
    // recording.
    let link = key(Purpose::Link);
    let heartbeats = sim.sides[1].sent[sent_before..]
        .iter()
        .filter(|(_, ch, d)| {
            *ch == Channel::Link && wire::open(&link, d).is_ok_and(|m| m.header.kind == Kind::Heartbeat)
        })
        .count();
    assert!(heartbeats <= (300 / HEARTBEAT + 1 + 1) as usize, "{heartbeats} heartbeats in 300 ms");
}

#[test]
fn a_standby_is_in_sync_when_its_board_has_installed_the_bulk_not_before() {
    let mut sim = Sim::new(3, CLEAN);
    sim.start(0, 20, false);
    let old = sim.unix_s() - 10;
    for n in 0..300 {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, old)));
    }
    sim.run_until(3000, Drive::EveryMs);
    sim.sides[1].hold_installs = true;
    sim.start(1, 20, false);
    sim.run_until(6000, Drive::EveryMs);
    let (a, b) = (sim.status(0), sim.status(1));
    assert_eq!((b.role, b.records_received), (Role::Standby, 600), "the whole bulk arrived");
    assert!(sim.sides[1].held > 0);
    assert!(!b.in_sync && !a.in_sync, "installs still under way: {a:?} {b:?}");
    sim.finish_installs(1);
    assert!(sim.status(1).in_sync);
    sim.run_until(7000, Drive::EveryMs);
    assert!(sim.status(0).in_sync, "the active hears it in the next heartbeat");
}

#[test]
fn a_bulk_sync_longer_than_the_dead_interval_is_not_asked_for_again() {
    let mut sim = Sim::new(5, CLEAN);
    sim.start(0, DEAD_COUNT, false);
    let old = sim.unix_s() - 10;
    let n = 60_000;
    for i in 0..n {
        sim.event(0, SessionEvent::BlockAllocated(block(i)));
        sim.event(0, SessionEvent::Created(session(i, old)));
    }
    sim.run_until(1000, Drive::EveryMs);
    sim.start(1, DEAD_COUNT, false);
    let joined = sim.ms;
    sim.run_while(20_000, Drive::EveryMs, |s| !s.status(1).in_sync);
    let took = sim.ms - joined;
    let (a, b) = (sim.status(0), sim.status(1));
    assert!(b.in_sync, "{b:?}");
    assert_eq!(b.records_received, 2 * n as u64, "{took} ms");
    assert!(took > DEAD, "the bulk must outlast the dead interval to test anything ({took} ms)");
    assert_eq!(a.bulk_syncs, 1, "one bulk sync, not restarted every dead interval ({took} ms)");
    assert_eq!(b.records_received, 2 * n as u64);
}

#[test]
fn a_standby_that_joins_late_gets_a_bulk_sync_and_ends_in_sync() {
    for drive in [Drive::EveryMs, Drive::PollTimeout] {
        let mut sim = Sim::new(8, LOSSY);
        sim.start(0, 20, false);
        let old = sim.unix_s() - 10;
        for n in 0..300 {
            sim.event(0, SessionEvent::BlockAllocated(block(n)));
            sim.event(0, SessionEvent::Created(session(n, old)));
        }
        sim.run_until(3000, drive);
        let a = sim.status(0);
        assert_eq!((a.role, a.bulk_syncs, a.records_sent), (Role::Active, 0, 0), "alone: nothing to stream");
        assert_eq!(a.last_change.map(|c| c.1), Some("active: no peer answered".to_string()));
        sim.start(1, 20, false);
        sim.run_until(6000, drive);
        let (a, b) = (sim.status(0), sim.status(1));
        assert_eq!(b.role, Role::Standby);
        assert!(b.in_sync && a.in_sync, "{a:?} {b:?}");
        assert!(a.bulk_syncs >= 1 && sim.sides[0].board.snapshots() >= 1);
        assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions);
        assert_eq!(a.replicated, 300);
    }
}

#[test]
fn poll_timeout_saves_most_wakeups() {
    let mut every = settled(9, CLEAN, DEAD_COUNT, Drive::EveryMs);
    let mut polled = settled(9, CLEAN, DEAD_COUNT, Drive::PollTimeout);
    every.run_until(5000, Drive::EveryMs);
    polled.run_until(5000, Drive::PollTimeout);
    assert_eq!(polled.status(0).role, every.status(0).role);
    assert!(polled.timeouts * 5 < every.timeouts, "{} vs {}", polled.timeouts, every.timeouts);
    // Between two heartbeats, nothing is due.
    let now = polled.now();
    let next = polled.sides[0].proto.as_ref().expect("running").poll_timeout(now);
    assert!(next > now.at && next <= now.at + Duration::from_millis(HEARTBEAT), "{next:?} {now:?}");
}

#[test]
fn a_commit_changes_delay_time_and_timers_at_once_and_refuses_the_channel() {
    let mut sim = settled(8, CLEAN, DEAD_COUNT, Drive::EveryMs);
    let created = sim.unix_s();
    for n in 0..10 {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, created)));
    }
    // delay-time 1 -> 5 on the active board: the sessions waiting now wait for 5 s.
    let mut s = settings(1, true, DEAD_COUNT);
    s.delay_secs = 5;
    sim.proto(0).reconfigure(s.clone()).expect("timers and delay-time change live");
    let eligible_ms = (created + 5 + 1) as u64 * 1000 - UNIX0_MS;
    sim.run_while(eligible_ms - 1, Drive::EveryMs, |s| s.sides[1].board.sessions.is_empty());
    assert_eq!(sim.ms, eligible_ms, "nothing reached the standby before the new delay-time");
    sim.run_until(eligible_ms + 500, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions.len(), 10);

    // A longer dead interval on the standby: silence that was fatal before is not now.
    let mut t = settings(2, false, DEAD_COUNT * 10);
    t.delay_secs = 5;
    sim.proto(1).reconfigure(t).expect("heartbeat settings change live");
    sim.cut[Channel::Link.index()] = true;
    sim.run_until(sim.ms + DEAD * 5, Drive::EveryMs);
    assert_eq!(sim.status(1).role, Role::Standby, "5 old dead intervals of silence, under 1 new one");
    sim.run_until(sim.ms + DEAD * 6, Drive::EveryMs);
    assert_eq!(sim.status(1).role, Role::Active, "the new dead interval ran out");

    // Where the channel is, and who is preferred, cannot change while running.
    let mut moved = s.clone();
    moved.bind = "127.0.0.1:62010".parse().expect("an address");
    let err = sim.proto(0).reconfigure(moved).expect_err("refused");
    assert!(err.contains("ha-address of this board"), "{err}");
    let mut other = s;
    other.locations[0].preferred = false;
    assert!(sim.proto(0).reconfigure(other).is_err());
}

#[test]
fn heartbeats_carry_the_configuration_digest_and_a_commit_changes_it() {
    let mut sim = Sim::new(9, CLEAN);
    for i in 0..2 {
        let mut s = settings(i as u16 + 1, i == 0, DEAD_COUNT);
        s.config_digest = 0xaaaa;
        sim.start_with(i, s, false);
    }
    sim.run_until(200, Drive::EveryMs);
    let (a, b) = (sim.status(0), sim.status(1));
    assert_eq!((a.peer_config_digest, b.peer_config_digest), (Some(0xaaaa), Some(0xaaaa)));
    assert!(!a.config_differs() && !b.config_differs());
    // A commit on one board only: both see that they differ, and nothing else changes.
    let mut s = settings(1, true, DEAD_COUNT);
    s.config_digest = 0xbbbb;
    sim.proto(0).reconfigure(s).expect("the digest changes with every commit");
    sim.run_until(400, Drive::EveryMs);
    let (a, b) = (sim.status(0), sim.status(1));
    assert_eq!((a.config_digest, a.peer_config_digest), (0xbbbb, Some(0xaaaa)));
    assert_eq!((b.config_digest, b.peer_config_digest), (0xaaaa, Some(0xbbbb)));
    assert!(a.config_differs() && b.config_differs());
    assert_eq!((a.role, b.role), (Role::Active, Role::Standby));
}

#[test]
fn records_name_instances_by_id_whatever_their_order_on_each_board() {
    let mut sim = Sim::new(10, CLEAN);
    // The active board's engine has instances with ids 7 and 9 in that order; the
    // standby's in the other order, and no instance 7 after a drift.
    let ids = [vec![7u8, 9], vec![9u8, 7]];
    for (i, ids) in ids.into_iter().enumerate() {
        let mut s = settings(i as u16 + 1, i == 0, DEAD_COUNT);
        s.instance_ids = ids;
        sim.start_with(i, s, false);
    }
    sim.run_until(1000, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    let old = sim.unix_s() - 10;
    // Instance position 1 on the active board: id 9, which is position 0 on the standby.
    let mut blk = block(1);
    blk.inst = 1;
    let mut sess = session(1, old);
    sess.inst = 1;
    sim.event(0, SessionEvent::BlockAllocated(blk));
    sim.event(0, SessionEvent::Created(sess));
    sim.run_until(3000, Drive::EveryMs);
    let got: Vec<&SessionRecord> = sim.sides[1].board.sessions.values().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].inst, 0, "installed into the standby's instance with id 9");
    assert_eq!(sim.sides[1].board.blocks.iter().map(|b| b.inst).collect::<Vec<_>>(), vec![0]);

    // The standby drops instance 7 (a commit): records of it are refused and counted.
    let mut s = settings(2, false, DEAD_COUNT);
    s.instance_ids = vec![9];
    sim.proto(1).reconfigure(s).expect("instance ids change with a commit");
    let before = sim.status(1).install_refused;
    let mut sess7 = session(2, old);
    sess7.inst = 0; // id 7 on the active board
    let mut blk7 = block(2);
    blk7.inst = 0;
    sim.event(0, SessionEvent::BlockAllocated(blk7));
    sim.event(0, SessionEvent::Created(sess7));
    sim.run_until(5000, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions.len(), 1, "nothing of an instance the standby lacks");
    let st = sim.status(1);
    assert!(st.install_refused >= before + 2, "its block and session, refused and counted");
    // What the standby holds is not the peer's table: not in sync, and it says why.
    assert!(!st.in_sync);
    assert_eq!(
        st.sync_problem.as_deref(),
        Some("2 records of the peer refused since the bulk sync began: this board has no ds-lite instance with id 7")
    );
    // It asks for bulk syncs again, later and later (dead interval 100 ms, doubling):
    // a refusal that lasts is no storm.
    let bulks = sim.status(0).bulk_syncs;
    sim.run_until(5000 + 10_000, Drive::EveryMs);
    let asked = sim.status(0).bulk_syncs - bulks;
    assert!((1..=3).contains(&asked), "{asked} bulk syncs in 10 s");
}

#[test]
fn a_witness_that_comes_up_late_guards_from_then_on() {
    // Both boards start without their witness (the softwire interface was not there).
    let mut sim = settled(11, CLEAN, DEAD_COUNT, Drive::EveryMs);
    assert!(!sim.status(1).witness);
    // The interface appears; the node opens the socket and says so.
    sim.proto(0).witness_up();
    sim.proto(1).witness_up();
    sim.run_until(1200, Drive::EveryMs);
    assert!(sim.status(0).witness && sim.status(1).witness);
    assert!(sim.sides[0].sent.iter().any(|(t, ch, _)| *t > 1000 && *ch == Channel::Witness), "witness heartbeats go");
    sim.cut[Channel::Link.index()] = true;
    sim.run_until(3200, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby), "the witness still hears");
}

#[test]
fn records_dropped_while_the_standby_was_unheard_come_back_with_a_bulk_sync() {
    // The active board stops hearing the standby (a one-way cut: the standby still hears
    // it, so it stays standby and in sync as far as it knows).
    let mut sim = settled(12, CLEAN, DEAD_COUNT, Drive::EveryMs);
    let old = sim.unix_s() - 10;
    sim.cut_to[0] = true;
    sim.run_until(1000 + DEAD * 2, Drive::EveryMs);
    assert!(!sim.status(0).peer_alive, "the active board hears nothing");
    assert_eq!(sim.status(1).role, Role::Standby);
    for n in 0..20 {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, old)));
    }
    sim.run_until(sim.ms + 500, Drive::EveryMs);
    assert!(sim.sides[1].board.sessions.is_empty(), "dropped while the peer was not heard");
    // Heard again: a bulk sync carries what was dropped.
    let bulks = sim.status(0).bulk_syncs;
    sim.cut_to[0] = false;
    sim.run_until(sim.ms + 1000, Drive::EveryMs);
    assert_eq!(sim.status(0).bulk_syncs, bulks + 1);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions, "the standby has them all");
    assert!(sim.status(1).in_sync);
}

#[test]
fn after_a_healed_split_the_board_that_keeps_the_role_announces_again() {
    let mut sim = settled(13, CLEAN, DEAD_COUNT, Drive::EveryMs);
    // Both channels cut: each board hears nothing and the standby takes over too.
    sim.cut = [true, true];
    sim.run_until(1000 + DEAD * 3, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Active), "a split");
    let healed = sim.ms;
    sim.cut = [false, false];
    sim.run_until(healed + 500, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Standby, Role::Active));
    // The board that took over holds the newer state: it stayed active and announced
    // once more after the heal (the neighbours may have followed the other board).
    let again: Vec<u64> =
        sim.sides[1].board.activations().into_iter().filter(|(t, on)| *on && *t > healed).map(|(t, _)| t).collect();
    assert_eq!(again.len(), 1, "announced again once: {again:?}");
    assert_eq!(
        sim.status(1).last_change.map(|c| c.1),
        Some("active: both boards were active; this one keeps the role".to_string())
    );
    assert_eq!(sim.sides[0].board.activations().last().map(|a| a.1), Some(false), "the other stepped down");
    // The preferred board syncs, then takes the role back gracefully by preempt-time.
    sim.run_until(healed + 500 + PREEMPT + 2 * DEAD, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
}

#[test]
fn a_stopped_active_board_that_runs_again_yields_and_gets_the_sessions_made_meanwhile() {
    let mut sim = settled(14, CLEAN, DEAD_COUNT, Drive::EveryMs);
    replicated_ten(&mut sim);
    // SIGSTOP of the active board for two seconds: the standby takes over and serves,
    // making sessions of its own.
    sim.sides[0].paused = true;
    let stopped = sim.ms;
    sim.run_until(stopped + 2000, Drive::EveryMs);
    assert_eq!(sim.status(1).role, Role::Active);
    let made = sim.unix_s() - 5;
    for n in 10..20 {
        sim.event(1, SessionEvent::BlockAllocated(block(n)));
        sim.event(1, SessionEvent::Created(session(n, made)));
    }
    // SIGCONT: the board that ran again still thinks itself active until it hears the
    // peer, which took over later and so holds the newer state: it yields at once.
    sim.sides[0].paused = false;
    let resumed = sim.ms;
    let mut both = 0;
    sim.run_while(resumed + 1000, Drive::EveryMs, |sim| {
        both += (sim.sides[0].board.active && sim.sides[1].board.active) as u32;
        true
    });
    assert!(both <= 2, "both boards forwarded for {both} ms after the resumed one ran again");
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Standby, Role::Active));
    assert_eq!(
        sim.status(0).last_change.map(|c| c.1),
        Some("standby: both boards were active; the peer keeps the role".into())
    );
    // It syncs: the sessions made while it was stopped are carried back, and by
    // preempt-time it takes the role back with all of them.
    sim.run_until(resumed + 1000 + PREEMPT + 3 * DEAD, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    assert_eq!(sim.sides[0].board.sessions, sim.sides[1].board.sessions);
    assert_eq!(sim.sides[0].board.sessions.len(), 20);
}

#[test]
fn a_bulk_sync_sweeps_what_the_standby_holds_and_the_active_does_not() {
    let mut sim = settled(15, CLEAN, DEAD_COUNT, Drive::EveryMs);
    let old = replicated_ten(&mut sim);
    // The standby holds copies the active no longer has (left by an overflow, a split
    // or a switchover): they would clash with the active's next allocations.
    for n in 20..25 {
        sim.sides[1].board.blocks.push(block(n));
        let s = session(n, old);
        sim.sides[1].board.sessions.insert(key_of(&s), s);
    }
    // Its HA thread restarts (a new incarnation): a bulk sync, and at its end the
    // sweep.
    sim.stop(1);
    sim.start(1, DEAD_COUNT, false);
    sim.run_until(sim.ms + 1000, Drive::EveryMs);
    let st = sim.status(1);
    assert!(st.in_sync);
    assert_eq!(st.swept, 10, "five sessions and their five blocks");
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions);
    assert!(sim.sides[1].board.blocks.iter().all(|b| sim.sides[0].board.blocks.contains(b)));
}

#[test]
fn a_standby_that_refuses_records_is_not_in_sync_until_a_bulk_sync_installs_them() {
    let mut sim = settled(16, CLEAN, DEAD_COUNT, Drive::EveryMs);
    sim.run_until(sim.ms + 300, Drive::EveryMs);
    assert!(sim.status(1).in_sync);
    // The standby's board refuses three sessions (their ports taken by stale ones).
    sim.sides[1].board.refuse_sessions = 3;
    let old = sim.unix_s() - 10;
    for n in 0..10 {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, old)));
    }
    let sent = sim.ms;
    sim.run_while(sent + 1000, Drive::EveryMs, |sim| sim.status(1).in_sync || sim.ms < sent + 5);
    let st = sim.status(1);
    assert!(!st.in_sync, "it does not hold the peer's table");
    assert_eq!(
        st.sync_problem.as_deref(),
        Some("3 records of the peer refused since the bulk sync began: the external port is used by another session")
    );
    sim.run_until(sim.ms + HEARTBEAT + 5, Drive::EveryMs);
    assert!(!sim.status(0).in_sync, "and the active board hears so");
    // A bulk sync a dead interval later installs them: in sync again, no problem.
    sim.run_until(sim.ms + 1000, Drive::EveryMs);
    let st = sim.status(1);
    assert!(st.in_sync && st.sync_problem.is_none(), "{:?}", st.sync_problem);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions);
    assert_eq!(st.install_refused, 3);
}

#[test]
fn a_board_active_again_after_a_lost_bulk_request_still_syncs_its_standby() {
    let mut sim = settled(21, CLEAN, DEAD_COUNT, Drive::EveryMs);
    let old = replicated_ten(&mut sim);
    let now = sim.now();
    sim.proto(0).switchover(None, now).expect("hands over");
    sim.carry_out(0);
    sim.run_until(sim.ms + 1000, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Standby, Role::Active));
    for n in 10..20 {
        sim.event(1, SessionEvent::BlockAllocated(block(n)));
        sim.event(1, SessionEvent::Created(session(n, old)));
    }
    sim.run_until(sim.ms + 300, Drive::EveryMs);
    assert_eq!(sim.sides[0].board.sessions.len(), 20);
    // Side 0 (preferred) preempts; side 1's first bulk request is lost. Side 0 must
    // not end a bulk it never sent (it had sent one before, as active), and side 1
    // must not say it is in sync until a real bulk came.
    sim.drop_next[1] = Some(Kind::BulkRequest);
    let bulks = sim.status(0).bulk_syncs;
    sim.run_until(sim.ms + PREEMPT + 1000, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    assert!(sim.status(0).bulk_syncs > bulks, "a bulk sync followed the lost request");
    assert!(sim.status(1).in_sync);
    // And the stream carries what side 0 inherited: a refresh, then a deletion.
    let mut s = session(15, old);
    s.last_seen = sim.unix_s();
    sim.event(0, SessionEvent::Refreshed(s));
    sim.run_until(sim.ms + 300, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions[&key_of(&s)].last_seen, s.last_seen);
    sim.event(0, SessionEvent::Deleted(s));
    sim.run_until(sim.ms + 300, Drive::EveryMs);
    assert!(!sim.sides[1].board.sessions.contains_key(&key_of(&s)));
}

#[test]
fn a_standby_is_not_in_sync_while_a_new_bulk_is_on_its_way() {
    let mut sim = settled(22, CLEAN, DEAD_COUNT, Drive::EveryMs);
    replicated_ten(&mut sim);
    assert!(sim.status(1).in_sync);
    // The active board lost events: it bulk-syncs; the standby's board is slow.
    sim.sides[1].hold_installs = true;
    let now = sim.now();
    sim.proto(0).handle_events_dropped(5, now);
    sim.carry_out(0);
    sim.run_until(sim.ms + 300, Drive::EveryMs);
    assert!(sim.sides[1].held > 0, "installs waiting");
    assert!(!sim.status(1).in_sync && !sim.status(0).in_sync);
    let now = sim.now();
    assert!(sim.proto(0).switchover(None, now).is_err(), "no hand-over to a standby without the table");
    sim.finish_installs(1);
    sim.run_until(sim.ms + 100, Drive::EveryMs);
    assert!(sim.status(1).in_sync);
}

/// Two boards in mutual backup (the usual way to run two service boards): location 1 is
/// slot 1's with slot 2 as backup, location 2 the other way round; the pool's lower
/// half is location 1's share, the upper half location 2's.
fn mutual(slot: u16) -> Settings {
    use dataplane::config::{EngineConfig, InstanceConfig, Ipv4Prefix, Ipv6Prefix};
    let mut s = settings(slot, false, DEAD_COUNT);
    s.softwire_mac = [2, 0, 0, 0, 0, slot as u8];
    s.locations = vec![Location { id: 1, preferred: slot == 1 }, Location { id: 2, preferred: slot == 2 }];
    let mut i = InstanceConfig::new(
        "a",
        [0; 16],
        Ipv6Prefix { addr: [0; 16], len: 0 },
        Ipv4Prefix { addr: 0xc633_6400, len: 25 },
    );
    i.pool.push(Ipv4Prefix { addr: 0xc633_6480, len: 25 });
    i.pool_locations = vec![0, 1];
    let mut e = EngineConfig::new(vec![i]);
    e.locations = vec![1, 2];
    s.shares = PoolShares::of(&e);
    s
}

/// The external address of record `n`: location 1's (n even: .1) or 2's (odd: .129).
fn located_addr(n: u32) -> u32 {
    0xc633_6401 + (n & 1) * 0x80
}

fn located(n: u32, created: u32) -> SessionRecord {
    SessionRecord { ext_addr: located_addr(n), ..session(n, created) }
}

fn located_block(n: u32) -> BlockRecord {
    BlockRecord { ext_addr: located_addr(n), ..block(n) }
}

#[test]
fn mutual_backup_keeps_one_location_active_on_each_board_and_never_flaps() {
    let mut sim = Sim::new(12, LOSSY);
    sim.start_with(0, mutual(1), false);
    sim.start_with(1, mutual(2), false);
    sim.run_until(2000, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0b01, 0b10), "each its own location");
    let st = sim.status(0);
    let roles: Vec<(u32, Role, Option<Role>)> = st.locations.iter().map(|l| (l.id, l.role, l.peer_role)).collect();
    assert_eq!(roles, vec![(1, Role::Active, Some(Role::Standby)), (2, Role::Standby, Some(Role::Active))]);
    // Each board knows where to send the other location's softwire frames.
    assert_eq!(sim.sides[0].board.peer, ([2, 0, 0, 0, 0, 2], 0b10));
    assert_eq!(sim.sides[1].board.peer, ([2, 0, 0, 0, 0, 1], 0b01));
    // Each board's sessions of its own location reach the other (delay-time 1 s).
    let old = sim.unix_s() - 10;
    for n in 0..200 {
        let side = (n % 2) as usize;
        sim.event(side, SessionEvent::BlockAllocated(located_block(n)));
        sim.event(side, SessionEvent::Created(located(n, old)));
    }
    let changes = |sim: &Sim| sim.sides.iter().map(|s| s.board.activations().len()).sum::<usize>();
    let settled = changes(&sim);
    sim.run_until(12_000, Drive::EveryMs);
    assert_eq!(changes(&sim), settled, "no role moved in 10 s (preempt-time is 1.5 s)");
    for (side, other) in [(0, 1), (1, 0)] {
        assert_eq!(sim.sides[side].board.sessions.len(), 200, "side {side}: its 100 and the 100 of side {other}");
    }
    let (a, b) = (sim.status(0), sim.status(1));
    assert!(a.in_sync && b.in_sync, "{a:?}\n{b:?}");
    assert_eq!((a.install_refused, b.install_refused), (0, 0));

    // Slot 2 dies: slot 1 takes location 2 over, and keeps location 1.
    sim.stop(1);
    sim.run_until(sim.ms + 3 * DEAD, Drive::EveryMs);
    assert_eq!(sim.sides[0].board.locations, 0b11, "slot 1 serves both locations");
    assert_eq!(sim.sides[0].board.peer.1, 0, "nothing goes on to a silent peer");
    let st = sim.status(0);
    assert_eq!(st.locations[1].last_change.as_ref().map(|c| c.1.as_str()), Some("active: the peer went silent"));

    // It comes back: standby for both, a bulk sync of both, then it takes location 2 back
    // after preempt-time, and location 1 stays where it is.
    sim.start_with(1, mutual(2), false);
    sim.run_until(sim.ms + 1000, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.locations, 0, "standby for both while it syncs");
    sim.run_until(sim.ms + PREEMPT + 2000, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0b01, 0b10), "location 2 preempted back");
    assert_eq!(sim.sides[1].board.sessions.len(), 200, "the bulk sync brought both locations' sessions");
}

#[test]
fn a_board_whose_links_go_down_hands_its_locations_to_the_peer_and_takes_them_back() {
    let mut sim = Sim::new(14, LOSSY);
    sim.start_with(0, mutual(1), false);
    sim.start_with(1, mutual(2), false);
    sim.run_until(2000, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0b01, 0b10));
    // Slot 1's Internet link goes down: it hands location 1 over at once (gracefully,
    // its final deltas first), it does not take location 2 on the peer's silence, and
    // the peer, fit, keeps both.
    let now = sim.now();
    sim.proto(0).set_fit(false, now);
    sim.carry_out(0);
    sim.run_until(sim.ms + 300, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0, 0b11));
    let st = sim.status(0);
    assert!(!st.fit);
    assert_eq!(
        st.locations[0].last_change.as_ref().map(|c| c.1.as_str()),
        Some("standby: this board is unfit (a link down or a worker stuck); the peer is fit")
    );
    sim.run_until(sim.ms + PREEMPT + 1000, Drive::EveryMs);
    assert_eq!(sim.sides[0].board.locations, 0, "an unfit board does not preempt");
    // The link comes back: after preempt-time, location 1 returns to slot 1.
    let now = sim.now();
    sim.proto(0).set_fit(true, now);
    sim.run_until(sim.ms + PREEMPT + 1000, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0b01, 0b10));
}

#[test]
fn an_unfit_board_alone_keeps_serving() {
    let mut sim = Sim::new(15, CLEAN);
    sim.start(0, DEAD_COUNT, false);
    sim.run_until(1000, Drive::EveryMs);
    assert!(sim.sides[0].board.active);
    let now = sim.now();
    sim.proto(0).set_fit(false, now);
    sim.run_until(2000, Drive::EveryMs);
    assert!(sim.sides[0].board.active, "no fit peer to take over: it serves what it can");
}

#[test]
fn a_switchover_of_every_location_loses_no_record_of_either() {
    let mut sim = Sim::new(16, CLEAN);
    sim.start_with(0, mutual(1), false);
    sim.start_with(1, mutual(2), false);
    // Slot 2's table takes a while, as from a board thread walking a big table.
    sim.sides[1].table_delay_ms = 20;
    sim.run_until(2000, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0b01, 0b10));
    // Sessions of location 2 on slot 2, eligible at once and still on their way when
    // slot 1 asks to swap both locations.
    let old = sim.unix_s() - 10;
    for n in (1..400).step_by(2) {
        sim.event(1, SessionEvent::BlockAllocated(located_block(n)));
        sim.event(1, SessionEvent::Created(located(n, old)));
    }
    let now = sim.now();
    let said = sim.proto(0).switchover(None, now).expect("both locations can move");
    sim.carry_out(0);
    assert!(said.contains("location 1: handed") && said.contains("location 2: asked"), "{said}");
    // Checked before preempt-time gives each location back to its preferred board.
    sim.run_until(sim.ms + 500, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0b10, 0b01), "swapped");
    let twos = |side: usize| sim.sides[side].board.sessions.values().filter(|s| s.ext_addr == located_addr(1)).count();
    assert_eq!(twos(1), 200);
    assert_eq!(twos(0), 200, "every session of location 2 reached slot 1 before it took location 2");
}

#[test]
fn when_the_preferred_board_starts_with_a_link_down_the_other_serves_at_once() {
    let mut sim = Sim::new(17, CLEAN);
    sim.start(0, DEAD_COUNT, false);
    let now = sim.now();
    sim.proto(0).set_fit(false, now);
    sim.start(1, DEAD_COUNT, false);
    sim.run_until(DEAD + 3 * HEARTBEAT, Drive::EveryMs);
    assert_eq!(sim.status(1).role, Role::Active, "{:?}", sim.status(1));
    assert_eq!(sim.status(0).role, Role::Standby);
    assert!(sim.sides[0].board.activations().iter().all(|(_, on)| !on), "the unfit preferred board never served");
}

/// A table too large for one round is taken in a chunk a round (the heartbeats go on
/// between: the standby, restarted, never sees the active silent), and what happens
/// meanwhile follows the bulk: a session ended while its table was taken in is not
/// left on the standby.
#[test]
fn a_large_table_is_taken_in_over_rounds_and_what_happens_meanwhile_follows_it() {
    let mut sim = Sim::new(9, CLEAN);
    sim.start(0, DEAD_COUNT, false);
    let old = sim.unix_s() - 10;
    let n = 3 * super::TABLE_CHUNK as u32;
    for i in 0..n {
        sim.event(0, SessionEvent::BlockAllocated(block(i)));
        sim.event(0, SessionEvent::Created(session(i, old)));
    }
    sim.run_until(1000, Drive::EveryMs);
    sim.start(1, DEAD_COUNT, false);
    sim.run_while(3000, Drive::EveryMs, |s| !s.sides[0].proto.as_ref().unwrap().taking_table());
    assert!(sim.sides[0].proto.as_ref().unwrap().taking_table(), "six chunks take more than a round");
    sim.event(0, SessionEvent::Deleted(session(0, old)));
    sim.run_while(20_000, Drive::EveryMs, |s| !s.status(1).in_sync);
    let (a, b) = (sim.status(0), sim.status(1));
    assert!(b.in_sync, "{b:?}");
    assert_eq!((a.role, b.role), (Role::Active, Role::Standby));
    assert_eq!(a.bulk_syncs, 1);
    assert_eq!(b.records_received, 2 * n as u64 + 1, "the bulk, then the deletion");
    assert!(!sim.sides[1].board.sessions.contains_key(&key_of(&session(0, old))));
    assert_eq!(sim.sides[1].board.sessions.len(), n as usize - 1);
}

/// The board reads its table while its workers go on: a session made after the read
/// and before the table reaches the HA thread is in no table, and its event must not
/// be lost to the bulk that starts over the replicator's state.
#[test]
fn an_event_between_the_tables_read_and_its_arrival_reaches_the_standby() {
    let mut sim = Sim::new(10, CLEAN);
    sim.start(0, DEAD_COUNT, false);
    let old = sim.unix_s() - 10;
    for n in 0..50 {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, old)));
    }
    sim.run_until(1000, Drive::EveryMs);
    sim.sides[0].table_delay_ms = 30;
    sim.start(1, DEAD_COUNT, false);
    sim.run_while(3000, Drive::EveryMs, |s| s.sides[0].table_due.is_empty());
    assert!(!sim.sides[0].table_due.is_empty(), "the table was asked for");
    // Made after the read, before the table arrives; and one ended then.
    sim.event(0, SessionEvent::BlockAllocated(block(50)));
    sim.event(0, SessionEvent::Created(session(50, old)));
    sim.event(0, SessionEvent::Deleted(session(0, old)));
    sim.run_while(20_000, Drive::EveryMs, |s| !s.status(1).in_sync);
    sim.run_until(sim.ms + 500, Drive::EveryMs);
    let standby = &sim.sides[1].board.sessions;
    assert!(standby.contains_key(&key_of(&session(50, old))), "the session made meanwhile");
    assert!(!standby.contains_key(&key_of(&session(0, old))), "the session ended meanwhile");
    assert_eq!(standby.len(), 50);
}

#[test]
fn a_bulk_with_a_record_that_cannot_be_read_sweeps_nothing_and_is_asked_for_again() {
    let (mut sim, _) = replicated(51, 1300);
    let before = sim.sides[1].board.sessions.clone();
    // A bulk sync whose first message loses its records after the cover.
    sim.mangle_bulk = true;
    let now = sim.now();
    sim.proto(0).handle_events_dropped(1, now);
    sim.carry_out(0);
    let mut problem = None;
    sim.run_while(1400, Drive::EveryMs, |s| {
        problem = problem.clone().or(s.status(1).sync_problem);
        true
    });
    assert!(!sim.mangle_bulk, "the bulk went");
    assert!(sim.status(1).rejected_malformed > 0);
    assert_eq!(sim.status(1).swept, 0, "no sweep of a bulk that did not arrive whole");
    assert!(problem.is_some_and(|p| p.contains("did not arrive whole")));
    // Another bulk followed, whole: in sync again, with every session.
    sim.run_until(2500, Drive::EveryMs);
    assert!(sim.status(1).in_sync, "{:?}", sim.status(1).sync_problem);
    assert_eq!(sim.status(1).sync_problem, None);
    assert_eq!(sim.sides[1].board.sessions, before);
    assert!(sim.status(0).bulk_syncs >= 3, "{}", sim.status(0).bulk_syncs);
}

#[test]
fn a_table_asked_for_before_a_role_went_and_came_back_is_not_taken_for_the_new_one() {
    let (mut sim, old) = replicated(52, 1300);
    // The board thread answers 300 ms after it was asked (a big table).
    sim.sides[0].table_delay_ms = 300;
    let now = sim.now();
    sim.proto(0).handle_events_dropped(1, now);
    sim.carry_out(0);
    assert_eq!(sim.sides[0].table_due.len(), 1, "the first table was asked for");
    // Before it comes, the role goes to the peer, which makes sessions, and comes back.
    let now = sim.now();
    sim.proto(0).switchover(None, now).expect("the peer is in sync");
    sim.carry_out(0);
    sim.run_until(sim.ms + 30, Drive::EveryMs);
    assert_eq!(sim.status(1).role, Role::Active);
    for n in 100..110 {
        sim.event(1, SessionEvent::BlockAllocated(block(n)));
        sim.event(1, SessionEvent::Created(session(n, old)));
    }
    sim.run_while(sim.ms + 200, Drive::EveryMs, |s| s.sides[0].board.sessions.len() < 30 || !s.status(0).in_sync);
    assert_eq!(sim.sides[0].board.sessions.len(), 30);
    let now = sim.now();
    sim.proto(1).switchover(None, now).expect("the peer is in sync");
    sim.carry_out(1);
    sim.run_until(sim.ms + 30, Drive::EveryMs);
    assert_eq!(sim.status(0).role, Role::Active);
    assert_eq!(sim.sides[0].table_due.len(), 2, "the second table was asked for before the first came");
    // The first (stale: no sessions of the peer's time) comes first, then the second.
    sim.run_until(sim.ms + 1000, Drive::EveryMs);
    assert!(sim.status(1).in_sync);
    assert_eq!(sim.sides[1].board.sessions.len(), 30, "the stale table swept the sessions made meanwhile");
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions);
}

#[test]
fn retransmissions_back_off_while_nothing_is_acknowledged_and_resume_on_an_ack() {
    // tc netem on the HA link (10% loss, 50 ms delay); the witness is clean, so the
    // roles hold while the HA link is cut for two seconds.
    let netem = Faults { loss_percent: 10, dup_percent: 0, jitter_ms: 5, delay_ms: 50, link_only: true };
    let mut sim = Sim::new(53, netem);
    sim.start(0, DEAD_COUNT, true);
    sim.start(1, DEAD_COUNT, true);
    sim.run_until(1000, Drive::EveryMs);
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
    sim.cut[Channel::Link.index()] = true;
    let old = sim.unix_s() - 5;
    for n in 0..20 {
        sim.event(0, SessionEvent::BlockAllocated(block(n)));
        sim.event(0, SessionEvent::Created(session(n, old)));
    }
    let cut_at = sim.ms;
    sim.run_until(cut_at + 2000, Drive::EveryMs);
    let data_sent = |sim: &Sim| {
        let link = key(Purpose::Link);
        (sim.sides[0].sent.iter())
            .filter(|(t, ch, d)| {
                *t > cut_at && *ch == Channel::Link && wire::open(&link, d).is_ok_and(|m| m.header.kind == Kind::Data)
            })
            .map(|(t, _, d)| (*t, wire::open(&link, d).expect("authentic").header.seq))
            .collect::<Vec<_>>()
    };
    let sent = data_sent(&sim);
    let first_seq = sent.first().expect("data went").1;
    let times: Vec<u64> = sent.iter().filter(|(_, s)| *s == first_seq).map(|(t, _)| *t).collect();
    // Sent, then again after the retransmission time, twice as late each time up to a
    // second: at most 1 + log2(2000 / 100) + 2 in two seconds, not one per round trip.
    assert!(times.len() <= 7, "{} sends of one message in 2 s: {times:?}", times.len());
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "the gaps grow: {gaps:?}");
    // The link back: everything arrives, and an ack ends the backoff.
    sim.cut[Channel::Link.index()] = false;
    sim.run_until(sim.ms + 2000, Drive::EveryMs);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions);
    assert_eq!(sim.sides[1].board.sessions.len(), 20);
    assert_eq!(sim.proto(0).tx.backoff(), 0, "an ack ended the backoff");
    assert_eq!((sim.status(0).role, sim.status(1).role), (Role::Active, Role::Standby));
}

#[test]
fn a_location_that_becomes_active_while_a_table_is_taken_is_synced_whole_after() {
    let mut sim = Sim::new(54, CLEAN);
    sim.start_with(0, mutual(1), false);
    sim.start_with(1, mutual(2), false);
    sim.run_until(2000, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0b01, 0b10));
    let old = sim.unix_s() - 10;
    for n in 0..40 {
        let side = (n & 1) as usize;
        sim.event(side, SessionEvent::BlockAllocated(located_block(n)));
        sim.event(side, SessionEvent::Created(located(n, old)));
    }
    sim.run_until(sim.ms + 300, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.sessions.len(), sim.sides[1].board.sessions.len()), (40, 40));
    // Slot 1 asks its board for a table (events were lost), which takes 200 ms.
    sim.sides[0].table_delay_ms = 200;
    let now = sim.now();
    sim.proto(0).handle_events_dropped(1, now);
    sim.carry_out(0);
    assert_eq!(sim.sides[0].table_due.len(), 1);
    // Meanwhile slot 2 makes sessions of location 2 (they reach slot 1's board after
    // its table was read), then hands location 2 to slot 1, which makes more of it.
    for n in (201..221).step_by(2) {
        sim.event(1, SessionEvent::BlockAllocated(located_block(n)));
        sim.event(1, SessionEvent::Created(located(n, old)));
    }
    sim.run_until(sim.ms + 50, Drive::EveryMs);
    assert_eq!(sim.sides[0].board.sessions.len(), 50, "slot 1's board holds them");
    let now = sim.now();
    sim.proto(1).switchover(Some(2), now).expect("slot 1 is in sync");
    sim.carry_out(1);
    sim.run_until(sim.ms + 30, Drive::EveryMs);
    assert_eq!((sim.sides[0].board.locations, sim.sides[1].board.locations), (0b11, 0b00));
    assert!(!sim.sides[0].table_due.is_empty(), "the table is still being taken");
    for n in (301..321).step_by(2) {
        sim.event(0, SessionEvent::BlockAllocated(located_block(n)));
        sim.event(0, SessionEvent::Created(located(n, old)));
    }
    let mut fewest = usize::MAX;
    sim.run_while(sim.ms + 3000, Drive::EveryMs, |s| {
        fewest = fewest.min(s.sides[1].board.sessions.len());
        true
    });
    assert_eq!(sim.sides[0].board.sessions.len(), 60);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions, "the standby holds both locations whole");
    assert!(fewest >= 50, "no sweep removed what the standby held of location 2: {fewest}");
    assert!(sim.status(1).in_sync && sim.status(0).in_sync);
    assert!(sim.status(0).bulk_syncs >= 2, "another bulk followed for location 2");
}

#[test]
fn a_sweep_that_does_not_finish_leaves_the_standby_out_of_sync_and_a_bulk_follows() {
    let (mut sim, _) = replicated(55, 1300);
    assert!(sim.status(1).in_sync);
    sim.sides[1].board.sweep_times_out = true;
    let now = sim.now();
    sim.proto(0).handle_events_dropped(1, now);
    sim.carry_out(0);
    sim.run_until(sim.ms + 50, Drive::EveryMs);
    let st = sim.status(1);
    assert!(!st.in_sync, "a sweep that timed out is no success");
    assert!(st.sync_problem.is_some_and(|p| p.contains("sweep after the bulk sync did not finish")));
    // The board answers again: the next bulk is asked for and ends in sync.
    sim.sides[1].board.sweep_times_out = false;
    sim.run_until(sim.ms + 1000, Drive::EveryMs);
    assert!(sim.status(1).in_sync, "{:?}", sim.status(1).sync_problem);
    assert_eq!(sim.sides[1].board.sessions, sim.sides[0].board.sessions);
    assert!(sim.status(0).bulk_syncs >= 3);
}
