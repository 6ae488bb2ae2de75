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
//! A released block is held down before another subscriber may get it (RFC 6888 REQ-8,
//! 120 s by default): it stays marked allocated and joins the current of two held sets;
//! every hold-down period the older set is freed and the current one becomes the older.
//! A block is so held for at least the hold-down and at most twice it, for two more
//! bitmaps and no timers (decision 0014). The peer board's installs may take a held
//! block at once: the peer, which allocated it, held it down itself.
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
    /// Released blocks held down (also set in `allocated`): the set filling now
    /// (`held[cur]`) and the older one, with how many blocks each holds.
    held: [Vec<u64>; 2],
    held_count: [u32; 2],
    cur: usize,
    /// When the current set started filling (seconds), and the hold-down (0: none).
    since: u32,
    hold_down: u32,
}

impl PortSpace {
    pub fn new(addresses: usize, block_size: u16, workers: u16, me: u16) -> Self {
        Self::with_hold_down(addresses, block_size, workers, me, 0)
    }

    /// A port space whose released blocks are held down `hold_down` seconds at least.
    pub fn with_hold_down(addresses: usize, block_size: u16, workers: u16, me: u16, hold_down: u32) -> Self {
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
            held: [vec![0; addresses * words_per_addr], vec![0; addresses * words_per_addr]],
            held_count: [0, 0],
            cur: 0,
            since: 0,
            hold_down,
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

    /// Is block `b` of address `a` a subscriber's (allocated and not held down)?
    pub fn is_allocated(&self, a: usize, b: u16) -> bool {
        self.taken(a, b) && self.held_in(a, b).is_none()
    }

    /// Is block `b` held down after its release?
    pub fn is_held(&self, a: usize, b: u16) -> bool {
        self.held_in(a, b).is_some()
    }

    /// Allocated or held down: not free.
    fn taken(&self, a: usize, b: u16) -> bool {
        let w = self.allocated[a * self.words_per_addr + b as usize / 64];
        w & (1 << (b % 64)) != 0
    }

    /// Which held set block `b` is in, if any.
    fn held_in(&self, a: usize, b: u16) -> Option<usize> {
        let (w, bit) = (a * self.words_per_addr + b as usize / 64, 1u64 << (b % 64));
        (0..2).find(|&g| self.held[g][w] & bit != 0)
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
            if self.class_of_block(b) == c && !self.taken(a, b) {
                self.mark(a, b, true);
                return Some(b);
            }
        }
        None
    }

    /// Claims block `b` (installing state from the peer), held down or not. False if it
    /// is not this worker's or already a subscriber's.
    pub fn claim(&mut self, a: usize, b: u16) -> bool {
        if !self.is_mine(b) || self.is_allocated(a, b) {
            return false;
        }
        match self.held_in(a, b) {
            Some(g) => self.set_held(g, a, b, false),
            None => self.mark(a, b, true),
        }
        true
    }

    /// Takes block `b` of address `a` out of allocation for good (a static forwarding's
    /// block), if it is this worker's. Never released: no subscriber holds it, and a
    /// claim from the peer is refused as for any allocated block.
    pub fn reserve(&mut self, a: usize, b: u16) {
        if self.is_mine(b) && !self.taken(a, b) {
            self.mark(a, b, true);
        }
    }

    /// Releases block `b`: held down first, if there is a hold-down, then free.
    pub fn release(&mut self, a: usize, b: u16, now: u32) {
        if !self.is_allocated(a, b) {
            return;
        }
        if self.hold_down == 0 {
            self.mark(a, b, false);
            return;
        }
        self.age(now);
        self.set_held(self.cur, a, b, true);
    }

    /// Frees the blocks whose hold-down is over: called with the clock between batches
    /// (cheap unless a hold-down period ended).
    pub fn age(&mut self, now: u32) {
        if self.hold_down == 0 {
            return;
        }
        if self.held_count == [0, 0] {
            self.since = now;
            return;
        }
        for _ in 0..2 {
            if now.wrapping_sub(self.since) < self.hold_down {
                return;
            }
            // The older set has been held a whole period since the current one started:
            // free it, and start filling it as the current one.
            let old = 1 - self.cur;
            if self.held_count[old] > 0 {
                for w in 0..self.held[old].len() {
                    let mut bits = self.held[old][w];
                    while bits != 0 {
                        let b = ((w % self.words_per_addr) * 64) as u16 + bits.trailing_zeros() as u16;
                        bits &= bits - 1;
                        let a = w / self.words_per_addr;
                        self.set_held(old, a, b, false);
                        self.mark(a, b, false);
                    }
                }
            }
            self.cur = old;
            self.since = self.since.wrapping_add(self.hold_down);
        }
        // A clock far ahead (idle for two periods and more): both sets are free now.
        if now.wrapping_sub(self.since) >= self.hold_down {
            self.since = now;
        }
    }

    fn set_held(&mut self, g: usize, a: usize, b: u16, on: bool) {
        let (w, bit) = (a * self.words_per_addr + b as usize / 64, 1u64 << (b % 64));
        if on {
            self.held[g][w] |= bit;
            self.held_count[g] += 1;
        } else {
            self.held[g][w] &= !bit;
            self.held_count[g] -= 1;
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
        self.allocated.len() * 8 * 3 + self.free.len() * 4
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
        ps.release(1, got[3], 0);
        assert_eq!(ps.allocate(1, PortClass::Dynamic, 0), Some(got[3]));
        assert!(!ps.claim(1, got[3]), "claim of an allocated block is refused");
        assert_eq!(ps.allocate(1, PortClass::WellKnown, 0), Some(0));
        assert_eq!(ps.allocate(1, PortClass::WellKnown, 0), None);
    }

    #[test]
    fn released_blocks_are_held_down_then_free() {
        let mut ps = PortSpace::with_hold_down(1, 16384, 1, 0, 120);
        let b = ps.allocate(0, PortClass::Dynamic, 0).unwrap();
        let c = ps.allocate(0, PortClass::Dynamic, 0).unwrap();
        ps.age(1000);
        // The first release starts a period; the block is freed two periods later.
        ps.release(0, b, 1010);
        assert!(ps.is_held(0, b) && !ps.is_allocated(0, b));
        assert_eq!(ps.free_blocks(0, PortClass::Dynamic), 1, "held, not free");
        // Released at the end of the period: freed one period and a bit later.
        ps.release(0, c, 1129);
        ps.age(1010 + 239);
        assert!(ps.is_held(0, b) && ps.is_held(0, c));
        ps.age(1010 + 240);
        assert!(!ps.is_held(0, b) && !ps.is_held(0, c), "held from 121 to 240 s");
        assert_eq!(ps.free_blocks(0, PortClass::Dynamic), 3);
        // The peer may take a held block at once.
        let b = ps.allocate(0, PortClass::Dynamic, 0).unwrap();
        ps.release(0, b, 2000);
        assert!(ps.claim(0, b));
        assert!(ps.is_allocated(0, b) && !ps.is_held(0, b));
        assert_eq!(ps.free_blocks(0, PortClass::Dynamic), 2);
        // Long idle: both sets go on one call.
        ps.release(0, b, 2000);
        ps.age(9000);
        assert_eq!(ps.free_blocks(0, PortClass::Dynamic), 3);
    }
}
