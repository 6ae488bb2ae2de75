//! Subscribers: one per B4 address and instance, owning its port blocks and limits.
//!
//! A subscriber lives on one worker, the one whose receive queue its frames reach
//! (`nat::owners`), so its sessions, blocks and limits are all in one place (RFC 6888
//! REQ-2 paired pooling: one external address for all of a subscriber's sessions).
//! Fixed arrays, no allocation after start.

use super::index::IndexTable;

/// Port blocks one subscriber may hold.
pub const MAX_BLOCKS: usize = 32;

/// Laid out so that what every packet reads (B4, next-hop MAC, instance, paired
/// address) shares the first cache line; the block tables follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Subscriber {
    pub b4: [u8; 16],
    /// Next-hop MAC towards the B4, learned from its frames (zeros: not yet known).
    pub mac: [u8; 6],
    pub inst: u8,
    pub nblocks: u8,
    /// Index of the paired external address in the instance pool.
    pub addr_idx: u32,
    pub ext_addr: u32,
    pub sessions: u32,
    /// New-session tokens (RFC 6888 REQ-4 rate of new sessions) and their refill time.
    pub tokens: u32,
    pub refilled: u32,
    /// When `mtu` was last learned (seconds).
    pub mtu_at: u32,
    /// The IPv6 path MTU towards the B4 learned from a Packet Too Big, below the tunnel
    /// MTU (0: none; see `NatState::path_mtu`).
    pub mtu: u16,
    pub live: bool,
    pub blocks: [u16; MAX_BLOCKS],
    /// Sessions in each block.
    pub used: [u16; MAX_BLOCKS],
}

impl Subscriber {
    pub fn block_slot(&self, b: u16) -> Option<usize> {
        self.blocks[..self.nblocks as usize].iter().position(|&x| x == b)
    }
}

pub struct SubscriberTable {
    slab: Vec<Subscriber>,
    free: Vec<u32>,
    index: IndexTable,
    live: u32,
}

impl SubscriberTable {
    pub fn new(capacity: u32) -> Self {
        let slab = Vec::with_capacity(capacity as usize);
        crate::memory::advise_vec(&slab);
        SubscriberTable {
            slab,
            free: Vec::with_capacity(capacity as usize),
            index: IndexTable::new(capacity as usize),
            live: 0,
        }
    }

    #[inline]
    pub fn find(&self, hash: u32, inst: u8, b4: &[u8; 16]) -> Option<u32> {
        self.index.find(hash, |i| {
            let s = &self.slab[i as usize];
            s.inst == inst && s.b4 == *b4
        })
    }

    #[inline]
    pub fn prefetch(&self, i: u32) {
        if let Some(s) = self.slab.get(i as usize) {
            crate::prefetch::prefetch(s);
        }
    }
    #[inline]
    pub fn index(&self) -> &IndexTable {
        &self.index
    }
    #[inline]
    pub fn get(&self, i: u32) -> &Subscriber {
        &self.slab[i as usize]
    }
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut Subscriber {
        &mut self.slab[i as usize]
    }
    pub fn len(&self) -> u32 {
        self.live
    }
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds a subscriber; None when the table is full.
    pub fn insert(&mut self, hash: u32, s: Subscriber) -> Option<u32> {
        let i = if let Some(i) = self.free.pop() {
            self.slab[i as usize] = s;
            i
        } else if self.slab.len() < self.slab.capacity() {
            self.slab.push(s);
            (self.slab.len() - 1) as u32
        } else {
            return None;
        };
        self.index.insert(hash, i);
        self.live += 1;
        Some(i)
    }

    pub fn remove(&mut self, hash: u32, i: u32) {
        self.index.remove(hash, i);
        self.slab[i as usize].live = false;
        self.free.push(i);
        self.live -= 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Subscriber)> {
        self.iter_from(0)
    }

    /// Live entries from slot `from` on.
    pub fn iter_from(&self, from: u32) -> impl Iterator<Item = (u32, &Subscriber)> {
        let skip = (from as usize).min(self.slab.len());
        self.slab[skip..].iter().enumerate().filter(|(_, s)| s.live).map(move |(i, s)| ((skip + i) as u32, s))
    }

    pub fn memory(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Subscriber>() + self.free.capacity() * 4 + self.index.memory()
    }
}
