//! The external port space of one DS-Lite instance, as seen by one worker.
//!
//! Every external address's ports are cut into blocks of `block_size` ports (RFC 6888
//! REQ-4, RFC 7422's port blocks without the determinism). Block `b` belongs to worker
//! `b % workers`, so the worker that owns an inbound packet is a function of its
//! destination port alone ([`PortSpace::owner_of_port`]) and no table is shared between
//! workers. Blocks that lie below 1024 serve only inside ports below 1024, the others
//! only ports from 1024 up, so the port range class is kept (RFC 4787 REQ-3). When the
//! block size exceeds 1024, block 0 serves the low class with ports 1..=1023 only.
//! The few low blocks run out first: `NatState::pick_port` then gives a dynamic port.
//!
//! Hot path on allocation only: a bitmap per address, no allocation after start.

/// The two port range classes of RFC 4787 REQ-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortClass {
    WellKnown = 0,
    Dynamic = 1,
}

impl PortClass {
    pub fn of(port: u16) -> PortClass {
        if port < 1024 { PortClass::WellKnown } else { PortClass::Dynamic }
    }
}

pub struct PortSpace {
    block_size: u16,
    shift: u32,
    blocks_per_addr: u32,
    workers: u32,
    me: u32,
    words_per_addr: usize,
    /// Bit `b` of an address: block `b` is allocated (only this worker's blocks are set).
    allocated: Vec<u64>,
    /// Free blocks of this worker per address and class.
    free: Vec<[u16; 2]>,
}

impl PortSpace {
    pub fn new(addresses: usize, block_size: u16, workers: u16, me: u16) -> Self {
        debug_assert!(block_size.is_power_of_two() && block_size >= 8);
        let shift = block_size.trailing_zeros();
        let blocks_per_addr = 65536u32 >> shift;
        let words_per_addr = (blocks_per_addr as usize).div_ceil(64);
        let mut ps = PortSpace {
            block_size,
            shift,
            blocks_per_addr,
            workers: workers as u32,
            me: me as u32,
            words_per_addr,
            allocated: vec![0; addresses * words_per_addr],
            free: vec![[0, 0]; addresses],
        };
        let mut counts = [0u16; 2];
        for b in (me as u32..blocks_per_addr).step_by(workers as usize) {
            counts[ps.class_of_block(b as u16) as usize] += 1;
        }
        ps.free.iter_mut().for_each(|f| *f = counts);
        ps
    }

    #[inline]
    pub fn block_size(&self) -> u16 {
        self.block_size
    }

    /// The worker that owns external port `port` of any address of this instance.
    #[inline]
    pub fn owner_of_port(&self, port: u16) -> u16 {
        (((port as u32) >> self.shift) % self.workers) as u16
    }

    #[inline]
    pub fn block_of_port(&self, port: u16) -> u16 {
        ((port as u32) >> self.shift) as u16
    }

    pub fn class_of_block(&self, b: u16) -> PortClass {
        if (b as u32) << self.shift < 1024 { PortClass::WellKnown } else { PortClass::Dynamic }
    }

    /// The ports of block `b` that may be handed out: (first, count).
    pub fn block_ports(&self, b: u16) -> (u16, u16) {
        let first = ((b as u32) << self.shift) as u16;
        if b == 0 {
            // Port 0 is never used; a block straddling 1024 keeps to the low class.
            let end = (self.block_size as u32).min(1024) as u16;
            (1, end - 1)
        } else {
            (first, self.block_size)
        }
    }

    /// Free blocks of this worker at address `a` in class `c`.
    #[inline]
    pub fn free_blocks(&self, a: usize, c: PortClass) -> u16 {
        self.free[a][c as usize]
    }

    pub fn is_mine(&self, b: u16) -> bool {
        (b as u32) < self.blocks_per_addr && (b as u32) % self.workers == self.me
    }

    pub fn is_allocated(&self, a: usize, b: u16) -> bool {
        let w = self.allocated[a * self.words_per_addr + b as usize / 64];
        w & (1 << (b % 64)) != 0
    }

    /// Takes a free block of class `c` at address `a`, starting the search at `hint`.
    pub fn allocate(&mut self, a: usize, c: PortClass, hint: u32) -> Option<u16> {
        if self.free[a][c as usize] == 0 {
            return None;
        }
        let mine = (self.blocks_per_addr - self.me).div_ceil(self.workers);
        let start = hint % mine;
        for k in 0..mine {
            let b = (self.me + ((start + k) % mine) * self.workers) as u16;
            if self.class_of_block(b) == c && !self.is_allocated(a, b) {
                self.mark(a, b, true);
                return Some(b);
            }
        }
        None
    }

    /// Claims block `b` (installing state from the peer). False if it is not this
    /// worker's or already allocated.
    pub fn claim(&mut self, a: usize, b: u16) -> bool {
        if !self.is_mine(b) || self.is_allocated(a, b) {
            return false;
        }
        self.mark(a, b, true);
        true
    }

    pub fn release(&mut self, a: usize, b: u16) {
        if self.is_allocated(a, b) {
            self.mark(a, b, false);
        }
    }

    fn mark(&mut self, a: usize, b: u16, on: bool) {
        let c = self.class_of_block(b) as usize;
        let w = &mut self.allocated[a * self.words_per_addr + b as usize / 64];
        if on {
            *w |= 1 << (b % 64);
            self.free[a][c] -= 1;
        } else {
            *w &= !(1 << (b % 64));
            self.free[a][c] += 1;
        }
    }

    pub fn memory(&self) -> usize {
        self.allocated.len() * 8 + self.free.len() * 4
    }
}

/// The worker that owns external port `port` when `workers` workers share port blocks
/// of `block_size` ports: what [`PortSpace::owner_of_port`] says, without a port space
/// (the board places the peer's blocks and sessions with it).
pub fn worker_of_port(block_size: u16, workers: u16, port: u16) -> u16 {
    ((port as u32 >> block_size.max(1).trailing_zeros()) % workers.max(1) as u32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_between_workers_by_port() {
        let w0 = PortSpace::new(1, 512, 2, 0);
        let w1 = PortSpace::new(1, 512, 2, 1);
        assert_eq!(w0.owner_of_port(1024), 0);
        assert_eq!(w0.owner_of_port(1535), 0);
        assert_eq!(w0.owner_of_port(1536), 1);
        assert!(w0.is_mine(2) && !w0.is_mine(3) && w1.is_mine(3));
        // 128 blocks of 512: blocks 0 and 1 are well-known, one each.
        assert_eq!(w0.free_blocks(0, PortClass::WellKnown), 1);
        assert_eq!(w1.free_blocks(0, PortClass::WellKnown), 1);
        assert_eq!(w0.free_blocks(0, PortClass::Dynamic), 63);
    }

    #[test]
    fn allocate_until_exhausted_then_release() {
        let mut ps = PortSpace::new(2, 4096, 1, 0);
        assert_eq!(ps.block_ports(0), (1, 1023), "block 0 keeps to the low class");
        assert_eq!(ps.block_ports(3), (12288, 4096));
        let mut got = vec![];
        while let Some(b) = ps.allocate(1, PortClass::Dynamic, 7) {
            assert_eq!(ps.class_of_block(b), PortClass::Dynamic);
            got.push(b);
        }
        assert_eq!(got.len(), 15);
        assert_eq!(ps.free_blocks(0, PortClass::Dynamic), 15, "other address untouched");
        ps.release(1, got[3]);
        assert_eq!(ps.allocate(1, PortClass::Dynamic, 0), Some(got[3]));
        assert!(!ps.claim(1, got[3]), "claim of an allocated block is refused");
        assert_eq!(ps.allocate(1, PortClass::WellKnown, 0), Some(0));
        assert_eq!(ps.allocate(1, PortClass::WellKnown, 0), None);
    }
}
