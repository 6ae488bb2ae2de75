//! Fragment state of one worker: IPv6 reassembly slots for softwire packets and the
//! tables of inbound IPv4 fragments (datagrams whose first fragment told the port, and
//! fragments held until it comes), with their limits and timeouts. The packet steps that
//! use them are in `pipeline::frag`. Fixed pools allocated at start.

use crate::config::FragLimits;
use crate::counters::{Counter, WorkerCounters};
use crate::frame::HEADROOM;
use crate::wire::{ethernet, ipv6};

/// Ranges (of 8-byte units) a datagram may arrive in.
pub(crate) const MAX_PIECES: usize = 64;
/// Room before a reassembled packet for the headers the pipeline writes.
pub(crate) const REASM_HEADROOM: usize = HEADROOM + ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN;

#[derive(Clone, Copy, Default)]
pub(crate) struct Piece {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

pub(crate) fn overlaps(pieces: &[Piece], start: usize, end: usize) -> bool {
    pieces.iter().any(|p| start < p.end && p.start < end)
}

pub(crate) struct Reassembly {
    pub(crate) live: bool,
    pub(crate) key: ([u8; 16], [u8; 16], u32),
    pub(crate) deadline: u64,
    pub(crate) pieces: [Piece; MAX_PIECES],
    pub(crate) npieces: usize,
    /// Length of the fragmentable part, known once the last fragment came.
    pub(crate) total: Option<usize>,
    pub(crate) next_header: u8,
    pub(crate) buf: Vec<u8>,
}

/// IPv6 reassembly of softwire packets.
pub struct Reassembler {
    pub(crate) slots: Vec<Reassembly>,
    pub(crate) limits: FragLimits,
    /// No live slot has an earlier deadline: expiry skips the walk until then.
    pub(crate) earliest: u64,
}

impl Reassembler {
    pub fn new(limits: FragLimits) -> Self {
        let slots = (0..limits.max_reassemblies)
            .map(|_| Reassembly {
                live: false,
                key: ([0; 16], [0; 16], 0),
                deadline: 0,
                pieces: [Piece::default(); MAX_PIECES],
                npieces: 0,
                total: None,
                next_header: 0,
                buf: vec![0; REASM_HEADROOM + ipv6::HEADER_LEN + limits.max_datagram],
            })
            .collect();
        Reassembler { slots, limits, earliest: u64::MAX }
    }

    /// Drops the reassemblies whose time ran out. Runs between every batch, so it walks
    /// the slots only when a deadline has passed.
    pub fn expire(&mut self, now_ms: u64, c: &WorkerCounters) {
        if now_ms < self.earliest {
            return;
        }
        for s in self.slots.iter_mut().filter(|s| s.live && s.deadline <= now_ms) {
            s.live = false;
            c.inc(Counter::DropFragTimeout);
        }
        self.earliest = self.slots.iter().filter(|s| s.live).map(|s| s.deadline).min().unwrap_or(u64::MAX);
    }

    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.live).count()
    }
}

pub(crate) struct Held {
    pub(crate) live: bool,
    pub(crate) key: (u32, u32, u16, u8),
    pub(crate) deadline: u64,
    pub(crate) len: usize,
    pub(crate) buf: Vec<u8>,
}

pub(crate) struct Datagram {
    pub(crate) live: bool,
    pub(crate) key: (u32, u32, u16, u8),
    pub(crate) port: Option<u16>,
    pub(crate) deadline: u64,
    pub(crate) pieces: [Piece; 16],
    pub(crate) npieces: usize,
    /// Payload length, known once the last fragment came.
    pub(crate) total: Option<usize>,
    pub(crate) seen: usize,
}

/// Inbound IPv4 fragment tracking.
pub struct FragTracker4 {
    pub(crate) datagrams: Vec<Datagram>,
    pub(crate) held: Vec<Held>,
    pub(crate) limits: FragLimits,
    /// No live datagram or held fragment has an earlier deadline.
    pub(crate) earliest: u64,
}

/// Largest inbound fragment that can be held.
pub(crate) const HELD_MAX: usize = 2048;

impl FragTracker4 {
    pub fn new(limits: FragLimits) -> Self {
        FragTracker4 {
            datagrams: (0..limits.max_held)
                .map(|_| Datagram {
                    live: false,
                    key: (0, 0, 0, 0),
                    port: None,
                    deadline: 0,
                    pieces: [Piece::default(); 16],
                    npieces: 0,
                    total: None,
                    seen: 0,
                })
                .collect(),
            held: (0..limits.max_held)
                .map(|_| Held {
                    live: false,
                    key: (0, 0, 0, 0),
                    deadline: 0,
                    len: 0,
                    buf: vec![0; HEADROOM + HELD_MAX],
                })
                .collect(),
            limits,
            earliest: u64::MAX,
        }
    }

    /// Drops the datagrams and held fragments whose time ran out; walks the tables only
    /// when a deadline has passed.
    pub fn expire(&mut self, now_ms: u64, c: &WorkerCounters) {
        if now_ms < self.earliest {
            return;
        }
        for d in self.datagrams.iter_mut().filter(|d| d.live && d.deadline <= now_ms) {
            d.live = false;
        }
        for h in self.held.iter_mut().filter(|h| h.live && h.deadline <= now_ms) {
            h.live = false;
            c.inc(Counter::DropFragTimeout);
        }
        let live = self.datagrams.iter().filter(|d| d.live).map(|d| d.deadline);
        self.earliest = live.chain(self.held.iter().filter(|h| h.live).map(|h| h.deadline)).min().unwrap_or(u64::MAX);
    }

    pub(crate) fn find(&self, key: (u32, u32, u16, u8)) -> Option<usize> {
        self.datagrams.iter().position(|d| d.live && d.key == key)
    }

    pub fn held(&self) -> usize {
        self.held.iter().filter(|h| h.live).count()
    }
}
