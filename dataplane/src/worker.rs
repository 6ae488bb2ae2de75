//! A worker: the pinned thread that owns one engine with its port, mailbox, clock and
//! expiry, forwards frames in rounds and answers typed commands between them.
//!
//! A round: wait for frames (up to 10 ms), receive batches on both sides and process
//! them in place (each batch's forwarded frames leave at its end), hand the other
//! workers' frames over, take the batches handed to this worker, send what was made on
//! the side and flush. Once per millisecond of the timer clock, and not more often,
//! the worker answers commands and does its housekeeping: the clocks, the amortised
//! expiry, the events, the gauges, the role (the profile of issue 17: reading the
//! clocks and expiring every round took half the worker's time). A worker without a
//! port (a board without interfaces) only answers commands and keeps its timers.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use crate::config::{EgressL2, EngineConfig};
use crate::counters::{Counter, WorkerCounters};
use crate::engine::{Engine, SubscriberView};
use crate::frame::{FragmentPorts, Frame, VecSink, Verdict};
use crate::handoff::{BATCH, Mailbox};
use crate::io::port::Port;
use crate::nat::events::{BlockRecord, Refused, SessionRecord, SweepKeys};
use crate::wire::ethernet::Mac;

/// Which sessions to show or end (`display sessions ...`, `reset session ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub b4: Option<[u8; 16]>,
    pub inside: Option<u32>,
    pub external: Option<u32>,
    pub port: Option<u16>,
}

impl SessionFilter {
    pub fn matches(&self, r: &SessionRecord) -> bool {
        self.b4.is_none_or(|b| b == r.b4)
            && self.inside.is_none_or(|a| a == r.inner_addr)
            && self.external.is_none_or(|a| a == r.ext_addr)
            && self.port.is_none_or(|p| p == r.ext_port)
    }
}

/// Where a table snapshot goes on: port blocks (by subscriber slot) first, then
/// sessions (by session slot). `subscribers` is [`Cursor::BLOCKS_DONE`] once every
/// subscriber's blocks went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub subscribers: u32,
    pub sessions: u32,
}

impl Cursor {
    /// The subscriber slot past every subscriber: the blocks are done.
    pub const BLOCKS_DONE: u32 = u32::MAX;
}

/// One bounded piece of a worker's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    pub blocks: Vec<BlockRecord>,
    pub sessions: Vec<SessionRecord>,
    /// Where the next chunk starts; None when this was the last.
    pub next: Option<Cursor>,
}

/// What a worker is asked between rounds. Each request carries its reply channel.
pub enum Command {
    /// Of up to this many sessions from the slot on, those the filter selects, and the
    /// slot where the next ones start (a display reads the table in such pieces, so the
    /// worker never stops forwarding for long and only what is shown is copied).
    Sessions(SessionFilter, u32, usize, Sender<(Vec<SessionRecord>, Option<u32>)>),
    /// The same, ending the sessions selected (`reset session`): how many went, and
    /// where to go on.
    EndSessions(SessionFilter, u32, usize, Sender<(usize, Option<u32>)>),
    Subscribers(Sender<Vec<SubscriberView>>),
    /// Up to this many records of the table from the cursor on (a bulk sync reads the
    /// table in pieces, so the worker never stops forwarding for long).
    Snapshot(Cursor, usize, Sender<Chunk>),
    /// A new engine configuration: every session it still allows moves over (see
    /// [`Carried`]).
    Reconfigure(Box<EngineConfig>, Sender<Result<Carried, String>>),
    /// State from the peer board: blocks first, then sessions. Answers with what was
    /// refused.
    Install(Vec<BlockRecord>, Vec<SessionRecord>, Sender<Refused>),
    /// Hot backup's sweep after a bulk sync: of the locations (bits by index), the
    /// sessions, then the blocks, that the bulk did not bring go; up to this many looked
    /// at from the cursor on. Answers with how many went and where to go on (None: done).
    Sweep(Arc<SweepKeys>, u64, Cursor, usize, Sender<(usize, Option<Cursor>)>),
    /// Sessions the peer board deleted. Answers with how many were found.
    Remove(Vec<SessionRecord>, Sender<usize>),
    /// The layer-2 next hops of both sides changed: (towards the B4s, the Internet).
    NextHops(EgressL2, EgressL2),
    Stop,
}

/// Sessions and subscribers of each worker, published between rounds for metrics and
/// `display`, and its rounds: a worker whose count stops is stuck. With them, the size
/// of the board's pools (its locations' shares), set by the board at start and at every
/// change of configuration.
#[derive(Default)]
pub struct Gauges {
    pub sessions: Vec<AtomicU64>,
    pub subscribers: Vec<AtomicU64>,
    pub rounds: Vec<AtomicU64>,
    /// External addresses of every instance's pool shares on this board.
    pub pool_addresses: AtomicU64,
    /// Port blocks those addresses hold (65536 / block size each).
    pub port_blocks: AtomicU64,
}

impl Gauges {
    pub fn new(workers: usize) -> Gauges {
        Gauges {
            sessions: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            subscribers: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            rounds: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            ..Default::default()
        }
    }

    /// Publishes the pool sizes of `cfg`.
    pub fn set_pools(&self, cfg: &crate::config::EngineConfig) {
        let (mut addresses, mut blocks) = (0u64, 0u64);
        for i in &cfg.instances {
            let n: u64 = i.pool.iter().map(|p| p.range()).map(|(a, b)| (b - a) as u64 + 1).sum();
            addresses += n;
            blocks += n * (65536 / i.port_block_size.max(1) as u64);
        }
        self.pool_addresses.store(addresses, Ordering::Relaxed);
        self.port_blocks.store(blocks, Ordering::Relaxed);
    }
}

/// The peer board as its HA thread last heard it: its softwire MAC (in the low 48
/// bits; 0: unknown) and the locations it is active for (bits by index).
#[derive(Debug, Default)]
pub struct PeerLink {
    pub mac: AtomicU64,
    pub active: AtomicU64,
}

impl PeerLink {
    pub fn set(&self, mac: Mac, active: u64) {
        let mut m = [0u8; 8];
        m[2..].copy_from_slice(&mac);
        self.mac.store(u64::from_be_bytes(m), Ordering::Relaxed);
        self.active.store(active, Ordering::Relaxed);
    }

    pub fn get(&self) -> (Mac, u64) {
        let m = self.mac.load(Ordering::Relaxed).to_be_bytes();
        (m[2..].try_into().expect("6 bytes"), self.active.load(Ordering::Relaxed))
    }
}

/// What a worker starts with.
pub struct Spec {
    pub id: u16,
    pub engine: Engine,
    /// The configuration `engine` was built from (a reconfiguration compares with it).
    pub cfg: EngineConfig,
    /// The seed of new engines on reconfiguration.
    pub seed: u64,
    pub port: Option<Port>,
    pub mailbox: Mailbox,
    /// The locations the board is active for (bits by index); 0 while it is standby
    /// for all: frames are not the board's to forward.
    pub active: Arc<AtomicU64>,
    /// Where softwire frames of the peer's locations go on to.
    pub peer: Arc<PeerLink>,
    pub gauges: Arc<Gauges>,
    /// The core to pin the thread to.
    pub core: Option<usize>,
}

/// A running worker: its command channel, counters and thread.
pub struct Worker {
    tx: Sender<Command>,
    counters: Arc<WorkerCounters>,
    thread: JoinHandle<()>,
}

impl Worker {
    /// Starts the worker thread `name`.
    pub fn spawn(spec: Spec, name: String) -> std::io::Result<Worker> {
        let (tx, rx) = bounded(64);
        let counters = spec.engine.counters();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            if let Some(core) = spec.core {
                pin(core);
            }
            run(spec, rx)
        })?;
        Ok(Worker { tx, counters, thread })
    }

    /// The channel that drives this worker (cloned into handles).
    pub fn commands(&self) -> Sender<Command> {
        self.tx.clone()
    }

    pub fn counters(&self) -> Arc<WorkerCounters> {
        self.counters.clone()
    }

    /// Tells the worker to stop; `join` waits for it.
    pub fn stop(&self) {
        let _ = self.tx.send(Command::Stop);
    }

    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Pins the calling thread to `core` (the board passes only cores this machine has).
fn pin(core: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
}

/// The worker's state besides the engine.
struct Ctx {
    id: u16,
    active: Arc<AtomicU64>,
    peer: Arc<PeerLink>,
    seed: u64,
    cfg: EngineConfig,
    gauges: Arc<Gauges>,
}

/// Where the workers' timer clock starts: 10^9 s, so that a session installed from the
/// peer, created before this process started, still has a time after 0.
const TIMER_CLOCK_START_MS: u64 = 1_000_000_000_000;

/// The workers' timer clock in milliseconds: monotonic (the same for every worker of the
/// process), so that a step of the wall clock neither ages nor expires sessions.
pub fn timer_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    TIMER_CLOCK_START_MS + START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Sets the engine's timer clock, and the Unix time that goes with it for its records.
fn set_clocks(engine: &mut Engine) {
    engine.set_clock(timer_ms());
    engine.set_unix_time(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0));
}

fn run(spec: Spec, rx: Receiver<Command>) {
    let Spec { id, mut engine, cfg, seed, port, mailbox, active, peer, gauges, core: _ } = spec;
    let ctx = Ctx { id, active, peer, seed, cfg, gauges };
    match port {
        Some(port) => {
            engine.set_kernel_sees_frames(port.kernel_sees_frames());
            packet_loop(engine, ctx, rx, port, mailbox)
        }
        None => idle_loop(engine, ctx, rx),
    }
}

/// What a reconfiguration did with a worker's sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    /// Sessions the new configuration still allows, moved over with their blocks.
    pub kept: usize,
    /// Sessions it no longer allows (their instance went, or their block or B4 no longer
    /// fits it): ended, logged and removed from the peer.
    pub ended: usize,
}

/// Moves the state of `old` into `new` (blocks first), instance by instance name:
/// everything the new settings still allow comes over and runs under the new timers
/// and limits; the rest is reported as ended. Counters do not count the move.
fn carry_over(old: &Engine, old_cfg: &EngineConfig, new: &mut Engine, new_cfg: &EngineConfig) -> Carried {
    let map = |inst: u8| -> Option<u8> {
        let name = &old_cfg.instances.get(inst as usize)?.name;
        new_cfg.instances.iter().position(|i| &i.name == name).map(|i| i as u8)
    };
    let counters = new.counters();
    let moved = [Counter::SessionsInstalled, Counter::SubscribersCreated, Counter::BlocksAllocated];
    let before = moved.map(|c| counters.get(c));
    // A block stays only where its subscriber's location still holds its address: a
    // weight that moved the B4's bucket, or the address's share, ends it and its
    // sessions (logged as deleted, removed from the peer), and the B4 starts again in
    // its new location (decision 0012).
    let located = |inst: u8, b4: &[u8; 16], ext: u32| {
        let i = &new_cfg.instances[inst as usize];
        i.buckets.is_empty() || i.location_of_addr(ext) == Some(i.location_of_b4(b4))
    };
    let (mut ended_blocks, mut ended_sessions) = (Vec::new(), Vec::new());
    for s in old.subscribers() {
        for b in s.block_records() {
            let fits = map(b.inst).is_some_and(|inst| {
                located(inst, &b.b4, b.ext_addr) && new.install_block(&BlockRecord { inst, ..b }).is_ok()
            });
            if !fits {
                ended_blocks.push(b);
            }
        }
    }
    let mut kept = 0;
    for r in old.sessions() {
        if map(r.inst).is_some_and(|inst| new.install_session(&SessionRecord { inst, ..r }).is_ok()) {
            kept += 1;
        } else {
            ended_sessions.push(r);
        }
    }
    for (c, v) in moved.into_iter().zip(before) {
        counters.set(c, v);
    }
    new.report_ended(&ended_sessions, &ended_blocks);
    Carried { kept, ended: ended_sessions.len() }
}

/// Answers one command; false when the worker must stop.
fn command(engine: &mut Engine, ctx: &mut Ctx, c: Command) -> bool {
    match c {
        Command::Stop => {
            // What waited for room goes if it can (the board drains the ring last).
            engine.flush_events();
            return false;
        }
        Command::Sessions(f, from, max, reply) => {
            let _ = reply.send(engine.sessions_matching(|r| f.matches(r), from, max));
        }
        Command::EndSessions(f, from, max, reply) => {
            set_clocks(engine);
            let _ = reply.send(engine.end_sessions(|r| f.matches(r), from, max));
        }
        Command::Subscribers(reply) => {
            let _ = reply.send(engine.subscribers());
        }
        Command::Snapshot(from, max, reply) => {
            let _ = reply.send(snapshot(engine, from, max));
        }
        Command::Reconfigure(new_cfg, reply) => match engine.successor(&new_cfg, ctx.seed) {
            Ok(mut fresh) => {
                set_clocks(&mut fresh);
                let carried = carry_over(engine, &ctx.cfg, &mut fresh, &new_cfg);
                fresh.release_claims_of(engine);
                *engine = fresh;
                ctx.cfg = *new_cfg;
                let _ = reply.send(Ok(carried));
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
            }
        },
        Command::Install(blocks, sessions, reply) => {
            set_clocks(engine);
            let _ = reply.send(engine.install(&blocks, &sessions));
        }
        Command::Sweep(keys, locations, from, max, reply) => {
            set_clocks(engine);
            let _ = reply.send(sweep(engine, &keys, locations, from, max));
        }
        Command::Remove(sessions, reply) => {
            let _ = reply.send(sessions.iter().filter(|r| engine.remove_session(r)).count());
        }
        Command::NextHops(sw, inet) => engine.set_l2(sw, inet),
    }
    true
}

/// Up to `max` records of the table from `from` on: the blocks of every subscriber
/// first, then the sessions. The blocks of one subscriber stay together, so a chunk
/// holds more than `max` blocks only if a subscriber has that many.
fn snapshot(engine: &Engine, from: Cursor, max: usize) -> Chunk {
    let max = max.max(1);
    let mut chunk = Chunk::default();
    let mut at = from;
    if at.subscribers != Cursor::BLOCKS_DONE {
        let (subs, next) = engine.subscribers_from(at.subscribers, max);
        chunk.blocks = subs.iter().flat_map(|s| s.block_records()).collect();
        match next {
            Some(n) => {
                chunk.next = Some(Cursor { subscribers: n, sessions: 0 });
                return chunk;
            }
            None => at = Cursor { subscribers: Cursor::BLOCKS_DONE, sessions: 0 },
        }
        if chunk.blocks.len() >= max {
            chunk.next = Some(at);
            return chunk;
        }
    }
    let room = max - chunk.blocks.len();
    let (sessions, next) = engine.sessions_from(at.sessions, room);
    chunk.sessions = sessions;
    chunk.next = next.map(|n| Cursor { subscribers: Cursor::BLOCKS_DONE, sessions: n });
    chunk
}

/// One piece of a sweep (see [`Command::Sweep`]): sessions by slot, then (the
/// cursor's `sessions` at [`SESSIONS_SWEPT`]) subscribers' blocks by slot.
fn sweep(engine: &mut Engine, keys: &SweepKeys, locations: u64, from: Cursor, max: usize) -> (usize, Option<Cursor>) {
    if from.sessions != SESSIONS_SWEPT {
        let (gone, next) = engine.sweep_sessions(&keys.sessions, locations, from.sessions, max);
        let sessions = next.unwrap_or(SESSIONS_SWEPT);
        return (gone, Some(Cursor { sessions, subscribers: 0 }));
    }
    let (gone, next) = engine.sweep_blocks(&keys.blocks, locations, from.subscribers, max);
    (gone, next.map(|subscribers| Cursor { sessions: SESSIONS_SWEPT, subscribers }))
}

/// A sweep's cursor is past every session: the blocks are next.
const SESSIONS_SWEPT: u32 = u32::MAX;

/// The work of a worker once per millisecond, the clocks set first.
fn housekeeping(engine: &mut Engine, ctx: &Ctx) {
    set_clocks(engine);
    engine.flush_events();
    engine.expire(4096);
    ctx.gauges.sessions[ctx.id as usize].store(engine.session_count() as u64, Ordering::Relaxed);
    ctx.gauges.subscribers[ctx.id as usize].store(engine.subscriber_count() as u64, Ordering::Relaxed);
    ctx.gauges.rounds[ctx.id as usize].fetch_add(1, Ordering::Relaxed);
}

fn idle_loop(mut engine: Engine, mut ctx: Ctx, rx: Receiver<Command>) {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => {
                if !command(&mut engine, &mut ctx, c) {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        engine.set_active_locations(ctx.active.load(Ordering::Relaxed));
        housekeeping(&mut engine, &ctx);
    }
}

/// Hands the frames of a processed batch that belong to other workers to their owners
/// (copies: the batch's buffers are reused at once).
fn hand_over_batch(frames: &[Frame], verdicts: &[Verdict], mailbox: &Mailbox, counters: &WorkerCounters) {
    for (f, v) in frames.iter().zip(verdicts) {
        if let Verdict::Handoff(w) = v {
            hand_over(mailbox, counters, *w, f.bytes(), f.hint);
        }
    }
}

/// Sends a frame to the worker that owns it; a full lane is a counted drop.
fn hand_over(m: &Mailbox, c: &WorkerCounters, to: u16, frame: &[u8], hint: Option<FragmentPorts>) {
    if m.send(to, frame, hint).is_err() {
        c.inc(Counter::DropHandoffFull);
    }
}

/// The packet loop: receive a batch, process it in place, transmit what is forwarded,
/// hand the others' frames over; between rounds, commands.
fn packet_loop(mut engine: Engine, mut ctx: Ctx, rx: Receiver<Command>, mut port: Port, mailbox: Mailbox) {
    let mut sink = VecSink::default();
    let mut verdicts = [Verdict::Pass; BATCH];
    let counters = engine.counters();
    let mut idle = false;
    // The millisecond of the last housekeeping (none yet).
    let mut kept_ms = 0;
    loop {
        // One clock read a round: the rest once a millisecond.
        let now_ms = timer_ms();
        if now_ms != kept_ms {
            kept_ms = now_ms;
            while let Ok(c) = rx.try_recv() {
                if !command(&mut engine, &mut ctx, c) {
                    mailbox.flush_all();
                    return;
                }
            }
            housekeeping(&mut engine, &ctx);
        }
        port.wait(10, idle);
        // The roles are read every round, after the wait: a board that has just become
        // standby forwards not one more batch (three relaxed loads, no clock).
        let active = ctx.active.load(Ordering::Relaxed);
        engine.set_active_locations(active);
        let (peer_mac, peer_active) = ctx.peer.get();
        engine.set_peer(peer_mac, peer_active);
        let mut work = port.receive(|frames, verdicts| {
            if active == 0 && peer_active == 0 {
                // AF_PACKET sees frames whatever the role (AF_XDP is told by the XDP
                // program's flag): a standby forwards nothing, unless to the peer.
                verdicts.fill(Verdict::Drop(Counter::DropStandby));
                counters.add(Counter::DropStandby, frames.len() as u64);
                return;
            }
            engine.process_batch(frames, verdicts, &mut sink);
            hand_over_batch(frames, verdicts, &mailbox, &counters);
        });
        // Frames handed to this worker by the others, processed and sent as batches.
        work += mailbox.receive_batch(4 * BATCH, |frames| {
            let n = frames.len();
            engine.process_batch(frames, &mut verdicts[..n], &mut sink);
            hand_over_batch(frames, &verdicts[..n], &mailbox, &counters);
            port.send_batch(frames, &verdicts[..n]);
        });
        // Frames for other workers, and frames made on the side (fragments, ICMP
        // errors, released IPv4 fragments), from buffers the sink reuses.
        sink.drain(
            |w, f, hint| hand_over(&mailbox, &counters, w, f, hint),
            |e, f| {
                if !port.send(e, f) {
                    // No room on the ring, or larger than a UMEM chunk takes.
                    counters.inc(Counter::DropTxFailed);
                }
            },
        );
        // What was handed over in this round leaves now (unless its owner is behind:
        // then the batch fills up first, see `handoff`).
        mailbox.flush();
        port.flush();
        idle = work == 0;
    }
}
