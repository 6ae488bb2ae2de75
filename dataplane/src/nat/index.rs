//! Open-addressing hash index from a 32-bit hash to a record number.
//!
//! Linear probing with backward-shift deletion (no tombstones, so lookups never degrade
//! as sessions come and go). A slot is a `u64`: the key's 32-bit hash in the high half,
//! record number + 1 in the low half, 0 when empty. The records live elsewhere (the
//! session slab); the caller's closure compares keys. Capacity is fixed at start, twice
//! the record capacity, so the load stays at or below 1/2. Hot path: no allocation.

pub struct IndexTable {
    slots: Vec<u64>,
    mask: usize,
}

impl IndexTable {
    /// An index for up to `records` records.
    pub fn new(records: usize) -> Self {
        let n = (records.max(8) * 2).next_power_of_two();
        let slots = vec![0; n];
        crate::memory::advise_vec(&slots);
        IndexTable { slots, mask: n - 1 }
    }

    #[inline]
    fn home(&self, hash: u32) -> usize {
        hash as usize & self.mask
    }

    /// Finds the record whose hash is `hash` and for which `eq` holds.
    #[inline(always)]
    pub fn find(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == hash {
                let rec = (s as u32) - 1;
                if eq(rec) {
                    return Some(rec);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Hints the CPU to fetch the home slot of `hash` (for batched lookups).
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        crate::prefetch::prefetch(&self.slots[self.home(hash)]);
    }

    /// The first record stored under `hash`, without comparing keys: a candidate to
    /// prefetch (the real lookup follows with `find`).
    #[inline]
    pub fn peek(&self, hash: u32) -> Option<u32> {
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == hash {
                return Some((s as u32) - 1);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts `rec` under `hash`. The caller keeps the number of records within capacity.
    #[inline]
    pub fn insert(&mut self, hash: u32, rec: u32) {
        let mut i = self.home(hash);
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = ((hash as u64) << 32) | (rec as u64 + 1);
    }

    /// Removes `rec` stored under `hash`; false if it was not there.
    pub fn remove(&mut self, hash: u32, rec: u32) -> bool {
        let want = ((hash as u64) << 32) | (rec as u64 + 1);
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return false;
            }
            if s == want {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: pull later entries of the cluster into the hole when that does
        // not move them before their home slot.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home((s >> 32) as u32);
            // Is `home` cyclically outside (hole, j]? Then the entry may move to the hole.
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.slots[hole] = 0;
        true
    }

    /// Bytes held by the slots.
    pub fn memory(&self) -> usize {
        self.slots.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        // Random inserts and removes with many colliding hashes agree with a HashMap.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..64), 1..400)) {
            let mut t = IndexTable::new(64);
            let mut m: HashMap<u32, u32> = HashMap::new();
            let hash = |k: u32| (k % 7).wrapping_mul(0x9e37_79b9) | (k % 3);
            for (ins, k) in ops {
                if ins {
                    if let std::collections::hash_map::Entry::Vacant(e) = m.entry(k) {
                        e.insert(k);
                        t.insert(hash(k), k);
                    }
                } else if m.remove(&k).is_some() {
                    prop_assert!(t.remove(hash(k), k));
                } else {
                    prop_assert!(!t.remove(hash(k), k));
                }
                for probe in 0..64u32 {
                    prop_assert_eq!(t.find(hash(probe), |r| r == probe), m.get(&probe).copied());
                }
            }
        }
    }
}
