//! One worker's NAT state: its subscribers, sessions, port blocks and their index, the
//! expiry timers, the events it emits, and what comes from the peer board (installs)
//! or goes to display (snapshots). Nothing here parses packets: the pipeline calls in
//! with keys, and per-packet values (a prehashed key, a next-hop MAC) come as arguments.
//!
//! Hot path for lookups, creation and refresh: no allocation after [`NatState::new`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{EngineConfig, Filtering, InstanceConfig, Timeouts};
use crate::counters::{Counter, WorkerCounters};
use crate::frame::WorkerId;
use crate::nat::events::{BlockRecord, InstallError, Limit, LimitRecord, SessionEvent, SessionRecord};
use crate::nat::filter::FilterTable;
use crate::nat::owners::Owners;
use crate::nat::pcp::{Leases, PcpLease};
use crate::nat::ports::{PortClass, PortSpace};
use crate::nat::session::{CLASSES, KeyHashes, Session, SessionTable, TimerClass};
use crate::nat::statics::Statics;
use crate::nat::subscriber::{MAX_BLOCKS, Subscriber, SubscriberTable};
use crate::wire::ethernet::Mac;
use crate::wire::proto;

/// Seconds a path MTU learned from a Packet Too Big holds (RFC 8201 section 5.3).
pub const PMTU_AGE: u32 = 600;

/// An instance as the NAT state needs it: its settings, pool and port space.
pub(crate) struct Instance {
    pub cfg: InstanceConfig,
    /// The pool, location by location.
    pub addrs: Vec<u32>,
    /// Each location's share of `addrs`: the range of indexes, by location index.
    pub shares: Vec<std::ops::Range<usize>>,
    pub ports: PortSpace,
}

impl Instance {
    pub fn timeout(&self, c: TimerClass) -> u32 {
        let t: &Timeouts = &self.cfg.timeouts;
        match c {
            TimerClass::Udp => t.udp,
            TimerClass::TcpEstablished => t.tcp_established,
            TimerClass::TcpTransitory => t.tcp_transitory,
            TimerClass::Icmp => t.icmp,
        }
    }
}

/// The NAT tables of one worker (decision 0002) and the board's claims it shares.
pub struct NatState {
    id: WorkerId,
    workers: u16,
    inst: Vec<Instance>,
    /// Pool ranges: (first address, last address, instance, index of the first address
    /// in the instance pool), sorted; pools do not overlap.
    pool_ranges: Vec<(u32, u32, u8, u32)>,
    pub(crate) subs: SubscriberTable,
    /// The board's claims on subscribers, shared by its workers.
    owners: Arc<Owners>,
    pub(crate) sessions: SessionTable,
    /// Keys of the table hash, from the board's seed (against crafted collisions).
    keys: [u64; 4],
    /// For the address-and-port-dependent filter entries.
    hasher: ahash::RandomState,
    /// The timer clock, in whole seconds (session times are in seconds): monotonic in
    /// `aftrd`, so that a step of the wall clock neither ages nor expires sessions.
    now: u32,
    /// Unix time less the timer clock, in seconds: records (NAT logs, the peer board)
    /// carry Unix seconds, converted here at the edge.
    unix_offset: i64,
    counters: Arc<WorkerCounters>,
    events: Sender<SessionEvent>,
    /// Events waiting for room on the ring, in order: block events are never dropped
    /// (they are the legal NAT log and the peer's port blocks), session events wait
    /// here up to [`PENDING_SESSION_EVENTS`] and beyond are dropped and counted.
    pending: RefCell<VecDeque<SessionEvent>>,
    refresh_interval: u32,
    /// Ports, blocks and identifications are drawn from this (ChaCha12, seeded from the
    /// board's seed, itself from the kernel: decision 0014).
    rng: StdRng,
    /// Remotes of address-and-port-dependent mappings (when an instance filters so).
    filter: Option<FilterTable>,
    /// Expiry resumes at this list on the next call.
    expiry_cursor: usize,
    /// The locations (bits by index) this board is active for.
    active: u64,
    /// Static forwardings and own addresses, from the configuration.
    pub(crate) statics: Statics,
    /// Limit events left this second (of [`LIMIT_EVENTS_PER_SEC`]), and the second.
    limit_events: (u32, u32),
    /// PCP leases on sessions (decision 0023).
    pub(crate) leases: Leases,
    /// The timer clock when the PCP server's epoch began (RFC 6887 section 8.5): the
    /// first clock this worker was given, carried across commits.
    epoch_origin: Option<u32>,
}

/// The external port a new session would like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Want {
    /// The port, if any; taken when one of the subscriber's blocks has it free.
    pub port: Option<u16>,
    /// That port or no session (`pcp_result_cannot_provide_external`).
    pub only: bool,
}

impl Want {
    pub const ANY: Want = Want { port: None, only: false };
}

/// Limit events (mappings refused for a limit) a worker emits a second at most, so that a
/// flood of refused packets cannot flood the NAT log collectors; the drops are all
/// counted by reason.
pub const LIMIT_EVENTS_PER_SEC: u32 = 50;

/// Session events that wait for room on a full event ring at most, behind the block
/// events (which always wait): beyond, they are dropped and counted, and hot backup
/// resyncs with a bulk sync.
pub const PENDING_SESSION_EVENTS: usize = 16_384;

impl NatState {
    /// The state of worker `id` of a board whose workers claim subscribers in `owners`,
    /// counting into `counters` and emitting into `events`. `cfg` is valid
    /// (`engine::validate`).
    pub fn new(
        cfg: &EngineConfig,
        id: WorkerId,
        hash_seed: u64,
        owners: Arc<Owners>,
        counters: Arc<WorkerCounters>,
        events: Sender<SessionEvent>,
    ) -> NatState {
        let mut pool_ranges = Vec::new();
        let mut inst: Vec<Instance> = cfg
            .instances
            .iter()
            .enumerate()
            .map(|(n, c)| {
                let mut addrs: Vec<u32> = Vec::new();
                let locations = cfg.locations.len().max(1);
                let mut shares = vec![0..0; locations];
                // Location by location, so that each share is one range of indexes.
                for (loc, share) in shares.iter_mut().enumerate() {
                    let start = addrs.len();
                    let of_loc = |i: &usize| c.pool_locations.get(*i).map_or(0, |l| *l as usize) == loc;
                    for p in (0..c.pool.len()).filter(of_loc).map(|i| c.pool[i]) {
                        let (first, last) = p.range();
                        pool_ranges.push((first, last, n as u8, addrs.len() as u32));
                        addrs.extend(p.addresses());
                    }
                    *share = start..addrs.len();
                }
                let ports =
                    PortSpace::with_hold_down(addrs.len(), c.port_block_size, cfg.workers, id, cfg.block_hold_down);
                Instance { cfg: c.clone(), addrs, shares, ports }
            })
            .collect();
        pool_ranges.sort_unstable();

        reserve_static_blocks(&mut inst, &pool_ranges);
        NatState {
            id,
            workers: cfg.workers,
            inst,
            pool_ranges,
            subs: SubscriberTable::new(cfg.max_subscribers),
            owners,
            sessions: SessionTable::new(cfg.max_sessions, cfg.instances.len()),
            keys: {
                let mut k = [0u64; 4];
                let mut x = hash_seed;
                for v in &mut k {
                    // splitmix64
                    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = x;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    *v = (z ^ (z >> 31)) | 1;
                }
                k
            },
            hasher: ahash::RandomState::with_seeds(
                hash_seed,
                hash_seed ^ 0x5bd1_e995,
                0x2545_f491_4f6c_dd1d,
                0x9e37_79b9_7f4a_7c15,
            ),
            now: 0,
            unix_offset: 0,
            counters,
            events,
            pending: RefCell::new(VecDeque::new()),
            refresh_interval: cfg.refresh_event_interval.max(1),
            rng: StdRng::seed_from_u64(hash_seed ^ ((id as u64) << 32) ^ 0x853c_49e6_748f_ea9b),
            filter: cfg
                .instances
                .iter()
                .any(|i| i.filtering == Filtering::AddressAndPortDependent)
                .then(|| FilterTable::new(cfg.max_sessions as usize)),
            expiry_cursor: 0,
            active: u64::MAX,
            statics: Statics::new(&cfg.instances),
            limit_events: (LIMIT_EVENTS_PER_SEC, 0),
            leases: Leases::default(),
            epoch_origin: None,
        }
    }

    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// The number of workers of the board.
    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// Sets the timer clock (seconds).
    pub fn set_clock(&mut self, now: u32) {
        self.now = now;
        self.epoch_origin.get_or_insert(now);
    }

    /// The PCP server's epoch time (RFC 6887 section 8.5): seconds since this worker's
    /// first clock (the board's start), kept across commits.
    pub(crate) fn pcp_epoch(&self) -> u32 {
        self.now.wrapping_sub(self.epoch_origin.unwrap_or(self.now))
    }

    /// Continues the PCP epoch of the state `old` this one replaces (a commit).
    pub fn continue_epoch_from(&mut self, old: &NatState) {
        self.epoch_origin = old.epoch_origin.or(self.epoch_origin);
    }

    /// The timer clock, in seconds.
    #[inline]
    pub(crate) fn now(&self) -> u32 {
        self.now
    }

    /// Sets how far Unix time is ahead of the timer clock, in seconds (0 until set: the
    /// timer clock is Unix time, as in tests).
    pub fn set_unix_offset(&mut self, secs: i64) {
        self.unix_offset = secs;
    }

    /// A time of the timer clock as Unix seconds.
    #[inline]
    fn unix_of(&self, t: u32) -> u32 {
        (t as i64 + self.unix_offset).clamp(0, u32::MAX as i64) as u32
    }

    /// Unix seconds as a time of the timer clock (wrapping, as times are compared).
    fn timer_of_unix(&self, t: u32) -> u32 {
        (t as i64 - self.unix_offset) as u32
    }

    pub fn session_count(&self) -> u32 {
        self.sessions.len()
    }
    pub fn subscriber_count(&self) -> u32 {
        self.subs.len()
    }

    /// Bytes held by the tables.
    pub fn table_memory(&self) -> usize {
        self.sessions.memory() + self.subs.memory() + self.inst.iter().map(|i| i.ports.memory()).sum::<usize>()
    }

    /// The settings of instance `inst`.
    #[inline]
    pub(crate) fn config(&self, inst: u8) -> &InstanceConfig {
        &self.inst[inst as usize].cfg
    }

    /// The session of an outside endpoint: (external address, port, protocol).
    #[inline]
    pub(crate) fn find_outside(&self, addr: u32, port: u16, proto: u8) -> Option<u32> {
        self.find_outside_hashed(self.outside_hash(addr, port, proto), addr, port, proto)
    }

    #[inline]
    fn find_outside_hashed(&self, h: u32, addr: u32, port: u16, proto: u8) -> Option<u32> {
        self.sessions.outside.find(h, |i| {
            let s = self.sessions.get(i);
            s.ext_addr == addr && s.ext_port == port && s.proto == proto
        })
    }

    /// Another worker of the board that owns external port `port` of pool address
    /// `addr`, if one does: the frame goes there.
    #[inline]
    pub(crate) fn foreign_port_owner(&self, addr: u32, port: u16) -> Option<WorkerId> {
        if self.workers <= 1 {
            return None;
        }
        self.owner_of_port(addr, port).filter(|&w| w != self.id)
    }

    #[inline]
    pub(crate) fn sub_hash(&self, inst: u8, b4: &[u8; 16]) -> u32 {
        let x = u128::from_be_bytes(*b4);
        fold32(mix((x as u64) ^ self.keys[0], ((x >> 64) as u64) ^ self.keys[1] ^ inst as u64))
    }
    /// The inside key (B4, inner address, inner port or identifier, protocol) hashed from
    /// the packet alone, so a batch can prefetch it before the subscriber is known.
    #[inline]
    pub(crate) fn inside_hash(&self, inst: u8, b4: &[u8; 16], addr: u32, port: u16, proto: u8) -> u32 {
        let x = u128::from_be_bytes(*b4);
        let a = mix((x as u64) ^ self.keys[2], ((x >> 64) as u64) ^ self.keys[1]);
        let b = (addr as u64) << 32 | (port as u64) << 16 | (proto as u64) << 8 | inst as u64;
        fold32(mix(a ^ self.keys[0], b ^ self.keys[3]))
    }
    /// What outbound IPv4 identifications of host `src` behind `b4` to `dst` over
    /// `proto` are shifted by (see `BatchCtx::rewrite_ident`): keyed by the board's
    /// secret, so it is the same for every fragment of a datagram, differs between hosts,
    /// and cannot be guessed from outside.
    #[inline]
    pub(crate) fn ident_offset(&self, b4: &[u8; 16], src: u32, dst: u32, proto: u8) -> u16 {
        let x = u128::from_be_bytes(*b4);
        let a = mix((x as u64) ^ self.keys[3], ((x >> 64) as u64) ^ self.keys[0]);
        let b = (src as u64) << 32 | dst as u64;
        fold32(mix(a ^ self.keys[1], b ^ self.keys[2] ^ (proto as u64) << 56)) as u16
    }
    #[inline]
    pub(crate) fn outside_hash(&self, addr: u32, port: u16, proto: u8) -> u32 {
        fold32(mix(((addr as u64) << 32 | (port as u64) << 8 | proto as u64) ^ self.keys[2], self.keys[3]))
    }
    fn key_hashes(&self, s: &Session) -> KeyHashes {
        let sub = self.subs.get(s.sub);
        KeyHashes {
            inside: self.inside_hash(sub.inst, &sub.b4, s.inner_addr, s.inner_port, s.proto),
            outside: self.outside_hash(s.ext_addr, s.ext_port, s.proto),
        }
    }

    /// The board's claims on subscribers (shared with the other workers).
    pub fn owners(&self) -> &Arc<Owners> {
        &self.owners
    }

    /// Another worker that holds subscriber `b4` (of instance `inst`), if one does: the
    /// frame goes there. A worker's own subscribers are found in its own table, so an
    /// established flow never reads the shared claims.
    /// `prehash` is the frame's inside-key hash from the batch's first stage, if any.
    #[inline]
    pub(crate) fn foreign_owner(&self, prehash: Option<u32>, inst: u8, b4: &[u8; 16]) -> Option<WorkerId> {
        if self.workers <= 1 {
            return None;
        }
        // An established flow: the batch's first stages found a session under this
        // frame's key and brought it and its subscriber into the cache. A session of this
        // B4 here means the subscriber is here, without a lookup of its own.
        if let Some(h) = prehash
            && let Some(i) = self.sessions.inside.peek(h)
            && self.subs.get(self.sessions.get(i).sub).b4 == *b4
        {
            return None;
        }
        if self.subs.find(self.sub_hash(inst, b4), inst, b4).is_some() {
            return None;
        }
        self.owners.owner(b4).filter(|&w| w != self.id)
    }

    /// The session of an inside endpoint: (instance, B4, inner address, inner port or
    /// identifier, protocol). One index probe; the B4 is checked through the session's
    /// subscriber, so the subscriber table is only consulted for new flows.
    #[inline]
    pub(crate) fn find_inside(&self, inst: u8, b4: &[u8; 16], addr: u32, port: u16, proto: u8) -> Option<u32> {
        let h = self.inside_hash(inst, b4, addr, port, proto);
        self.find_inside_hashed(h, inst, b4, addr, port, proto)
    }

    /// [`NatState::find_inside`] with the hash already computed.
    #[inline]
    pub(crate) fn find_inside_hashed(
        &self,
        h: u32,
        inst: u8,
        b4: &[u8; 16],
        addr: u32,
        port: u16,
        proto: u8,
    ) -> Option<u32> {
        self.sessions.inside.find(h, |i| {
            let s = self.sessions.get(i);
            s.inner_addr == addr && s.inner_port == port && s.proto == proto && {
                let sub = self.subs.get(s.sub);
                sub.inst == inst && sub.b4 == *b4
            }
        })
    }

    /// Instance and pool index of an external address.
    #[inline]
    pub(crate) fn pool_lookup(&self, addr: u32) -> Option<(u8, u32)> {
        let r = &self.pool_ranges;
        // Usually one to a few ranges: the first test settles most non-pool addresses.
        if r.is_empty() || addr < r[0].0 || addr > r[r.len() - 1].1 {
            return None;
        }
        let i = r.partition_point(|e| e.0 <= addr).checked_sub(1)?;
        let (first, last, inst, base) = r[i];
        (addr <= last).then_some((inst, base + (addr - first)))
    }

    /// The locations (bits by index into the configuration's `locations`) the board is
    /// active for from now on; the others' B4s and addresses are not served here.
    pub fn set_active_locations(&mut self, mask: u64) {
        self.active = mask;
    }

    /// Whether `addr` is a pool address of a location this board is active for.
    #[inline]
    pub(crate) fn serves(&self, addr: u32) -> bool {
        self.pool_lookup(addr).is_some_and(|(inst, idx)| self.index_active(inst, idx))
    }

    /// Whether the pool address with index `idx` of instance `inst` belongs to a
    /// location this board is active for.
    #[inline]
    pub(crate) fn index_active(&self, inst: u8, idx: u32) -> bool {
        if self.active == u64::MAX {
            return true;
        }
        let shares = &self.inst[inst as usize].shares;
        shares.iter().position(|r| r.contains(&(idx as usize))).is_some_and(|l| self.active & (1 << l) != 0)
    }

    /// Whether this board serves `b4` now: Err with the drop's reason if its location is
    /// another pair's or one this board is standby for.
    #[inline]
    pub(crate) fn b4_served(&self, inst: u8, b4: &[u8; 16]) -> Result<(), Counter> {
        let cfg = &self.inst[inst as usize].cfg;
        if cfg.buckets.is_empty() && self.active & 1 != 0 {
            return Ok(());
        }
        match cfg.location_of_b4(b4) {
            crate::config::ELSEWHERE => Err(Counter::DropB4Elsewhere),
            l if self.active & (1 << l) != 0 => Ok(()),
            _ => Err(Counter::DropLocationStandby),
        }
    }

    /// The worker owning external port `port` of pool address `addr`.
    pub fn owner_of_port(&self, addr: u32, port: u16) -> Option<WorkerId> {
        if self.workers == 1 {
            return Some(0);
        }
        self.pool_lookup(addr).map(|(i, _)| self.inst[i as usize].ports.owner_of_port(port))
    }

    /// A random number from a cryptographically strong generator: the ports of one
    /// subscriber tell nothing of the next ones, or of another's (RFC 6056 section 3.3.1,
    /// RFC 6888 REQ-15).
    #[inline]
    pub(crate) fn random(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// Seeds this state's generator from `old`'s (a commit replacing `old` by this
    /// state), so that a new engine does not draw the same ports again.
    pub fn continue_random_from(&mut self, old: &mut NatState) {
        self.rng = StdRng::from_rng(&mut old.rng);
    }

    #[inline]
    pub(crate) fn count(&self, c: Counter) {
        self.counters.inc(c)
    }

    fn push_event(&self, e: SessionEvent) {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            match self.events.try_send(e) {
                Ok(()) => return,
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(_)) => {}
            }
        }
        let block = matches!(e, SessionEvent::BlockAllocated(_) | SessionEvent::BlockReleased(_));
        if block || pending.len() < PENDING_SESSION_EVENTS {
            pending.push_back(e);
        } else {
            self.count(Counter::EventsDropped);
        }
    }

    /// Hands the events that waited for room to the ring, in order, as far as it takes
    /// them (between batches).
    pub fn flush_events(&self) {
        let mut pending = self.pending.borrow_mut();
        while let Some(&e) = pending.front() {
            match self.events.try_send(e) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {
                    pending.pop_front();
                }
                Err(TrySendError::Full(_)) => break,
            }
        }
    }

    /// Takes over the events `old` (the engine this one succeeds) could not hand over
    /// yet: they go first.
    pub fn adopt_pending_events(&self, old: &NatState) {
        let mut mine = self.pending.borrow_mut();
        let theirs = std::mem::take(&mut *old.pending.borrow_mut());
        let later = std::mem::replace(&mut *mine, theirs);
        mine.extend(later);
    }

    /// The event ring's sending end (a successor engine emits on the same ring).
    pub fn events_sender(&self) -> Sender<SessionEvent> {
        self.events.clone()
    }

    /// Events waiting for room on the ring.
    pub fn pending_events(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Reports sessions and blocks that ended without expiring (see
    /// `Engine::report_ended`).
    pub fn report_ended(&self, sessions: &[SessionRecord], blocks: &[BlockRecord]) {
        for r in sessions {
            self.push_event(SessionEvent::Deleted(*r));
            self.count(Counter::SessionsEndedByCommit);
        }
        for b in blocks {
            self.push_event(SessionEvent::BlockReleased(BlockRecord { at: self.unix_of(self.now), ..*b }));
            self.count(Counter::BlocksReleased);
        }
    }

    pub(crate) fn session_record(&self, i: u32) -> SessionRecord {
        let s = self.sessions.get(i);
        let sub = self.subs.get(s.sub);
        SessionRecord {
            inst: sub.inst,
            b4: sub.b4,
            inner_addr: s.inner_addr,
            inner_port: s.inner_port,
            ext_addr: s.ext_addr,
            ext_port: s.ext_port,
            proto: s.proto,
            flags: s.flags,
            created: self.unix_of(s.created),
            last_seen: self.unix_of(s.last_seen),
            mac: sub.mac,
            pcp: if self.leases.is_empty() {
                None
            } else {
                self.leases.get(i).map(|l| PcpLease { until: self.unix_of(l.until), ..l })
            },
        }
    }

    fn block_record(&self, sub: &Subscriber, block: u16) -> BlockRecord {
        let ps = &self.inst[sub.inst as usize].ports;
        let (first, size) = ps.block_ports(block);
        let at = self.unix_of(self.now);
        BlockRecord { inst: sub.inst, b4: sub.b4, ext_addr: sub.ext_addr, first_port: first, size, at }
    }

    /// Emits a limit event for a mapping of `b4` (subscriber `si`, if it has one)
    /// refused for `c`, if `c` is a limit and this second's budget allows.
    pub(crate) fn limit_hit(&mut self, inst: u8, b4: &[u8; 16], inner_addr: u32, si: Option<u32>, c: Counter) {
        let limits = self.inst[inst as usize].cfg.limits;
        let sub = si.map(|i| *self.subs.get(i));
        let (limit, value) = match c {
            Counter::DropPortsExhausted if sub.is_none() => (Limit::AddressesExhausted, 0),
            Counter::DropPortsExhausted => (Limit::PortsExhausted, 0),
            Counter::DropSessionTableFull => (Limit::SessionTable, self.sessions.len()),
            Counter::DropSubscriberTableFull => (Limit::SubscriberTable, self.subs.len()),
            Counter::DropSessionLimit => (Limit::SessionLimit, limits.max_sessions),
            Counter::DropBlockLimit => {
                let (_, size) = self.inst[inst as usize].ports.block_ports(0);
                (Limit::BlockLimit, limits.max_blocks as u32 * size as u32)
            }
            Counter::DropRateLimited => (Limit::RateLimit, limits.new_sessions_per_sec),
            _ => return,
        };
        if self.limit_events.1 != self.now {
            self.limit_events = (LIMIT_EVENTS_PER_SEC, self.now);
        }
        if self.limit_events.0 == 0 {
            return;
        }
        self.limit_events.0 -= 1;
        let ext_addr = sub.map_or(0, |s| s.ext_addr);
        let at = self.unix_of(self.now);
        self.push_event(SessionEvent::Limit(LimitRecord { inst, b4: *b4, inner_addr, ext_addr, limit, value, at }));
    }

    // ----- Subscribers and sessions (called by the pipeline) -----

    /// The subscriber of `b4` on this worker, if there is one.
    #[inline]
    pub(crate) fn find_subscriber(&self, inst: u8, b4: &[u8; 16]) -> Option<u32> {
        self.subs.find(self.sub_hash(inst, b4), inst, b4)
    }

    /// Finds the subscriber of a B4, creating it when `create` (with its paired address
    /// chosen for the port class `class` and its next hop `mac`).
    pub(crate) fn subscriber(
        &mut self,
        inst: u8,
        b4: &[u8; 16],
        create: Option<PortClass>,
        mac: Mac,
    ) -> Result<u32, Counter> {
        let h = self.sub_hash(inst, b4);
        if let Some(i) = self.subs.find(h, inst, b4) {
            return Ok(i);
        }
        let Some(class) = create else { return Err(Counter::DropNoSession) };
        self.new_subscriber(inst, b4, h, class, None, mac)
    }

    /// Makes the subscriber of `b4` (hash `h`), paired with pool address `at` (a peer's
    /// install) or with one picked for port class `class`.
    fn new_subscriber(
        &mut self,
        inst: u8,
        b4: &[u8; 16],
        h: u32,
        class: PortClass,
        at: Option<usize>,
        mac: Mac,
    ) -> Result<u32, Counter> {
        // Two workers meeting a new B4 at once: the first claim wins, the other drops.
        if self.workers > 1 && self.owners.claim(b4, self.id) != self.id {
            return Err(Counter::DropWrongWorker);
        }
        let ins = &self.inst[inst as usize];
        let picked = match at {
            Some(a) => Ok(a),
            // The address comes from the share of the B4's location (decision 0012).
            None => match ins.shares.get(ins.cfg.location_of_b4(b4) as usize).filter(|r| !r.is_empty()) {
                None => Err(Counter::DropB4Elsewhere),
                Some(share) => {
                    let (base, n) = (share.start, share.len());
                    // Paired pooling (RFC 6888 REQ-2): pick the address once, spread by
                    // the B4 hash; one with a free block of the first flow's class, or of
                    // the dynamic class when no address has a well-known block left (see
                    // `pick_port`).
                    let start = h as usize % n;
                    let with_free = |c: PortClass| {
                        (0..n).map(|k| base + (start + k) % n).find(|&a| ins.ports.free_blocks(a, c) > 0)
                    };
                    with_free(class).or_else(|| with_free(PortClass::Dynamic)).ok_or(Counter::DropPortsExhausted)
                }
            },
        };
        let a = match picked {
            Ok(a) => a,
            Err(c) => {
                self.release_claim(b4);
                return Err(c);
            }
        };
        let rate = ins.cfg.limits.new_sessions_per_sec;
        let s = Subscriber {
            b4: *b4,
            inst,
            nblocks: 0,
            live: true,
            addr_idx: a as u32,
            ext_addr: ins.addrs[a],
            sessions: 0,
            tokens: rate,
            refilled: self.now,
            mtu_at: 0,
            mtu: 0,
            blocks: [0; MAX_BLOCKS],
            used: [0; MAX_BLOCKS],
            // The frame that makes a subscriber comes from its next hop (peer installs
            // set theirs from the record).
            mac,
        };
        let Some(i) = self.subs.insert(h, s) else {
            self.release_claim(b4);
            return Err(Counter::DropSubscriberTableFull);
        };
        self.count(Counter::SubscribersCreated);
        Ok(i)
    }

    /// Gives up the claim on `b4` unless this worker holds it for another instance.
    fn release_claim(&self, b4: &[u8; 16]) {
        if self.workers > 1
            && !(0..self.inst.len() as u8).any(|i| self.subs.find(self.sub_hash(i, b4), i, b4).is_some())
        {
            self.owners.release(b4, self.id);
        }
    }

    /// After a reconfiguration that replaced state `old` by this one: gives up the
    /// claims on `old`'s subscribers that did not come over.
    pub fn release_claims_of(&self, old: &NatState) {
        for (_, s) in old.subs.iter() {
            self.release_claim(&s.b4);
        }
    }

    /// Removes subscriber `si` once it has neither sessions nor blocks (a subscriber made
    /// for a flow that was then refused, or one whose last session went).
    pub(crate) fn drop_if_idle(&mut self, si: u32) {
        let s = *self.subs.get(si);
        if s.sessions == 0 && s.nblocks == 0 {
            let h = self.sub_hash(s.inst, &s.b4);
            self.subs.remove(h, si);
            self.release_claim(&s.b4);
        }
    }

    /// Picks a free external port for a new session of subscriber `si`, allocating a port
    /// block if needed. Returns (port, block slot).
    ///
    /// The port keeps the range class of the inside port (RFC 4787 REQ-3, a MAY in RFC
    /// 6888's terms). Each address has only the few blocks below 1024 (one or two per
    /// worker with blocks of 512), so when the subscriber can get no well-known port, it
    /// gets a dynamic one rather than none, counted in `well_known_port_fallbacks`
    /// (decision 0014).
    fn pick_port(&mut self, si: u32, inner_port: u16, proto: u8, want: Want) -> Result<(u16, usize), Counter> {
        if let Some(p) = want.port {
            let (inst, ext) = {
                let s = self.subs.get(si);
                (s.inst as usize, s.ext_addr)
            };
            let b = self.inst[inst].ports.block_of_port(p);
            let slot = self.subs.get(si).block_slot(b);
            match slot {
                Some(slot) if p != 0 && self.find_outside(ext, p, proto).is_none() => return Ok((p, slot)),
                _ if want.only => return Err(Counter::PcpResultCannotProvideExternal),
                _ => {}
            }
        }
        // ICMP identifiers have no range class.
        let class = if proto == proto::ICMP { PortClass::Dynamic } else { PortClass::of(inner_port) };
        match self.pick_port_of_class(si, class, inner_port, proto) {
            Err(_) if class == PortClass::WellKnown => {
                let r = self.pick_port_of_class(si, PortClass::Dynamic, inner_port, proto);
                if r.is_ok() {
                    self.count(Counter::WellKnownPortFallbacks);
                }
                r
            }
            r => r,
        }
    }

    /// A free port of class `class` for subscriber `si` (see `pick_port`).
    fn pick_port_of_class(
        &mut self,
        si: u32,
        class: PortClass,
        inner_port: u16,
        proto: u8,
    ) -> Result<(u16, usize), Counter> {
        let (inst, addr_idx, ext, nblocks) = {
            let s = self.subs.get(si);
            (s.inst, s.addr_idx as usize, s.ext_addr, s.nblocks as usize)
        };
        for slot in 0..nblocks {
            let b = self.subs.get(si).blocks[slot];
            if self.inst[inst as usize].ports.class_of_block(b) != class {
                continue;
            }
            if let Some(p) = self.free_port_in(inst, b, ext, inner_port, proto) {
                return Ok((p, slot));
            }
        }
        let max = self.inst[inst as usize].cfg.limits.max_blocks as usize;
        if nblocks >= max {
            return Err(Counter::DropBlockLimit);
        }
        let hint = self.random();
        let b = self.inst[inst as usize].ports.allocate(addr_idx, class, hint).ok_or(Counter::DropPortsExhausted)?;
        let sub = self.subs.get_mut(si);
        sub.blocks[nblocks] = b;
        sub.used[nblocks] = 0;
        sub.nblocks += 1;
        let rec = self.block_record(self.subs.get(si), b);
        self.push_event(SessionEvent::BlockAllocated(rec));
        self.count(Counter::BlocksAllocated);
        let p = self.free_port_in(inst, b, ext, inner_port, proto).ok_or(Counter::DropPortsExhausted)?;
        Ok((p, nblocks))
    }

    /// A random free port of block `b` for `proto`, keeping the parity of the inside port
    /// when it can (RFC 4787 REQ-4 recommends parity; RFC 6056 randomisation).
    fn free_port_in(&mut self, inst: u8, b: u16, ext: u32, inner_port: u16, proto: u8) -> Option<u16> {
        let (first, count) = self.inst[inst as usize].ports.block_ports(b);
        let count = count as u32;
        let r = self.random();
        let parity = (inner_port as u32) & 1;
        for pass in 0..2 {
            for k in 0..count {
                let off = (r.wrapping_add(k)) % count;
                let p = (first as u32 + off) as u16;
                if pass == 0 && (p as u32 & 1) != parity {
                    continue;
                }
                if self.find_outside(ext, p, proto).is_none() {
                    return Some(p);
                }
            }
        }
        None
    }

    /// Creates the session of an outbound packet. `flags` is the initial TCP state.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn create_session(
        &mut self,
        si: u32,
        inner_addr: u32,
        inner_port: u16,
        proto: u8,
        remote_addr: u32,
        remote_port: u16,
        flags: u8,
    ) -> Result<u32, Counter> {
        self.create_session_at(si, inner_addr, inner_port, proto, (remote_addr, remote_port), flags, Want::ANY)
    }

    /// Creates a session, on the external port `want` asks for if the subscriber's
    /// blocks have it free (a PCP client's suggestion, RFC 6887 section 11.3).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_session_at(
        &mut self,
        si: u32,
        inner_addr: u32,
        inner_port: u16,
        proto: u8,
        (remote_addr, remote_port): (u32, u16),
        flags: u8,
        want: Want,
    ) -> Result<u32, Counter> {
        if self.sessions.is_full() {
            return Err(Counter::DropSessionTableFull);
        }
        let (inst, sessions) = {
            let s = self.subs.get(si);
            (s.inst as usize, s.sessions)
        };
        let limits = self.inst[inst].cfg.limits;
        if sessions >= limits.max_sessions {
            return Err(Counter::DropSessionLimit);
        }
        if limits.new_sessions_per_sec > 0 {
            let now = self.now;
            let s = self.subs.get_mut(si);
            if s.refilled != now {
                let add = (now.wrapping_sub(s.refilled) as u64).saturating_mul(limits.new_sessions_per_sec as u64);
                s.tokens = (s.tokens as u64 + add).min(limits.new_sessions_per_sec as u64) as u32;
                s.refilled = now;
            }
            if s.tokens == 0 {
                return Err(Counter::DropRateLimited);
            }
        }
        let (port, slot) = self.pick_port(si, inner_port, proto, want)?;
        let ext = self.subs.get(si).ext_addr;
        let s = Session {
            sub: si,
            inner_addr,
            ext_addr: ext,
            remote_addr,
            inner_port,
            ext_port: port,
            remote_port,
            proto,
            flags,
            last_seen: self.now,
            created: self.now,
            ..Default::default()
        };
        let h = self.key_hashes(&s);
        let i = self.sessions.insert(s, h, inst as u8).ok_or(Counter::DropSessionTableFull)?;
        let sub = self.subs.get_mut(si);
        sub.sessions += 1;
        sub.used[slot] += 1;
        if limits.new_sessions_per_sec > 0 {
            sub.tokens -= 1;
        }
        self.count(Counter::SessionsCreated);
        self.push_event(SessionEvent::Created(self.session_record(i)));
        Ok(i)
    }

    /// Records traffic on session `i`; emits a refresh event at most once per interval.
    #[inline]
    pub(crate) fn touch(&mut self, i: u32, inst: u8, flags: u8) {
        let before = self.sessions.get(i).last_seen;
        if self.sessions.touch(i, self.now, flags, inst)
            && before / self.refresh_interval != self.now / self.refresh_interval
        {
            self.push_event(SessionEvent::Refreshed(self.session_record(i)));
        }
    }

    /// Notes that session `i` sent to a remote; the previous remote stays permitted for
    /// address-and-port-dependent filtering (see `nat::filter`).
    #[inline]
    pub(crate) fn remember_remote(&mut self, i: u32, addr: u32, port: u16) {
        let s = *self.sessions.get(i);
        if s.remote_addr == addr && s.remote_port == port {
            return;
        }
        if let Some(ft) = &mut self.filter
            && s.remote_addr != 0
        {
            let h = (self.hasher.hash_one((i, s.created, s.remote_addr, s.remote_port)) >> 32) as u32;
            ft.remember(h, i, s.created, s.remote_addr, s.remote_port, self.now);
        }
        let s = self.sessions.get_mut(i);
        s.remote_addr = addr;
        s.remote_port = port;
    }

    /// Notes that session `i` sent to a remote other than its own without making it
    /// the session's remote (a TCP segment outside the connection the session tracks):
    /// that remote may answer under address-and-port-dependent filtering.
    #[inline]
    pub(crate) fn remember_other_remote(&mut self, i: u32, addr: u32, port: u16) {
        let s = *self.sessions.get(i);
        if let Some(ft) = &mut self.filter {
            let h = (self.hasher.hash_one((i, s.created, addr, port)) >> 32) as u32;
            ft.remember(h, i, s.created, addr, port, self.now);
        }
    }

    /// May the remote (`addr`, `port`) send to session `i` (RFC 4787 section 5)?
    #[inline]
    pub(crate) fn permitted(&self, i: u32, inst: u8, addr: u32, port: u16) -> bool {
        let ins = &self.inst[inst as usize];
        if ins.cfg.filtering == Filtering::EndpointIndependent {
            return true;
        }
        let s = self.sessions.get(i);
        if s.remote_addr == addr && s.remote_port == port || self.pcp_open(i) {
            return true;
        }
        let Some(ft) = &self.filter else { return false };
        let h = (self.hasher.hash_one((i, s.created, addr, port)) >> 32) as u32;
        match ft.last_sent(h, i, s.created, addr, port) {
            Some(t) => self.now.wrapping_sub(t) < ins.timeout(s.class()),
            None => false,
        }
    }

    /// Does a MAP lease open session `i` to every remote (RFC 6887 section 11.3)?
    fn pcp_open(&self, i: u32) -> bool {
        !self.leases.is_empty() && self.leases.get(i).is_some_and(|l| l.open && l.live(self.now))
    }

    /// The IPv6 path MTU towards subscriber `si`'s B4: the tunnel MTU, or less while a
    /// Packet Too Big learned in the last [`PMTU_AGE`] seconds says so. Past that the
    /// estimate goes back up to the tunnel MTU, to find out whether the path grew (RFC 8201
    /// section 4 and 5.3: no sooner than 5 minutes, 10 recommended).
    #[inline]
    pub(crate) fn path_mtu(&self, si: u32, tunnel_mtu: u16) -> u16 {
        let s = self.subs.get(si);
        if s.mtu != 0 && self.now.wrapping_sub(s.mtu_at) < PMTU_AGE { s.mtu.min(tunnel_mtu) } else { tunnel_mtu }
    }

    /// A Packet Too Big says the path towards subscriber `si`'s B4 carries `mtu` bytes
    /// (at least 1280, checked by the caller). Only lowers the estimate (RFC 8201 section
    /// 4: a PTB never raises it); the same value again restarts its age. False, and
    /// nothing learned, when `mtu` is not below the estimate (a packet we sent fitted it).
    pub(crate) fn learn_path_mtu(&mut self, si: u32, mtu: u16, tunnel_mtu: u16) -> bool {
        let now = self.now;
        let current = self.path_mtu(si, tunnel_mtu);
        let s = self.subs.get_mut(si);
        if mtu > current || (mtu == current && s.mtu != mtu) {
            return false;
        }
        s.mtu = mtu;
        s.mtu_at = now;
        true
    }

    /// Learns the subscriber's next-hop MAC from a frame it sent (source `rx`).
    #[inline]
    pub(crate) fn learn_mac(&mut self, si: u32, rx: Mac) {
        let s = self.subs.get_mut(si);
        // Zeros: nothing to learn (a frame the peer board sent on).
        if s.mac != rx && rx != [0; 6] {
            s.mac = rx;
        }
    }

    /// Deletes session `i`, releasing its block when empty and its subscriber when idle.
    pub fn delete_session(&mut self, i: u32) {
        let rec = self.session_record(i);
        let s = *self.sessions.get(i);
        let h = self.key_hashes(&s);
        let inst = rec.inst;
        self.sessions.remove(i, h, inst);
        if !self.leases.is_empty() {
            self.leases.remove(i);
        }
        self.push_event(SessionEvent::Deleted(rec));
        let si = s.sub;
        let b = self.inst[inst as usize].ports.block_of_port(s.ext_port);
        let sub = self.subs.get_mut(si);
        sub.sessions -= 1;
        if let Some(slot) = sub.block_slot(b) {
            sub.used[slot] = sub.used[slot].saturating_sub(1);
            // Keep one block while the subscriber lives, so its ports stay stable.
            if sub.used[slot] == 0 && sub.nblocks > 1 {
                self.release_block(si, slot);
            }
        }
        if self.subs.get(si).sessions == 0 {
            while self.subs.get(si).nblocks > 0 {
                self.release_block(si, 0);
            }
            self.drop_if_idle(si);
        }
    }

    fn release_block(&mut self, si: u32, slot: usize) {
        let sub = *self.subs.get(si);
        let b = sub.blocks[slot];
        self.inst[sub.inst as usize].ports.release(sub.addr_idx as usize, b, self.now);
        let rec = self.block_record(&sub, b);
        let s = self.subs.get_mut(si);
        let last = s.nblocks as usize - 1;
        s.blocks[slot] = s.blocks[last];
        s.used[slot] = s.used[last];
        s.nblocks -= 1;
        self.push_event(SessionEvent::BlockReleased(rec));
        self.count(Counter::BlocksReleased);
    }

    /// Expires at most `budget` sessions whose timer ran out; returns how many. Called
    /// by the worker between batches, so expiry cost is spread (no table walk).
    pub fn expire(&mut self, budget: usize) -> usize {
        let now = self.now;
        self.inst.iter_mut().for_each(|i| i.ports.age(now));
        let lists = self.inst.len() * CLASSES;
        let (mut done, mut work) = (0, 0);
        for k in 0..lists {
            let l = (self.expiry_cursor + k) % lists;
            let (inst, class) = (l / CLASSES, TimerClass::from_index(l % CLASSES));
            let timeout = self.inst[inst].timeout(class);
            while work < budget {
                let Some(i) = self.sessions.oldest_in(inst as u8, class) else { break };
                let s = *self.sessions.get(i);
                if self.now.wrapping_sub(s.last_seen) < timeout {
                    break;
                }
                work += 1;
                // A PCP lease keeps its session whatever its idle time (decision 0023):
                // to the tail of its list, looked at again a timeout later.
                if !self.leases.is_empty()
                    && let Some(lease) = self.leases.get(i)
                    && lease.live(now)
                {
                    self.sessions.touch(i, now, s.flags, inst as u8);
                    continue;
                }
                self.delete_session(i);
                self.count(Counter::SessionsExpired);
                done += 1;
            }
            if work >= budget {
                self.expiry_cursor = l;
                break;
            }
        }
        done
    }

    // ----- State from the peer (hot backup) and for display -----

    /// Installs a port block received from the peer. Refused if it collides with what
    /// this worker allocated.
    pub fn install_block(&mut self, r: &BlockRecord) -> Result<(), InstallError> {
        let inst = r.inst;
        let ins = self.inst.get(inst as usize).ok_or(InstallError::NoInstance)?;
        let (pinst, a) = self.pool_lookup(r.ext_addr).ok_or(InstallError::NotInPool)?;
        if pinst != inst {
            return Err(InstallError::NotInPool);
        }
        if r.size != ins.cfg.port_block_size
            || ins.ports.block_ports(ins.ports.block_of_port(r.first_port)).0 != r.first_port
        {
            return Err(InstallError::BlockSize);
        }
        if !ins.cfg.b4_prefixes.iter().any(|p| p.contains(&r.b4)) {
            return Err(InstallError::NotAuthorised);
        }
        let b = ins.ports.block_of_port(r.first_port);
        if !ins.ports.is_mine(b) {
            return Err(InstallError::WrongWorker);
        }
        let class = ins.ports.class_of_block(b);
        let si = match self.subscriber(inst, &r.b4, None, [0; 6]) {
            Ok(si) => {
                let s = self.subs.get(si);
                if s.ext_addr != r.ext_addr {
                    return Err(InstallError::AddressMismatch);
                }
                if s.block_slot(b).is_some() {
                    return Ok(());
                }
                si
            }
            Err(_) => {
                if self.inst[inst as usize].ports.is_allocated(a as usize, b) {
                    return Err(InstallError::BlockCollision);
                }
                // Paired with the peer's address, whatever this board's steering says.
                let h = self.sub_hash(inst, &r.b4);
                self.new_subscriber(inst, &r.b4, h, class, Some(a as usize), [0; 6]).map_err(|c| match c {
                    // Another worker of this board holds the B4.
                    Counter::DropWrongWorker => InstallError::WrongWorker,
                    _ => InstallError::Full,
                })?
            }
        };
        let n = self.subs.get(si).nblocks as usize;
        if n >= MAX_BLOCKS {
            self.drop_if_idle(si);
            return Err(InstallError::Full);
        }
        if !self.inst[inst as usize].ports.claim(a as usize, b) {
            self.drop_if_idle(si);
            return Err(InstallError::BlockCollision);
        }
        let s = self.subs.get_mut(si);
        s.blocks[n] = b;
        s.used[n] = 0;
        s.nblocks += 1;
        Ok(())
    }

    /// Installs (or updates) a session received from the peer. Its block must have been
    /// installed first; a port taken by another session is a collision.
    pub fn install_session(&mut self, r: &SessionRecord) -> Result<(), InstallError> {
        if !matches!(r.proto, proto::TCP | proto::UDP | proto::ICMP) {
            return Err(InstallError::Malformed);
        }
        let ins = self.inst.get(r.inst as usize).ok_or(InstallError::NoInstance)?;
        let b = ins.ports.block_of_port(r.ext_port);
        let si = self.subscriber(r.inst, &r.b4, None, [0; 6]).map_err(|_| InstallError::NoBlock)?;
        let slot = self.subs.get(si).block_slot(b).ok_or(InstallError::NoBlock)?;
        if self.subs.get(si).ext_addr != r.ext_addr {
            return Err(InstallError::AddressMismatch);
        }
        if r.mac != [0; 6] {
            self.subs.get_mut(si).mac = r.mac;
        }
        let hi = self.inside_hash(r.inst, &r.b4, r.inner_addr, r.inner_port, r.proto);
        let existing = self.sessions.inside.find(hi, |i| {
            let s = self.sessions.get(i);
            s.sub == si && s.inner_addr == r.inner_addr && s.inner_port == r.inner_port && s.proto == r.proto
        });
        let ho = self.outside_hash(r.ext_addr, r.ext_port, r.proto);
        let port_owner = self.find_outside_hashed(ho, r.ext_addr, r.ext_port, r.proto);
        // A peer whose clock runs ahead must not make sessions look ancient to the
        // wrapping age arithmetic of expiry: times are clamped to this clock, then taken
        // from Unix time to the timer clock.
        let unix_now = self.unix_of(self.now);
        let clamp = |t: u32| self.timer_of_unix(if self.now > 0 { t.min(unix_now) } else { t });
        let (last_seen, created) = (clamp(r.last_seen), clamp(r.created));
        let lease = r.pcp.map(|l| PcpLease { until: self.timer_of_unix(l.until), ..l });
        if let Some(i) = existing {
            if self.sessions.get(i).ext_port != r.ext_port {
                return Err(InstallError::PortCollision);
            }
            let last = last_seen.max(self.sessions.get(i).last_seen);
            self.sessions.touch(i, last, r.flags, r.inst);
            self.set_lease(i, si, lease);
            return Ok(());
        }
        if port_owner.is_some() {
            return Err(InstallError::PortCollision);
        }
        if self.sessions.is_full() {
            return Err(InstallError::Full);
        }
        let s = Session {
            sub: si,
            inner_addr: r.inner_addr,
            ext_addr: r.ext_addr,
            inner_port: r.inner_port,
            ext_port: r.ext_port,
            proto: r.proto,
            flags: r.flags,
            last_seen,
            created,
            ..Default::default()
        };
        let i = self.sessions.insert(s, KeyHashes { inside: hi, outside: ho }, r.inst).ok_or(InstallError::Full)?;
        self.set_lease(i, si, lease);
        let sub = self.subs.get_mut(si);
        sub.sessions += 1;
        sub.used[slot] += 1;
        self.count(Counter::SessionsInstalled);
        Ok(())
    }

    /// Gives session `i` of subscriber `si` the PCP lease `lease`, or takes its lease away.
    pub(crate) fn set_lease(&mut self, i: u32, si: u32, lease: Option<PcpLease>) {
        match lease {
            Some(l) => self.leases.set(i, si, l),
            None if !self.leases.is_empty() => {
                self.leases.remove(i);
            }
            None => {}
        }
    }

    /// Tells hot backup and logging that session `i` changed outside traffic (a PCP
    /// lease given, renewed or taken away).
    pub(crate) fn session_changed(&self, i: u32) {
        self.push_event(SessionEvent::Refreshed(self.session_record(i)));
    }

    /// Removes the session `r` names (the peer deleted it); false if there is none with
    /// that inside key and external port.
    pub fn remove_session(&mut self, r: &SessionRecord) -> bool {
        let Ok(si) = self.subscriber(r.inst, &r.b4, None, [0; 6]) else { return false };
        let hi = self.inside_hash(r.inst, &r.b4, r.inner_addr, r.inner_port, r.proto);
        let found = self.sessions.inside.find(hi, |i| {
            let s = self.sessions.get(i);
            s.sub == si && s.inner_addr == r.inner_addr && s.inner_port == r.inner_port && s.proto == r.proto
        });
        match found {
            Some(i) if self.sessions.get(i).ext_port == r.ext_port => {
                self.delete_session(i);
                true
            }
            _ => false,
        }
    }

    /// The location (index into the instance's shares) of pool address `addr`; an
    /// instance without shares has one location.
    fn location_of_addr(&self, addr: u32) -> Option<usize> {
        let (inst, idx) = self.pool_lookup(addr)?;
        let shares = &self.inst[inst as usize].shares;
        if shares.is_empty() {
            return Some(0);
        }
        shares.iter().position(|r| r.contains(&(idx as usize)))
    }

    /// Whether `addr` is of one of `locations` (bits by index).
    fn covered(&self, addr: u32, locations: u64) -> bool {
        // A location this board is active for now is its own (it may have taken it over
        // since the bulk ended, its sweep still queued): never swept.
        let locations = locations & !self.active;
        self.location_of_addr(addr).is_some_and(|l| l < 64 && locations & (1 << l) != 0)
    }

    /// Hot backup's sweep after a bulk sync, over up to `max` sessions from slot `from`
    /// on: removes those of `locations` (bits by index) whose key
    /// ([`SessionRecord::key`]) is not in `keep` (sorted), the copies the bulk did not
    /// bring. Returns how many sessions and blocks went, and the slot to go on from
    /// (None: done).
    pub fn sweep_sessions(&mut self, keep: &[u64], locations: u64, from: u32, max: usize) -> (usize, Option<u32>) {
        let (look, next) = self.session_slots(from, max);
        let mut gone = 0;
        for i in look {
            let r = self.session_record(i);
            if self.covered(r.ext_addr, locations) && keep.binary_search(&r.key()).is_err() {
                // Blocks that go with the session count too.
                let si = self.sessions.get(i).sub;
                let sub = *self.subs.get(si);
                self.delete_session(i);
                let left = if sub.sessions > 1 { self.subs.get(si).nblocks } else { 0 };
                gone += 1 + (sub.nblocks - left) as usize;
            }
        }
        (gone, next)
    }

    /// The same for the port blocks of up to `max` subscribers from slot `from` on
    /// (after their sessions): a block of `locations` that the bulk did not bring and
    /// that no session uses is released; a subscriber left with nothing goes.
    pub fn sweep_blocks(&mut self, keep: &[u64], locations: u64, from: u32, max: usize) -> (usize, Option<u32>) {
        let (look, next) = {
            let mut it = self.subs.iter_from(from);
            let look: Vec<u32> = it.by_ref().take(max.max(1)).map(|(i, _)| i).collect();
            (look, it.next().map(|(i, _)| i))
        };
        let mut gone = 0;
        for si in look {
            if !self.covered(self.subs.get(si).ext_addr, locations) {
                continue;
            }
            let mut slot = 0;
            while slot < self.subs.get(si).nblocks as usize {
                let sub = *self.subs.get(si);
                let rec = self.block_record(&sub, sub.blocks[slot]);
                if sub.used[slot] == 0 && keep.binary_search(&rec.key()).is_err() {
                    // The last block takes this slot: look at it again.
                    self.release_block(si, slot);
                    gone += 1;
                } else {
                    slot += 1;
                }
            }
            self.drop_if_idle(si);
        }
        (gone, next)
    }

    /// Every live session as a record (display, bulk sync; walks the table).
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.sessions_from(0, usize::MAX).0
    }

    /// Up to `max` sessions from slot `from` on, and the slot where the next ones start
    /// (None: no more).
    pub fn sessions_from(&self, from: u32, max: usize) -> (Vec<SessionRecord>, Option<u32>) {
        self.sessions_matching(|_| true, from, max)
    }

    /// The slots of up to `max` (at least one) sessions from slot `from` on, and the
    /// slot where the next ones start (None: no more).
    fn session_slots(&self, from: u32, max: usize) -> (Vec<u32>, Option<u32>) {
        let mut it = self.sessions.iter_from(from);
        let look: Vec<u32> = it.by_ref().take(max.max(1)).map(|(i, _)| i).collect();
        (look, it.next().map(|(i, _)| i))
    }

    /// Of up to `max` sessions from slot `from` on, those `pick` selects, and the slot
    /// where the next ones start (None: no more): a display reads the table in such
    /// pieces, copying only what it shows.
    pub fn sessions_matching(
        &self,
        pick: impl Fn(&SessionRecord) -> bool,
        from: u32,
        max: usize,
    ) -> (Vec<SessionRecord>, Option<u32>) {
        let mut it = self.sessions.iter_from(from);
        let out = it.by_ref().take(max.max(1)).map(|(i, _)| self.session_record(i)).filter(|r| pick(r)).collect();
        (out, it.next().map(|(i, _)| i))
    }

    /// Deletes, of up to `max` sessions from slot `from` on, those `pick` selects, as
    /// an expiry does (logged as deleted, removed from the peer board); returns how many
    /// went and the slot where the next ones start (None: no more).
    pub fn delete_matching(
        &mut self,
        pick: impl Fn(&SessionRecord) -> bool,
        from: u32,
        max: usize,
    ) -> (usize, Option<u32>) {
        let (look, next) = self.session_slots(from, max);
        let mut gone = 0;
        for i in look {
            if pick(&self.session_record(i)) {
                self.delete_session(i);
                gone += 1;
            }
        }
        (gone, next)
    }

    /// Every subscriber with its external address and blocks (slow path: display).
    pub fn subscribers(&self) -> Vec<SubscriberView> {
        self.subscribers_from(0, usize::MAX).0
    }

    /// Up to `max` subscribers from slot `from` on, and the slot where the next ones
    /// start (None: no more).
    pub fn subscribers_from(&self, from: u32, max: usize) -> (Vec<SubscriberView>, Option<u32>) {
        let view = |s: &crate::nat::subscriber::Subscriber| {
            let ps = &self.inst[s.inst as usize].ports;
            SubscriberView {
                inst: s.inst,
                b4: s.b4,
                ext_addr: s.ext_addr,
                blocks: s.blocks[..s.nblocks as usize].iter().map(|&b| ps.block_ports(b)).collect(),
                sessions: s.sessions,
            }
        };
        let mut it = self.subs.iter_from(from);
        let out: Vec<_> = it.by_ref().take(max).map(|(_, s)| view(s)).collect();
        (out, it.next().map(|(i, _)| i))
    }
}

/// A subscriber as `display` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberView {
    pub inst: u8,
    pub b4: [u8; 16],
    pub ext_addr: u32,
    /// (first port, ports) of each block.
    pub blocks: Vec<(u16, u16)>,
    pub sessions: u32,
}

impl SubscriberView {
    /// The subscriber's port blocks as records (to install elsewhere, or to bulk-sync).
    pub fn block_records(&self) -> impl Iterator<Item = BlockRecord> + '_ {
        self.blocks.iter().map(|&(first_port, size)| BlockRecord {
            inst: self.inst,
            b4: self.b4,
            ext_addr: self.ext_addr,
            first_port,
            size,
            at: 0,
        })
    }
}

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    // Folded multiply (as in wyhash and ahash's fallback): fast and well mixed.
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline]
fn fold32(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

/// Takes the port blocks of the static forwardings out of dynamic allocation: a
/// forwarding's block stays marked allocated on its address for good, so the allocator
/// never hands out its port (decision 0019). Addresses outside this board's pool
/// (forwardings of its B4s to another pair's addresses) reserve nothing here.
fn reserve_static_blocks(inst: &mut [Instance], pool_ranges: &[(u32, u32, u8, u32)]) {
    for (n, ins) in inst.iter_mut().enumerate() {
        for m in &ins.cfg.statics {
            let at = pool_ranges.iter().find(|r| r.2 == n as u8 && (r.0..=r.1).contains(&m.ext_addr));
            if let Some(&(first, _, _, base)) = at {
                let b = ins.ports.block_of_port(m.ext_port);
                ins.ports.reserve((base + (m.ext_addr - first)) as usize, b);
            }
        }
    }
}
