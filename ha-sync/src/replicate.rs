//! Which session events go to the standby, and when: the seed's rule is that a session
//! is backed up once it has lived `delay-time` seconds, so the short-lived majority
//! (DNS, one-off probes) never costs the HA channel anything. After that its refreshes
//! and its deletion follow, and the port block behind it goes first. The input is the
//! engine's per-worker event rings, never a table scan; only a bulk sync (a standby
//! joining) reads the tables, through [`Replicator::restart`].

use std::collections::VecDeque;

use std::collections::{HashMap, HashSet};

use ahash::{AHashMap, AHashSet};
use dataplane::nat::events::{BlockRecord, SessionEvent, SessionRecord};
use nohash_hasher::BuildNoHashHasher;

use crate::wire::Record;

/// A session's identity on both boards: the inside key, packed (the B4 address, then
/// instance, inside address, port and protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Inside(u128, u64);

/// What the replicator keeps of a session's identity: a 64-bit fingerprint of its
/// inside key, keyed with a secret drawn at start. The sets it is kept in hold every
/// replicated session (millions): 8 bytes an entry instead of 32 keeps them four times
/// smaller, and their cache misses and growth with them, which were most of the HA
/// thread's work per record. Two sessions of one fingerprint (about one chance in
/// 10^7 in a table of two million) share their bookkeeping: one's refresh or deletion
/// may be taken for the other's; nothing an outsider can aim at, as the key is secret.
type Key = u64;

/// Sets and maps of fingerprints, which are hashes already.
type KeySet = HashSet<Key, BuildNoHashHasher<Key>>;
type KeyMap<V> = HashMap<Key, V, BuildNoHashHasher<Key>>;

fn pack(inst: u8, addr: u32, port: u16, proto: u8) -> u64 {
    (inst as u64) << 56 | (proto as u64) << 48 | (port as u64) << 32 | addr as u64
}

/// A subscriber: its B4 address and instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Sub(u128, u8);

fn sub(inst: u8, b4: [u8; 16]) -> Sub {
    Sub(u128::from_ne_bytes(b4), inst)
}

/// A port block: its subscriber, external address and first port.
fn block_key(b: &BlockRecord) -> (u128, u64) {
    (u128::from_ne_bytes(b.b4), pack(b.inst, b.ext_addr, b.first_port, 0))
}

/// When a session has surely lived `delay` seconds: times are whole seconds, so one
/// more than `created + delay` (a session created at 100.9 is not 10 s old at 110).
fn eligible_at(r: &SessionRecord, delay: u32) -> u32 {
    if r.pcp.is_some() {
        // A mapping a PCP client asked for and was granted a lifetime for is no
        // short-lived flow: it goes at once (decision 0023).
        return r.created;
    }
    r.created.saturating_add(delay).saturating_add(1)
}

/// Counters of what was replicated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicatorStats {
    /// Sessions sent once older than delay-time.
    pub sessions_sent: u64,
    pub refreshes_sent: u64,
    pub deletions_sent: u64,
    pub blocks_sent: u64,
    /// Sessions that ended before delay-time: never sent.
    pub died_young: u64,
}

/// The active board's filter between session events and the replication stream.
pub struct Replicator {
    /// The fingerprints' key.
    keys: ahash::RandomState,
    delay: u32,
    /// Sessions younger than delay-time, by when they become eligible.
    young: VecDeque<(u32, Key)>,
    young_rec: KeyMap<SessionRecord>,
    /// Young sessions of a table being taken in ([`Replicator::begin`]).
    young_taken: Vec<SessionRecord>,
    sent: KeySet,
    /// Sessions of each subscriber the standby holds: at none, the standby's engine lets
    /// the subscriber go with its blocks, so they must go again before its next session.
    sent_per_sub: AHashMap<Sub, u32>,
    blocks: AHashMap<Sub, Vec<BlockRecord>>,
    blocks_sent: AHashSet<(u128, u64)>,
    out: Vec<Record>,
    pub stats: ReplicatorStats,
}

impl Replicator {
    pub fn new(delay_secs: u32) -> Replicator {
        Replicator {
            keys: ahash::RandomState::new(),
            delay: delay_secs,
            young: VecDeque::new(),
            young_rec: KeyMap::default(),
            young_taken: Vec::new(),
            sent: KeySet::default(),
            sent_per_sub: AHashMap::new(),
            blocks: AHashMap::new(),
            blocks_sent: AHashSet::new(),
            out: Vec::new(),
            stats: ReplicatorStats::default(),
        }
    }

    /// A new delay-time (a commit): the sessions waiting now wait for the new one, from
    /// their creation.
    pub fn set_delay(&mut self, delay_secs: u32) {
        self.delay = delay_secs;
        let mut young: Vec<(u32, Key)> = self.young_rec.iter().map(|(k, r)| (eligible_at(r, delay_secs), *k)).collect();
        young.sort_unstable_by_key(|&(at, _)| at);
        self.young = young.into();
    }

    fn key(&self, r: &SessionRecord) -> Key {
        self.keys.hash_one(Inside(u128::from_ne_bytes(r.b4), pack(r.inst, r.inner_addr, r.inner_port, r.proto)))
    }

    /// Sessions waiting for their delay-time.
    pub fn young(&self) -> usize {
        self.young_rec.len()
    }

    /// When (unix seconds) the next young session becomes eligible, if one waits.
    pub fn next_eligible(&self) -> Option<u32> {
        self.young.front().map(|&(at, _)| at)
    }

    /// Sessions the standby holds (as far as this stream knows).
    pub fn replicated(&self) -> usize {
        self.sent.len()
    }

    /// Takes one engine event (`now`: unix seconds).
    pub fn on_event(&mut self, e: SessionEvent, now: u32) {
        match e {
            SessionEvent::Created(r) => {
                let k = self.key(&r);
                if self.delay == 0 {
                    self.send_session(k, r);
                } else {
                    self.young.push_back((eligible_at(&r, self.delay), k));
                    self.young_rec.insert(k, r);
                }
            }
            SessionEvent::Refreshed(r) => {
                let k = self.key(&r);
                if self.sent.contains(&k) {
                    self.out.push(Record::Session(r));
                    self.stats.refreshes_sent += 1;
                } else if r.pcp.is_some() && self.young_rec.remove(&k).is_some() {
                    // Leased by PCP while young: eligible now (its queue entry finds
                    // nothing left when its time comes).
                    self.send_session(k, r);
                } else if let Some(y) = self.young_rec.get_mut(&k) {
                    *y = r;
                }
            }
            SessionEvent::Deleted(r) => {
                let k = self.key(&r);
                if self.sent.remove(&k) {
                    self.out.push(Record::SessionDeleted(r));
                    self.stats.deletions_sent += 1;
                    self.session_gone(&r);
                } else if self.young_rec.remove(&k).is_some() {
                    self.stats.died_young += 1;
                }
            }
            SessionEvent::BlockAllocated(b) => self.blocks.entry(sub(b.inst, b.b4)).or_default().push(b),
            SessionEvent::BlockReleased(b) => {
                if let Some(v) = self.blocks.get_mut(&sub(b.inst, b.b4)) {
                    v.retain(|x| block_key(x) != block_key(&b));
                    if v.is_empty() {
                        self.blocks.remove(&sub(b.inst, b.b4));
                    }
                }
                if self.blocks_sent.remove(&block_key(&b)) {
                    self.out.push(Record::BlockReleased(b));
                }
            }
            SessionEvent::Limit(_) => {}
        }
        self.tick(now);
    }

    /// Sends the sessions that have now lived delay-time.
    pub fn tick(&mut self, now: u32) {
        while let Some(&(at, k)) = self.young.front() {
            if at > now {
                break;
            }
            self.young.pop_front();
            // Gone already (deleted young), or queued twice by a reused key: skip.
            match self.young_rec.remove(&k) {
                Some(r) if eligible_at(&r, self.delay) <= now => self.send_session(k, r),
                // A reused key's younger session: it waits for its own turn.
                Some(r) => {
                    self.young_rec.insert(k, r);
                }
                None => {}
            }
        }
    }

    fn send_session(&mut self, k: Key, r: SessionRecord) {
        if let Some(b) = self.block_of(&r)
            && self.blocks_sent.insert(block_key(&b))
        {
            self.out.push(Record::Block(b));
            self.stats.blocks_sent += 1;
        }
        if self.sent.insert(k) {
            *self.sent_per_sub.entry(sub(r.inst, r.b4)).or_default() += 1;
        }
        self.out.push(Record::Session(r));
        self.stats.sessions_sent += 1;
    }

    /// The standby removed a replicated session: at its subscriber's last, the standby's
    /// engine released the subscriber's blocks, which are then sent again before its next
    /// session (a subscriber's younger sessions become eligible later).
    fn session_gone(&mut self, r: &SessionRecord) {
        let sub = sub(r.inst, r.b4);
        let Some(n) = self.sent_per_sub.get_mut(&sub) else { return };
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.sent_per_sub.remove(&sub);
            for b in self.blocks.get(&sub).into_iter().flatten() {
                self.blocks_sent.remove(&block_key(b));
            }
        }
    }

    fn block_of(&self, r: &SessionRecord) -> Option<BlockRecord> {
        self.blocks.get(&sub(r.inst, r.b4))?.iter().copied().find(|b| {
            b.ext_addr == r.ext_addr
                && r.ext_port >= b.first_port
                && (r.ext_port as u32) < b.first_port as u32 + b.size as u32
        })
    }

    /// The records ready to go, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Record> {
        self.out.drain(..)
    }

    /// Starts over from a full table (a bulk sync): everything eligible in `sessions` is
    /// marked sent (the bulk carries it), everything younger waits for its delay-time.
    /// Returns the bulk's records: each block before the first of its sessions.
    pub fn restart(&mut self, sessions: &[SessionRecord], blocks: &[BlockRecord], now: u32) -> Vec<Record> {
        self.begin();
        for b in blocks {
            self.add_block(*b);
        }
        for r in sessions {
            self.add_session(*r, now);
        }
        self.finish()
    }

    /// [`Replicator::restart`] in pieces: `begin`, every block, then every session,
    /// then `finish` for the bulk (a large table is taken in over many rounds).
    pub fn begin(&mut self) {
        self.young.clear();
        self.young_rec.clear();
        self.sent.clear();
        self.sent_per_sub.clear();
        self.blocks_sent.clear();
        self.out.clear();
        self.blocks.clear();
        self.young_taken.clear();
    }

    pub fn add_block(&mut self, b: BlockRecord) {
        self.blocks.entry(sub(b.inst, b.b4)).or_default().push(b);
    }

    pub fn add_session(&mut self, r: SessionRecord, now: u32) {
        if eligible_at(&r, self.delay) <= now {
            self.send_session(self.key(&r), r);
        } else {
            self.young_taken.push(r);
        }
    }

    pub fn finish(&mut self) -> Vec<Record> {
        let mut young = std::mem::take(&mut self.young_taken);
        young.sort_by_key(|r| r.created);
        for r in young {
            self.young.push_back((eligible_at(&r, self.delay), self.key(&r)));
            self.young_rec.insert(self.key(&r), r);
        }
        self.out.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u8) -> BlockRecord {
        BlockRecord { inst: 0, b4: [n; 16], ext_addr: 7, first_port: 1024, size: 512, at: 0 }
    }

    fn session(n: u8, port: u16, created: u32) -> SessionRecord {
        record([n; 16], 7, port, created)
    }

    /// A UDP session of `b4` on external address `ext`, port 1024 + `port`.
    fn record(b4: [u8; 16], ext: u32, port: u16, created: u32) -> SessionRecord {
        SessionRecord {
            inst: 0,
            b4,
            inner_addr: 1,
            inner_port: port,
            ext_addr: ext,
            ext_port: 1024 + port,
            proto: 17,
            flags: 0,
            created,
            last_seen: created,
            mac: [0; 6],
            pcp: None,
        }
    }

    #[test]
    fn sessions_go_after_delay_time_with_their_block_first_and_young_deaths_never() {
        let mut r = Replicator::new(10);
        r.on_event(SessionEvent::BlockAllocated(block(1)), 100);
        r.on_event(SessionEvent::Created(session(1, 1, 100)), 100);
        r.on_event(SessionEvent::Created(session(1, 2, 101)), 101);
        r.on_event(SessionEvent::Deleted(session(1, 2, 101)), 105);
        r.tick(110);
        assert_eq!(r.drain().count(), 0, "nothing before delay-time (whole seconds: 100.9 + 10 > 110)");
        r.tick(111);
        assert_eq!(r.drain().collect::<Vec<_>>(), vec![Record::Block(block(1)), Record::Session(session(1, 1, 100))]);
        r.tick(200);
        assert_eq!(r.drain().count(), 0, "the young death never goes");
        assert_eq!(r.stats.died_young, 1);
        // Refresh and deletion of a replicated session follow. The standby's engine lets
        // the block go with the subscriber's last session, as this engine does: its
        // release needs no record.
        let mut later = session(1, 1, 100);
        later.last_seen = 150;
        r.on_event(SessionEvent::Refreshed(later), 150);
        r.on_event(SessionEvent::Deleted(later), 160);
        r.on_event(SessionEvent::BlockReleased(block(1)), 160);
        assert_eq!(r.drain().collect::<Vec<_>>(), vec![Record::Session(later), Record::SessionDeleted(later)]);
        assert_eq!(r.replicated(), 0);
    }

    #[test]
    fn a_session_leased_by_pcp_goes_without_waiting_for_delay_time() {
        let mut r = Replicator::new(10);
        r.on_event(SessionEvent::BlockAllocated(block(3)), 100);
        r.on_event(SessionEvent::Created(session(3, 1, 100)), 100);
        let lease = dataplane::nat::pcp::PcpLease { until: 700, open: true, nonce: [5; 12] };
        let leased = SessionRecord { pcp: Some(lease), ..session(3, 1, 100) };
        r.on_event(SessionEvent::Refreshed(leased), 101);
        assert_eq!(r.drain().collect::<Vec<_>>(), vec![Record::Block(block(3)), Record::Session(leased)]);
        r.tick(111);
        assert_eq!(r.drain().count(), 0, "not sent twice");
        assert_eq!(r.replicated(), 1);
        // In a bulk sync too.
        let young = session(4, 2, 195);
        let bulk = r.restart(&[young, SessionRecord { pcp: Some(lease), ..session(4, 3, 195) }], &[block(4)], 200);
        assert_eq!(bulk.len(), 2, "the block and the leased session, not the young one: {bulk:?}");
    }

    #[test]
    fn a_young_refresh_is_carried_by_the_first_send() {
        let mut r = Replicator::new(10);
        r.on_event(SessionEvent::Created(session(2, 1, 100)), 100);
        let mut s = session(2, 1, 100);
        s.last_seen = 105;
        r.on_event(SessionEvent::Refreshed(s), 105);
        r.tick(111);
        assert_eq!(r.drain().collect::<Vec<_>>(), vec![Record::Session(s)]);
    }

    #[test]
    fn a_bulk_sync_carries_the_eligible_and_leaves_the_young_to_their_time() {
        let sessions = [session(1, 1, 100), session(1, 2, 190), session(2, 3, 50)];
        let blocks = [block(1), block(2)];
        let mut r = Replicator::new(10);
        let bulk = r.restart(&sessions, &blocks, 200);
        assert_eq!(
            bulk,
            vec![
                Record::Block(block(1)),
                Record::Session(sessions[0]),
                Record::Block(block(2)),
                Record::Session(sessions[2])
            ]
        );
        assert_eq!((r.replicated(), r.young()), (2, 1));
        r.tick(200);
        assert_eq!(r.drain().count(), 0);
        r.tick(201);
        assert_eq!(r.drain().collect::<Vec<_>>(), vec![Record::Session(sessions[1])], "its block went already");
    }

    #[test]
    fn delay_zero_sends_at_once() {
        let mut r = Replicator::new(0);
        r.on_event(SessionEvent::Created(session(3, 1, 100)), 100);
        assert_eq!(r.drain().count(), 1);
    }

    /// A subscriber with sessions of different ages: the old one is replicated, then
    /// ends (the standby's engine lets the subscriber and its block go); a younger one of
    /// the same block becomes eligible later and must find its block on the standby.
    #[test]
    fn a_block_goes_again_after_the_standby_let_it_go_with_the_last_session() {
        use dataplane::config::{EngineConfig, InstanceConfig, Ipv6Prefix};
        use dataplane::testing::frames::{ENDPOINT, POOL, b4};
        let sub = b4(1);
        let blk = BlockRecord { inst: 0, b4: sub, ext_addr: POOL.addr + 1, first_port: 1024, size: 512, at: 100 };
        let sess = |port: u16, created: u32| record(sub, POOL.addr + 1, port, created);
        let (old, young) = (sess(1, 100), sess(2, 108));
        let mut r = Replicator::new(10);
        r.on_event(SessionEvent::BlockAllocated(blk), 100);
        r.on_event(SessionEvent::Created(old), 100);
        r.on_event(SessionEvent::Created(young), 108);
        r.tick(111);
        r.on_event(SessionEvent::Deleted(old), 112);
        r.tick(119);
        let out: Vec<Record> = r.drain().collect();
        assert_eq!(
            out,
            vec![
                Record::Block(blk),
                Record::Session(old),
                Record::SessionDeleted(old),
                Record::Block(blk),
                Record::Session(young)
            ],
            "the block goes again before the younger session"
        );
        // The standby's own engine, fed these records as the HA thread would.
        let b4s = Ipv6Prefix { addr: b4(0), len: 48 };
        let cfg = EngineConfig::new(vec![InstanceConfig::new("i", ENDPOINT, b4s, POOL)]);
        let (mut standby, _events) = dataplane::Engine::new(&cfg, 0, 1).expect("valid");
        standby.set_clock(120_000);
        for rec in out {
            match rec {
                Record::Block(b) => assert_eq!(standby.install_block(&b), Ok(())),
                Record::Session(s) => assert_eq!(standby.install_session(&s), Ok(())),
                Record::SessionDeleted(s) => assert!(standby.remove_session(&s)),
                Record::BlockReleased(_) | Record::Cover(_) => {}
            }
        }
        assert_eq!(standby.sessions(), vec![young], "the younger session is on the standby");
    }
}
