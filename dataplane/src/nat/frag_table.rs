//! The slots of a fragment table, shared fairly between the sources that fill them
//! (decision 0013).
//!
//! A table has a fixed number of slots. A slot holds a datagram in progress, found by
//! its key through a hash index (no scan), or a part of one (an inbound IPv4 fragment
//! held until its first fragment comes), reached from its datagram. Every slot is charged
//! to the datagram's source (a B4 address, a remote IPv4 address):
//! - a source holds at most `per_source` slots: past that, its own oldest datagram makes
//!   room (`drop_frag_source_limit`);
//! - when no slot is free, a source takes one from the source that holds the most, if
//!   that one holds at least two more than the newcomer; else a source that already
//!   holds some replaces its own oldest datagram; else (every source holds one, the
//!   newcomer none) the oldest datagram of the table gives way. Each is counted in
//!   `drop_frag_fair_share`. So a source never loses a slot to one that holds as many or
//!   more, but for the last case, where shares cannot be kept and age decides: a
//!   datagram whose fragments come together completes long before it is the oldest,
//!   and one that never completes ages out of the way. A held fragment that finds no
//!   room by these rules is refused (`drop_frag_table_full`).
//! - Datagrams are kept in the order of their deadlines (the timeout is the same for
//!   all): expiry takes them from the front, so it costs what expires and nothing else.
//!
//! Sources are kept in lists by the number of slots they hold, so the one that holds the
//! most is found at once. Every operation is O(1) but for the hash probes. Allocated at
//! start; no allocation after. The packet steps that use a table are in
//! `pipeline::frag`, its payloads in `nat::fragments`.

use std::hash::Hash;

use super::index::IndexTable;
use crate::counters::{Counter, WorkerCounters};

/// The key of a datagram and the source charged for it.
pub(crate) trait DatagramKey: Copy + Eq + Hash + Default {
    type Source: Copy + Eq + Hash + Default;
    fn source(&self) -> Self::Source;
}

const NIL: u32 = u32::MAX;

/// Links of a doubly linked list through slot or source numbers.
#[derive(Clone, Copy)]
struct Links {
    prev: u32,
    next: u32,
}

const UNLINKED: Links = Links { prev: NIL, next: NIL };

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Free,
    Datagram,
    Part,
}

#[derive(Clone, Copy)]
struct Slot<K> {
    kind: Kind,
    key: K,
    hash: u32,
    /// The source record charged for this slot.
    source: u32,
    deadline: u64,
    /// A datagram's place in the table's deadline order.
    age: Links,
    /// A datagram's place among its source's datagrams, oldest first.
    mine: Links,
    /// A datagram's first part; a part's next part (NIL: none).
    parts: u32,
}

#[derive(Clone, Copy)]
struct Source<S> {
    addr: S,
    hash: u32,
    /// Slots charged to this source.
    count: u32,
    /// Its datagrams, oldest first.
    oldest: u32,
    newest: u32,
    /// Its place in the list of the sources that hold `count` slots.
    peers: Links,
}

/// Why a slot could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The source holds its limit and has no other datagram to give up.
    SourceLimit,
    /// Every slot is taken and no source holds more than its share (a part only).
    TableFull,
}

impl Refused {
    pub(crate) fn counter(self) -> Counter {
        match self {
            Refused::SourceLimit => Counter::DropFragSourceLimit,
            Refused::TableFull => Counter::DropFragTableFull,
        }
    }
}

pub(crate) struct FragTable<K: DatagramKey> {
    slots: Vec<Slot<K>>,
    free: Vec<u32>,
    index: IndexTable,
    sources: Vec<Source<K::Source>>,
    free_sources: Vec<u32>,
    source_index: IndexTable,
    /// `by_count[n]`: the first of the sources that hold `n` slots.
    by_count: Vec<u32>,
    /// The most slots any source holds (0: none).
    most: usize,
    /// Datagrams in deadline order.
    first: u32,
    last: u32,
    per_source: u32,
    timeout_ms: u64,
    hasher: ahash::RandomState,
    datagrams: usize,
    parts: usize,
}

impl<K: DatagramKey> FragTable<K> {
    /// A table of `capacity` slots, at most `per_source` for one source, datagrams kept
    /// `timeout_ms`; `seed` keys the hash so that no one can aim at a bucket.
    pub(crate) fn new(capacity: usize, per_source: usize, timeout_ms: u64, seed: u64) -> Self {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        let empty = Slot {
            kind: Kind::Free,
            key: K::default(),
            hash: 0,
            source: NIL,
            deadline: 0,
            age: UNLINKED,
            mine: UNLINKED,
            parts: NIL,
        };
        let nobody =
            Source { addr: K::Source::default(), hash: 0, count: 0, oldest: NIL, newest: NIL, peers: UNLINKED };
        FragTable {
            slots: vec![empty; capacity],
            free: (0..capacity as u32).rev().collect(),
            index: IndexTable::new(capacity),
            sources: vec![nobody; capacity],
            free_sources: (0..capacity as u32).rev().collect(),
            source_index: IndexTable::new(capacity),
            by_count: vec![NIL; capacity + 1],
            most: 0,
            first: NIL,
            last: NIL,
            per_source: per_source.clamp(1, capacity) as u32,
            timeout_ms,
            hasher: ahash::RandomState::with_seeds(seed, seed ^ 0x9e37_79b9_7f4a_7c15, 0x243f_6a88_85a3_08d3, 0x1319),
            datagrams: 0,
            parts: 0,
        }
    }

    fn hash<T: Hash>(&self, v: T) -> u32 {
        let h = self.hasher.hash_one(v);
        (h ^ (h >> 32)) as u32
    }

    /// The slot of the datagram `key`, if one is in progress.
    pub(crate) fn find(&self, key: &K) -> Option<u32> {
        self.index.find(self.hash(key), |i| self.slots[i as usize].key == *key)
    }

    fn find_source(&self, addr: &K::Source, hash: u32) -> Option<u32> {
        self.source_index.find(hash, |i| self.sources[i as usize].addr == *addr)
    }

    /// The slot of datagram `key`, started at `now_ms` if it is new (then the second
    /// value is true: the caller resets what the slot holds).
    pub(crate) fn open(&mut self, key: K, now_ms: u64, c: &WorkerCounters) -> Result<(u32, bool), Refused> {
        match self.find(&key) {
            Some(d) => Ok((d, false)),
            None => self.insert(key, now_ms, c).map(|d| (d, true)),
        }
    }

    /// Starts datagram `key` (not in the table) at `now_ms`; makes room as the module
    /// doc says, counting what it evicts.
    pub(crate) fn insert(&mut self, key: K, now_ms: u64, c: &WorkerCounters) -> Result<u32, Refused> {
        let addr = key.source();
        let shash = self.hash(addr);
        self.make_room(self.find_source(&addr, shash), NIL, c)?;
        // Room was made, so a slot is free, and a source record too (each source in use
        // holds at least one of the other slots).
        let (Some(d), Some(spare)) = (self.free.pop(), self.free_sources.last().copied()) else {
            return Err(Refused::TableFull);
        };
        let s = match self.find_source(&addr, shash) {
            Some(s) => s,
            None => {
                self.free_sources.pop();
                self.sources[spare as usize] =
                    Source { addr, hash: shash, count: 0, oldest: NIL, newest: NIL, peers: UNLINKED };
                self.source_index.insert(shash, spare);
                spare
            }
        };
        // Deadlines never go backwards along the list, even if the clock does.
        let after = if self.last == NIL { 0 } else { self.slots[self.last as usize].deadline };
        let hash = self.hash(key);
        self.slots[d as usize] = Slot {
            kind: Kind::Datagram,
            key,
            hash,
            source: s,
            deadline: (now_ms + self.timeout_ms).max(after),
            age: Links { prev: self.last, next: NIL },
            mine: Links { prev: self.sources[s as usize].newest, next: NIL },
            parts: NIL,
        };
        match self.last {
            NIL => self.first = d,
            l => self.slots[l as usize].age.next = d,
        }
        self.last = d;
        let src = &mut self.sources[s as usize];
        match src.newest {
            NIL => src.oldest = d,
            n => self.slots[n as usize].mine.next = d,
        }
        self.sources[s as usize].newest = d;
        self.index.insert(hash, d);
        self.charge(s, 1);
        self.datagrams += 1;
        Ok(d)
    }

    /// Adds a part to datagram `d` (charged to its source); makes room as for a
    /// datagram, but never by giving up `d`.
    pub(crate) fn add_part(&mut self, d: u32, c: &WorkerCounters) -> Result<u32, Refused> {
        let s = self.slots[d as usize].source;
        self.make_room(Some(s), d, c)?;
        let Some(p) = self.free.pop() else { return Err(Refused::TableFull) };
        match self.parts(d).last() {
            None => self.slots[d as usize].parts = p,
            Some(tail) => self.slots[tail as usize].parts = p,
        }
        let key = self.slots[d as usize].key;
        self.slots[p as usize] = Slot { kind: Kind::Part, key, source: s, parts: NIL, ..self.slots[p as usize] };
        self.charge(s, 1);
        self.parts += 1;
        Ok(p)
    }

    /// The parts of datagram `d`, in the order they were added.
    pub(crate) fn parts(&self, d: u32) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.slots[d as usize].parts;
        std::iter::from_fn(move || {
            let p = at;
            (p != NIL).then(|| {
                at = self.slots[p as usize].parts;
                p
            })
        })
    }

    /// Frees the parts of datagram `d`; returns how many it had.
    pub(crate) fn remove_parts(&mut self, d: u32) -> usize {
        let mut n = 0;
        let mut p = std::mem::replace(&mut self.slots[d as usize].parts, NIL);
        while p != NIL {
            let next = self.slots[p as usize].parts;
            self.slots[p as usize].kind = Kind::Free;
            self.free.push(p);
            n += 1;
            p = next;
        }
        self.parts -= n;
        self.uncharge(self.slots[d as usize].source, n as u32);
        n
    }

    /// Ends datagram `d` and its parts; returns how many parts it had.
    pub(crate) fn remove(&mut self, d: u32) -> usize {
        let slot = self.slots[d as usize];
        debug_assert!(slot.kind == Kind::Datagram);
        match slot.age.prev {
            NIL => self.first = slot.age.next,
            p => self.slots[p as usize].age.next = slot.age.next,
        }
        match slot.age.next {
            NIL => self.last = slot.age.prev,
            n => self.slots[n as usize].age.prev = slot.age.prev,
        }
        let s = slot.source;
        match slot.mine.prev {
            NIL => self.sources[s as usize].oldest = slot.mine.next,
            p => self.slots[p as usize].mine.next = slot.mine.next,
        }
        match slot.mine.next {
            NIL => self.sources[s as usize].newest = slot.mine.prev,
            n => self.slots[n as usize].mine.prev = slot.mine.prev,
        }
        self.index.remove(slot.hash, d);
        let parts = self.remove_parts(d);
        self.slots[d as usize] = Slot { kind: Kind::Free, age: UNLINKED, mine: UNLINKED, parts: NIL, ..slot };
        self.free.push(d);
        self.datagrams -= 1;
        self.uncharge(s, 1);
        parts
    }

    /// Ends the datagrams whose deadline is at or before `now_ms`, oldest first, calling
    /// `expired` with each and the number of its parts before it goes. Costs what
    /// expires: the rest is never looked at.
    pub(crate) fn expire(&mut self, now_ms: u64, mut expired: impl FnMut(u32, usize)) {
        while self.first != NIL && self.slots[self.first as usize].deadline <= now_ms {
            let d = self.first;
            let n = self.parts(d).count();
            expired(d, n);
            self.remove(d);
        }
    }

    /// Makes sure a slot is free for source `s` (None: a source that holds nothing),
    /// never giving up datagram `keep`.
    fn make_room(&mut self, s: Option<u32>, keep: u32, c: &WorkerCounters) -> Result<(), Refused> {
        let held = s.map_or(0, |s| self.sources[s as usize].count);
        if held >= self.per_source {
            let s = s.unwrap_or(NIL);
            return self.evict_own(s, keep, Counter::DropFragSourceLimit, c).ok_or(Refused::SourceLimit);
        }
        if !self.free.is_empty() {
            return Ok(());
        }
        if self.most as u32 >= held + 2 {
            let victim = self.by_count[self.most];
            let oldest = self.sources[victim as usize].oldest;
            self.remove(oldest);
            c.inc(Counter::DropFragFairShare);
            return Ok(());
        }
        match s {
            Some(s) => self.evict_own(s, keep, Counter::DropFragFairShare, c).ok_or(Refused::TableFull),
            // Every source holds one slot: the oldest datagram gives way. A datagram that
            // completes (its fragments come together) is not the oldest for long; one
            // that never does is.
            None => {
                self.remove(self.first);
                c.inc(Counter::DropFragFairShare);
                Ok(())
            }
        }
    }

    /// Gives up the oldest datagram of source `s` but `keep`, counted as `why`.
    fn evict_own(&mut self, s: u32, keep: u32, why: Counter, c: &WorkerCounters) -> Option<()> {
        let mut d = *self.sources.get(s as usize).map(|s| &s.oldest)?;
        if d == keep {
            d = self.slots[d as usize].mine.next;
        }
        if d == NIL {
            return None;
        }
        self.remove(d);
        c.inc(why);
        Some(())
    }

    /// Moves source `s` up by `n` slots.
    fn charge(&mut self, s: u32, n: u32) {
        let from = self.sources[s as usize].count;
        self.unlink_source(s, from);
        self.sources[s as usize].count = from + n;
        self.link_source(s, from + n);
        self.most = self.most.max((from + n) as usize);
    }

    /// Moves source `s` down by `n` slots; a source that holds none goes.
    fn uncharge(&mut self, s: u32, n: u32) {
        if n == 0 {
            return;
        }
        let from = self.sources[s as usize].count;
        let to = from.saturating_sub(n);
        self.unlink_source(s, from);
        self.sources[s as usize].count = to;
        if to == 0 {
            self.source_index.remove(self.sources[s as usize].hash, s);
            self.free_sources.push(s);
        } else {
            self.link_source(s, to);
        }
        while self.most > 0 && self.by_count[self.most] == NIL {
            self.most -= 1;
        }
    }

    fn link_source(&mut self, s: u32, count: u32) {
        let head = self.by_count[count as usize];
        self.sources[s as usize].peers = Links { prev: NIL, next: head };
        if head != NIL {
            self.sources[head as usize].peers.prev = s;
        }
        self.by_count[count as usize] = s;
    }

    fn unlink_source(&mut self, s: u32, count: u32) {
        if count == 0 {
            return;
        }
        let Links { prev, next } = self.sources[s as usize].peers;
        match prev {
            NIL => self.by_count[count as usize] = next,
            p => self.sources[p as usize].peers.next = next,
        }
        if next != NIL {
            self.sources[next as usize].peers.prev = prev;
        }
    }

    /// Datagrams in progress.
    pub(crate) fn datagrams(&self) -> usize {
        self.datagrams
    }

    /// Parts held.
    pub(crate) fn held_parts(&self) -> usize {
        self.parts
    }

    /// Slots charged to the source of `key` (tests).
    #[cfg(test)]
    pub(crate) fn held_by(&self, key: &K) -> u32 {
        let addr = key.source();
        self.find_source(&addr, self.hash(addr)).map_or(0, |s| self.sources[s as usize].count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// (source, identification).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    struct Key(u8, u16);
    impl DatagramKey for Key {
        type Source = u8;
        fn source(&self) -> u8 {
            self.0
        }
    }

    #[test]
    fn expiry_looks_only_at_what_expires() {
        let c = WorkerCounters::default();
        let mut t = FragTable::<Key>::new(1000, 1000, 100, 1);
        for i in 0..1000u16 {
            t.insert(Key(0, i), i as u64, &c).unwrap();
        }
        // The three whose deadline passed are all that expiry looks at.
        let mut seen = 0;
        t.expire(102, |_, _| seen += 1);
        assert_eq!(seen, 3);
        assert_eq!(t.datagrams(), 997);
        assert_eq!(t.find(&Key(0, 2)), None);
        assert!(t.find(&Key(0, 3)).is_some());
    }

    #[test]
    fn parts_go_with_their_datagram_and_count_for_its_source() {
        let c = WorkerCounters::default();
        let mut t = FragTable::<Key>::new(8, 4, 100, 1);
        let d = t.insert(Key(1, 1), 0, &c).unwrap();
        let p1 = t.add_part(d, &c).unwrap();
        let p2 = t.add_part(d, &c).unwrap();
        assert_eq!(t.parts(d).collect::<Vec<_>>(), vec![p1, p2]);
        assert_eq!(t.held_by(&Key(1, 0)), 3);
        t.add_part(d, &c).unwrap();
        // At its limit, with no other datagram to give up, the source is refused.
        assert_eq!(t.add_part(d, &c), Err(Refused::SourceLimit));
        // A new datagram of the same source makes room by giving up the old one.
        let e = t.insert(Key(1, 2), 1, &c).unwrap();
        assert_eq!(c.get(Counter::DropFragSourceLimit), 1);
        assert_eq!(t.find(&Key(1, 1)), None);
        assert_eq!(t.held_by(&Key(1, 0)), 1);
        assert_eq!((t.datagrams(), t.held_parts()), (1, 0));
        assert_eq!(t.remove(e), 0);
        assert_eq!(t.held_by(&Key(1, 0)), 0);
    }

    proptest! {
        /// Any sequence of inserts, parts, removals and expiries keeps the table
        /// consistent with a model: every datagram findable, counts per source right,
        /// no source above its limit, the slots never over-committed.
        #[test]
        fn agrees_with_a_model(ops in proptest::collection::vec((0u8..4, 0u8..6, 0u16..6), 1..300)) {
            let c = WorkerCounters::default();
            let mut t = FragTable::<Key>::new(12, 5, 10, 7);
            let mut now = 0u64;
            for (op, src, id) in ops {
                let k = Key(src, id);
                let before: Vec<u32> = (0..6).map(|s| t.held_by(&Key(s, 0))).collect();
                match op {
                    0 => if t.find(&k).is_none() {
                        prop_assert!(t.insert(k, now, &c).is_ok(), "a new datagram always gets a slot");
                    },
                    1 => if let Some(d) = t.find(&k) { let _ = t.add_part(d, &c); },
                    2 => if let Some(d) = t.find(&k) { t.remove(d); },
                    _ => { now += id as u64; t.expire(now, |_, _| {}); }
                }
                // Fair share: a source loses slots to another only if it held at least two
                // more, or if everyone held one and the other none.
                if op < 2 {
                    let singles = before.iter().all(|&n| n <= 1) && before[src as usize] == 0;
                    for o in (0..6u8).filter(|&o| o != src) {
                        if t.held_by(&Key(o, 0)) < before[o as usize] {
                            prop_assert!(before[o as usize] >= before[src as usize] + 2 || singles);
                        }
                    }
                }
                // The model: walk every slot.
                let mut per: HashMap<u8, u32> = HashMap::new();
                let (mut dg, mut parts) = (0, 0);
                for (i, s) in t.slots.iter().enumerate() {
                    match s.kind {
                        Kind::Free => {}
                        Kind::Datagram => {
                            dg += 1;
                            prop_assert_eq!(t.find(&s.key), Some(i as u32));
                            *per.entry(s.key.0).or_default() += 1;
                        }
                        Kind::Part => {
                            parts += 1;
                            *per.entry(s.key.0).or_default() += 1;
                        }
                    }
                }
                prop_assert_eq!((dg, parts), (t.datagrams(), t.held_parts()));
                prop_assert_eq!(dg + parts + t.free.len(), 12);
                for (&src, &n) in &per {
                    prop_assert!(n <= 5);
                    prop_assert_eq!(t.held_by(&Key(src, 0)), n);
                }
                let most = per.values().copied().max().unwrap_or(0);
                prop_assert_eq!(t.most as u32, most);
                // Deadlines are in order along the list.
                let mut d = t.first;
                let mut last = 0;
                while d != NIL {
                    prop_assert!(t.slots[d as usize].deadline >= last);
                    last = t.slots[d as usize].deadline;
                    d = t.slots[d as usize].age.next;
                }
            }
        }
    }
}
