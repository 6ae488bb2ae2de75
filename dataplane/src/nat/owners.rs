//! Which worker of a board owns each subscriber: the one whose receive queue its frames
//! arrive on.
//!
//! A NIC spreads softwire frames over its receive queues by a hash of the outer IPv6
//! header (RSS), the same queue for every frame of one B4, and each worker reads its own
//! queue. So the worker that creates a subscriber is the worker whose queue that B4's
//! frames reach, whatever hash the NIC uses, and frames need no hand-off but when RSS
//! sends one B4 to two queues (or after a failover, for subscribers installed from the
//! peer). The claim is made when a worker creates the subscriber and released when the
//! subscriber goes; a worker that receives a frame for a B4 it does not hold looks up
//! the claim and hands the frame to its owner (docs/decisions/0010-subscriber-owners.md).
//!
//! Shared by the board's workers, but read only on a miss of the worker's own
//! subscriber table (a frame of a subscriber it does not hold) and written only when a
//! subscriber is created or goes: never on the path of an established flow. Bounded by
//! the subscriber tables: a claim exists only while its subscriber does.

use crate::frame::WorkerId;

/// The board's claims: B4 address to owning worker.
pub struct Owners {
    /// Lock-free reads (papaya): a worker looking up a claim writes nothing shared, so
    /// workers reading the map do not pull a lock's cache line back and forth.
    claims: papaya::HashMap<[u8; 16], WorkerId, ahash::RandomState>,
}

impl Default for Owners {
    fn default() -> Self {
        Owners { claims: papaya::HashMap::with_hasher(ahash::RandomState::new()) }
    }
}

impl std::fmt::Debug for Owners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owners").field("claims", &self.len()).finish()
    }
}

impl Owners {
    pub fn new() -> Owners {
        Owners::default()
    }

    /// Room for `subscribers` claims (the board's subscriber capacity), so that claiming
    /// a new B4 on the packet path does not grow the map.
    pub fn with_capacity(subscribers: usize) -> Owners {
        Owners { claims: papaya::HashMap::builder().capacity(subscribers).hasher(ahash::RandomState::new()).build() }
    }

    /// The worker holding subscriber `b4`, if any does.
    #[inline]
    pub fn owner(&self, b4: &[u8; 16]) -> Option<WorkerId> {
        self.claims.pin().get(b4).copied()
    }

    /// Claims `b4` for worker `me` unless another worker holds it; returns the owner.
    pub fn claim(&self, b4: &[u8; 16], me: WorkerId) -> WorkerId {
        match self.claims.pin().try_insert(*b4, me) {
            Ok(_) => me,
            Err(taken) => *taken.current,
        }
    }

    /// Gives up `me`'s claim on `b4` (nothing if another worker holds it).
    pub fn release(&self, b4: &[u8; 16], me: WorkerId) {
        let _ = self.claims.pin().remove_if(b4, |_, &w| w == me);
    }

    /// How many subscribers are claimed.
    pub fn len(&self) -> usize {
        self.claims.len()
    }

    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_claim_wins_and_only_its_owner_releases_it() {
        let o = Owners::new();
        let b4 = [1u8; 16];
        assert_eq!(o.owner(&b4), None);
        assert_eq!(o.claim(&b4, 1), 1);
        assert_eq!(o.claim(&b4, 0), 1, "held by worker 1");
        o.release(&b4, 0);
        assert_eq!(o.owner(&b4), Some(1), "worker 0 cannot release it");
        o.release(&b4, 1);
        assert_eq!(o.owner(&b4), None);
        assert_eq!(o.claim(&b4, 0), 0);
        assert_eq!(o.len(), 1);
    }
}
