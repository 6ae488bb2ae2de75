//! Address-and-port-dependent filtering (RFC 4787 section 5, REQ-8 option): the remote
//! endpoints a mapping has sent to.
//!
//! The last remote of a session is kept in the session itself (the common case: one
//! remote per mapping). When a mapping sends to a new remote, the previous one moves into
//! this table with the time of the change, and stays permitted while the mapping's
//! timeout has not run out since then. Entries name their session by record number and
//! creation time, so an entry outliving its session never opens a later one. The table
//! has a fixed capacity and evicts its oldest entry when full. Hot path: no allocation.

use super::index::IndexTable;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    session: u32,
    created: u32,
    remote_addr: u32,
    remote_port: u16,
    live: bool,
    seen: u32,
    hash: u32,
}

pub struct FilterTable {
    index: IndexTable,
    entries: Vec<Entry>,
    /// Ring of entry numbers in insertion order: the oldest is evicted first.
    next: usize,
}

impl FilterTable {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(8);
        FilterTable { index: IndexTable::new(capacity), entries: vec![Entry::default(); capacity], next: 0 }
    }

    /// Remembers that session (`session`, `created`) sent to the remote at `now`.
    pub fn remember(&mut self, hash: u32, session: u32, created: u32, addr: u32, port: u16, now: u32) {
        if let Some(e) = self.find(hash, session, created, addr, port) {
            self.entries[e as usize].seen = now;
            return;
        }
        let slot = self.next;
        self.next = (self.next + 1) % self.entries.len();
        let old = self.entries[slot];
        if old.live {
            self.index.remove(old.hash, slot as u32);
        }
        self.entries[slot] =
            Entry { session, created, remote_addr: addr, remote_port: port, live: true, seen: now, hash };
        self.index.insert(hash, slot as u32);
    }

    /// The time the session last sent to this remote, if it did.
    pub fn last_sent(&self, hash: u32, session: u32, created: u32, addr: u32, port: u16) -> Option<u32> {
        self.find(hash, session, created, addr, port).map(|e| self.entries[e as usize].seen)
    }

    fn find(&self, hash: u32, session: u32, created: u32, addr: u32, port: u16) -> Option<u32> {
        self.index.find(hash, |i| {
            let e = &self.entries[i as usize];
            e.session == session && e.created == created && e.remote_addr == addr && e.remote_port == port
        })
    }

    pub fn memory(&self) -> usize {
        self.index.memory() + self.entries.len() * std::mem::size_of::<Entry>()
    }
}
