//! A running board: the worker threads of one slot, each owning its engine, and the
//! control requests they answer between ticks.
//!
//! Workers are pinned to the slot's cores (`worker-cores`) when this machine has them.
//! A worker receives and sends frames on its port (AF_XDP sockets on both interfaces,
//! or AF_PACKET rings), hands frames that belong to another worker over the mailbox
//! mesh, answers control requests (sessions, subscribers, reconfiguration, installs
//! from the peer, stop) between rounds, keeps its clock and amortised expiry going, and
//! hands its session events to the board's event thread (NAT logging, hot backup). A
//! board without interfaces runs its workers without packets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, bounded};
use dataplane::Engine;
use dataplane::config::EngineConfig;
use dataplane::counters::WorkerCounters;
use dataplane::engine::SubscriberView;
use dataplane::nat::events::{BlockRecord, SessionEvent, SessionRecord};

pub use crate::config::Interfaces;
use crate::config::{PacketIo, PollMode, XdpMode};
use crate::metrics::Gauges;
use dataplane::handoff::Mailbox;
use dataplane::io::af_packet::{BATCH, PacketRing, PacketTx, RingOptions, wait_any};
use dataplane::io::xdp::{Steering, rx_queues};
use dataplane::io::xsk::XskPair;
use dataplane::{Egress, Frame, VecSink, Verdict};

/// Which sessions to show (`display sessions ...`).
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

pub enum Control {
    Sessions(SessionFilter, Sender<Vec<SessionRecord>>),
    Subscribers(Sender<Vec<SubscriberView>>),
    /// A new engine configuration; sessions of the named instances (unchanged ones) move
    /// over. Answers with how many sessions were kept.
    Reconfigure(Box<EngineConfig>, Vec<String>, Sender<Result<usize, String>>),
    /// State from the peer board: blocks first, then sessions. Answers with how many of
    /// each were refused.
    Install(Vec<BlockRecord>, Vec<SessionRecord>, Sender<(usize, usize)>),
    /// Sessions the peer board deleted. Answers with how many were found.
    Remove(Vec<SessionRecord>, Sender<usize>),
    Stop,
}

struct Worker {
    tx: Sender<Control>,
    counters: Arc<WorkerCounters>,
    thread: JoinHandle<()>,
}

/// The workers of one slot.
pub struct Board {
    pub slot: u32,
    workers: Vec<Worker>,
    pub gauges: Arc<Gauges>,
    pub config: EngineConfig,
    events_stop: Arc<AtomicBool>,
    events_thread: Option<JoinHandle<()>>,
    pub pinned: usize,
    /// How packets move, in words (for the log and `display`).
    pub io: String,
    handle: BoardHandle,
}

/// What other threads (hot backup) may do with a running board: reach its workers,
/// start and stop its forwarding. Cloned freely.
#[derive(Clone)]
pub struct BoardHandle {
    txs: Vec<Sender<Control>>,
    active: Arc<AtomicBool>,
    /// The XDP program on each interface (AF_XDP boards); cleared after the workers
    /// stopped, which detaches it.
    steering: Arc<std::sync::Mutex<Vec<Steering>>>,
    announce: Option<Arc<crate::announce::Announce>>,
    /// Port block size of each instance: which worker owns a port.
    block_sizes: Arc<std::sync::RwLock<Vec<u16>>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Moves the sessions of `keep` instances from `old` to `new` (blocks first).
fn carry_over(
    old: &Engine,
    old_cfg: &EngineConfig,
    new: &mut Engine,
    new_cfg: &EngineConfig,
    keep: &[String],
) -> usize {
    let map = |inst: u8| -> Option<u8> {
        let name = &old_cfg.instances.get(inst as usize)?.name;
        if !keep.contains(name) {
            return None;
        }
        new_cfg.instances.iter().position(|i| &i.name == name).map(|i| i as u8)
    };
    let mut kept = 0;
    for s in old.subscribers() {
        let Some(inst) = map(s.inst) else { continue };
        for mut b in s.block_records() {
            b.inst = inst;
            let _ = new.install_block(&b);
        }
    }
    for mut r in old.sessions() {
        let Some(inst) = map(r.inst) else { continue };
        r.inst = inst;
        if new.install_session(&r).is_ok() {
            kept += 1;
        }
    }
    kept
}

/// A worker's packet I/O.
enum Port {
    /// AF_XDP sockets on one RX queue of both interfaces.
    Xdp(Box<XskPair>, PollMode),
    /// AF_PACKET: receive rings (none for a worker of an AF_XDP board that has no RX
    /// queue of its own: it only processes hand-offs) and transmit sockets.
    Packet { rings: Option<(PacketRing, PacketRing)>, sw: PacketTx, inet: PacketTx },
}

impl Port {
    /// Waits up to `ms` for frames (a transmit-only port has nothing to wait on; it
    /// naps only when the last round found no work).
    fn wait(&self, ms: i32, idle: bool) {
        match self {
            Port::Xdp(x, mode) => x.wait(*mode, ms),
            Port::Packet { rings: Some((a, b)), .. } => {
                let _ = wait_any(&[a, b], ms);
            }
            Port::Packet { rings: None, .. } => {
                if idle {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }

    /// Receives what is waiting on both sides, in batches: `each` processes a batch in
    /// place and fills in its verdicts; forwarded frames are then sent. Returns the
    /// number of frames received.
    fn receive(&mut self, mut each: impl FnMut(&mut [Frame], &mut [Verdict])) -> usize {
        let mut n = 0;
        match self {
            Port::Xdp(x, _) => {
                for from in [Egress::Softwire, Egress::Internet] {
                    for _ in 0..8 {
                        let got = x.receive(from, &mut each);
                        n += got;
                        if got == 0 {
                            break;
                        }
                    }
                }
            }
            Port::Packet { rings: Some((a, b)), sw, inet } => {
                let mut verdicts = [Verdict::Pass; BATCH];
                for ring in [a, b] {
                    loop {
                        let got = ring.recv_block(|frames| {
                            let m = frames.len();
                            each(frames, &mut verdicts[..m]);
                            send_forwarded(frames, &verdicts[..m], sw, inet);
                        });
                        n += got;
                        if got == 0 {
                            break;
                        }
                    }
                }
            }
            Port::Packet { rings: None, .. } => {}
        }
        n
    }

    /// Sends the forwarded frames of a batch that is not in this port's own buffers.
    fn send_batch(&mut self, frames: &[Frame], verdicts: &[Verdict]) {
        match self {
            Port::Xdp(x, _) => {
                for (f, v) in frames.iter().zip(verdicts) {
                    if let Verdict::Forward(e) = v {
                        x.send_copy(*e, f.bytes());
                    }
                }
            }
            Port::Packet { sw, inet, .. } => send_forwarded(frames, verdicts, sw, inet),
        }
    }

    /// Sends one frame made on the side.
    fn send(&mut self, to: Egress, frame: &[u8]) {
        match self {
            Port::Xdp(x, _) => {
                x.send_copy(to, frame);
            }
            Port::Packet { sw, inet, .. } => {
                let _ = if to == Egress::Softwire { sw } else { inet }.send_batch(&[frame]);
            }
        }
    }

    fn flush(&mut self) {
        if let Port::Xdp(x, _) = self {
            x.flush();
        }
    }
}

/// Sends the forwarded frames of a batch over AF_PACKET, one call per side.
fn send_forwarded(frames: &[Frame], verdicts: &[Verdict], tx_sw: &PacketTx, tx_in: &PacketTx) {
    let mut out_sw: arrayvec::ArrayVec<&[u8], BATCH> = arrayvec::ArrayVec::new();
    let mut out_in: arrayvec::ArrayVec<&[u8], BATCH> = arrayvec::ArrayVec::new();
    for (f, v) in frames.iter().zip(verdicts) {
        match v {
            Verdict::Forward(Egress::Softwire) => out_sw.push(f.bytes()),
            Verdict::Forward(Egress::Internet) => out_in.push(f.bytes()),
            _ => {}
        }
    }
    let _ = tx_sw.send_batch(&out_sw);
    let _ = tx_in.send_batch(&out_in);
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
fn hand_over(m: &Mailbox, c: &WorkerCounters, to: u16, frame: &[u8], hint: Option<u16>) {
    if m.send(to, frame, hint).is_err() {
        c.inc(dataplane::counters::Counter::DropHandoffFull);
    }
}

/// PACKET_FANOUT group of a board's side (unique per process and slot in a namespace).
fn fanout_group(slot: u32, side: u16) -> u16 {
    ((std::process::id() as u16).wrapping_mul(4) ^ ((slot as u16) << 10)).wrapping_add(side)
}

struct WorkerCtx {
    id: u16,
    /// False while the board is standby: frames are not the board's to forward.
    active: Arc<AtomicBool>,
    seed: u64,
    cfg: EngineConfig,
    gauges: Arc<Gauges>,
    events_out: Sender<Receiver<SessionEvent>>,
}

/// Answers one control request; false when the worker must stop.
fn control(engine: &mut Engine, ctx: &mut WorkerCtx, c: Control) -> bool {
    match c {
        Control::Stop => return false,
        Control::Sessions(f, reply) => {
            let _ = reply.send(engine.sessions().into_iter().filter(|r| f.matches(r)).collect());
        }
        Control::Subscribers(reply) => {
            let _ = reply.send(engine.subscribers());
        }
        Control::Reconfigure(new_cfg, keep, reply) => {
            match Engine::with_owners(&new_cfg, ctx.id, ctx.seed, engine.owners()) {
                Ok((mut fresh, events)) => {
                    fresh.set_clock(now_ms());
                    let kept = carry_over(engine, &ctx.cfg, &mut fresh, &new_cfg, &keep);
                    fresh.release_claims_of(engine);
                    let (sw, inet) = (engine.softwire_l2(), engine.internet_l2());
                    fresh.set_l2(sw, inet);
                    *engine = fresh;
                    ctx.cfg = *new_cfg;
                    let _ = ctx.events_out.send(events);
                    let _ = reply.send(Ok(kept));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
        Control::Install(blocks, sessions, reply) => {
            engine.set_clock(now_ms());
            let bad_blocks = blocks.iter().filter(|b| engine.install_block(b).is_err()).count();
            let bad_sessions = sessions.iter().filter(|r| engine.install_session(r).is_err()).count();
            let _ = reply.send((bad_blocks, bad_sessions));
        }
        Control::Remove(sessions, reply) => {
            let _ = reply.send(sessions.iter().filter(|r| engine.remove_session(r)).count());
        }
    }
    true
}

fn housekeeping(engine: &mut Engine, ctx: &WorkerCtx) {
    engine.set_clock(now_ms());
    engine.expire(4096);
    ctx.gauges.sessions[ctx.id as usize].store(engine.session_count() as u64, Ordering::Relaxed);
    ctx.gauges.subscribers[ctx.id as usize].store(engine.subscriber_count() as u64, Ordering::Relaxed);
}

fn worker_loop(mut engine: Engine, mut ctx: WorkerCtx, rx: Receiver<Control>) {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => {
                if !control(&mut engine, &mut ctx, c) {
                    return;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        housekeeping(&mut engine, &ctx);
    }
}

/// Opens the AF_PACKET port of a worker: with several workers, each has its own rings
/// in a fanout group per side, and what lands on the wrong worker goes to its owner
/// through the handoff mesh.
fn packet_port(io: &Interfaces, slot: u32, workers: usize, receive: bool) -> std::io::Result<Port> {
    let fan = |side| if workers > 1 { Some(fanout_group(slot, side)) } else { None };
    let rings = if receive {
        Some((
            PacketRing::open(&io.softwire, RingOptions { fanout: fan(0), ..RingOptions::default() })?,
            PacketRing::open(&io.internet, RingOptions { fanout: fan(1), ..RingOptions::default() })?,
        ))
    } else {
        None
    };
    Ok(Port::Packet { rings, sw: PacketTx::open(&io.softwire)?, inet: PacketTx::open(&io.internet)? })
}

/// The packet loop of a worker: receive a batch, process it in place, transmit what is
/// forwarded, hand the others' frames over; between batches, control requests.
fn worker_io_loop(
    mut engine: Engine,
    mut ctx: WorkerCtx,
    rx: Receiver<Control>,
    io: Interfaces,
    mut port: Port,
    mailbox: Mailbox,
) {
    let hops = crate::nexthop::NextHops::new(&io.softwire, &io.internet);
    let (l2_sw, l2_in) = hops.resolve();
    engine.set_l2(l2_sw, l2_in);
    let mut last_resolve = std::time::Instant::now();
    let mut sink = VecSink::default();
    let mut verdicts = [Verdict::Pass; BATCH];
    let counters = engine.counters();
    let mut idle = false;
    loop {
        while let Ok(c) = rx.try_recv() {
            if !control(&mut engine, &mut ctx, c) {
                return;
            }
        }
        if last_resolve.elapsed() > Duration::from_millis(200) {
            let (a, b) = hops.resolve();
            engine.set_l2(a, b);
            last_resolve = std::time::Instant::now();
        }
        engine.set_clock(now_ms());
        port.wait(10, idle);
        let active = ctx.active.load(Ordering::Relaxed);
        let mut work = port.receive(|frames, verdicts| {
            if !active {
                // AF_PACKET sees frames whatever the role (AF_XDP is told by the XDP
                // program's flag): a standby forwards nothing.
                verdicts.fill(Verdict::Drop(dataplane::counters::Counter::DropStandby));
                counters.add(dataplane::counters::Counter::DropStandby, frames.len() as u64);
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
        for (w, f, hint) in sink.handed.drain(..) {
            hand_over(&mailbox, &counters, w, &f, hint);
        }
        // What was handed over in this round leaves now (unless its owner is behind:
        // then the batch fills up first, see `handoff`).
        mailbox.flush();
        // Frames made on the side: outer fragments, released IPv4 fragments.
        for (e, f) in sink.emitted.drain(..) {
            port.send(e, &f);
        }
        port.flush();
        idle = work == 0;
        housekeeping(&mut engine, &ctx);
    }
}

/// Attaches the XDP program to both interfaces and tells it what the board owns.
fn attach_xdp(io: &Interfaces, cfg: &EngineConfig) -> std::io::Result<[Steering; 2]> {
    let mode = match io.packet_io {
        PacketIo::AfXdp(m) => m,
        _ => XdpMode::Auto,
    };
    let endpoints: Vec<[u8; 16]> = cfg.instances.iter().map(|i| i.endpoint).collect();
    let pools: Vec<_> = cfg.instances.iter().flat_map(|i| i.pool.iter().copied()).collect();
    let mut sides = [Steering::attach(&io.softwire, mode)?, Steering::attach(&io.internet, mode)?];
    for s in &mut sides {
        s.set_targets(&endpoints, &pools)?;
    }
    Ok(sides)
}

/// The ports of a board's workers (None: a worker without packets), the XDP programs
/// behind them, and a description. AF_XDP unless the configuration says AF_PACKET;
/// `packet-io auto` falls back to AF_PACKET where the program cannot attach. A port that
/// cannot be opened leaves its worker without packets, said loudly, as before.
type Ports = (Vec<Option<Port>>, Vec<Steering>, String);

fn open_ports(io: &Interfaces, cfg: &EngineConfig, slot: u32, n: usize, active: bool) -> Result<Ports, String> {
    let sides = format!("{} (softwire) and {} (internet)", io.softwire, io.internet);
    let xdp = match io.packet_io {
        PacketIo::AfPacket => None,
        _ => match attach_xdp(io, cfg) {
            Ok(s) => Some(s),
            Err(e) if io.packet_io == PacketIo::Auto => {
                eprintln!("aftrd: slot {slot}: AF_XDP not available on {sides} ({e}); using AF_PACKET");
                None
            }
            Err(e) => return Err(format!("AF_XDP on {sides}: {e}")),
        },
    };
    let warn = |id: usize, e: std::io::Error| {
        eprintln!("aftrd: worker {id}: cannot open {sides}: {e}; running without packets");
        None
    };
    let unopened = |ports: &[Option<Port>]| {
        ports.iter().all(|p| p.is_none()).then(|| format!("no packets: {sides} cannot be opened"))
    };
    let Some(mut steering) = xdp else {
        let ports: Vec<_> =
            (0..n).map(|id| packet_port(io, slot, n, true).map_or_else(|e| warn(id, e), Some)).collect();
        let desc = unopened(&ports).unwrap_or_else(|| format!("AF_PACKET rings on {sides}"));
        return Ok((ports, Vec::new(), desc));
    };
    // One worker per RX queue receives (veth has one); the others process hand-offs.
    let queues = (rx_queues(&io.softwire).min(rx_queues(&io.internet)) as usize).min(n);
    let mut ports = Vec::new();
    for id in 0..n {
        let port = if id < queues {
            XskPair::open(&io.softwire, &io.internet, id as u32).and_then(|x| {
                let (a, b) = x.fds();
                steering[0].register(id as u32, a)?;
                steering[1].register(id as u32, b)?;
                Ok(Port::Xdp(Box::new(x), io.poll))
            })
        } else {
            packet_port(io, slot, n, false)
        };
        ports.push(port.map_or_else(|e| warn(id, e), Some));
    }
    for s in &mut steering {
        s.set_active(active).map_err(|e| format!("XDP on {}: {e}", s.ifname()))?;
    }
    let desc = format!(
        "AF_XDP ({} XDP, {} poll) on {sides}; {queues} of {n} workers on RX queues",
        steering[0].mode(),
        if io.poll == PollMode::Busy { "busy" } else { "blocking" }
    );
    Ok((ports, steering.into(), desc))
}

impl BoardHandle {
    fn ask<T>(&self, make: impl Fn(Sender<T>) -> Control) -> Vec<T> {
        let mut out = Vec::new();
        for w in &self.txs {
            let (tx, rx) = bounded(1);
            if w.send(make(tx)).is_ok()
                && let Ok(v) = rx.recv_timeout(Duration::from_secs(5))
            {
                out.push(v);
            }
        }
        out
    }

    /// The worker that owns external `port` of instance `inst` (the owner of its port
    /// block, which holds the block's subscriber too).
    fn worker_of(&self, inst: u8, port: u16) -> usize {
        let sizes = self.block_sizes.read().unwrap_or_else(|e| e.into_inner());
        let size = sizes.get(inst as usize).copied().unwrap_or(1);
        dataplane::nat::ports::worker_of_port(size, self.txs.len() as u16, port) as usize
    }

    /// Installs blocks and sessions (from the peer board), each on the worker that owns
    /// its port block (and so its subscriber). Returns how many blocks and sessions were
    /// refused.
    pub fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> (usize, usize) {
        let n = self.txs.len() as u16;
        let mut per: Vec<(Vec<BlockRecord>, Vec<SessionRecord>)> = (0..n).map(|_| (Vec::new(), Vec::new())).collect();
        for b in blocks {
            per[self.worker_of(b.inst, b.first_port)].0.push(b);
        }
        for r in sessions {
            per[self.worker_of(r.inst, r.ext_port)].1.push(r);
        }
        let mut refused = (0, 0);
        for (w, (b, s)) in self.txs.iter().zip(per) {
            let (tx, rx) = bounded(1);
            let total = (b.len(), s.len());
            if w.send(Control::Install(b, s, tx)).is_err() {
                refused = (refused.0 + total.0, refused.1 + total.1);
                continue;
            }
            let (x, y) = rx.recv_timeout(Duration::from_secs(10)).unwrap_or(total);
            refused = (refused.0 + x, refused.1 + y);
        }
        refused
    }

    pub fn sessions(&self, f: &SessionFilter) -> Vec<SessionRecord> {
        self.ask(|tx| Control::Sessions(f.clone(), tx)).into_iter().flatten().collect()
    }

    pub fn subscribers(&self) -> Vec<SubscriberView> {
        self.ask(Control::Subscribers).into_iter().flatten().collect()
    }

    /// Removes sessions the peer deleted, each on its worker; returns how many were found.
    pub fn remove(&self, sessions: Vec<SessionRecord>) -> usize {
        let n = self.txs.len() as u16;
        let mut per: Vec<Vec<SessionRecord>> = (0..n).map(|_| Vec::new()).collect();
        for r in sessions {
            per[self.worker_of(r.inst, r.ext_port)].push(r);
        }
        let mut found = 0;
        for (w, s) in self.txs.iter().zip(per) {
            let (tx, rx) = bounded(1);
            if !s.is_empty() && w.send(Control::Remove(s, tx)).is_ok() {
                found += rx.recv_timeout(Duration::from_secs(10)).unwrap_or(0);
            }
        }
        found
    }

    /// Every session and port block of the board (a bulk sync).
    pub fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        let subs = self.subscribers();
        let blocks = subs.iter().flat_map(|s| s.block_records()).collect();
        (self.sessions(&SessionFilter::default()), blocks)
    }

    /// Whether the board forwards.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Starts or stops forwarding: the workers' flag, the XDP programs' flag, and on
    /// start the announcement of the addresses (decision 0007).
    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
        for s in self.steering.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
            if let Err(e) = s.set_active(on) {
                eprintln!("aftrd: XDP on {}: {e}", s.ifname());
            }
        }
        if let Some(a) = &self.announce {
            if on { a.claim() } else { a.release() }
        }
    }
}

impl ha_sync::node::Local for BoardHandle {
    fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> (usize, usize) {
        BoardHandle::install(self, blocks, sessions)
    }
    fn remove(&self, sessions: Vec<SessionRecord>) -> usize {
        BoardHandle::remove(self, sessions)
    }
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        BoardHandle::table(self)
    }
    fn set_active(&self, on: bool) {
        BoardHandle::set_active(self, on)
    }
}

impl Board {
    /// Starts the workers of `slot` on `cores`; events go to `on_event`.
    pub fn start(
        slot: u32,
        cfg: EngineConfig,
        cores: &[u32],
        io: Option<Interfaces>,
        seed: u64,
        start_active: bool,
        on_event: impl FnMut(SessionEvent) + Send + 'static,
    ) -> Result<Board, String> {
        let n = cfg.workers as usize;
        let active = Arc::new(AtomicBool::new(start_active));
        let mut mailboxes = dataplane::handoff::mesh(n as u16, 1024, 2048).into_iter();
        let gauges = Arc::new(Gauges {
            sessions: (0..n).map(|_| AtomicU64::new(0)).collect(),
            subscribers: (0..n).map(|_| AtomicU64::new(0)).collect(),
        });
        let available: Vec<usize> =
            core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
        let (ev_tx, ev_rx) = bounded::<Receiver<SessionEvent>>(64);
        let (mut ports, steering, io_desc) = match &io {
            Some(io) => open_ports(io, &cfg, slot, n, start_active)?,
            None => ((0..n).map(|_| None).collect(), Vec::new(), "no packet interfaces configured".to_string()),
        };
        let mut workers = Vec::new();
        let mut pinned = 0;
        // The workers' claims on subscribers: each holds those whose frames reach it.
        let owners = Arc::new(dataplane::nat::owners::Owners::with_capacity(n * cfg.max_subscribers as usize));
        for id in 0..n as u16 {
            let (engine, events) = Engine::with_owners(&cfg, id, seed, owners.clone()).map_err(|e| e.to_string())?;
            let _ = ev_tx.send(events);
            let counters = engine.counters();
            let (tx, rx) = bounded(64);
            let core = cores.get(id as usize).copied().filter(|c| available.contains(&(*c as usize)));
            pinned += core.is_some() as usize;
            let ctx = WorkerCtx {
                id,
                active: active.clone(),
                seed,
                cfg: cfg.clone(),
                gauges: gauges.clone(),
                events_out: ev_tx.clone(),
            };
            let io = io.clone();
            let port = ports[id as usize].take();
            let mailbox = mailboxes.next().expect("one mailbox per worker");
            let thread = std::thread::Builder::new()
                .name(format!("aftr-slot{slot}-w{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: core as usize });
                    }
                    match (io, port) {
                        (Some(io), Some(port)) => worker_io_loop(engine, ctx, rx, io, port, mailbox),
                        _ => worker_loop(engine, ctx, rx),
                    }
                })
                .map_err(|e| e.to_string())?;
            workers.push(Worker { tx, counters, thread });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let events_thread = std::thread::Builder::new()
            .name(format!("aftr-slot{slot}-events"))
            .spawn(move || {
                let mut on_event = on_event;
                let mut rings: Vec<Receiver<SessionEvent>> = Vec::new();
                while !s2.load(Ordering::Relaxed) {
                    rings.extend(ev_rx.try_iter());
                    let mut any = false;
                    // Rings of replaced engines are dropped once drained and closed.
                    rings.retain(|r| {
                        for _ in 0..4096 {
                            match r.try_recv() {
                                Ok(e) => {
                                    any = true;
                                    on_event(e);
                                }
                                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
                            }
                        }
                        true
                    });
                    if !any {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let handle = BoardHandle {
            txs: workers.iter().map(|w| w.tx.clone()).collect(),
            active,
            steering: Arc::new(std::sync::Mutex::new(steering)),
            announce: io.as_ref().map(|i| Arc::new(crate::announce::Announce::new(i, &cfg))),
            block_sizes: Arc::new(std::sync::RwLock::new(cfg.instances.iter().map(|i| i.port_block_size).collect())),
        };
        Ok(Board {
            slot,
            workers,
            gauges,
            config: cfg,
            events_stop: stop,
            events_thread: Some(events_thread),
            pinned,
            io: io_desc,
            handle,
        })
    }

    /// What the XDP program on each interface (softwire, Internet) did; empty on an
    /// AF_PACKET board.
    pub fn steering_stats(&self) -> Vec<dataplane::io::xdp::SteeringStats> {
        self.handle.steering.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|s| s.stats()).collect()
    }

    pub fn handle(&self) -> BoardHandle {
        self.handle.clone()
    }

    pub fn counters(&self) -> Vec<Arc<WorkerCounters>> {
        self.workers.iter().map(|w| w.counters.clone()).collect()
    }

    /// Installs blocks and sessions (from the peer board), each on the worker that owns
    /// its ports (and so its subscriber). Returns how many were refused.
    pub fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> (usize, usize) {
        self.handle.install(blocks, sessions)
    }

    pub fn sessions(&self, f: &SessionFilter) -> Vec<SessionRecord> {
        self.handle.sessions(f)
    }

    pub fn subscribers(&self) -> Vec<SubscriberView> {
        self.handle.subscribers()
    }

    /// Applies a new engine configuration; instances whose settings did not change keep
    /// their sessions (when the number of workers stays the same). Returns sessions kept.
    pub fn reconfigure(&mut self, new: EngineConfig) -> Result<usize, String> {
        if new == self.config {
            return Ok(self.gauges.sessions.iter().map(|g| g.load(Ordering::Relaxed) as usize).sum());
        }
        if new.workers != self.config.workers {
            return Err("changing the number of worker cores needs a restart of the board".into());
        }
        dataplane::engine::validate(&new).map_err(|e| e.to_string())?;
        let keep: Vec<String> =
            new.instances.iter().filter(|i| self.config.instances.contains(i)).map(|i| i.name.clone()).collect();
        let results = self.handle.ask(|tx| Control::Reconfigure(Box::new(new.clone()), keep.clone(), tx));
        let mut kept = 0;
        for r in results {
            kept += r?;
        }
        *self.handle.block_sizes.write().unwrap_or_else(|e| e.into_inner()) =
            new.instances.iter().map(|i| i.port_block_size).collect();
        self.config = new;
        Ok(kept)
    }

    pub fn stop(mut self) {
        for w in &self.workers {
            let _ = w.tx.send(Control::Stop);
        }
        for w in self.workers.drain(..) {
            let _ = w.thread.join();
        }
        // The sockets are closed: take the programs off the interfaces.
        self.handle.steering.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(a) = &self.handle.announce
            && self.handle.is_active()
        {
            a.release();
        }
        self.events_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.events_thread.take() {
            let _ = t.join();
        }
    }
}
