//! The addresses that move with the active role (docs/decisions/0007-hot-backup.md):
//! the AFTR endpoints, which the B4s reach on the softwire segment, and the pool
//! addresses, which the upstream router reaches on the Internet segment. Both boards of
//! a location serve the same ones, so neither kernel owns them: the active board
//! answers ARP requests for the pool addresses and neighbour solicitations for the
//! endpoints itself, with its interfaces' MACs, and announces them when it takes over
//! (gratuitous ARP, unsolicited neighbour advertisements with the override flag) so the
//! neighbours' caches move to it at once. A standby answers nothing.
//!
//! Roles are per service-location (decision 0012), so each address has one answerer
//! per segment: a location's pool share is answered by that location's active board.
//! An instance's endpoint is answered, to a solicitation from an authorised B4, by the
//! active board of that B4's location (an on-link B4 reaches its own board), and to any
//! other (a router in front of B4s, duplicate detection) by the active board of the
//! lowest of the instance's locations on this board pair; B4s that reach the other
//! board are sent on by the data plane. Unsolicited advertisements of an endpoint go
//! from the lowest location's active board, and from a board that has become active
//! for all of the instance's locations (the peer failed: every B4 comes here now).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dataplane::config::{EngineConfig, Ipv4Prefix};
use dataplane::io::af_packet::{FilterInsn, PacketRx, PacketTx};
use dataplane::wire::checksum;

use crate::config::Interfaces;
use crate::nexthop::{Mac, interface_mac};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
/// Gratuitous ARP goes out for at most this many pool addresses at a takeover; the
/// others are learned on the next ARP request, which the new active answers.
const MAX_GRATUITOUS: usize = 4096;

/// An instance's endpoint and what says which board answers for it.
pub(crate) struct Endpoint {
    pub(crate) addr: [u8; 16],
    /// The lowest of the instance's locations (index), and all of them (bits).
    lowest: u8,
    pub(crate) all: u64,
    b4_prefixes: Vec<dataplane::config::Ipv6Prefix>,
    buckets: Vec<u8>,
}

impl Endpoint {
    /// The location (index) whose active board answers solicitor `src`; None: a B4
    /// of another board pair's location, which that pair answers.
    fn location_for(&self, src: &[u8; 16]) -> Option<u8> {
        if self.buckets.is_empty() || !self.b4_prefixes.iter().any(|p| p.contains(src)) {
            return Some(self.lowest);
        }
        match self.buckets[dataplane::config::bucket_of(src) % self.buckets.len()] {
            dataplane::config::ELSEWHERE => None,
            l => Some(l),
        }
    }
}

/// The addresses answered for: the endpoints (softwire side) and the pool shares and
/// B4s' own addresses, each with the location (index) whose active board answers
/// (Internet side). The
/// routes a board announces (`crate::routes`) are the same addresses.
pub(crate) struct Addresses {
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) pools: Vec<(Ipv4Prefix, u8)>,
}

impl Addresses {
    pub(crate) fn of(cfg: &EngineConfig) -> Addresses {
        let loc = |i: &dataplane::config::InstanceConfig, k: usize| i.pool_locations.get(k).copied().unwrap_or(0);
        let endpoints = cfg
            .instances
            .iter()
            .map(|i| Endpoint {
                addr: i.endpoint,
                lowest: (0..i.pool.len()).map(|k| loc(i, k)).min().unwrap_or(0),
                all: (0..i.pool.len()).fold(0, |m, k| m | 1 << (loc(i, k) % 64)),
                b4_prefixes: i.b4_prefixes.clone(),
                buckets: i.buckets.clone(),
            })
            .collect();
        // The B4s' own addresses (decision 0019) are answered and routed like pool
        // addresses, by the board active for the B4's location.
        let own = |i: &'_ dataplane::config::InstanceConfig| {
            i.own_addresses
                .iter()
                .map(|o| (Ipv4Prefix { addr: o.addr, len: 32 }, i.location_of_b4(&o.b4)))
                .filter(|(_, l)| *l != dataplane::config::ELSEWHERE)
                .collect::<Vec<_>>()
        };
        let pools = cfg
            .instances
            .iter()
            .flat_map(|i| i.pool.iter().enumerate().map(move |(k, p)| (*p, loc(i, k))).chain(own(i)))
            .collect();
        Addresses { endpoints, pools }
    }

    /// Whether `a` is in a pool share of a location active in `mask`.
    fn answers_pool(&self, a: u32, mask: u64) -> bool {
        self.pools.iter().any(|(p, l)| {
            let (first, last) = p.range();
            mask & (1 << l) != 0 && (first..=last).contains(&a)
        })
    }

    /// Whether a board active for `mask` answers solicitor `src` for endpoint `a`.
    fn answers_endpoint(&self, a: &[u8; 16], src: &[u8; 16], mask: u64) -> bool {
        self.endpoints.iter().any(|e| e.addr == *a && e.location_for(src).is_some_and(|l| mask & (1 << (l % 64)) != 0))
    }
}

struct Inner {
    softwire: String,
    internet: String,
    /// Replaced by a commit.
    addresses: RwLock<Addresses>,
    /// The locations the board is active for (bits by index).
    active: AtomicU64,
    stop: AtomicBool,
}

impl Inner {
    fn addresses(&self) -> std::sync::RwLockReadGuard<'_, Addresses> {
        self.addresses.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A board's announcer and ARP/ND responder.
pub struct Announce {
    inner: Arc<Inner>,
}

impl Announce {
    /// Starts the responder for the board's interfaces; it answers only while claimed.
    pub fn new(io: &Interfaces, cfg: &EngineConfig) -> Announce {
        let inner = Arc::new(Inner {
            softwire: io.softwire.clone(),
            internet: io.internet.clone(),
            addresses: RwLock::new(Addresses::of(cfg)),
            active: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let i2 = inner.clone();
        let _ = std::thread::Builder::new().name("aftr-announce".into()).spawn(move || respond(&i2));
        Announce { inner }
    }

    /// Answers for the addresses of the locations in `mask` (bits by index) from now
    /// on, and tells the neighbours of those that were not claimed before; `set(0)`
    /// lets every address go.
    pub fn set(&self, mask: u64) {
        let before = self.inner.active.swap(mask, Ordering::SeqCst);
        if mask & !before != 0 {
            self.announce(mask & !before, mask);
        }
    }

    /// Takes the addresses of every location.
    pub fn claim(&self) {
        self.set(u64::MAX);
    }

    /// Tells the neighbours that the addresses of the locations in `new` are here
    /// (gratuitous ARP, unsolicited neighbour advertisements); `mask`: all the
    /// locations the board is active for now.
    fn announce(&self, new: u64, mask: u64) {
        let inner = &self.inner;
        let addresses = inner.addresses();
        if let (Ok(tx), Some(mac)) = (PacketTx::open(&inner.internet), interface_mac(&inner.internet)) {
            let addrs: Vec<u32> = addresses
                .pools
                .iter()
                .filter(|(_, l)| new & (1 << l) != 0)
                .flat_map(|(p, _)| p.addresses())
                .take(MAX_GRATUITOUS)
                .collect();
            let frames: Vec<Vec<u8>> = addrs.iter().map(|a| arp(1, mac, *a, [0xff; 6], [0; 6], *a)).collect();
            for chunk in frames.chunks(64) {
                let refs: Vec<&[u8]> = chunk.iter().map(|f| f.as_slice()).collect();
                let _ = tx.send_batch(&refs);
            }
        }
        if let (Ok(tx), Some(mac)) = (PacketTx::open(&inner.softwire), interface_mac(&inner.softwire)) {
            let everything = |e: &Endpoint| e.all & !mask == 0 && e.all & new != 0;
            for e in addresses.endpoints.iter().filter(|e| new & (1 << (e.lowest % 64)) != 0 || everything(e)) {
                let _ = tx.send_batch(&[&neighbour_advert(mac, &e.addr, None)]);
            }
        }
    }

    /// Lets the addresses go: no more answers.
    pub fn release(&self) {
        self.set(0);
    }

    /// Answers for the addresses of `cfg` from now on (a commit); an active board
    /// announces them at once.
    pub fn set_addresses(&self, cfg: &EngineConfig) {
        *self.inner.addresses.write().unwrap_or_else(|e| e.into_inner()) = Addresses::of(cfg);
        let mask = self.inner.active.load(Ordering::SeqCst);
        if mask != 0 {
            self.announce(mask, mask);
        }
    }
}

impl dataplane::board::Neighbours for Announce {
    fn set_active(&self, locations: u64) {
        self.set(locations)
    }
    fn reannounce(&self, locations: u64) {
        let mask = self.inner.active.load(Ordering::SeqCst);
        if mask & locations != 0 {
            self.announce(mask & locations, mask);
        }
    }
    fn set_addresses(&self, cfg: &EngineConfig) {
        Announce::set_addresses(self, cfg)
    }
}

impl Drop for Announce {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
    }
}

/// An ARP frame: `op` 1 (request) or 2 (reply).
fn arp(op: u16, sha: Mac, spa: u32, dst: Mac, tha: Mac, tpa: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.to_be_bytes());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.to_be_bytes());
    f.resize(60, 0);
    f
}

/// A neighbour advertisement for `target` with our link-layer address: solicited (to
/// `to`, with the solicited flag) or unsolicited (to all nodes), always overriding.
fn neighbour_advert(mac: Mac, target: &[u8; 16], to: Option<(Mac, [u8; 16])>) -> Vec<u8> {
    let all_nodes: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let (dst_mac, dst) = to.unwrap_or(([0x33, 0x33, 0, 0, 0, 1], all_nodes));
    let flags: u32 = if to.is_some() { 0x6000_0000 } else { 0x2000_0000 };
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0]);
    icmp.extend_from_slice(&flags.to_be_bytes());
    icmp.extend_from_slice(target);
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac);
    let c = !checksum::fold(checksum::sum(&icmp, checksum::pseudo_v6(target, &dst, 58, icmp.len() as u32)));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(target);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&icmp);
    f
}

/// IPv6 with ICMPv6 type 135 (neighbour solicitation) right after the header.
fn ns_filter() -> [FilterInsn; 6] {
    let i = |code: u16, jt: u8, jf: u8, k: u32| FilterInsn { code, jt, jf, k };
    [
        i(0x30, 0, 0, 20), // ldb [20]: next header
        i(0x15, 0, 3, 58), // ICMPv6?
        i(0x30, 0, 0, 54), // ldb [54]: ICMPv6 type
        i(0x15, 0, 1, 135),
        i(0x06, 0, 0, 0xffff),
        i(0x06, 0, 0, 0),
    ]
}

/// Answers ARP for pool addresses on the Internet side and neighbour solicitations for
/// the endpoints on the softwire side, while active; until the announcer is dropped.
fn respond(inner: &Inner) {
    let open = || -> std::io::Result<_> {
        Ok((
            PacketRx::open(&inner.internet, ETH_P_ARP, &[])?,
            PacketRx::open(&inner.softwire, ETH_P_IPV6, &ns_filter())?,
            PacketTx::open(&inner.internet)?,
            PacketTx::open(&inner.softwire)?,
        ))
    };
    let Ok((arp_rx, ns_rx, arp_tx, ns_tx)) = open() else {
        return;
    };
    let mut buf = [0u8; 2048];
    while !inner.stop.load(Ordering::Relaxed) {
        PacketRx::wait_any(&[&arp_rx, &ns_rx], 100);
        let active = inner.active.load(Ordering::Relaxed);
        while let Some(n) = arp_rx.recv(&mut buf) {
            let f = &buf[..n];
            // A request (op 1) for an address of our pools: reply from our MAC.
            if active != 0 && n >= 42 && f[20..22] == [0, 1] {
                let tpa = u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
                if inner.addresses().answers_pool(tpa, active)
                    && let Some(mac) = interface_mac(&inner.internet)
                {
                    let (sha, spa) =
                        (f[22..28].try_into().expect("6 bytes"), u32::from_be_bytes([f[28], f[29], f[30], f[31]]));
                    let _ = arp_tx.send_batch(&[&arp(2, mac, tpa, sha, sha, spa)]);
                }
            }
        }
        while let Some(n) = ns_rx.recv(&mut buf) {
            let f = &buf[..n];
            if active != 0 && n >= 14 + 40 + 24 {
                let target: [u8; 16] = f[62..78].try_into().expect("16 bytes");
                let src: [u8; 16] = f[22..38].try_into().expect("16 bytes");
                if inner.addresses().answers_endpoint(&target, &src, active)
                    && let Some(mac) = interface_mac(&inner.softwire)
                {
                    let src_mac: Mac = f[6..12].try_into().expect("6 bytes");
                    // From the unspecified address (duplicate detection): to all nodes.
                    let to = (src != [0; 16]).then_some((src_mac, src));
                    let _ = ns_tx.send_batch(&[&neighbour_advert(mac, &target, to)]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_answered_by_the_board_of_the_solicitors_location() {
        use dataplane::config::{InstanceConfig, Ipv4Prefix, Ipv6Prefix, bucket_of};
        let b4s = Ipv6Prefix { addr: [0x20, 0x01, 0x0d, 0xb8, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], len: 64 };
        let mut i = InstanceConfig::new("d", [1; 16], b4s, Ipv4Prefix { addr: 0xc633_6400, len: 25 });
        i.pool.push(Ipv4Prefix { addr: 0xc633_6480, len: 25 });
        i.pool_locations = vec![0, 1];
        // Buckets: even ones location 0's, odd ones 1's, multiples of 3 another pair's.
        i.buckets = (0..dataplane::config::BUCKETS)
            .map(|b| if b.is_multiple_of(3) { dataplane::config::ELSEWHERE } else { (b % 2) as u8 })
            .collect();
        let mut cfg = EngineConfig::new(vec![i]);
        cfg.locations = vec![1, 2];
        let a = Addresses::of(&cfg);
        let b4 = |n: u8| {
            let mut x = b4s.addr;
            x[15] = n;
            x
        };
        for n in 1..=60 {
            let bucket = bucket_of(&b4(n));
            let want = if bucket.is_multiple_of(3) { None } else { Some(bucket % 2) };
            for (mask, loc) in [(0b01u64, 0usize), (0b10, 1)] {
                let answers = a.answers_endpoint(&[1; 16], &b4(n), mask);
                assert_eq!(answers, want == Some(loc), "B4 {n}, bucket {bucket}, board active for {mask:#b}");
            }
        }
        // A router (not an authorised B4) is answered by the lowest location's board.
        let router = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(a.answers_endpoint(&[1; 16], &router, 0b01) && !a.answers_endpoint(&[1; 16], &router, 0b10));
    }

    #[test]
    fn frames_are_well_formed() {
        let g = arp(1, [2, 0, 0, 0, 0, 1], 0xc633_6401, [0xff; 6], [0; 6], 0xc633_6401);
        assert_eq!(g.len(), 60);
        assert_eq!(&g[12..14], &[8, 6]);
        assert_eq!(&g[28..32], &[198, 51, 100, 1]);
        let ep = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let na = neighbour_advert([2, 0, 0, 0, 0, 1], &ep, None);
        // The checksum verifies: the sum over pseudo-header and message folds to 0xffff.
        let icmp = &na[54..];
        let dst: [u8; 16] = na[38..54].try_into().unwrap();
        assert_eq!(checksum::fold(checksum::sum(icmp, checksum::pseudo_v6(&ep, &dst, 58, icmp.len() as u32))), 0xffff);
        assert_eq!(na[54], 136);
        assert_eq!(na[21], 255, "hop limit 255, as neighbour discovery requires");
    }
}
