//! Session records, their two indices (inside and outside) and their expiry lists.
//!
//! A session is an endpoint-independent mapping (RFC 4787 REQ-1, RFC 5382 REQ-1): one
//! record per inside endpoint (subscriber, inner address, inner port or ICMP identifier,
//! protocol), found from outside by (external address, external port, protocol).
//! Records live in a slab of 40-byte entries; expiry uses one LRU list per timeout class,
//! so the oldest session of a class is always at the head and expiry never walks the
//! table (amortised, a bounded number of records per call). A session moves to the tail
//! of its list at most once per second (times are in seconds), which keeps the per-packet
//! cost of a refresh to a compare in the common case.
//!
//! Hot path: no allocation after `SessionTable::new`.

use super::index::IndexTable;
use crate::wire::proto;

pub const NIL: u32 = u32::MAX;

/// TCP tracking bits kept in `Session::flags` (RFC 7857 section 2.2, RFC 6146 3.5.2).
pub mod tcp_flags {
    /// An outbound SYN was seen.
    pub const SYN_OUT: u8 = 0x01;
    /// An inbound SYN was seen.
    pub const SYN_IN: u8 = 0x02;
    pub const FIN_OUT: u8 = 0x04;
    pub const FIN_IN: u8 = 0x08;
    pub const RST: u8 = 0x10;
    /// Packets were seen in both directions after the SYNs.
    pub const EST: u8 = 0x20;
}

/// The timeout classes, each with its own expiry list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TimerClass {
    Udp = 0,
    TcpEstablished = 1,
    TcpTransitory = 2,
    Icmp = 3,
}

pub const CLASSES: usize = 4;

impl TimerClass {
    pub fn from_index(i: usize) -> TimerClass {
        match i {
            0 => TimerClass::Udp,
            1 => TimerClass::TcpEstablished,
            2 => TimerClass::TcpTransitory,
            _ => TimerClass::Icmp,
        }
    }

    pub fn of(proto: u8, flags: u8) -> TimerClass {
        match proto {
            proto::UDP => TimerClass::Udp,
            proto::ICMP => TimerClass::Icmp,
            _ => {
                use tcp_flags::*;
                let closing = flags & RST != 0 || (flags & FIN_OUT != 0 && flags & FIN_IN != 0);
                if flags & EST != 0 && !closing { TimerClass::TcpEstablished } else { TimerClass::TcpTransitory }
            }
        }
    }
}

/// One NAT session. `prev`/`next` link it into its timer list (or the free list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Session {
    pub sub: u32,
    pub inner_addr: u32,
    pub ext_addr: u32,
    /// The last remote endpoint the subscriber sent to.
    pub remote_addr: u32,
    pub inner_port: u16,
    pub ext_port: u16,
    pub remote_port: u16,
    /// 0 marks a free record.
    pub proto: u8,
    pub flags: u8,
    pub last_seen: u32,
    pub created: u32,
    /// Timer list links, owned by the table (any value given here is overwritten).
    pub(crate) prev: u32,
    pub(crate) next: u32,
}

impl Session {
    pub fn class(&self) -> TimerClass {
        TimerClass::of(self.proto, self.flags)
    }
}

/// Hashes of the two keys of a session, computed by the engine's hasher.
#[derive(Debug, Clone, Copy)]
pub struct KeyHashes {
    pub inside: u32,
    pub outside: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct List {
    head: u32,
    tail: u32,
}

#[inline]
fn list_of(inst: u8, c: TimerClass) -> usize {
    inst as usize * CLASSES + c as usize
}

pub struct SessionTable {
    slab: Vec<Session>,
    free: u32,
    live: u32,
    capacity: u32,
    pub inside: IndexTable,
    pub outside: IndexTable,
    /// One list per (instance, class): instances may have different timeouts.
    lists: Vec<List>,
}

impl SessionTable {
    pub fn new(capacity: u32, instances: usize) -> Self {
        let slab = Vec::with_capacity(capacity as usize);
        crate::memory::advise_vec(&slab);
        SessionTable {
            slab,
            free: NIL,
            live: 0,
            capacity,
            inside: IndexTable::new(capacity as usize),
            outside: IndexTable::new(capacity as usize),
            lists: vec![List { head: NIL, tail: NIL }; instances.max(1) * CLASSES],
        }
    }

    #[inline]
    pub fn len(&self) -> u32 {
        self.live
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    #[inline]
    pub fn is_full(&self) -> bool {
        self.live >= self.capacity
    }
    #[inline]
    pub fn prefetch(&self, i: u32) {
        if let Some(s) = self.slab.get(i as usize) {
            // A 40-byte record may straddle two cache lines: fetch both.
            let p = s as *const Session as *const u8;
            crate::prefetch::prefetch(p);
            crate::prefetch::prefetch(p.wrapping_add(std::mem::size_of::<Session>() - 1));
        }
    }
    #[inline]
    pub fn get(&self, i: u32) -> &Session {
        &self.slab[i as usize]
    }
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut Session {
        &mut self.slab[i as usize]
    }

    /// Stores a new session, indexes it and puts it at the tail of its timer list.
    /// Returns None when the table is full.
    pub fn insert(&mut self, s: Session, h: KeyHashes, inst: u8) -> Option<u32> {
        if self.is_full() {
            return None;
        }
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slab[i as usize].next;
            self.slab[i as usize] = s;
            i
        } else {
            self.slab.push(s);
            (self.slab.len() - 1) as u32
        };
        self.live += 1;
        self.inside.insert(h.inside, i);
        self.outside.insert(h.outside, i);
        self.link_tail(i, list_of(inst, s.class()));
        Some(i)
    }

    /// Unindexes and frees session `i`, returning its last contents.
    pub fn remove(&mut self, i: u32, h: KeyHashes, inst: u8) -> Session {
        let s = self.slab[i as usize];
        debug_assert!(s.proto != 0);
        self.unlink(i, list_of(inst, s.class()));
        self.inside.remove(h.inside, i);
        self.outside.remove(h.outside, i);
        let rec = &mut self.slab[i as usize];
        rec.proto = 0;
        rec.next = self.free;
        self.free = i;
        self.live -= 1;
        s
    }

    /// Records traffic on session `i` at `now`; `flags` is the new TCP state. Moves the
    /// session to the tail of its (possibly new) list when its time or class changed.
    /// Returns true when the session's time advanced.
    #[inline]
    pub fn touch(&mut self, i: u32, now: u32, flags: u8, inst: u8) -> bool {
        let s = &self.slab[i as usize];
        let advanced = s.last_seen != now;
        if !advanced && s.flags == flags {
            // The common case: more traffic within the same second.
            return false;
        }
        let old_class = list_of(inst, s.class());
        self.unlink(i, old_class);
        let s = &mut self.slab[i as usize];
        s.flags = flags;
        s.last_seen = now;
        let c = list_of(inst, s.class());
        self.link_tail(i, c);
        advanced
    }

    /// The oldest session of a class in an instance.
    #[inline]
    pub fn oldest_in(&self, inst: u8, c: TimerClass) -> Option<u32> {
        let h = self.lists[list_of(inst, c)].head;
        (h != NIL).then_some(h)
    }

    fn link_tail(&mut self, i: u32, c: usize) {
        let l = &mut self.lists[c];
        let tail = l.tail;
        self.slab[i as usize].prev = tail;
        self.slab[i as usize].next = NIL;
        if tail == NIL {
            l.head = i;
        } else {
            self.slab[tail as usize].next = i;
        }
        self.lists[c].tail = i;
    }

    fn unlink(&mut self, i: u32, c: usize) {
        let (p, n) = {
            let s = &self.slab[i as usize];
            (s.prev, s.next)
        };
        if p == NIL {
            self.lists[c].head = n;
        } else {
            self.slab[p as usize].next = n;
        }
        if n == NIL {
            self.lists[c].tail = p;
        } else {
            self.slab[n as usize].prev = p;
        }
    }

    /// Iterates over live sessions (slow path: display, bulk sync).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Session)> {
        self.iter_from(0)
    }

    /// Live entries from slot `from` on.
    pub fn iter_from(&self, from: u32) -> impl Iterator<Item = (u32, &Session)> {
        let skip = (from as usize).min(self.slab.len());
        self.slab[skip..].iter().enumerate().filter(|(_, s)| s.proto != 0).map(move |(i, s)| ((skip + i) as u32, s))
    }

    /// Bytes held by the slab and the indices.
    pub fn memory(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Session>() + self.inside.memory() + self.outside.memory()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(n: u32) -> (Session, KeyHashes) {
        let s = Session {
            sub: 0,
            inner_addr: n,
            ext_addr: 1,
            inner_port: n as u16,
            ext_port: n as u16,
            proto: proto::UDP,
            ..Default::default()
        };
        (s, KeyHashes { inside: n, outside: n.wrapping_mul(31) })
    }

    #[test]
    fn size_is_forty_bytes() {
        assert_eq!(std::mem::size_of::<Session>(), 40);
    }

    #[test]
    fn lru_order_and_reuse() {
        let mut t = SessionTable::new(4, 1);
        let ids: Vec<u32> = (1..=4)
            .map(|n| {
                let (s, h) = udp(n);
                t.insert(s, h, 0).unwrap()
            })
            .collect();
        assert!(t.insert(udp(9).0, udp(9).1, 0).is_none(), "full");
        assert_eq!(t.oldest_in(0, TimerClass::Udp), Some(ids[0]));
        t.touch(ids[0], 5, 0, 0);
        assert_eq!(t.oldest_in(0, TimerClass::Udp), Some(ids[1]));
        let (_, h) = udp(2);
        t.remove(ids[1], h, 0);
        assert_eq!(t.oldest_in(0, TimerClass::Udp), Some(ids[2]));
        assert_eq!(t.len(), 3);
        let (s, h) = udp(7);
        assert_eq!(t.insert(s, h, 0), Some(ids[1]), "free record reused");
        assert_eq!(t.inside.find(7, |r| t.get(r).inner_addr == 7), Some(ids[1]));
        assert_eq!(t.inside.find(2, |r| t.get(r).inner_addr == 2), None);
    }

    #[test]
    fn tcp_state_moves_lists() {
        use tcp_flags::*;
        let mut t = SessionTable::new(4, 1);
        let s = Session { proto: proto::TCP, flags: SYN_OUT, ..Default::default() };
        let i = t.insert(s, KeyHashes { inside: 1, outside: 2 }, 0).unwrap();
        assert_eq!(t.oldest_in(0, TimerClass::TcpTransitory), Some(i));
        t.touch(i, 0, SYN_OUT | SYN_IN | EST, 0);
        assert_eq!(t.oldest_in(0, TimerClass::TcpEstablished), Some(i));
        assert_eq!(t.oldest_in(0, TimerClass::TcpTransitory), None);
        t.touch(i, 0, SYN_OUT | SYN_IN | EST | RST, 0);
        assert_eq!(t.oldest_in(0, TimerClass::TcpTransitory), Some(i));
    }
}
