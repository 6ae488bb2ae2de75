//! PCP leases (decision 0023): the sessions a PCP request made or kept, with the
//! lifetime the server granted and the client's nonce.
//!
//! A PCP mapping is a session like any other (its port from the subscriber's blocks,
//! counted against its limits, replicated and logged as sessions are); a lease only
//! keeps it alive until `until` whatever its idle time (expiry sees the lease and
//! passes it by), and, for MAP, opens it to every remote under address-and-port-
//! dependent filtering (RFC 6887 section 11.3). The leases are few (a handful per
//! subscriber at most), kept beside the session table rather than in its 40-byte
//! records; sessions without one pay an emptiness test where a lease could matter.

use ahash::AHashMap;

/// A lease on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcpLease {
    /// When it ends: timer seconds in the table, Unix seconds in records.
    pub until: u32,
    /// Made by MAP: open to every remote (PEER leases are not).
    pub open: bool,
    /// The client's mapping nonce (RFC 6887 section 11.2): a renewal or deletion must
    /// bring the same.
    pub nonce: [u8; 12],
}

impl PcpLease {
    /// Whether it has not ended at `now` (timer seconds, wrapping).
    pub fn live(&self, now: u32) -> bool {
        (self.until.wrapping_sub(now) as i32) > 0
    }
}

/// One worker's leases, by session index, and their count by subscriber index (aHash:
/// looked up on the packet path once any lease exists, SipHash would cost more there).
#[derive(Debug, Default)]
pub(crate) struct Leases {
    by_session: AHashMap<u32, (u32, PcpLease)>,
    per_sub: AHashMap<u32, u16>,
}

impl Leases {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }

    pub fn get(&self, i: u32) -> Option<PcpLease> {
        self.by_session.get(&i).map(|&(_, l)| l)
    }

    /// Leases held by subscriber `si`.
    pub fn count(&self, si: u32) -> u16 {
        self.per_sub.get(&si).copied().unwrap_or(0)
    }

    /// Sets the lease of session `i` of subscriber `si`.
    pub fn set(&mut self, i: u32, si: u32, lease: PcpLease) {
        if self.by_session.insert(i, (si, lease)).is_none() {
            *self.per_sub.entry(si).or_default() += 1;
        }
    }

    /// Removes the lease of session `i`, if any.
    pub fn remove(&mut self, i: u32) -> Option<PcpLease> {
        let (si, l) = self.by_session.remove(&i)?;
        if let Some(n) = self.per_sub.get_mut(&si) {
            *n -= 1;
            if *n == 0 {
                self.per_sub.remove(&si);
            }
        }
        Some(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_sets_and_removals() {
        let mut l = Leases::default();
        let lease = PcpLease { until: 10, open: true, nonce: [1; 12] };
        l.set(5, 1, lease);
        l.set(5, 1, PcpLease { until: 20, ..lease });
        l.set(6, 1, lease);
        l.set(7, 2, lease);
        assert_eq!((l.count(1), l.count(2)), (2, 1));
        assert_eq!(l.get(5).map(|l| l.until), Some(20));
        assert_eq!(l.remove(5).map(|l| l.until), Some(20));
        assert_eq!(l.remove(5), None);
        l.remove(6);
        assert_eq!(l.count(1), 0);
        assert!(!l.is_empty());
        l.remove(7);
        assert!(l.is_empty() && l.per_sub.is_empty());
    }
}
