//! The IPv4 forwarding table the workers read towards the Internet (decision 0015).
//!
//! A [`Fib`] is an immutable snapshot behind an [`ArcSwap`]: a worker loads it once per
//! batch (no lock, no system call) and looks each packet's destination up in it. The
//! control side (`io::rtnl`) builds a new snapshot when the kernel's routes, neighbours
//! or link change, and swaps it in.
//!
//! - Routes: a DIR-24-8 table ([`RouteTable`]): one 16-bit entry per /24 (32 MiB), and
//!   256-entry second-level chunks for the /24s that hold longer prefixes. A lookup is
//!   one load, two for a prefix longer than /24, whatever the number of routes: a full
//!   Internet table (a million prefixes) costs the same per packet as a default route.
//!   An entry names a next-hop group: its gateways (several: ECMP, chosen by a flow
//!   hash), or "on-link" (the destination is the neighbour).
//! - Neighbours: the MAC of each gateway, by the gateway's index in the route table,
//!   and of each on-link neighbour. A neighbour change builds a new [`Fib`] that shares
//!   the route table ([`Arc`]) and copies only these small parts.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use arc_swap::ArcSwap;

use crate::wire::ethernet::Mac;

/// What workers and the control side share: the current snapshot.
pub type FibHandle = Arc<ArcSwap<Fib>>;

/// A route's next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hop {
    /// A router: its MAC is the frame's destination.
    Gateway(Ipv4Addr),
    /// The destination is on the link: its own MAC is the frame's destination.
    OnLink,
}

/// One route of the table (the main table's unicast routes through the interface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub addr: Ipv4Addr,
    pub len: u8,
    /// One next hop, or several of equal cost. Never empty.
    pub hops: Vec<Hop>,
}

/// Why the table cannot hold a set of routes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FibError {
    #[error("more than {MAX_GROUPS} distinct next-hop groups")]
    TooManyGroups,
    #[error("more than {MAX_CHUNKS} /24s hold prefixes longer than /24")]
    TooManyChunks,
}

/// Entries name a group (1..=MAX_GROUPS; 0: no route) or, with the top bit, a chunk.
const CHUNK_BIT: u16 = 0x8000;
pub const MAX_GROUPS: usize = 0x7fff;
pub const MAX_CHUNKS: usize = 0x8000;

/// A next-hop group: `n` gateway indices from `first` in [`RouteTable::members`], or
/// on-link (`n == 0`).
#[derive(Debug, Clone, Copy)]
struct Group {
    first: u32,
    n: u32,
}

/// Routes as a DIR-24-8 table (Gupta, Lin, McKeown 1998).
pub struct RouteTable {
    tbl24: Box<[u16]>,
    tbl8: Box<[u16]>,
    /// Index 0 is "no route".
    groups: Box<[Group]>,
    members: Box<[u32]>,
    /// The distinct gateways; a gateway's index is its place here.
    gateways: Box<[Ipv4Addr]>,
    /// Set by a worker that found the gateway unresolved; the control side asks the
    /// kernel to resolve it and clears the flag.
    wanted: Box<[AtomicBool]>,
    routes: usize,
}

impl RouteTable {
    /// The table of `routes` (their order does not matter; for one prefix given twice,
    /// the last wins).
    pub fn build(routes: &[Route]) -> Result<RouteTable, FibError> {
        let mut sorted: Vec<&Route> = routes.iter().filter(|r| !r.hops.is_empty() && r.len <= 32).collect();
        // Shorter prefixes first: longer ones overwrite their part. Stable: the last of
        // two equal prefixes wins.
        sorted.sort_by_key(|r| r.len);
        let mut gateways: Vec<Ipv4Addr> = Vec::new();
        let mut gateway_ix: HashMap<Ipv4Addr, u32, ahash::RandomState> = HashMap::default();
        let mut groups = vec![Group { first: 0, n: 0 }];
        let mut members = Vec::new();
        let mut group_ix: HashMap<Vec<Hop>, u16, ahash::RandomState> = HashMap::default();
        let tbl24 = vec![0u16; 1 << 24];
        // Random destinations over 32 MiB: huge pages spare a TLB miss per packet.
        crate::memory::advise_vec(&tbl24);
        let mut tbl24 = tbl24.into_boxed_slice();
        let mut tbl8: Vec<u16> = Vec::new();
        for r in sorted {
            // The common case, one hop, is looked up without allocating.
            let found = if r.hops.len() == 1 { group_ix.get(r.hops.as_slice()).copied() } else { None };
            let g = match found {
                Some(g) => g,
                None => {
                    let mut hops = r.hops.clone();
                    hops.sort();
                    hops.dedup();
                    if hops.contains(&Hop::OnLink) {
                        hops = vec![Hop::OnLink];
                    }
                    if let Some(&g) = group_ix.get(&hops) {
                        g
                    } else {
                        Self::add_group(hops, &mut groups, &mut members, &mut gateways, &mut gateway_ix, &mut group_ix)?
                    }
                }
            };
            let len = r.len as u32;
            let addr = u32::from(r.addr) & mask(len);
            if len <= 24 {
                let from = (addr >> 8) as usize;
                let count = 1usize << (24 - len);
                tbl24[from..from + count].fill(g);
            } else {
                let at = (addr >> 8) as usize;
                let chunk = if tbl24[at] & CHUNK_BIT != 0 {
                    (tbl24[at] & !CHUNK_BIT) as usize
                } else {
                    let chunk = tbl8.len() / 256;
                    if chunk >= MAX_CHUNKS {
                        return Err(FibError::TooManyChunks);
                    }
                    // The chunk starts with what the /24 had.
                    tbl8.extend(std::iter::repeat_n(tbl24[at], 256));
                    tbl24[at] = CHUNK_BIT | chunk as u16;
                    chunk
                };
                let from = chunk * 256 + (addr & 0xff) as usize;
                tbl8[from..from + (1usize << (32 - len))].fill(g);
            }
        }
        let wanted = gateways.iter().map(|_| AtomicBool::new(false)).collect();
        Ok(RouteTable {
            tbl24,
            tbl8: tbl8.into_boxed_slice(),
            groups: groups.into_boxed_slice(),
            members: members.into_boxed_slice(),
            gateways: gateways.into_boxed_slice(),
            wanted,
            routes: routes.len(),
        })
    }

    /// A new group of `hops` (sorted, distinct).
    fn add_group(
        hops: Vec<Hop>,
        groups: &mut Vec<Group>,
        members: &mut Vec<u32>,
        gateways: &mut Vec<Ipv4Addr>,
        gateway_ix: &mut HashMap<Ipv4Addr, u32, ahash::RandomState>,
        group_ix: &mut HashMap<Vec<Hop>, u16, ahash::RandomState>,
    ) -> Result<u16, FibError> {
        if groups.len() > MAX_GROUPS {
            return Err(FibError::TooManyGroups);
        }
        let first = members.len() as u32;
        for h in &hops {
            if let Hop::Gateway(ip) = *h {
                let ix = *gateway_ix.entry(ip).or_insert_with(|| {
                    gateways.push(ip);
                    gateways.len() as u32 - 1
                });
                members.push(ix);
            }
        }
        groups.push(Group { first, n: members.len() as u32 - first });
        let g = groups.len() as u16 - 1;
        group_ix.insert(hops, g);
        Ok(g)
    }

    /// Brings the first-level entry of `dst` towards the cache (a batch's first stage,
    /// decision 0003): with random destinations it is a miss in a 32 MiB table.
    #[inline]
    pub fn prefetch(&self, dst: u32) {
        crate::prefetch::prefetch(self.tbl24.as_ptr().wrapping_add((dst >> 8) as usize));
    }

    /// The group of the longest prefix that holds `dst` (0: none).
    #[inline]
    pub fn lookup(&self, dst: u32) -> u16 {
        let e = self.tbl24[(dst >> 8) as usize];
        if e & CHUNK_BIT == 0 { e } else { self.tbl8[((e & !CHUNK_BIT) as usize) << 8 | (dst & 0xff) as usize] }
    }

    /// The next hop of `dst` for a flow of hash `flow()` (taken only for ECMP), as a
    /// gateway index, or None for on-link; Err(()) without a route.
    #[inline]
    fn hop(&self, dst: u32, flow: impl FnOnce() -> u32) -> Result<Option<u32>, ()> {
        let g = self.lookup(dst);
        if g == 0 {
            return Err(());
        }
        let Group { first, n } = self.groups[g as usize];
        Ok(match n {
            0 => None,
            1 => Some(self.members[first as usize]),
            // Fast range reduction of the hash to 0..n (Lemire).
            n => Some(self.members[(first + ((flow() as u64 * n as u64) >> 32) as u32) as usize]),
        })
    }

    pub fn gateways(&self) -> &[Ipv4Addr] {
        &self.gateways
    }

    pub fn len(&self) -> usize {
        self.routes
    }

    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// Gateways a worker wanted resolved since the last call (cleared).
    pub fn take_wanted(&self) -> Vec<Ipv4Addr> {
        self.wanted
            .iter()
            .zip(self.gateways.iter())
            .filter(|(w, _)| w.load(Ordering::Relaxed) && w.swap(false, Ordering::Relaxed))
            .map(|(_, &ip)| ip)
            .collect()
    }
}

fn mask(len: u32) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// Where a packet goes towards the Internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// To this MAC.
    Mac(Mac),
    /// No route holds the destination.
    NoRoute,
    /// The route's neighbour has no MAC yet: the kernel was asked to resolve it.
    Unresolved,
    /// The interface is down.
    LinkDown,
}

/// The snapshot workers read: the routes, the neighbours' MACs and the link's state.
pub struct Fib {
    pub routes: Arc<RouteTable>,
    /// The MAC of each gateway of `routes`, by index; zeros while unresolved.
    gateway_macs: Box<[Mac]>,
    /// The MAC of each neighbour on the link (for on-link routes).
    neighbours: HashMap<u32, Mac, ahash::RandomState>,
    /// An on-link destination a worker found unresolved (0: none).
    wanted_on_link: Arc<AtomicU32>,
    pub link_up: bool,
}

impl Fib {
    /// A snapshot of `routes` with the MACs of `neighbours` (complete entries only).
    pub fn new(routes: Arc<RouteTable>, neighbours: &HashMap<Ipv4Addr, Mac>, link_up: bool) -> Fib {
        let gateway_macs = routes.gateways.iter().map(|ip| neighbours.get(ip).copied().unwrap_or_default()).collect();
        Fib {
            routes,
            gateway_macs,
            neighbours: neighbours.iter().map(|(ip, mac)| (u32::from(*ip), *mac)).collect(),
            wanted_on_link: Arc::new(AtomicU32::new(0)),
            link_up,
        }
    }

    /// No route at all (a board whose kernel has none yet).
    pub fn empty() -> Fib {
        let routes = Arc::new(RouteTable::build(&[]).expect("an empty table fits"));
        Fib::new(routes, &HashMap::new(), false)
    }

    /// The next hop of the IPv4 packet `ip` (at least its 20-byte header). Hot path:
    /// no lock, no allocation; an unresolved neighbour is flagged for the control side.
    #[inline]
    pub fn next_of(&self, ip: &[u8]) -> Next {
        match ip.get(16..20) {
            Some(d) => self.next(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), || flow_hash(ip)),
            None => Next::NoRoute,
        }
    }

    /// The next hop of a packet to `dst` of a flow whose hash is `flow()`.
    #[inline]
    pub fn next(&self, dst: u32, flow: impl FnOnce() -> u32) -> Next {
        if !self.link_up {
            return Next::LinkDown;
        }
        let mac = match self.routes.hop(dst, flow) {
            Err(()) => return Next::NoRoute,
            Ok(Some(gw)) => {
                let mac = self.gateway_macs[gw as usize];
                if mac == [0; 6] {
                    let w = &self.routes.wanted[gw as usize];
                    // Read first: the line stays shared while the flag is set.
                    if !w.load(Ordering::Relaxed) {
                        w.store(true, Ordering::Relaxed);
                    }
                }
                mac
            }
            Ok(None) => {
                let mac = self.neighbours.get(&dst).copied().unwrap_or_default();
                if mac == [0; 6] && self.wanted_on_link.load(Ordering::Relaxed) != dst {
                    self.wanted_on_link.store(dst, Ordering::Relaxed);
                }
                mac
            }
        };
        if mac == [0; 6] { Next::Unresolved } else { Next::Mac(mac) }
    }

    /// Whether the board is fit to forward towards the Internet: the link is up and a
    /// route's gateway is resolved. The connected subnet alone (on-link routes) is not
    /// the Internet: a board whose routes went with its link stays unfit until one
    /// through a router is back.
    pub fn usable(&self) -> bool {
        self.link_up && self.gateway_macs.iter().any(|m| *m != [0; 6])
    }

    /// The gateways that have no MAC.
    pub fn unresolved_gateways(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.routes.gateways.iter().zip(self.gateway_macs.iter()).filter(|(_, m)| **m == [0; 6]).map(|(ip, _)| *ip)
    }

    /// The neighbours workers wanted resolved since the last call (cleared).
    pub fn take_wanted(&self) -> Vec<Ipv4Addr> {
        let mut v = self.routes.take_wanted();
        let d = self.wanted_on_link.swap(0, Ordering::Relaxed);
        if d != 0 {
            v.push(Ipv4Addr::from(d));
        }
        v
    }
}

/// A flow's hash from its IPv4 header and, for a first fragment or a whole packet, its
/// ports: the packets of one flow take one ECMP path.
#[inline]
pub fn flow_hash(ip: &[u8]) -> u32 {
    if ip.len() < 20 {
        return 0;
    }
    let word = |at: usize| u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
    let (src, dst, proto) = (word(12), word(16), ip[9] as u32);
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    let ports = if !fragment && ip.len() >= hl + 4 { word(hl) } else { 0 };
    let mut h = (src as u64) << 32 | dst as u64;
    h ^= ((ports as u64) << 8 | proto as u64).rotate_left(17);
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(s: &str, hops: &[&str]) -> Route {
        let (a, l) = s.split_once('/').unwrap();
        Route {
            addr: a.parse().unwrap(),
            len: l.parse().unwrap(),
            hops: hops
                .iter()
                .map(|h| if *h == "link" { Hop::OnLink } else { Hop::Gateway(h.parse().unwrap()) })
                .collect(),
        }
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    /// The longest prefix by brute force over the routes.
    fn naive(routes: &[Route], dst: u32) -> Option<&Route> {
        routes
            .iter()
            .filter(|r| dst & mask(r.len as u32) == u32::from(r.addr) & mask(r.len as u32))
            .max_by_key(|r| r.len)
    }

    fn first_gateway(t: &RouteTable, dst: u32) -> Option<Option<Ipv4Addr>> {
        t.hop(dst, || 0).ok().map(|g| g.map(|g| t.gateways[g as usize]))
    }

    #[test]
    fn longest_prefix_wins_at_every_length() {
        let routes = vec![
            route("0.0.0.0/0", &["192.0.2.1"]),
            route("10.0.0.0/8", &["192.0.2.2"]),
            route("10.1.0.0/16", &["192.0.2.3"]),
            route("10.1.2.0/24", &["192.0.2.4"]),
            route("10.1.2.128/25", &["192.0.2.5"]),
            route("10.1.2.200/32", &["192.0.2.6"]),
            route("192.0.2.0/24", &["link"]),
        ];
        let t = RouteTable::build(&routes).unwrap();
        let gw = |d: &str| first_gateway(&t, ip(d)).unwrap();
        assert_eq!(gw("8.8.8.8"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(gw("10.9.9.9"), Some("192.0.2.2".parse().unwrap()));
        assert_eq!(gw("10.1.9.9"), Some("192.0.2.3".parse().unwrap()));
        assert_eq!(gw("10.1.2.1"), Some("192.0.2.4".parse().unwrap()));
        assert_eq!(gw("10.1.2.129"), Some("192.0.2.5".parse().unwrap()));
        assert_eq!(gw("10.1.2.200"), Some("192.0.2.6".parse().unwrap()));
        assert_eq!(gw("10.1.2.201"), Some("192.0.2.5".parse().unwrap()));
        assert_eq!(gw("192.0.2.77"), None);
    }

    #[test]
    fn without_a_default_only_the_routes_match() {
        let t = RouteTable::build(&[route("203.0.113.0/24", &["198.51.100.1"])]).unwrap();
        assert_eq!(t.lookup(ip("203.0.113.9")), 1);
        assert_eq!(t.lookup(ip("203.0.114.9")), 0);
        assert_eq!(t.lookup(ip("0.0.0.0")), 0);
        assert!(RouteTable::build(&[]).unwrap().is_empty());
    }

    #[test]
    fn lookup_agrees_with_brute_force_on_random_tables() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..4 {
            let routes: Vec<Route> = (0..300)
                .map(|i| {
                    let len = (rnd() % 33) as u8;
                    let addr = Ipv4Addr::from((rnd() as u32) & 0xe0ff_ffff & mask(len as u32));
                    Route { addr, len, hops: vec![Hop::Gateway(Ipv4Addr::from(0x0a00_0000 + i))] }
                })
                .collect();
            let t = RouteTable::build(&routes).unwrap();
            for _ in 0..20_000 {
                let d = (rnd() as u32) & 0xe0ff_ffff;
                // Equal prefixes: the last given wins, as in the build.
                let want = naive(&routes, d).map(|best| {
                    let same: Vec<&Route> =
                        routes.iter().filter(|r| r.len == best.len && r.addr == best.addr).collect();
                    match same.last().unwrap().hops[0] {
                        Hop::Gateway(g) => g,
                        Hop::OnLink => unreachable!(),
                    }
                });
                assert_eq!(first_gateway(&t, d).map(|g| g.unwrap()), want, "{}", Ipv4Addr::from(d));
            }
        }
    }

    #[test]
    fn ecmp_splits_flows_and_keeps_each_on_one_hop() {
        let t = Arc::new(RouteTable::build(&[route("0.0.0.0/0", &["192.0.2.1", "192.0.2.2"])]).unwrap());
        let macs: HashMap<Ipv4Addr, Mac> =
            [("192.0.2.1".parse().unwrap(), [2, 0, 0, 0, 0, 1]), ("192.0.2.2".parse().unwrap(), [2, 0, 0, 0, 0, 2])]
                .into();
        let fib = Fib::new(t, &macs, true);
        let mut seen = [0u32; 3];
        for port in 0..1000u16 {
            let mut p = [0u8; 28];
            p[0] = 0x45;
            p[9] = 17;
            p[12..16].copy_from_slice(&[198, 51, 100, 7]);
            p[16..20].copy_from_slice(&[203, 0, 113, 9]);
            p[20..22].copy_from_slice(&port.to_be_bytes());
            let Next::Mac(m) = fib.next_of(&p) else { panic!() };
            assert_eq!(fib.next_of(&p), Next::Mac(m), "one flow, one hop");
            seen[m[5] as usize] += 1;
        }
        assert!(seen[1] > 400 && seen[2] > 400, "{seen:?}");
    }

    #[test]
    fn unresolved_link_down_and_no_route_are_told_apart() {
        let t = Arc::new(
            RouteTable::build(&[route("203.0.113.0/24", &["198.51.100.1"]), route("198.51.100.0/24", &["link"])])
                .unwrap(),
        );
        let fib = Fib::new(t.clone(), &HashMap::new(), true);
        assert!(!fib.usable());
        assert_eq!(fib.next(ip("203.0.113.1"), || 0), Next::Unresolved);
        assert_eq!(fib.next(ip("198.51.100.9"), || 0), Next::Unresolved);
        assert_eq!(fib.next(ip("8.8.8.8"), || 0), Next::NoRoute);
        let mut wanted = fib.take_wanted();
        wanted.sort();
        assert_eq!(wanted, vec!["198.51.100.1".parse::<Ipv4Addr>().unwrap(), "198.51.100.9".parse().unwrap()]);
        assert!(fib.take_wanted().is_empty(), "asked once");
        let macs: HashMap<Ipv4Addr, Mac> = [("198.51.100.1".parse().unwrap(), [2, 0, 0, 0, 0, 1])].into();
        let fib = Fib::new(t.clone(), &macs, true);
        assert!(Arc::ptr_eq(&fib.routes, &t), "a neighbour change keeps the route table");
        assert_eq!(fib.next(ip("203.0.113.1"), || 0), Next::Mac([2, 0, 0, 0, 0, 1]));
        assert!(fib.usable());
        let on_link_only = Arc::new(RouteTable::build(&[route("198.51.100.0/24", &["link"])]).unwrap());
        assert!(!Fib::new(on_link_only, &HashMap::new(), true).usable(), "the connected subnet is not the Internet");
        let down = Fib::new(t, &macs, false);
        assert_eq!(down.next(ip("203.0.113.1"), || 0), Next::LinkDown);
        assert!(!down.usable());
    }

    #[test]
    fn too_many_long_prefixes_is_an_error_not_a_panic() {
        let routes: Vec<Route> = (0..MAX_CHUNKS as u32 + 1)
            .map(|i| Route { addr: Ipv4Addr::from(i << 8 | 1), len: 32, hops: vec![Hop::OnLink] })
            .collect();
        assert_eq!(RouteTable::build(&routes).err(), Some(FibError::TooManyChunks));
    }
}
