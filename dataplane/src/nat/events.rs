//! Session events for hot backup and NAT logging, and the records a peer installs.
//!
//! Each worker pushes its events onto its own bounded ring; a full ring never blocks the
//! worker. What does not fit waits in the worker, in order, and goes between batches:
//! block events always (they are the legal NAT log and the peer's port blocks, and there
//! are at most as many as blocks), session events up to
//! [`PENDING_SESSION_EVENTS`](crate::nat::table::PENDING_SESSION_EVENTS); beyond, a
//! session event is counted as dropped (`events_dropped`), and hot backup, which reads
//! that counter, resynchronises the peer with a bulk sync.

use std::hash::{Hash, Hasher};

/// A session as hot backup and logging see it: the inside key by B4 address, not by the
/// worker-local subscriber number, so the record means the same on another board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    pub inst: u8,
    pub b4: [u8; 16],
    pub inner_addr: u32,
    pub inner_port: u16,
    pub ext_addr: u32,
    pub ext_port: u16,
    pub proto: u8,
    /// TCP tracking bits (`nat::session::tcp_flags`).
    pub flags: u8,
    /// Unix seconds.
    pub created: u32,
    pub last_seen: u32,
    /// The subscriber's next hop towards its B4 (learned from its frames; zeros while
    /// unknown), so a board that takes over reaches the B4 before hearing from it.
    pub mac: [u8; 6],
    /// The PCP lease on the session, if a PCP request made or kept it (decision 0023),
    /// its end in Unix seconds.
    pub pcp: Option<crate::nat::pcp::PcpLease>,
}

impl SessionRecord {
    /// The record's identity (instance, inside key, external address and port) as 64
    /// bits, for hot backup's mark-and-sweep: what a bulk sync brought is kept, the
    /// rest of the locations it covered goes. Two records that collide keep each other,
    /// which costs a stale session its removal, nothing else.
    pub fn key(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        (self.inst, self.b4, self.inner_addr, self.inner_port, self.proto, self.ext_addr, self.ext_port).hash(&mut h);
        h.finish()
    }
}

/// A port block held by a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRecord {
    pub inst: u8,
    pub b4: [u8; 16],
    pub ext_addr: u32,
    pub first_port: u16,
    pub size: u16,
    pub at: u32,
}

impl BlockRecord {
    /// The block's identity (instance, B4, address, first port) as 64 bits, as
    /// [`SessionRecord::key`].
    pub fn key(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        (self.inst, self.b4, self.ext_addr, self.first_port).hash(&mut h);
        h.finish()
    }
}

/// What refused a subscriber's new mapping (RFC 6888 REQ-11; RFC 8158's NAT addresses
/// exhausted, NAT ports exhausted and quota exceeded events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A new subscriber found no address of its location's share with a free block.
    AddressesExhausted,
    /// The subscriber's address has no free block left.
    PortsExhausted,
    /// The worker's session table is full.
    SessionTable,
    /// The worker's subscriber table is full.
    SubscriberTable,
    /// The subscriber holds `session-limit` sessions.
    SessionLimit,
    /// The subscriber holds `port-block-limit` blocks, all of them full.
    BlockLimit,
    /// The subscriber opened `new-session-rate` sessions this second.
    RateLimit,
}

/// A mapping refused for a limit, as NAT logging sees it. At most
/// [`LIMIT_EVENTS_PER_SEC`](crate::nat::table::LIMIT_EVENTS_PER_SEC) a second per
/// worker: the drops themselves are all counted, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRecord {
    pub inst: u8,
    pub b4: [u8; 16],
    /// The inside address of the packet refused.
    pub inner_addr: u32,
    /// The subscriber's external address (0: it has none).
    pub ext_addr: u32,
    pub limit: Limit,
    /// The limit's value: sessions or subscribers a table holds, sessions or ports a
    /// subscriber may hold, new sessions a second; 0 for the exhaustions.
    pub value: u32,
    /// Unix seconds.
    pub at: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    Created(SessionRecord),
    Refreshed(SessionRecord),
    Deleted(SessionRecord),
    BlockAllocated(BlockRecord),
    BlockReleased(BlockRecord),
    /// For NAT logging only (hot backup ignores it).
    Limit(LimitRecord),
}

impl SessionEvent {
    /// The instance and external address it is about (which say its location).
    pub fn external(&self) -> (u8, u32) {
        match self {
            SessionEvent::Created(r) | SessionEvent::Refreshed(r) | SessionEvent::Deleted(r) => (r.inst, r.ext_addr),
            SessionEvent::BlockAllocated(b) | SessionEvent::BlockReleased(b) => (b.inst, b.ext_addr),
            SessionEvent::Limit(l) => (l.inst, l.ext_addr),
        }
    }
}

/// Why a record from a peer was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("no instance with that number")]
    NoInstance,
    #[error("external address is not in the instance pool")]
    NotInPool,
    #[error("the port block belongs to another worker")]
    WrongWorker,
    #[error("the port block is allocated to another subscriber")]
    BlockCollision,
    #[error("the external port is used by another session")]
    PortCollision,
    #[error("the subscriber is paired with another external address")]
    AddressMismatch,
    #[error("the subscriber holds no block for that port")]
    NoBlock,
    #[error("a table or a per-subscriber limit is full")]
    Full,
    #[error("the record is malformed")]
    Malformed,
    #[error("the port block's size or start differs from the instance's blocks")]
    BlockSize,
    #[error("the B4 is not in the instance's authorised prefixes")]
    NotAuthorised,
}

/// What a bulk sync brought, by key ([`SessionRecord::key`], [`BlockRecord::key`]),
/// sorted: hot backup's sweep keeps these and removes the rest of the locations the bulk
/// covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepKeys {
    pub sessions: Vec<u64>,
    pub blocks: Vec<u64>,
}

impl SweepKeys {
    pub fn new(mut sessions: Vec<u64>, mut blocks: Vec<u64>) -> SweepKeys {
        for keys in [&mut sessions, &mut blocks] {
            keys.sort_unstable();
            keys.dedup();
        }
        SweepKeys { sessions, blocks }
    }
}

/// What an install of the peer's records refused: how many blocks and sessions, and
/// why the first one was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    pub blocks: usize,
    pub sessions: usize,
    pub why: Option<InstallError>,
}

impl Refused {
    pub fn total(&self) -> usize {
        self.blocks + self.sessions
    }

    /// Counts one more refused block (`block`) or session, for `why`.
    pub fn count(&mut self, block: bool, why: InstallError) {
        if block {
            self.blocks += 1;
        } else {
            self.sessions += 1;
        }
        self.why.get_or_insert(why);
    }

    /// Adds another install's refusals (the first reason stays).
    pub fn add(&mut self, o: Refused) {
        self.blocks += o.blocks;
        self.sessions += o.sessions;
        self.why = self.why.or(o.why);
    }
}
