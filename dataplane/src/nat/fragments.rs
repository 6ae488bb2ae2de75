//! Fragment state of one worker: IPv6 reassembly of softwire packets, and inbound IPv4
//! datagrams (the ports their first fragment told, and fragments held until it comes).
//! Each is a `FragTable` (`nat::frag_table`: hashed, fair between sources, expiry in
//! deadline order) and, beside it, what each slot holds. The packet steps that use them
//! are in `pipeline::frag`. Fixed pools allocated at start.

use super::frag_table::{DatagramKey, FragTable, Refused};
use crate::config::FragLimits;
use crate::counters::{Counter, WorkerCounters};
use crate::frame::{FragmentPorts, HEADROOM};
use crate::wire::{ethernet, ipv6};

/// Ranges (of 8-byte units) an IPv6 datagram may arrive in.
pub(crate) const MAX_PIECES: usize = 64;
/// Ranges an inbound IPv4 datagram may arrive in.
pub(crate) const MAX_PIECES4: usize = 16;
/// Room before a reassembled packet for the headers the pipeline writes.
pub(crate) const REASM_HEADROOM: usize = HEADROOM + ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN;
/// Largest inbound fragment that can be held.
pub(crate) const HELD_MAX: usize = 2048;

/// The byte ranges of a datagram seen so far.
#[derive(Clone, Copy)]
pub(crate) struct Pieces<const N: usize> {
    ranges: [(usize, usize); N],
    n: usize,
    /// Bytes seen.
    pub(crate) seen: usize,
    /// Length of the datagram (of its fragmentable part), known once the last fragment
    /// came.
    pub(crate) total: Option<usize>,
}

impl<const N: usize> Pieces<N> {
    const NONE: Self = Pieces { ranges: [(0, 0); N], n: 0, seen: 0, total: None };

    /// Adds bytes `start..end` (`last`: no more fragments after them); false if they
    /// overlap what came (RFC 5722), disagree with the end already known, or are one
    /// range too many: the datagram is then to be discarded.
    pub(crate) fn add(&mut self, start: usize, end: usize, last: bool) -> bool {
        let seen = &self.ranges[..self.n];
        let bad_end = match self.total {
            Some(t) => end > t || (last && end != t),
            None => last && seen.iter().any(|&(_, e)| e > end),
        };
        if bad_end || self.n == N || seen.iter().any(|&(s, e)| start < e && s < end) {
            return false;
        }
        self.ranges[self.n] = (start, end);
        self.n += 1;
        self.seen += end - start;
        if last {
            self.total = Some(end);
        }
        true
    }

    /// Every byte came.
    pub(crate) fn whole(&self) -> bool {
        self.total == Some(self.seen)
    }
}

/// A softwire datagram: from a B4 to an endpoint. Charged to the B4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Key6 {
    pub(crate) b4: [u8; 16],
    pub(crate) endpoint: [u8; 16],
    pub(crate) ident: u32,
}

impl DatagramKey for Key6 {
    type Source = [u8; 16];
    fn source(&self) -> [u8; 16] {
        self.b4
    }
}

pub(crate) struct Reassembly {
    pub(crate) pieces: Pieces<MAX_PIECES>,
    /// The first fragment's Fragment header's next header: the first header of the
    /// fragmentable part (RFC 8200 section 4.5).
    pub(crate) next_header: u8,
    pub(crate) buf: Vec<u8>,
}

/// IPv6 reassembly of softwire packets.
pub struct Reassembler {
    pub(crate) table: FragTable<Key6>,
    pub(crate) slots: Vec<Reassembly>,
    pub(crate) limits: FragLimits,
}

impl Reassembler {
    pub fn new(limits: FragLimits, seed: u64) -> Self {
        let slots = (0..limits.max_reassemblies.max(1))
            .map(|_| Reassembly {
                pieces: Pieces::NONE,
                next_header: 0,
                buf: vec![0; REASM_HEADROOM + ipv6::HEADER_LEN + limits.max_datagram],
            })
            .collect();
        let table = FragTable::new(limits.max_reassemblies, limits.max_per_source, limits.timeout_ms, seed);
        Reassembler { table, slots, limits }
    }

    /// The reassembly of `key`, started at `now_ms` if it is new.
    pub(crate) fn open(&mut self, key: Key6, now_ms: u64, c: &WorkerCounters) -> Result<u32, Refused> {
        let (d, new) = self.table.open(key, now_ms, c)?;
        if new {
            self.slots[d as usize].pieces = Pieces::NONE;
        }
        Ok(d)
    }

    /// Drops the reassemblies whose time ran out: only those are looked at.
    pub fn expire(&mut self, now_ms: u64, c: &WorkerCounters) {
        self.table.expire(now_ms, |_, _| c.inc(Counter::DropFragTimeout));
    }

    pub fn in_progress(&self) -> usize {
        self.table.datagrams()
    }
}

/// An inbound IPv4 datagram: from a remote to a pool address. Charged to the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Key4 {
    pub(crate) src: u32,
    pub(crate) dst: u32,
    pub(crate) ident: u16,
    pub(crate) protocol: u8,
}

impl DatagramKey for Key4 {
    type Source = u32;
    fn source(&self) -> u32 {
        self.src
    }
}

/// What the first fragment of an inbound datagram decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum First {
    /// Not seen yet: later fragments are held.
    Awaited,
    /// Its ports: later fragments go where it went, and are filtered as it was.
    Passed(FragmentPorts),
    /// Dropped, for this reason: so are the others (no port is kept for them).
    Refused(Counter),
}

/// A slot of the inbound table: a datagram, or a fragment held for one.
pub(crate) struct Inbound {
    pub(crate) first: First,
    pub(crate) pieces: Pieces<MAX_PIECES4>,
    /// A held fragment: its length and bytes (a whole frame, from `HEADROOM` on).
    pub(crate) len: usize,
    pub(crate) buf: Vec<u8>,
}

/// Inbound IPv4 fragment tracking.
pub struct FragTracker4 {
    pub(crate) table: FragTable<Key4>,
    pub(crate) slots: Vec<Inbound>,
}

impl FragTracker4 {
    pub fn new(limits: FragLimits, seed: u64) -> Self {
        let slots = (0..limits.max_held.max(1))
            .map(|_| Inbound { first: First::Awaited, pieces: Pieces::NONE, len: 0, buf: vec![0; HEADROOM + HELD_MAX] })
            .collect();
        let table = FragTable::new(limits.max_held, limits.max_per_source, limits.timeout_ms, seed);
        FragTracker4 { table, slots }
    }

    /// The datagram `key`, started at `now_ms` if it is new.
    pub(crate) fn open(&mut self, key: Key4, now_ms: u64, c: &WorkerCounters) -> Result<u32, Refused> {
        let (d, new) = self.table.open(key, now_ms, c)?;
        if new {
            let s = &mut self.slots[d as usize];
            (s.first, s.pieces) = (First::Awaited, Pieces::NONE);
        }
        Ok(d)
    }

    /// Holds `frame` (at most `HELD_MAX` bytes) for datagram `d`.
    pub(crate) fn hold(&mut self, d: u32, frame: &[u8], c: &WorkerCounters) -> Result<(), Refused> {
        let p = self.table.add_part(d, c)?;
        let h = &mut self.slots[p as usize];
        h.len = frame.len();
        h.buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        Ok(())
    }

    /// Drops the datagrams whose time ran out, counting their held fragments: only those
    /// are looked at.
    pub fn expire(&mut self, now_ms: u64, c: &WorkerCounters) {
        self.table.expire(now_ms, |_, held| c.add(Counter::DropFragTimeout, held as u64));
    }

    /// Datagrams in progress.
    pub fn in_progress(&self) -> usize {
        self.table.datagrams()
    }

    /// Fragments held.
    pub fn held(&self) -> usize {
        self.table.held_parts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_refuse_overlaps_and_a_wrong_end() {
        let mut p = Pieces::<4>::NONE;
        assert!(p.add(8, 16, false));
        assert!(!p.add(0, 9, false), "overlap");
        assert!(p.add(16, 24, true));
        assert!(!p.whole());
        assert_eq!(p.total, Some(24));
        assert!(!p.add(24, 32, false), "past the end");
        assert!(p.add(0, 8, false));
        assert!(p.whole());
        let mut p = Pieces::<4>::NONE;
        assert!(p.add(16, 24, false));
        assert!(!p.add(0, 8, true), "ends before bytes already seen");
    }
}
