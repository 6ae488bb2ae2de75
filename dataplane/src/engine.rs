//! One worker's engine: its tables, counters and event ring, and the entry point that
//! takes a frame and says what to do with it ([`Engine::process`]).
//!
//! Ownership (DESIGN.md, Sessions and ports): a subscriber lives on the worker that
//! created it, the worker whose receive queue its frames reach (claimed in the board's
//! [`Owners`], see `nat::owners`); an inbound IPv4 packet belongs to the worker that owns
//! the port block of its destination port ([`Engine::owner_of_frame`]). A packet that
//! reaches the wrong worker comes back as [`Verdict::Handoff`]; the I/O layer sends it to
//! the owner. The packet path of an established flow takes no shared lock.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::config::{ConfigError, EgressL2, EngineConfig, Filtering, InstanceConfig, Timeouts};
use crate::counters::{Counter, WorkerCounters};
use crate::nat::events::{BlockRecord, InstallError, SessionEvent, SessionRecord};
use crate::nat::filter::FilterTable;
use crate::nat::fragments::{FragTracker4, Reassembler};
use crate::nat::owners::Owners;
use crate::nat::ports::{PortClass, PortSpace};
use crate::nat::session::{KeyHashes, Session, SessionTable, TimerClass};
use crate::nat::subscriber::{MAX_BLOCKS, Subscriber, SubscriberTable};

pub use crate::frame::{Egress, Frame, HEADROOM, Sink, VecSink, Verdict, WorkerId};

/// What the packet path reads of an instance, copied into one small contiguous array
/// so it stays in cache (the full configuration sits behind several pointers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HotInstance {
    pub endpoint: [u8; 16],
    /// Authorised B4 prefixes as (masked address, mask); the rest, if more, in `cfg`.
    prefixes: [(u128, u128); HOT_PREFIXES],
    nprefixes: u8,
    more_prefixes: bool,
    pub tunnel_mtu: u16,
    pub hop_limit: u8,
    pub allow_public_inner: bool,
    pub mss_clamp: bool,
}

const HOT_PREFIXES: usize = 4;

impl HotInstance {
    fn new(c: &InstanceConfig) -> Self {
        let mut prefixes = [(0u128, u128::MAX); HOT_PREFIXES];
        for (slot, p) in prefixes.iter_mut().zip(&c.b4_prefixes) {
            let len = p.len.min(128) as u32;
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            *slot = (u128::from_be_bytes(p.addr) & mask, mask);
        }
        HotInstance {
            endpoint: c.endpoint,
            prefixes,
            nprefixes: c.b4_prefixes.len().min(HOT_PREFIXES) as u8,
            more_prefixes: c.b4_prefixes.len() > HOT_PREFIXES,
            tunnel_mtu: c.tunnel_mtu,
            hop_limit: c.hop_limit,
            allow_public_inner: c.allow_public_inner,
            mss_clamp: c.mss_clamp,
        }
    }
}

pub(crate) struct Instance {
    pub cfg: InstanceConfig,
    pub addrs: Vec<u32>,
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

pub struct Engine {
    pub(crate) hot: Vec<HotInstance>,
    /// The inside-key hash of the frame being processed, from the batch's first stage.
    pub(crate) prehash: Option<u32>,
    pub(crate) id: WorkerId,
    pub(crate) workers: u16,
    pub(crate) inst: Vec<Instance>,
    /// Pool ranges: (first address, last address, instance, index of the first address
    /// in the instance pool), sorted; pools do not overlap.
    pool_ranges: Vec<(u32, u32, u8, u32)>,
    pub(crate) subs: SubscriberTable,
    /// The board's claims on subscribers, shared by its workers.
    pub(crate) owners: Arc<Owners>,
    pub(crate) sessions: SessionTable,
    /// Keys of the table hash, from the board's seed (against crafted collisions).
    keys: [u64; 4],
    /// For the address-and-port-dependent filter entries.
    hasher: ahash::RandomState,
    pub(crate) now: u32,
    pub(crate) now_ms: u64,
    pub(crate) counters: Arc<WorkerCounters>,
    events: Sender<SessionEvent>,
    pub(crate) softwire_l2: EgressL2,
    /// Source MAC of the frame being processed.
    pub(crate) rx_mac: crate::wire::ethernet::Mac,
    /// Destination MAC of what the frame being processed sends towards the B4s.
    pub(crate) softwire_dst: crate::wire::ethernet::Mac,
    pub(crate) internet_l2: EgressL2,
    refresh_interval: u32,
    pub(crate) frag6: Reassembler,
    pub(crate) frag4: FragTracker4,
    rng: u64,
    /// Remotes of address-and-port-dependent mappings (when an instance filters so).
    filter: Option<FilterTable>,
    /// Expiry resumes at this list on the next call.
    expiry_cursor: usize,
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
        if i.tunnel_mtu < 1280 {
            return Err(ConfigError::TunnelMtu(i.name.clone(), i.tunnel_mtu));
        }
        if i.pool.is_empty() {
            return Err(ConfigError::EmptyPool(i.name.clone()));
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
        validate(cfg)?;
        if id >= cfg.workers {
            return Err(ConfigError::Workers);
        }
        let mut pool_ranges = Vec::new();
        let inst: Vec<Instance> = cfg
            .instances
            .iter()
            .enumerate()
            .map(|(n, c)| {
                let mut addrs: Vec<u32> = Vec::new();
                for p in &c.pool {
                    let (first, last) = p.range();
                    pool_ranges.push((first, last, n as u8, addrs.len() as u32));
                    addrs.extend(p.addresses());
                }
                let ports = PortSpace::new(addrs.len(), c.port_block_size, cfg.workers, id);
                Instance { cfg: c.clone(), addrs, ports }
            })
            .collect();
        pool_ranges.sort_unstable();
        let (tx, rx) = crossbeam_channel::bounded(cfg.event_ring);
        let engine = Engine {
            hot: cfg.instances.iter().map(HotInstance::new).collect(),
            prehash: None,
            id,
            workers: cfg.workers,
            inst,
            pool_ranges,
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
            subs: SubscriberTable::new(cfg.max_subscribers),
            owners,
            sessions: SessionTable::new(cfg.max_sessions, cfg.instances.len()),
            hasher: ahash::RandomState::with_seeds(
                hash_seed,
                hash_seed ^ 0x5bd1_e995,
                0x2545_f491_4f6c_dd1d,
                0x9e37_79b9_7f4a_7c15,
            ),
            now: 0,
            now_ms: 0,
            counters: Arc::new(WorkerCounters::default()),
            events: tx,
            softwire_l2: cfg.softwire_l2,
            rx_mac: [0; 6],
            softwire_dst: cfg.softwire_l2.dst,
            internet_l2: cfg.internet_l2,
            refresh_interval: cfg.refresh_event_interval.max(1),
            frag6: Reassembler::new(cfg.frag),
            frag4: FragTracker4::new(cfg.frag),
            rng: hash_seed ^ ((id as u64) << 32) ^ 0x853c_49e6_748f_ea9b,
            filter: cfg
                .instances
                .iter()
                .any(|i| i.filtering == Filtering::AddressAndPortDependent)
                .then(|| FilterTable::new(cfg.max_sessions as usize)),
            expiry_cursor: 0,
        };
        Ok((engine, rx))
    }

    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// Counters of this worker, readable from any thread.
    pub fn counters(&self) -> Arc<WorkerCounters> {
        self.counters.clone()
    }

    /// Sets the clock (Unix milliseconds); the worker calls this once per batch.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.now = (now_ms / 1000) as u32;
    }

    pub fn softwire_l2(&self) -> EgressL2 {
        self.softwire_l2
    }
    pub fn internet_l2(&self) -> EgressL2 {
        self.internet_l2
    }

    /// Updates layer-2 addressing after neighbour resolution.
    pub fn set_l2(&mut self, softwire: EgressL2, internet: EgressL2) {
        self.softwire_l2 = softwire;
        self.internet_l2 = internet;
    }

    pub fn session_count(&self) -> u32 {
        self.sessions.len()
    }
    pub fn subscriber_count(&self) -> u32 {
        self.subs.len()
    }

    /// Bytes held by the tables of this worker.
    pub fn table_memory(&self) -> usize {
        self.sessions.memory() + self.subs.memory() + self.inst.iter().map(|i| i.ports.memory()).sum::<usize>()
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
    pub fn owners(&self) -> Arc<Owners> {
        self.owners.clone()
    }

    /// Another worker that holds subscriber `b4` (of instance `inst`), if one does: the
    /// frame goes there. A worker's own subscribers are found in its own table, so an
    /// established flow never reads the shared claims.
    #[inline]
    pub(crate) fn foreign_owner(&self, inst: u8, b4: &[u8; 16]) -> Option<WorkerId> {
        if self.workers <= 1 {
            return None;
        }
        // An established flow: the batch's first stages found a session under this
        // frame's key and brought it and its subscriber into the cache. A session of this
        // B4 here means the subscriber is here, without a lookup of its own.
        if let Some(h) = self.prehash
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

    /// The instance whose AFTR endpoint is `addr`.
    #[inline]
    pub(crate) fn instance_of_endpoint(&self, addr: &[u8; 16]) -> Option<u8> {
        self.hot.iter().position(|h| h.endpoint == *addr).map(|i| i as u8)
    }

    /// Is `b4` inside an authorised prefix of instance `inst` (RFC 6333 section 5.2)?
    #[inline]
    pub(crate) fn b4_authorised(&self, inst: u8, b4: &[u8; 16]) -> bool {
        let h = &self.hot[inst as usize];
        let a = u128::from_be_bytes(*b4);
        h.prefixes[..h.nprefixes as usize].iter().any(|&(p, m)| a & m == p)
            || (h.more_prefixes && self.inst[inst as usize].cfg.b4_prefixes.iter().any(|p| p.contains(b4)))
    }

    /// The session of an inside endpoint: (instance, B4, inner address, inner port or
    /// identifier, protocol). One index probe; the B4 is checked through the session's
    /// subscriber, so the subscriber table is only consulted for new flows.
    #[inline]
    pub(crate) fn find_inside(&self, inst: u8, b4: &[u8; 16], addr: u32, port: u16, proto: u8) -> Option<u32> {
        let h = self.inside_hash(inst, b4, addr, port, proto);
        self.find_inside_hashed(h, inst, b4, addr, port, proto)
    }

    /// [`Engine::find_inside`] with the hash already computed.
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

    /// The worker owning external port `port` of pool address `addr`.
    pub fn owner_of_port(&self, addr: u32, port: u16) -> Option<WorkerId> {
        if self.workers == 1 {
            return Some(0);
        }
        self.pool_lookup(addr).map(|(i, _)| self.inst[i as usize].ports.owner_of_port(port))
    }

    #[inline]
    pub(crate) fn random(&mut self) -> u32 {
        // xorshift64*: port randomisation (RFC 6056 section 3.3.1 algorithm 1 in spirit),
        // seeded per worker from the board's seed.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    #[inline]
    pub(crate) fn count(&self, c: Counter) {
        self.counters.inc(c)
    }

    fn push_event(&self, e: SessionEvent) {
        if self.events.try_send(e).is_err() {
            self.count(Counter::EventsDropped);
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
            created: s.created,
            last_seen: s.last_seen,
            mac: sub.mac,
        }
    }

    fn block_record(&self, sub: &Subscriber, block: u16) -> BlockRecord {
        let ps = &self.inst[sub.inst as usize].ports;
        let (first, size) = ps.block_ports(block);
        BlockRecord { inst: sub.inst, b4: sub.b4, ext_addr: sub.ext_addr, first_port: first, size, at: self.now }
    }

    // ----- Subscribers and sessions (called by the pipeline) -----

    /// Finds the subscriber of a B4, creating it when `create` (with its paired address
    /// chosen for the port class `class`).
    pub(crate) fn subscriber(&mut self, inst: u8, b4: &[u8; 16], create: Option<PortClass>) -> Result<u32, Counter> {
        let h = self.sub_hash(inst, b4);
        if let Some(i) = self.subs.find(h, inst, b4) {
            return Ok(i);
        }
        let Some(class) = create else { return Err(Counter::DropNoSession) };
        // Two workers meeting a new B4 at once: the first claim wins, the other drops.
        if self.workers > 1 && self.owners.claim(b4, self.id) != self.id {
            return Err(Counter::DropWrongWorker);
        }
        let ins = &self.inst[inst as usize];
        let n = ins.addrs.len();
        // Paired pooling (RFC 6888 REQ-2): pick the address once, spread by the B4 hash.
        let start = h as usize % n;
        let Some(a) = (0..n).map(|k| (start + k) % n).find(|&a| ins.ports.free_blocks(a, class) > 0) else {
            self.release_claim(b4);
            return Err(Counter::DropPortsExhausted);
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
            blocks: [0; MAX_BLOCKS],
            used: [0; MAX_BLOCKS],
            // The frame that makes a subscriber comes from its next hop (peer installs
            // set theirs from the record).
            mac: self.rx_mac,
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

    /// After a reconfiguration that replaced engine `old` by this one: gives up the
    /// claims on `old`'s subscribers that did not come over.
    pub fn release_claims_of(&self, old: &Engine) {
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
    fn pick_port(&mut self, si: u32, inner_port: u16, proto: u8) -> Result<(u16, usize), Counter> {
        // ICMP identifiers have no range class.
        let class = if proto == crate::wire::proto::ICMP { PortClass::Dynamic } else { PortClass::of(inner_port) };
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
        let taken = |e: &Engine, p: u16| {
            let h = e.outside_hash(ext, p, proto);
            e.sessions
                .outside
                .find(h, |i| {
                    let s = e.sessions.get(i);
                    s.ext_addr == ext && s.ext_port == p && s.proto == proto
                })
                .is_some()
        };
        let parity = (inner_port as u32) & 1;
        for pass in 0..2 {
            for k in 0..count {
                let off = (r.wrapping_add(k)) % count;
                let p = (first as u32 + off) as u16;
                if pass == 0 && (p as u32 & 1) != parity {
                    continue;
                }
                if !taken(self, p) {
                    return Some(p);
                }
            }
        }
        None
    }

    /// Creates the session of an outbound packet. `flags` is the initial TCP state.
    #[allow(clippy::too_many_arguments)]
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
        let (port, slot) = self.pick_port(si, inner_port, proto)?;
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

    /// May the remote (`addr`, `port`) send to session `i` (RFC 4787 section 5)?
    #[inline]
    pub(crate) fn permitted(&self, i: u32, inst: u8, addr: u32, port: u16) -> bool {
        let ins = &self.inst[inst as usize];
        if ins.cfg.filtering == Filtering::EndpointIndependent {
            return true;
        }
        let s = self.sessions.get(i);
        if s.remote_addr == addr && s.remote_port == port {
            return true;
        }
        let Some(ft) = &self.filter else { return false };
        let h = (self.hasher.hash_one((i, s.created, addr, port)) >> 32) as u32;
        match ft.last_sent(h, i, s.created, addr, port) {
            Some(t) => self.now.wrapping_sub(t) < ins.timeout(s.class()),
            None => false,
        }
    }

    /// Sends what follows to the subscriber's learned next hop (its B4, or the router
    /// in front of it), or to the default next hop while none is learned.
    #[inline]
    pub(crate) fn towards_subscriber(&mut self, si: u32) {
        let mac = self.subs.get(si).mac;
        self.softwire_dst = if mac == [0; 6] { self.softwire_l2.dst } else { mac };
    }

    /// Learns the subscriber's next-hop MAC from the frame being processed.
    #[inline]
    pub(crate) fn learn_mac(&mut self, si: u32) {
        let rx = self.rx_mac;
        let s = self.subs.get_mut(si);
        if s.mac != rx {
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
        self.inst[sub.inst as usize].ports.release(sub.addr_idx as usize, b);
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
        let lists = self.inst.len() * crate::nat::session::CLASSES;
        let mut done = 0;
        for k in 0..lists {
            let l = (self.expiry_cursor + k) % lists;
            let (inst, class) =
                (l / crate::nat::session::CLASSES, TimerClass::from_index(l % crate::nat::session::CLASSES));
            let timeout = self.inst[inst].timeout(class);
            while done < budget {
                let Some(i) = self.sessions.oldest_in(inst as u8, class) else { break };
                if self.now.wrapping_sub(self.sessions.get(i).last_seen) < timeout {
                    break;
                }
                self.delete_session(i);
                self.count(Counter::SessionsExpired);
                done += 1;
            }
            if done >= budget {
                self.expiry_cursor = l;
                break;
            }
        }
        self.frag6.expire(self.now_ms, &self.counters);
        self.frag4.expire(self.now_ms, &self.counters);
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
        let b = ins.ports.block_of_port(r.first_port);
        if !ins.ports.is_mine(b) {
            return Err(InstallError::WrongWorker);
        }
        let class = ins.ports.class_of_block(b);
        let si = match self.subscriber(inst, &r.b4, None) {
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
                let si = self.subscriber(inst, &r.b4, Some(class)).map_err(|c| match c {
                    // Another worker of this board holds the B4.
                    Counter::DropWrongWorker => InstallError::WrongWorker,
                    _ => InstallError::Full,
                })?;
                // Pair the new subscriber with the peer's address.
                let s = self.subs.get_mut(si);
                s.addr_idx = a;
                s.ext_addr = r.ext_addr;
                s.mac = [0; 6];
                si
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
        if !matches!(r.proto, crate::wire::proto::TCP | crate::wire::proto::UDP | crate::wire::proto::ICMP) {
            return Err(InstallError::Malformed);
        }
        let ins = self.inst.get(r.inst as usize).ok_or(InstallError::NoInstance)?;
        let b = ins.ports.block_of_port(r.ext_port);
        let si = self.subscriber(r.inst, &r.b4, None).map_err(|_| InstallError::NoBlock)?;
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
        let port_owner = self.sessions.outside.find(ho, |i| {
            let s = self.sessions.get(i);
            s.ext_addr == r.ext_addr && s.ext_port == r.ext_port && s.proto == r.proto
        });
        // A peer whose clock runs ahead must not make sessions look ancient to the
        // wrapping age arithmetic of expiry: times are clamped to this clock.
        let clamp = |t: u32| if self.now > 0 { t.min(self.now) } else { t };
        let (last_seen, created) = (clamp(r.last_seen), clamp(r.created));
        if let Some(i) = existing {
            if self.sessions.get(i).ext_port != r.ext_port {
                return Err(InstallError::PortCollision);
            }
            let last = last_seen.max(self.sessions.get(i).last_seen);
            self.sessions.touch(i, last, r.flags, r.inst);
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
        self.sessions.insert(s, KeyHashes { inside: hi, outside: ho }, r.inst).ok_or(InstallError::Full)?;
        let sub = self.subs.get_mut(si);
        sub.sessions += 1;
        sub.used[slot] += 1;
        self.count(Counter::SessionsInstalled);
        Ok(())
    }

    /// Removes the session `r` names (the peer deleted it); false if there is none with
    /// that inside key and external port.
    pub fn remove_session(&mut self, r: &SessionRecord) -> bool {
        let Ok(si) = self.subscriber(r.inst, &r.b4, None) else { return false };
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

    /// Every live session as a record (display, bulk sync; walks the table).
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.sessions.iter().map(|(i, _)| self.session_record(i)).collect()
    }

    /// Up to `max` sessions from slot `from` on, and the slot where the next ones start
    /// (None: no more). A bulk sync reads the table in such pieces.
    pub fn sessions_from(&self, from: u32, max: usize) -> (Vec<SessionRecord>, Option<u32>) {
        let mut it = self.sessions.iter_from(from);
        let out: Vec<_> = it.by_ref().take(max).map(|(i, _)| self.session_record(i)).collect();
        (out, it.next().map(|(i, _)| i))
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
