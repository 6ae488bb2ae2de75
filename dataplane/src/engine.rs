//! One worker's engine: the object a worker holds and calls. It owns the worker's parts
//! (NAT state in `nat::table`, fragment tables in `nat::fragments`, the packet path's
//! settings, counters) and lends them, for each batch, to the pipeline
//! (`pipeline::BatchCtx`); this file is its public face and holds no per-packet logic.
//!
//! Ownership (DESIGN.md, Sessions and ports): a subscriber lives on the worker that
//! created it, the worker whose receive queue its frames reach (claimed in the board's
//! [`Owners`], see `nat::owners`); an inbound IPv4 packet belongs to the worker that owns
//! the port block of its destination port (`nat::ports::worker_of_port`). A packet that
//! reaches the wrong worker comes back as [`Verdict::Handoff`]; the I/O layer sends it to
//! the owner. The packet path of an established flow takes no shared lock.

use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::config::{ConfigError, EgressL2, EngineConfig, MAX_TUNNEL_MTU};
use crate::counters::{Counter, WorkerCounters};
use crate::nat::events::{BlockRecord, InstallError, Refused, SessionEvent, SessionRecord, SweepKeys};
use crate::nat::fragments::{FragTracker4, Reassembler};
use crate::nat::owners::Owners;
use crate::nat::subscriber::MAX_BLOCKS;
use crate::nat::table::NatState;
use crate::pipeline::{BatchCtx, PathConfig, PathState};

pub use crate::frame::{Egress, FragmentPorts, Frame, HEADROOM, Sink, VecSink, Verdict, WorkerId};
pub use crate::nat::table::SubscriberView;

pub struct Engine {
    /// What the packet path reads of the configuration, and the next hops.
    path: PathConfig,
    nat: NatState,
    frag6: Reassembler,
    frag4: FragTracker4,
    /// The packet path's own state (the ICMP error budget).
    state: PathState,
    counters: Arc<WorkerCounters>,
    /// The timer clock in milliseconds (fragment timers; the NAT state keeps seconds):
    /// monotonic in a worker.
    now_ms: u64,
    /// Unix time less the timer clock, in milliseconds, once told (`set_unix_time`).
    unix_offset_ms: Option<i64>,
}

/// Checks a configuration as the engine needs it.
pub fn validate(cfg: &EngineConfig) -> Result<(), ConfigError> {
    if cfg.instances.is_empty() {
        return Err(ConfigError::NoInstances);
    }
    if cfg.instances.len() > 255 {
        return Err(ConfigError::TooManyInstances);
    }
    if cfg.workers == 0 || cfg.workers > 64 {
        return Err(ConfigError::Workers);
    }
    if cfg.locations.len() > 64 {
        return Err(ConfigError::TooManyLocations);
    }
    let locations = cfg.locations.len().max(1) as u8;
    let mut ranges = Vec::new();
    for i in &cfg.instances {
        let b = i.port_block_size;
        if !b.is_power_of_two() || !(8..=32768).contains(&b) {
            return Err(ConfigError::BlockSize(i.name.clone(), b));
        }
        if (65536 / b as u32) < cfg.workers as u32 {
            return Err(ConfigError::Workers);
        }
        if i.limits.max_blocks == 0 || i.limits.max_blocks as usize > MAX_BLOCKS {
            return Err(ConfigError::MaxBlocks(i.name.clone(), i.limits.max_blocks, MAX_BLOCKS));
        }
        if !(1280..=MAX_TUNNEL_MTU).contains(&i.tunnel_mtu) {
            return Err(ConfigError::TunnelMtu(i.name.clone(), i.tunnel_mtu));
        }
        if !(crate::config::MIN_INTERNET_MTU..=MAX_TUNNEL_MTU).contains(&i.internet_mtu) {
            return Err(ConfigError::InternetMtu(i.name.clone(), i.internet_mtu));
        }
        if i.pcp.is_some_and(|p| p.server == 0 || p.min_lifetime == 0 || p.min_lifetime > p.max_lifetime) {
            return Err(ConfigError::Pcp(i.name.clone()));
        }
        if i.pool.is_empty() {
            return Err(ConfigError::EmptyPool(i.name.clone()));
        }
        let known = |l: &u8| *l < locations || *l == crate::config::ELSEWHERE;
        let sized = i.pool_locations.is_empty() || i.pool_locations.len() == i.pool.len();
        if !matches!(i.buckets.len(), 0 | crate::config::BUCKETS)
            || !sized
            || !i.buckets.iter().all(known)
            || !i.pool_locations.iter().all(|l| *l < locations)
        {
            return Err(ConfigError::Steering(i.name.clone(), i.buckets.len()));
        }
        ranges.extend(i.pool.iter().map(|p| p.range()));
    }
    ranges.sort_unstable();
    if let Some(w) = ranges.windows(2).find(|w| w[1].0 <= w[0].1) {
        return Err(ConfigError::PoolOverlap(w[1].0.into()));
    }
    Ok(())
}

impl Engine {
    /// The engine of worker `id`, with the receiving end of its event ring, and claims of
    /// its own (a board's workers share theirs: [`Engine::with_owners`]).
    pub fn new(
        cfg: &EngineConfig,
        id: WorkerId,
        hash_seed: u64,
    ) -> Result<(Engine, Receiver<SessionEvent>), ConfigError> {
        Engine::with_owners(cfg, id, hash_seed, Arc::new(Owners::new()))
    }

    /// The engine of worker `id` of a board whose workers claim subscribers in `owners`.
    pub fn with_owners(
        cfg: &EngineConfig,
        id: WorkerId,
        hash_seed: u64,
        owners: Arc<Owners>,
    ) -> Result<(Engine, Receiver<SessionEvent>), ConfigError> {
        Engine::build(cfg, id, hash_seed, owners, Arc::new(WorkerCounters::default()), None)
    }

    /// An empty engine for the same worker under a new configuration, to move the state
    /// into (a commit): the same claims, the same counters (they go on counting across
    /// the commit), the same clock and next hops; its port generator seeded from this
    /// one's.
    ///
    /// It emits on this engine's event ring, after what waits here: the events of one
    /// worker stay in order across a commit (a block's release never before its
    /// allocation in the NAT log).
    pub fn successor(&mut self, cfg: &EngineConfig, hash_seed: u64) -> Result<Engine, ConfigError> {
        let events = Some(self.nat.events_sender());
        let (mut e, _) = Engine::build(cfg, self.id(), hash_seed, self.owners(), self.counters.clone(), events)?;
        e.nat.continue_random_from(&mut self.nat);
        e.nat.continue_epoch_from(&self.nat);
        e.nat.adopt_pending_events(&self.nat);
        e.path.kernel_sees_frames = self.path.kernel_sees_frames;
        e.set_clock(self.now_ms);
        e.unix_offset_ms = self.unix_offset_ms;
        e.nat.set_unix_offset(self.nat_unix_offset());
        e.set_l2(self.path.softwire_l2, self.path.internet_l2);
        e.path.fib = self.path.fib.clone();
        e.state.softwire_seen = self.state.softwire_seen;
        Ok(e)
    }

    fn build(
        cfg: &EngineConfig,
        id: WorkerId,
        hash_seed: u64,
        owners: Arc<Owners>,
        counters: Arc<WorkerCounters>,
        events: Option<crossbeam_channel::Sender<SessionEvent>>,
    ) -> Result<(Engine, Receiver<SessionEvent>), ConfigError> {
        validate(cfg)?;
        if id >= cfg.workers {
            return Err(ConfigError::Workers);
        }
        let (new_tx, rx) = crossbeam_channel::bounded(cfg.event_ring);
        let tx = events.unwrap_or(new_tx);
        let engine = Engine {
            path: PathConfig::new(cfg),
            nat: NatState::new(cfg, id, hash_seed, owners, counters.clone(), tx),
            frag6: Reassembler::new(cfg.frag, hash_seed ^ 0x6a09_e667_f3bc_c908),
            frag4: FragTracker4::new(cfg.frag, hash_seed ^ 0xbb67_ae85_84ca_a73b),
            state: PathState::new(cfg),
            counters,
            now_ms: 0,
            unix_offset_ms: None,
        };
        Ok((engine, rx))
    }

    /// The pipeline's view of this engine for one batch (or one frame).
    #[inline]
    fn batch(&mut self) -> BatchCtx<'_> {
        BatchCtx::new(
            &self.path,
            &mut self.nat,
            &mut self.frag6,
            &mut self.frag4,
            &mut self.state,
            &self.counters,
            self.now_ms,
        )
    }

    /// Processes one received frame: the whole data plane for that frame.
    pub fn process(&mut self, f: &mut Frame, sink: &mut dyn Sink) -> Verdict {
        self.counters.inc(Counter::RxFrames);
        self.counters.add(Counter::RxBytes, f.len as u64);
        self.batch().process(f, sink)
    }

    /// Processes `frames`, writing one verdict per frame into `verdicts` (which must be
    /// at least as long). Same results as calling [`Engine::process`] on each in turn;
    /// the table entries are prefetched ahead (`pipeline::batch`, decision 0003).
    pub fn process_batch(&mut self, frames: &mut [Frame], verdicts: &mut [Verdict], sink: &mut dyn Sink) {
        self.batch().process_batch(frames, verdicts, sink)
    }

    pub fn id(&self) -> WorkerId {
        self.nat.id()
    }

    /// Counters of this worker, readable from any thread.
    pub fn counters(&self) -> Arc<WorkerCounters> {
        self.counters.clone()
    }

    /// Sets the timer clock (milliseconds); the worker calls this once per batch with
    /// a monotonic clock, so that session and fragment timers do not move with the wall
    /// clock. Without [`Engine::set_unix_time`], the timer clock is taken for Unix time
    /// in records.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.nat.set_clock((now_ms / 1000) as u32);
    }

    /// The locations (bits by index into the configuration's `locations`) this board
    /// is active for: the B4s and pool shares of the others are not served (counted as
    /// `drop_location_standby`). All of them until told otherwise.
    pub fn set_active_locations(&mut self, mask: u64) {
        self.nat.set_active_locations(mask);
    }

    /// The peer board's softwire MAC and the locations it is active for (bits by
    /// index): softwire frames of a B4 of one of those locations that reach this board
    /// go on to the peer (`steered_to_peer`), one hop limit less.
    pub fn set_peer(&mut self, mac: crate::wire::ethernet::Mac, active: u64) {
        self.path.peer = (mac, active);
    }

    /// Tells the engine the Unix time (milliseconds) at the timer clock's current
    /// value: records (session and block events, snapshots) carry Unix seconds, and
    /// installed records are read as such. A change of less than half a second is
    /// reading noise, ignored so that a session's times convert the same way each time;
    /// a larger one (the wall clock was stepped) moves the records' times, never the
    /// timers.
    pub fn set_unix_time(&mut self, unix_ms: u64) {
        let off = unix_ms as i64 - self.now_ms as i64;
        if self.unix_offset_ms.is_none_or(|o| o.abs_diff(off) > 500) {
            self.unix_offset_ms = Some(off);
            self.nat.set_unix_offset(self.nat_unix_offset());
        }
    }

    /// The offset in whole seconds, rounded, for the NAT state's times (in seconds: a
    /// record's Unix time is within a second of the truth).
    fn nat_unix_offset(&self) -> i64 {
        self.unix_offset_ms.map_or(0, |off| (off + 500).div_euclid(1000))
    }

    pub fn softwire_l2(&self) -> EgressL2 {
        self.path.softwire_l2
    }
    pub fn internet_l2(&self) -> EgressL2 {
        self.path.internet_l2
    }

    /// Whether the kernel sees the frames this engine gets (AF_PACKET) or not (AF_XDP):
    /// a frame that is not the data plane's is then left to it (`passed_to_kernel`),
    /// or dropped and counted (`drop_not_steered`: the XDP program steers only what the
    /// engine handles, so this is a frame of a configuration being changed).
    pub fn set_kernel_sees_frames(&mut self, sees: bool) {
        self.path.kernel_sees_frames = sees;
    }

    /// Hands the events that waited for room on the event ring to it, as far as it
    /// takes them (between batches; block events are never dropped).
    pub fn flush_events(&self) {
        self.nat.flush_events();
    }

    /// Updates layer-2 addressing after neighbour resolution.
    pub fn set_l2(&mut self, softwire: EgressL2, internet: EgressL2) {
        self.path.softwire_l2 = softwire;
        self.path.internet_l2 = internet;
    }

    /// Routes packets towards the Internet by this forwarding table (None: by the one
    /// next hop of [`Engine::set_l2`]).
    pub fn set_fib(&mut self, fib: Option<crate::fib::FibHandle>) {
        self.path.fib = fib;
    }

    pub fn session_count(&self) -> u32 {
        self.nat.session_count()
    }
    pub fn subscriber_count(&self) -> u32 {
        self.nat.subscriber_count()
    }

    /// Fragment state in use: IPv6 reassemblies, and inbound IPv4 slots (datagrams and
    /// fragments held for them).
    pub fn fragments_in_progress(&self) -> (usize, usize) {
        (self.frag6.in_progress(), self.frag4.in_progress() + self.frag4.held())
    }

    /// Bytes held by the tables of this worker.
    pub fn table_memory(&self) -> usize {
        self.nat.table_memory()
    }

    /// The board's claims on subscribers (shared with the other workers).
    pub fn owners(&self) -> Arc<Owners> {
        self.nat.owners().clone()
    }

    /// The worker owning external port `port` of pool address `addr`.
    pub fn owner_of_port(&self, addr: u32, port: u16) -> Option<WorkerId> {
        self.nat.owner_of_port(addr, port)
    }

    /// After a reconfiguration that replaced engine `old` by this one: gives up the
    /// claims on `old`'s subscribers that did not come over.
    pub fn release_claims_of(&self, old: &Engine) {
        self.nat.release_claims_of(&old.nat)
    }

    /// Reports sessions and port blocks that ended without expiring (a commit that no
    /// longer allows them) as deleted and released: the NAT log records their end and
    /// the peer board removes them.
    pub fn report_ended(&self, sessions: &[SessionRecord], blocks: &[BlockRecord]) {
        self.nat.report_ended(sessions, blocks)
    }

    /// Deletes session `i`, releasing its block when empty and its subscriber when idle.
    pub fn delete_session(&mut self, i: u32) {
        self.nat.delete_session(i)
    }

    /// Expires at most `budget` sessions whose timer ran out, and the fragment state
    /// whose time ran out; returns how many sessions. Called by the worker between
    /// batches, so expiry cost is spread (no table walk).
    pub fn expire(&mut self, budget: usize) -> usize {
        let done = self.nat.expire(budget);
        self.frag6.expire(self.now_ms, &self.counters);
        self.frag4.expire(self.now_ms, &self.counters);
        done
    }

    // ----- State from the peer (hot backup) and for display -----

    /// Installs a port block received from the peer. Refused if it collides with what
    /// this worker allocated.
    pub fn install_block(&mut self, r: &BlockRecord) -> Result<(), InstallError> {
        self.nat.install_block(r)
    }

    /// Installs (or updates) a session received from the peer. Its block must have been
    /// installed first; a port taken by another session is a collision.
    pub fn install_session(&mut self, r: &SessionRecord) -> Result<(), InstallError> {
        self.nat.install_session(r)
    }

    /// Installs blocks, then sessions, from the peer; returns what was refused.
    pub fn install(&mut self, blocks: &[BlockRecord], sessions: &[SessionRecord]) -> Refused {
        let mut refused = Refused::default();
        for b in blocks {
            if let Err(why) = self.install_block(b) {
                refused.count(true, why);
            }
        }
        for r in sessions {
            if let Err(why) = self.install_session(r) {
                refused.count(false, why);
            }
        }
        refused
    }

    /// Removes the session `r` names (the peer deleted it); false if there is none with
    /// that inside key and external port.
    pub fn remove_session(&mut self, r: &SessionRecord) -> bool {
        self.nat.remove_session(r)
    }

    /// Hot backup's sweep after a bulk sync, in pieces: see
    /// [`NatState::sweep_sessions`](crate::nat::table::NatState::sweep_sessions).
    pub fn sweep_sessions(&mut self, keep: &[u64], locations: u64, from: u32, max: usize) -> (usize, Option<u32>) {
        self.nat.sweep_sessions(keep, locations, from, max)
    }

    /// The same for port blocks, after the sessions.
    pub fn sweep_blocks(&mut self, keep: &[u64], locations: u64, from: u32, max: usize) -> (usize, Option<u32>) {
        self.nat.sweep_blocks(keep, locations, from, max)
    }

    /// The whole sweep at once (an engine of its own, as in tests; a board's workers
    /// sweep in pieces): returns how many sessions and blocks went.
    pub fn sweep(&mut self, keep: &SweepKeys, locations: u64) -> usize {
        let (sessions, _) = self.sweep_sessions(&keep.sessions, locations, 0, usize::MAX);
        let (blocks, _) = self.sweep_blocks(&keep.blocks, locations, 0, usize::MAX);
        sessions + blocks
    }

    /// Every live session as a record (display, bulk sync; walks the table).
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.nat.sessions()
    }

    /// Up to `max` sessions from slot `from` on, and the slot where the next ones start
    /// (None: no more). A bulk sync reads the table in such pieces.
    pub fn sessions_from(&self, from: u32, max: usize) -> (Vec<SessionRecord>, Option<u32>) {
        self.nat.sessions_from(from, max)
    }

    /// Of up to `max` sessions from slot `from` on, those `pick` selects, and where the
    /// next ones start (None: no more).
    pub fn sessions_matching(
        &self,
        pick: impl Fn(&SessionRecord) -> bool,
        from: u32,
        max: usize,
    ) -> (Vec<SessionRecord>, Option<u32>) {
        self.nat.sessions_matching(pick, from, max)
    }

    /// Ends, of up to `max` sessions from slot `from` on, those `pick` selects (`reset
    /// session`): returns how many went and where to go on (None: done).
    pub fn end_sessions(
        &mut self,
        pick: impl Fn(&SessionRecord) -> bool,
        from: u32,
        max: usize,
    ) -> (usize, Option<u32>) {
        self.nat.delete_matching(pick, from, max)
    }

    /// Every subscriber with its external address and blocks (slow path: display).
    pub fn subscribers(&self) -> Vec<SubscriberView> {
        self.nat.subscribers()
    }

    /// Up to `max` subscribers from slot `from` on, and the slot where the next ones
    /// start (None: no more).
    pub fn subscribers_from(&self, from: u32, max: usize) -> (Vec<SubscriberView>, Option<u32>) {
        self.nat.subscribers_from(from, max)
    }
}
