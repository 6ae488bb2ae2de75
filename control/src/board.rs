//! A running board: the worker threads of one slot, each owning its engine, and the
//! control requests they answer between ticks.
//!
//! Workers are pinned to the slot's cores (`worker-cores`) when this machine has them.
//! A worker answers control requests (sessions, subscribers, reconfiguration, stop),
//! keeps its clock and amortised expiry going, and hands its session events to the
//! board's event thread (NAT logging now, hot backup later). Until the I/O layer lands,
//! workers have no interfaces attached: the control plane is complete, packets are not.

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

use crate::metrics::Gauges;

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
        for (first, size) in &s.blocks {
            let b = dataplane::nat::events::BlockRecord {
                inst,
                b4: s.b4,
                ext_addr: s.ext_addr,
                first_port: *first,
                size: *size,
                at: 0,
            };
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

/// Packet interfaces of a board (AF_PACKET rings; AF_XDP is the next step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    pub softwire: String,
    pub internet: String,
}

/// Sends the forwarded frames of a processed batch, one call per side, and hands the
/// others' frames to their owners.
fn transmit(
    frames: &[dataplane::Frame],
    verdicts: &[dataplane::Verdict],
    tx_sw: &dataplane::io::af_packet::PacketTx,
    tx_in: &dataplane::io::af_packet::PacketTx,
    mailbox: &dataplane::handoff::Mailbox,
    counters: &dataplane::counters::WorkerCounters,
) {
    use dataplane::io::af_packet::BATCH;
    use dataplane::{Egress, Verdict};
    let mut out_sw: arrayvec::ArrayVec<&[u8], BATCH> = arrayvec::ArrayVec::new();
    let mut out_in: arrayvec::ArrayVec<&[u8], BATCH> = arrayvec::ArrayVec::new();
    for (f, v) in frames.iter().zip(verdicts) {
        match v {
            Verdict::Forward(Egress::Softwire) => out_sw.push(f.bytes()),
            Verdict::Forward(Egress::Internet) => out_in.push(f.bytes()),
            Verdict::Handoff(w) => hand_over(mailbox, counters, *w, f.bytes(), f.hint),
            // The kernel has its own copy of what it should see (AF_PACKET does not steal
            // frames); drops are counted by the engine.
            _ => {}
        }
    }
    let _ = tx_sw.send_batch(&out_sw);
    let _ = tx_in.send_batch(&out_in);
}

/// Sends a frame to the worker that owns it; a full lane is a counted drop.
fn hand_over(
    m: &dataplane::handoff::Mailbox,
    c: &dataplane::counters::WorkerCounters,
    to: u16,
    frame: &[u8],
    hint: Option<u16>,
) {
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
        Control::Reconfigure(new_cfg, keep, reply) => match Engine::new(&new_cfg, ctx.id, ctx.seed) {
            Ok((mut fresh, events)) => {
                fresh.set_clock(now_ms());
                let kept = carry_over(engine, &ctx.cfg, &mut fresh, &new_cfg, &keep);
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
        },
        Control::Install(blocks, sessions, reply) => {
            engine.set_clock(now_ms());
            let bad_blocks = blocks.iter().filter(|b| engine.install_block(b).is_err()).count();
            let bad_sessions = sessions.iter().filter(|r| engine.install_session(r).is_err()).count();
            let _ = reply.send((bad_blocks, bad_sessions));
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

/// The packet loop of a worker that owns both interfaces: receive a block, process it
/// in place as a batch, transmit what is forwarded, between control requests.
fn worker_io_loop(
    mut engine: Engine,
    mut ctx: WorkerCtx,
    rx: Receiver<Control>,
    io: Interfaces,
    mailbox: dataplane::handoff::Mailbox,
    slot: u32,
    workers: usize,
) {
    use dataplane::io::af_packet::{BATCH, PacketRing, PacketTx, RingOptions, wait_any};
    use dataplane::{Egress, VecSink, Verdict};
    // With several workers, each has its own rings in a fanout group per side, and what
    // lands on the wrong worker goes to its owner through the handoff mesh.
    let fan = |side| if workers > 1 { Some(fanout_group(slot, side)) } else { None };
    let open = || -> std::io::Result<_> {
        Ok((
            PacketRing::open(&io.softwire, RingOptions { fanout: fan(0), ..RingOptions::default() })?,
            PacketRing::open(&io.internet, RingOptions { fanout: fan(1), ..RingOptions::default() })?,
            PacketTx::open(&io.softwire)?,
            PacketTx::open(&io.internet)?,
        ))
    };
    let (mut sw, mut inet, tx_sw, tx_in) = match open() {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "aftrd: worker {}: cannot open {} / {}: {e}; running without packets",
                ctx.id, io.softwire, io.internet
            );
            return worker_loop(engine, ctx, rx);
        }
    };
    let hops = crate::nexthop::NextHops::new(&io.softwire, &io.internet);
    let (l2_sw, l2_in) = hops.resolve();
    engine.set_l2(l2_sw, l2_in);
    let mut last_resolve = std::time::Instant::now();
    let mut sink = VecSink::default();
    let mut verdicts = [Verdict::Pass; BATCH];
    let counters = engine.counters();
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
        let _ = wait_any(&[&sw, &inet], 10);
        for ring in [&mut sw, &mut inet] {
            while ring.recv_block(|frames| {
                let n = frames.len();
                engine.process_batch(frames, &mut verdicts[..n], &mut sink);
                transmit(frames, &verdicts[..n], &tx_sw, &tx_in, &mailbox, &counters);
            }) > 0
            {}
        }
        // Frames handed to this worker by the others, processed and sent as batches.
        mailbox.receive_batch(4 * BATCH, |frames| {
            let n = frames.len();
            engine.process_batch(frames, &mut verdicts[..n], &mut sink);
            transmit(frames, &verdicts[..n], &tx_sw, &tx_in, &mailbox, &counters);
        });
        for (w, f, hint) in sink.handed.drain(..) {
            hand_over(&mailbox, &counters, w, &f, hint);
        }
        // Frames made on the side: outer fragments, released IPv4 fragments.
        for (e, f) in sink.emitted.drain(..) {
            let tx = if e == Egress::Softwire { &tx_sw } else { &tx_in };
            let _ = tx.send_batch(&[&f]);
        }
        housekeeping(&mut engine, &ctx);
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
        on_event: impl FnMut(SessionEvent) + Send + 'static,
    ) -> Result<Board, String> {
        let n = cfg.workers as usize;
        let mut mailboxes = dataplane::handoff::mesh(n as u16, 1024, 2048).into_iter();
        let gauges = Arc::new(Gauges {
            sessions: (0..n).map(|_| AtomicU64::new(0)).collect(),
            subscribers: (0..n).map(|_| AtomicU64::new(0)).collect(),
        });
        let available: Vec<usize> =
            core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
        let (ev_tx, ev_rx) = bounded::<Receiver<SessionEvent>>(64);
        let mut workers = Vec::new();
        let mut pinned = 0;
        for id in 0..n as u16 {
            let (engine, events) = Engine::new(&cfg, id, seed).map_err(|e| e.to_string())?;
            let _ = ev_tx.send(events);
            let counters = engine.counters();
            let (tx, rx) = bounded(64);
            let core = cores.get(id as usize).copied().filter(|c| available.contains(&(*c as usize)));
            pinned += core.is_some() as usize;
            let ctx = WorkerCtx { id, seed, cfg: cfg.clone(), gauges: gauges.clone(), events_out: ev_tx.clone() };
            let io = io.clone();
            let mailbox = mailboxes.next().expect("one mailbox per worker");
            let thread = std::thread::Builder::new()
                .name(format!("aftr-slot{slot}-w{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: core as usize });
                    }
                    match io {
                        Some(io) => worker_io_loop(engine, ctx, rx, io, mailbox, slot, n),
                        None => worker_loop(engine, ctx, rx),
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
        Ok(Board { slot, workers, gauges, config: cfg, events_stop: stop, events_thread: Some(events_thread), pinned })
    }

    pub fn counters(&self) -> Vec<Arc<WorkerCounters>> {
        self.workers.iter().map(|w| w.counters.clone()).collect()
    }

    fn ask<T>(&self, make: impl Fn(Sender<T>) -> Control) -> Vec<T> {
        let mut out = Vec::new();
        for w in &self.workers {
            let (tx, rx) = bounded(1);
            if w.tx.send(make(tx)).is_ok()
                && let Ok(v) = rx.recv_timeout(Duration::from_secs(5))
            {
                out.push(v);
            }
        }
        out
    }

    /// Installs blocks and sessions (from the peer board), each on the worker that owns
    /// its subscriber. Returns how many blocks and sessions were refused.
    pub fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> (usize, usize) {
        let n = self.workers.len() as u16;
        let mut per: Vec<(Vec<BlockRecord>, Vec<SessionRecord>)> = (0..n).map(|_| (Vec::new(), Vec::new())).collect();
        for b in blocks {
            per[dataplane::engine::owner_of_b4(&b.b4, n) as usize].0.push(b);
        }
        for r in sessions {
            per[dataplane::engine::owner_of_b4(&r.b4, n) as usize].1.push(r);
        }
        let mut refused = (0, 0);
        for (w, (b, s)) in self.workers.iter().zip(per) {
            let (tx, rx) = bounded(1);
            let total = (b.len(), s.len());
            if w.tx.send(Control::Install(b, s, tx)).is_err() {
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
        let results = self.ask(|tx| Control::Reconfigure(Box::new(new.clone()), keep.clone(), tx));
        let mut kept = 0;
        for r in results {
            kept += r?;
        }
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
        self.events_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.events_thread.take() {
            let _ = t.join();
        }
    }
}
