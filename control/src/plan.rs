//! The plan: a pure function from a configuration to what each board does.
//!
//! DS-Lite instance -> service-instance group -> service-locations (weighted) ->
//! active and backup slot -> worker cores. Subscribers (B4 addresses) hash to one of
//! 4,096 buckets (`dataplane::config::bucket_of`), and buckets are assigned to the
//! locations of their instance by weighted rendezvous hashing (highest random weight):
//! each location scores a bucket by `-weight / ln(u)` with `u` a hash of (bucket,
//! location) in (0, 1), and the best score wins (decision 0012). The split follows the weights, and when
//! a weight changes or a location comes or goes, only the subscribers of the changed
//! share move. The instance's pool is split among its locations in proportion to their
//! weights (contiguous address ranges), since two boards must never hand out the same
//! external port.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use dataplane::config::{EngineConfig, InstanceConfig, Ipv4Prefix, Ipv6Prefix, Limits, OwnAddress, StaticMapping};

use crate::config::Config;

/// What one board does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotPlan {
    /// Locations for which this slot is the `location slot` (preferred active).
    pub active_for: Vec<u32>,
    /// Locations for which it is the `backup slot`.
    pub standby_for: Vec<u32>,
    pub cores: Vec<u32>,
    /// The other boards of its locations.
    pub peers: BTreeSet<u32>,
}

/// How a DS-Lite instance is spread over locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePlan {
    pub id: u8,
    /// (location, weight), in location order.
    pub locations: Vec<(u32, u32)>,
    /// Each location's share of the pool: (first, last) address ranges.
    pub pool_shares: BTreeMap<u32, Vec<(Ipv4Addr, Ipv4Addr)>>,
}

impl InstancePlan {
    /// The location that serves the subscriber with this B4 address.
    pub fn location_of(&self, b4: &[u8; 16]) -> u32 {
        self.location_of_bucket(dataplane::config::bucket_of(b4))
    }

    /// The location that serves the B4s of bucket `bucket`.
    pub fn location_of_bucket(&self, bucket: usize) -> u32 {
        let key = (bucket as u128).to_be_bytes();
        let mut best = (f64::NEG_INFINITY, 0);
        for &(loc, weight) in &self.locations {
            let h = hash64(&key, loc);
            // u in (0, 1): never 0 or 1, so the logarithm is finite and negative.
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = -(weight as f64) / u.ln();
            if score > best.0 {
                best = (score, loc);
            }
        }
        best.1
    }
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub slots: BTreeMap<u32, SlotPlan>,
    pub instances: BTreeMap<String, InstancePlan>,
}

/// SplitMix64 over the address and the location: fixed (every board computes the same
/// assignment) and well mixed.
fn hash64(b4: &[u8; 16], loc: u32) -> u64 {
    let x = u128::from_be_bytes(*b4);
    let mut h =
        (x as u64) ^ ((x >> 64) as u64).rotate_left(32) ^ ((loc as u64) << 1 | 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2 {
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
    }
    h
}

/// Computes the plan of a validated configuration.
pub fn plan(c: &Config) -> Plan {
    let mut p = Plan::default();
    for (id, s) in &c.slots {
        p.slots.insert(*id, SlotPlan { cores: s.cores.clone(), ..Default::default() });
    }
    for (lid, l) in &c.locations {
        let Some(a) = l.slot else { continue };
        if let Some(sp) = p.slots.get_mut(&a) {
            sp.active_for.push(*lid);
            sp.peers.extend(l.backup);
        }
        if let Some(b) = l.backup
            && let Some(sp) = p.slots.get_mut(&b)
        {
            sp.standby_for.push(*lid);
            sp.peers.insert(a);
        }
    }
    // Instances without an `id` take the smallest ids no instance names (records between
    // boards name instances by id).
    let explicit: BTreeSet<u8> = c.instances.values().filter_map(|d| d.id.map(|i| i as u8)).collect();
    let mut next_id = 1u8;
    for (name, d) in &c.instances {
        if !crate::validate::active(d) {
            continue;
        }
        let Some(group) = d.group.as_ref().and_then(|g| c.groups.get(g)) else { continue };
        let locations: Vec<(u32, u32)> = group.locations.iter().map(|(l, w)| (*l, *w)).collect();
        let ranges: Vec<(u32, u32)> = d
            .address_group
            .as_ref()
            .and_then(|a| c.address_groups.get(a))
            .map(|ag| ag.sections.values().map(|(a, b)| (u32::from(*a), u32::from(*b))).collect())
            .unwrap_or_default();
        let id = d.id.map(|i| i as u8).unwrap_or_else(|| {
            while explicit.contains(&next_id) {
                next_id = next_id.wrapping_add(1);
            }
            let i = next_id;
            next_id = next_id.wrapping_add(1);
            i
        });
        p.instances.insert(name.clone(), InstancePlan { id, pool_shares: split_pool(&ranges, &locations), locations });
    }
    p
}

/// Splits address ranges among locations in proportion to their weights, each getting
/// at least one address when there are enough.
fn split_pool(ranges: &[(u32, u32)], locations: &[(u32, u32)]) -> BTreeMap<u32, Vec<(Ipv4Addr, Ipv4Addr)>> {
    let total: u64 = ranges.iter().map(|(a, b)| (*b - *a) as u64 + 1).sum();
    let wsum: u64 = locations.iter().map(|(_, w)| *w as u64).sum::<u64>().max(1);
    let mut out = BTreeMap::new();
    // Addresses as one sequence over the ranges; location k gets [start_k, start_k+1).
    let mut cuts = Vec::with_capacity(locations.len() + 1);
    let mut acc = 0u64;
    cuts.push(0u64);
    for (k, (_, w)) in locations.iter().enumerate() {
        acc += *w as u64;
        let mut cut = total * acc / wsum;
        // At least one address each while the pool allows.
        cut = cut.max(cuts[k] + 1).min(total - (locations.len() - k - 1) as u64);
        cuts.push(cut);
    }
    for (k, (loc, _)) in locations.iter().enumerate() {
        let (mut from, to) = (cuts[k], cuts[k + 1]);
        let mut share = Vec::new();
        let mut base = 0u64;
        for &(a, b) in ranges {
            let n = (b - a) as u64 + 1;
            let (lo, hi) = (from.max(base), to.min(base + n));
            if lo < hi {
                share.push((Ipv4Addr::from(a + (lo - base) as u32), Ipv4Addr::from(a + (hi - base - 1) as u32)));
                from = hi;
            }
            base += n;
        }
        out.insert(*loc, share);
    }
    out
}

/// The largest aligned prefixes covering `[first, last]` exactly.
pub fn range_to_prefixes(first: Ipv4Addr, last: Ipv4Addr) -> Vec<Ipv4Prefix> {
    let (mut a, b) = (u32::from(first) as u64, u32::from(last) as u64);
    let mut out = Vec::new();
    while a <= b {
        let mut len = 32u32;
        while len > 0 {
            let size = 1u64 << (33 - len);
            if a % size != 0 || a + size - 1 > b {
                break;
            }
            len -= 1;
        }
        out.push(Ipv4Prefix { addr: a as u32, len: len as u8 });
        a += 1u64 << (32 - len);
    }
    out
}

/// The engine settings of slot `slot`: every instance it is active or standby for (a
/// standby needs the instance to install the active's sessions), with the pool shares
/// of those locations. None if the slot serves nothing.
pub fn engine_config(c: &Config, p: &Plan, slot: u32) -> Option<EngineConfig> {
    let sp = p.slots.get(&slot)?;
    let mine = slot_locations(sp);
    let index = |l: &u32| mine.iter().position(|m| m == l).map(|i| i as u8);
    let mut instances = Vec::new();
    for (name, ip) in &p.instances {
        let d = &c.instances[name];
        // Each location's share of the pool, tagged with the location's index.
        let (pool, pool_locations): (Vec<Ipv4Prefix>, Vec<u8>) = ip
            .locations
            .iter()
            .filter_map(|(l, _)| Some((index(l)?, ip.pool_shares.get(l).cloned().unwrap_or_default())))
            .flat_map(|(i, share)| share.into_iter().flat_map(|(a, b)| range_to_prefixes(a, b)).map(move |p| (p, i)))
            .unzip();
        if pool.is_empty() {
            continue;
        }
        let mut i = InstanceConfig::new(name, d.local?.octets(), Ipv6Prefix { addr: [0; 16], len: 0 }, pool[0]);
        i.b4_prefixes = d.remotes.iter().map(|(a, l)| Ipv6Prefix { addr: a.octets(), len: *l }).collect();
        i.pool = pool;
        i.pool_locations = pool_locations;
        // Steering: which location serves each bucket of B4s (another pair's: ELSEWHERE).
        if ip.locations.len() > 1 || mine.len() > 1 {
            i.buckets = (0..dataplane::config::BUCKETS)
                .map(|b| index(&ip.location_of_bucket(b)).unwrap_or(dataplane::config::ELSEWHERE))
                .collect();
        }
        i.port_block_size = d.port_block_size;
        i.limits = Limits {
            max_sessions: d.session_limit,
            max_blocks: d.port_block_limit,
            new_sessions_per_sec: d.new_session_rate,
        };
        i.timeouts = d.aging;
        i.tunnel_mtu = d.tunnel_mtu;
        i.mss_clamp = d.mss_clamp;
        i.internet_mtu = d.internet_mtu;
        i.filtering = d.filtering;
        i.hop_limit = d.hop_limit;
        i.allow_public_inner = d.public_inner;
        // Static forwardings and own addresses (decision 0019): a forwarding where the
        // board holds its address (inbound) or serves its B4 (outbound); an own address
        // where it serves the B4.
        let serves_b4 = |b4: &std::net::Ipv6Addr| index(&ip.location_of(&b4.octets())).is_some();
        let holds = |a: Ipv4Addr| i.pool.iter().any(|p| (p.range().0..=p.range().1).contains(&u32::from(a)));
        i.statics = d
            .servers
            .iter()
            .filter(|s| holds(s.global.0) || serves_b4(&s.b4))
            .map(|s| StaticMapping {
                b4: s.b4.octets(),
                proto: if s.tcp { dataplane::wire::proto::TCP } else { dataplane::wire::proto::UDP },
                inside_addr: s.inside.0.into(),
                inside_port: s.inside.1,
                ext_addr: s.global.0.into(),
                ext_port: s.global.1,
            })
            .collect();
        i.own_addresses = d
            .no_translation
            .iter()
            .filter(|n| serves_b4(&n.b4))
            .map(|n| {
                let (first, last) = n.range();
                OwnAddress { b4: n.b4.octets(), addr: n.addr.into(), first, last }
            })
            .collect();
        i.pcp = d.pcp_server.map(|server| dataplane::config::PcpConfig {
            server: server.into(),
            min_lifetime: d.pcp_lifetime.0,
            max_lifetime: d.pcp_lifetime.1,
            max_mappings: d.pcp_max_mappings,
        });
        instances.push(i);
    }
    if instances.is_empty() {
        return None;
    }
    let mut e = EngineConfig::new(instances);
    e.workers = sp.cores.len().max(1) as u16;
    e.locations = mine;
    e.icmp_errors_per_sec = c.protection.icmp_errors_per_sec;
    e.icmp_errors_burst = c.protection.icmp_errors_burst;
    e.block_hold_down = c.protection.block_hold_down;
    e.max_sessions = c.capacity.sessions;
    e.max_subscribers = c.capacity.subscribers;
    Some(e)
}

/// The locations a slot serves, active or standby, in id order: the index of each is
/// its bit in the board's set of active locations.
pub fn slot_locations(sp: &SlotPlan) -> Vec<u32> {
    let mine: BTreeSet<u32> = sp.active_for.iter().chain(&sp.standby_for).copied().collect();
    mine.into_iter().collect()
}

/// The plan as `display plan` and `aftrd --plan` print it.
pub fn describe(c: &Config, p: &Plan, slot: Option<u32>) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    for (id, sp) in &p.slots {
        if slot.is_some_and(|s| s != *id) {
            continue;
        }
        let _ = writeln!(
            o,
            "slot {id}: active for {:?}, standby for {:?}, worker cores {:?}, peers {:?}",
            sp.active_for, sp.standby_for, sp.cores, sp.peers
        );
        if let Some(ec) = engine_config(c, p, *id) {
            for i in &ec.instances {
                let pool: Vec<String> =
                    i.pool.iter().map(|p| format!("{}/{}", Ipv4Addr::from(p.addr), p.len)).collect();
                let _ = writeln!(
                    o,
                    "  ds-lite instance {}: endpoint {}, pool {}",
                    i.name,
                    std::net::Ipv6Addr::from(i.endpoint),
                    pool.join(" ")
                );
            }
        }
    }
    for (name, ip) in &p.instances {
        let _ = writeln!(o, "ds-lite instance {name} (id {}): locations (id, weight) {:?}", ip.id, ip.locations);
    }
    o
}
