//! A board: the workers of one slot with their shared claims and hand-off mesh, the
//! thread that drains their session events and keeps their next hops, and the handle
//! through which the daemon and hot backup drive them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};

use crate::config::{EgressL2, EngineConfig, PoolShares};
use crate::counters::WorkerCounters;
use crate::engine::{Engine, SubscriberView};
use crate::fib::FibHandle;
use crate::io::port::{Ports, targets};
use crate::io::xdp::{Steering, SteeringStats};
use crate::nat::events::{BlockRecord, Refused, SessionEvent, SessionRecord, SweepKeys};
use crate::nat::owners::Owners;
use crate::worker::{Carried, Chunk, Command, Cursor, Gauges, PeerLink, SessionFilter, Spec, Worker};

/// Records per snapshot chunk: a worker answers one chunk between two rounds.
pub const CHUNK: usize = 16_384;

/// Reads both sides' next hops (towards the B4s, towards the Internet) from the kernel.
pub type NextHopSource = Box<dyn FnMut() -> (EgressL2, EgressL2) + Send>;
/// Who answers for the board's addresses on its segments (ARP/ND, announcements after
/// a takeover): `control`'s announcer.
pub trait Neighbours: Send + Sync {
    /// The board is active for these locations now (bits by index into the
    /// configuration's `locations`; 0: standby for all, it forwards nothing).
    fn set_active(&self, locations: u64);
    /// The board stays active for `locations` after both boards were: the other may
    /// have drawn the neighbours and the routers to itself, so tell them again.
    fn reannounce(&self, locations: u64);
    /// The board's endpoints and pools are now those of `cfg` (a commit).
    fn set_addresses(&self, cfg: &EngineConfig);
}

/// A seed for a board (its table hash keys and its workers' port generators) from the
/// kernel's random source: nothing outside the machine can know or guess it (decision
/// 0014; RFC 6056 section 3.3.1, RFC 6888 REQ-15).
pub fn random_seed() -> std::io::Result<u64> {
    use rand::TryRng;
    rand::rngs::SysRng.try_next_u64().map_err(|e| std::io::Error::other(e.to_string()))
}

/// What a board starts with.
pub struct BoardSpec {
    pub slot: u32,
    pub cfg: EngineConfig,
    /// `worker-cores`: the core of each worker (those this machine lacks stay unpinned).
    pub cores: Vec<u32>,
    /// The workers' ports (see [`Ports::open`]).
    pub ports: Ports,
    /// The board's secret (see [`random_seed`]).
    pub seed: u64,
    /// Forward from the start, for every location (a board without hot backup), or
    /// wait for the roles.
    pub active: bool,
    /// Polled every 200 ms off the workers' cores; None for a board without packets.
    pub next_hops: Option<NextHopSource>,
    /// The forwarding table towards the Internet (decision 0015), which the workers read;
    /// None: the one next hop of `next_hops`.
    pub fib: Option<FibHandle>,
    /// Every session event of every worker, in order per worker, in batches (up to
    /// [`EVENT_BATCH`] of one worker), each with whether the board was active for the
    /// event's location when it was taken (a standby's events are its installs' and
    /// expiries': hot backup wants them, NAT logging does not).
    pub on_events: OnEvents,
    /// Told of every change of role and of addresses.
    pub neighbours: Option<Arc<dyn Neighbours>>,
}

/// The workers of one slot.
pub struct Board {
    pub slot: u32,
    workers: Vec<Worker>,
    pub gauges: Arc<Gauges>,
    pub config: EngineConfig,
    house_stop: Arc<AtomicBool>,
    house: Option<JoinHandle<()>>,
    /// Workers pinned to a core.
    pub pinned: usize,
    /// How packets move, in words (for the log and `display`).
    pub io: String,
    handle: BoardHandle,
}

/// What other threads (hot backup, the daemon) may do with a running board: reach its
/// workers, start and stop its forwarding. Cloned freely.
#[derive(Clone)]
pub struct BoardHandle {
    txs: Vec<Sender<Command>>,
    /// The locations the board is active for (bits by index).
    active: Arc<AtomicU64>,
    /// The location of each external address (the events' locations).
    shares: Arc<RwLock<PoolShares>>,
    /// The peer board, for softwire frames of its locations.
    peer: Arc<PeerLink>,
    /// The XDP program on each interface (AF_XDP boards); cleared after the workers
    /// stopped, which detaches it.
    steering: Arc<Mutex<Vec<Steering>>>,
    neighbours: Option<Arc<dyn Neighbours>>,
    /// Port block size of each instance: which worker owns a port.
    block_sizes: Arc<RwLock<Vec<u16>>>,
    /// Each worker's sessions, subscribers and rounds.
    gauges: Arc<Gauges>,
    /// Each worker's counters.
    counters: Vec<Arc<WorkerCounters>>,
    /// The Internet side's next hop is resolved (a default gateway with a MAC).
    internet: Arc<AtomicBool>,
}

/// The next hops as the board's thread polls them, the last seen, and whether the
/// Internet side has one.
struct NextHopWatch {
    source: NextHopSource,
    l2: Option<(EgressL2, EgressL2)>,
    fib: Option<FibHandle>,
    internet: Arc<AtomicBool>,
    /// Since when the Internet side has had no next hop (a moment without one, as a
    /// neighbour entry is probed again on a loaded host, is no reason to hand over).
    missing_since: Option<Instant>,
}

/// Where a board's session events go, a batch at a time: each with whether the board
/// was active for its location.
pub type OnEvents = Box<dyn FnMut(&[(SessionEvent, bool)]) + Send>;

/// Session events of one worker handed on at a time at most.
pub const EVENT_BATCH: usize = 4096;

/// The Internet side without a next hop this long makes the board unfit.
const NO_NEXT_HOP: Duration = Duration::from_secs(1);

impl Board {
    /// Starts the workers of a slot, one per `cfg.workers`.
    pub fn start(spec: BoardSpec) -> Result<Board, String> {
        let BoardSpec {
            slot,
            cfg,
            cores,
            ports,
            seed,
            active: start_active,
            mut next_hops,
            fib,
            on_events,
            neighbours,
        } = spec;
        let n = cfg.workers as usize;
        let active = Arc::new(AtomicU64::new(if start_active { every_location(&cfg) } else { 0 }));
        let shares = Arc::new(RwLock::new(PoolShares::of(&cfg)));
        let peer = Arc::new(PeerLink::default());
        let mut mailboxes = crate::handoff::mesh(n as u16, 1024, 2048).into_iter();
        let gauges = Arc::new(Gauges::new(n));
        gauges.set_pools(&cfg);
        let available: Vec<usize> =
            core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
        let (ev_tx, ev_rx) = bounded::<Receiver<SessionEvent>>(64);
        let Ports { ports, steering, description } = ports;
        let mut ports = ports.into_iter();
        let l2 = next_hops.as_mut().map(|f| f());
        // Without a next-hop source (no interfaces) nothing is missing.
        let internet = Arc::new(AtomicBool::new(l2.is_none_or(|(_, inet)| internet_resolved(&fib, &inet))));
        // The workers' claims on subscribers: each holds those whose frames reach it.
        let owners = Arc::new(Owners::with_capacity(n * cfg.max_subscribers as usize));
        let mut workers = Vec::new();
        let mut pinned = 0;
        for id in 0..n as u16 {
            let (mut engine, events) =
                Engine::with_owners(&cfg, id, seed, owners.clone()).map_err(|e| e.to_string())?;
            if let Some((sw, inet)) = l2 {
                engine.set_l2(sw, inet);
            }
            engine.set_fib(fib.clone());
            let _ = ev_tx.send(events);
            let core = cores.get(id as usize).map(|&c| c as usize).filter(|c| available.contains(c));
            pinned += core.is_some() as usize;
            let spec = Spec {
                id,
                engine,
                cfg: cfg.clone(),
                seed,
                port: ports.next().flatten(),
                mailbox: mailboxes.next().expect("one mailbox per worker"),
                active: active.clone(),
                peer: peer.clone(),
                gauges: gauges.clone(),
                core,
            };
            workers.push(Worker::spawn(spec, format!("aftr-slot{slot}-w{id}")).map_err(|e| e.to_string())?);
        }
        let txs: Vec<_> = workers.iter().map(Worker::commands).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let house = {
            let (stop, txs, active_now, shares) = (stop.clone(), txs.clone(), active.clone(), shares.clone());
            let watch = next_hops.map(|source| NextHopWatch {
                source,
                l2,
                fib,
                internet: internet.clone(),
                missing_since: None,
            });
            std::thread::Builder::new()
                .name(format!("aftr-slot{slot}-events"))
                .spawn(move || housekeeping(ev_rx, on_events, watch, &txs, &stop, &active_now, &shares))
                .map_err(|e| e.to_string())?
        };
        let handle = BoardHandle {
            txs,
            active,
            shares,
            peer,
            steering: Arc::new(Mutex::new(steering)),
            neighbours,
            block_sizes: Arc::new(RwLock::new(cfg.instances.iter().map(|i| i.port_block_size).collect())),
            gauges: gauges.clone(),
            counters: workers.iter().map(Worker::counters).collect(),
            internet,
        };
        Ok(Board {
            slot,
            workers,
            gauges,
            config: cfg,
            house_stop: stop,
            house: Some(house),
            pinned,
            io: description,
            handle,
        })
    }

    /// What the XDP program on each interface (softwire, Internet) did; empty on an
    /// AF_PACKET board.
    pub fn steering_stats(&self) -> Vec<SteeringStats> {
        self.handle.steering.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|s| s.stats()).collect()
    }

    pub fn handle(&self) -> BoardHandle {
        self.handle.clone()
    }

    pub fn counters(&self) -> Vec<Arc<WorkerCounters>> {
        self.workers.iter().map(Worker::counters).collect()
    }

    /// Installs blocks and sessions from the peer board (see [`BoardHandle::install`]).
    pub fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> Refused {
        self.handle.install(blocks, sessions)
    }

    pub fn sessions(&self, f: &SessionFilter) -> Vec<SessionRecord> {
        self.handle.sessions(f)
    }

    /// Ends the sessions `f` selects (see [`BoardHandle::end_sessions`]).
    pub fn end_sessions(&self, f: &SessionFilter) -> usize {
        self.handle.end_sessions(f)
    }

    pub fn subscribers(&self) -> Vec<SubscriberView> {
        self.handle.subscribers()
    }

    /// Applies a new engine configuration to every part of the running board: each
    /// worker's engine (every session the new settings allow moves over, see
    /// [`Carried`]; counters go on), the XDP programs' endpoints and pools, the
    /// neighbours' addresses, and where ports belong. Nothing changes if it is refused.
    pub fn reconfigure(&mut self, new: EngineConfig) -> Result<Carried, String> {
        if new == self.config {
            let kept = self.gauges.sessions.iter().map(|g| g.load(Ordering::Relaxed) as usize).sum();
            return Ok(Carried { kept, ended: 0 });
        }
        if new.workers != self.config.workers {
            return Err("changing the number of worker cores needs a restart of the board".into());
        }
        crate::engine::validate(&new).map_err(|e| e.to_string())?;
        let results = self.handle.ask(|tx| Command::Reconfigure(Box::new(new.clone()), tx));
        let mut total = Carried::default();
        for r in results {
            let c = r?;
            total.kept += c.kept;
            total.ended += c.ended;
        }
        *self.handle.block_sizes.write().unwrap_or_else(|e| e.into_inner()) =
            new.instances.iter().map(|i| i.port_block_size).collect();
        for s in self.handle.steering.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
            let (endpoints, pools) = targets(&new);
            if let Err(e) = s.set_targets(&endpoints, &pools) {
                tracing::warn!("XDP on {}: {e}", s.ifname());
            }
        }
        *self.handle.shares.write().unwrap_or_else(|e| e.into_inner()) = PoolShares::of(&new);
        self.gauges.set_pools(&new);
        // A board active for all its locations (one without a peer: a paired board's
        // locations cannot change while it runs) is active for all the new ones too.
        if new.locations != self.config.locations {
            let (old_all, new_all) = (every_location(&self.config), every_location(&new));
            let all = self.handle.active.compare_exchange(old_all, new_all, Ordering::Relaxed, Ordering::Relaxed);
            if let (Ok(_), Some(n)) = (all, &self.handle.neighbours) {
                n.set_active(new_all);
            }
        }
        if let Some(n) = &self.handle.neighbours {
            n.set_addresses(&new);
        }
        self.config = new;
        Ok(total)
    }

    /// Stops the workers, takes the XDP programs off the interfaces, withdraws the
    /// addresses of an active board and drains the last events.
    pub fn stop(mut self) {
        for w in &self.workers {
            w.stop();
        }
        for w in self.workers.drain(..) {
            w.join();
        }
        // The sockets are closed: take the programs off the interfaces.
        self.handle.steering.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(n) = &self.handle.neighbours
            && self.handle.is_active()
        {
            n.set_active(0);
        }
        self.house_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.house.take() {
            let _ = t.join();
        }
    }
}

/// Every location of `cfg` (bits by index; one location when it names none).
fn every_location(cfg: &EngineConfig) -> u64 {
    u64::MAX >> (64 - cfg.locations.len().clamp(1, 64))
}

/// Whether the Internet side has a usable next hop: by the forwarding table, or the
/// one next hop's MAC without a table.
fn internet_resolved(fib: &Option<FibHandle>, inet: &EgressL2) -> bool {
    match fib {
        Some(f) => f.load().usable(),
        None => inet.dst != [0; 6],
    }
}

/// The board's own thread: drains the workers' event rings (those of engines made by a
/// reconfiguration too) and polls the next hops, telling the workers when they change.
fn housekeeping(
    rings_in: Receiver<Receiver<SessionEvent>>,
    mut on_events: OnEvents,
    mut next_hops: Option<NextHopWatch>,
    workers: &[Sender<Command>],
    stop: &AtomicBool,
    active: &AtomicU64,
    shares: &RwLock<PoolShares>,
) {
    let mut rings: Vec<Receiver<SessionEvent>> = Vec::new();
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    let mut polled = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        rings.extend(rings_in.try_iter());
        let mut any = false;
        // Rings of replaced engines are dropped once drained and closed.
        rings.retain(|r| {
            let mut open = true;
            {
                // One look at the shares and the roles per batch, not per event.
                let shares = shares.read().unwrap_or_else(|e| e.into_inner());
                let active = active.load(Ordering::Relaxed);
                while batch.len() < EVENT_BATCH {
                    match r.try_recv() {
                        Ok(e) => {
                            let (inst, addr) = e.external();
                            let loc = shares.location_of(inst, addr);
                            // A limit is met only serving the B4, that is while active.
                            let limit = matches!(e, SessionEvent::Limit(_));
                            batch.push((e, limit || loc.is_some_and(|l| active & (1 << l) != 0)));
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
            }
            if !batch.is_empty() {
                any = true;
                on_events(&batch);
                batch.clear();
            }
            open
        });
        if let Some(w) = next_hops.as_mut()
            && polled.elapsed() >= Duration::from_millis(200)
        {
            polled = Instant::now();
            let now = (w.source)();
            let missing = !internet_resolved(&w.fib, &now.1);
            let since = *w.missing_since.get_or_insert(polled);
            if !missing {
                w.missing_since = None;
            }
            w.internet.store(!missing || polled.duration_since(since) < NO_NEXT_HOP, Ordering::Relaxed);
            if w.l2 != Some(now) {
                w.l2 = Some(now);
                for w in workers {
                    let _ = w.send(Command::NextHops(now.0, now.1));
                }
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl BoardHandle {
    /// Asks every worker, waiting up to 5 s for each answer.
    fn ask<T>(&self, make: impl Fn(Sender<T>) -> Command) -> Vec<T> {
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

    /// Each worker's rounds so far (a round takes at most about 10 ms when idle, 100 ms
    /// without packet I/O): a count that stops moving is a stuck worker.
    pub fn progress(&self) -> Vec<u64> {
        self.gauges.rounds.iter().map(|r| r.load(Ordering::Relaxed)).collect()
    }

    /// Why the board cannot serve, if it cannot: no next hop towards the Internet (no
    /// default route, or its gateway does not answer ARP).
    pub fn unfit(&self) -> Option<String> {
        (!self.internet.load(Ordering::Relaxed)).then(|| "no next hop towards the Internet".to_string())
    }

    /// Session events the workers could not hand over (their ring and waiting room were
    /// full), in all: what hot backup streams is then incomplete, and a bulk sync must
    /// follow.
    pub fn events_lost(&self) -> u64 {
        self.counters.iter().map(|c| c.get(crate::counters::Counter::EventsDropped)).sum()
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.txs.len()
    }

    /// The worker that owns external `port` of instance `inst` (the owner of its port
    /// block, which holds the block's subscriber too).
    fn worker_of(&self, inst: u8, port: u16) -> usize {
        let sizes = self.block_sizes.read().unwrap_or_else(|e| e.into_inner());
        let size = sizes.get(inst as usize).copied().unwrap_or(1);
        crate::nat::ports::worker_of_port(size, self.txs.len() as u16, port) as usize
    }

    /// Installs blocks and sessions (from the peer board), each on the worker that owns
    /// its port block (and so its subscriber). Returns what was refused.
    pub fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> Refused {
        let n = self.txs.len();
        let mut per: Vec<(Vec<BlockRecord>, Vec<SessionRecord>)> = (0..n).map(|_| (Vec::new(), Vec::new())).collect();
        for b in blocks {
            per[self.worker_of(b.inst, b.first_port)].0.push(b);
        }
        for r in sessions {
            per[self.worker_of(r.inst, r.ext_port)].1.push(r);
        }
        let mut refused = Refused::default();
        for (w, (b, s)) in self.txs.iter().zip(per) {
            let (tx, rx) = bounded(1);
            let lost = Refused { blocks: b.len(), sessions: s.len(), why: None };
            if w.send(Command::Install(b, s, tx)).is_err() {
                refused.add(lost);
                continue;
            }
            refused.add(rx.recv_timeout(Duration::from_secs(10)).unwrap_or(lost));
        }
        refused
    }

    /// Hot backup's mark-and-sweep after a bulk sync: on every worker, the sessions and
    /// then the blocks of `locations` (bits by index) that the bulk did not bring
    /// (`keep`) go, in pieces of [`CHUNK`] so that no worker stops forwarding for long.
    /// Returns how many went; Err if a worker did not finish (it is gone, or did not
    /// answer within 5 s), with how many went all the same: what the board holds is
    /// then not the bulk's table.
    pub fn sweep(&self, keep: Arc<SweepKeys>, locations: u64) -> Result<usize, (usize, String)> {
        let mut gone = 0;
        for (k, w) in self.txs.iter().enumerate() {
            let mut at = Some(Cursor::default());
            while let Some(from) = at {
                let (tx, rx) = bounded(1);
                if w.send(Command::Sweep(keep.clone(), locations, from, CHUNK, tx)).is_err() {
                    return Err((gone, format!("worker {k} is gone")));
                }
                let Ok((n, next)) = rx.recv_timeout(Duration::from_secs(5)) else {
                    return Err((gone, format!("worker {k} did not answer within 5 s")));
                };
                gone += n;
                at = next;
            }
        }
        Ok(gone)
    }

    /// Removes sessions the peer deleted, each on its worker; returns how many were found.
    pub fn remove(&self, sessions: Vec<SessionRecord>) -> usize {
        let n = self.txs.len();
        let mut per: Vec<Vec<SessionRecord>> = (0..n).map(|_| Vec::new()).collect();
        for r in sessions {
            per[self.worker_of(r.inst, r.ext_port)].push(r);
        }
        let mut found = 0;
        for (w, s) in self.txs.iter().zip(per) {
            let (tx, rx) = bounded(1);
            if !s.is_empty() && w.send(Command::Remove(s, tx)).is_ok() {
                found += rx.recv_timeout(Duration::from_secs(10)).unwrap_or(0);
            }
        }
        found
    }

    /// The sessions `f` selects, read from each worker in pieces of [`CHUNK`] sessions,
    /// filtered by the worker: no worker stops forwarding for long, and only the
    /// sessions selected are copied.
    pub fn sessions(&self, f: &SessionFilter) -> Vec<SessionRecord> {
        let mut out = Vec::new();
        self.in_pieces(|from, tx| Command::Sessions(f.clone(), from, CHUNK, tx), |some| out.extend(some));
        out
    }

    /// Ends the sessions `f` selects (`reset session`), in pieces of [`CHUNK`] on each
    /// worker, as if they had expired: each is logged as deleted and removed from the
    /// peer board. Returns how many went.
    pub fn end_sessions(&self, f: &SessionFilter) -> usize {
        let mut gone = 0;
        self.in_pieces(|from, tx| Command::EndSessions(f.clone(), from, CHUNK, tx), |n| gone += n);
        gone
    }

    /// Asks every worker, piece by piece from session slot 0, until it answers that no
    /// piece is left (or does not answer within 5 s); `take` gets each answer.
    fn in_pieces<T>(
        &self,
        ask: impl Fn(u32, crossbeam_channel::Sender<(T, Option<u32>)>) -> Command,
        mut take: impl FnMut(T),
    ) {
        for w in &self.txs {
            let mut at = Some(0);
            while let Some(from) = at {
                let (tx, rx) = bounded(1);
                if w.send(ask(from, tx)).is_err() {
                    break;
                }
                let Ok((piece, next)) = rx.recv_timeout(Duration::from_secs(5)) else { break };
                take(piece);
                at = next;
            }
        }
    }

    pub fn subscribers(&self) -> Vec<SubscriberView> {
        self.ask(Command::Subscribers).into_iter().flatten().collect()
    }

    /// A piece of worker `worker`'s table of at most `max` records from `from` on;
    /// None when the worker does not answer within 5 s.
    pub fn snapshot(&self, worker: usize, from: Cursor, max: usize) -> Option<Chunk> {
        let w = self.txs.get(worker)?;
        let (tx, rx) = bounded(1);
        w.send(Command::Snapshot(from, max, tx)).ok()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// Every session and port block of the board (a bulk sync), read in chunks of
    /// [`CHUNK`] records so that no worker stops forwarding for long.
    pub fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        let (mut sessions, mut blocks) = (Vec::new(), Vec::new());
        for w in 0..self.txs.len() {
            let mut at = Some(Cursor::default());
            while let Some(from) = at {
                let Some(chunk) = self.snapshot(w, from, CHUNK) else { break };
                sessions.extend(chunk.sessions);
                blocks.extend(chunk.blocks);
                at = chunk.next;
            }
        }
        (sessions, blocks)
    }

    /// Whether the board forwards (is active for any location).
    pub fn is_active(&self) -> bool {
        self.active_locations() != 0
    }

    /// The peer board's softwire MAC and the locations it is active for (bits by
    /// index), from its heartbeats: softwire frames of those locations that reach this
    /// board go on to it (decision 0012).
    pub fn set_peer(&self, mac: crate::wire::ethernet::Mac, active: u64) {
        self.peer.set(mac, active);
        self.steer();
    }

    /// The XDP programs bring frames to the workers while the board is active for some
    /// location, or the peer is (a standby sends the frames of the peer's locations on
    /// to it).
    fn steer(&self) {
        let on = self.active_locations() != 0 || self.peer.get().1 != 0;
        for s in self.steering.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
            if let Err(e) = s.set_active(on) {
                tracing::warn!("XDP on {}: {e}", s.ifname());
            }
        }
    }

    /// The locations the board is active for (bits by index).
    pub fn active_locations(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Starts or stops forwarding for the location with index `location` (decision
    /// 0012): the workers' set of active locations, the XDP programs' flag (frames
    /// come while the board or its peer is active for any location), and the neighbours (on
    /// start, the announcement of the location's addresses: decision 0007).
    /// Active for `location` (`on`) or not; active again when it was already: a
    /// re-announcement (see [`Neighbours::reannounce`]).
    pub fn set_active(&self, location: usize, on: bool) {
        let bit = 1u64 << (location % 64);
        let before = if on {
            self.active.fetch_or(bit, Ordering::Relaxed)
        } else {
            self.active.fetch_and(!bit, Ordering::Relaxed)
        };
        let now = if on { before | bit } else { before & !bit };
        self.steer();
        if let Some(n) = &self.neighbours {
            if on && before & bit != 0 {
                n.reannounce(bit);
            } else {
                n.set_active(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::random_seed;

    #[test]
    fn the_seed_comes_from_the_kernel_not_the_clock() {
        let now_ns =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap();
        let seeds: Vec<u64> = (0..4).map(|_| random_seed().expect("getrandom")).collect();
        for s in &seeds {
            // Not the time (give or take an hour), whatever the process id mixed in.
            let pid = std::process::id() as u64;
            assert!((s ^ pid).abs_diff(now_ns) > 3_600_000_000_000 && s.abs_diff(now_ns) > 3_600_000_000_000);
        }
        let mut distinct = seeds.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), seeds.len());
    }
}
