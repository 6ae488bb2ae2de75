//! Checks of a configuration as a whole, run by `commit`: references exist, the seed's
//! rules hold, nothing is claimed twice. Each error points at the statement concerned.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::config::*;
use crate::error::{ConfigError, Positions};

pub fn validate(c: &Config, pos: &Positions) -> Result<(), Vec<ConfigError>> {
    let mut errs = Vec::new();
    let at = |key: &str| pos.get(key).copied().unwrap_or(Pos { line: 0, column: 0 });
    let mut err = |key: &str, msg: String| errs.push(ConfigError::at(at(key), msg));

    for (id, l) in &c.locations {
        let k = format!("service-location {id}");
        let lk = format!("{k} location");
        if let Some(s) = l.slot {
            if l.backup == Some(s) {
                err(&lk, format!("service-location {id}: the slot and the backup slot are both {s}; they must differ"));
            }
            let paired = l.backup.is_some_and(|b| b != s);
            for x in std::iter::once(s).chain(l.backup.filter(|_| paired)) {
                match c.slots.get(&x) {
                    None => err(&lk, format!("service-location {id}: slot {x} is not defined (`slot {x}`)")),
                    // Without its HA channel a paired board would run alone and active,
                    // with the same endpoint and pool as its peer.
                    Some(slot) if slot.ha_address.is_none() && paired => err(
                        &lk,
                        format!("service-location {id}: slot {x} is paired but has no `ha-address` (its HA channel)"),
                    ),
                    Some(_) => {}
                }
            }
            if c.ha.key.is_none() && paired {
                err(
                    &lk,
                    format!(
                        "service-location {id}: a paired location needs `service-ha preshared-key` (the HA channel is authenticated)"
                    ),
                );
            }
        }
    }
    for (name, g) in &c.groups {
        for lid in g.locations.keys() {
            if !c.locations.contains_key(lid) {
                err(
                    &format!("service-instance-group {name} service-location {lid}"),
                    format!("service-instance-group {name}: service-location {lid} does not exist"),
                );
            }
        }
    }
    for (name, ag) in &c.address_groups {
        if ag.sections.is_empty() {
            err(&format!("ds-lite address-group {name}"), format!("ds-lite address-group {name} has no section"));
        }
    }
    // Address ranges of all groups must not overlap (pools that overlap between
    // instances, or within one).
    let mut ranges: Vec<(u32, u32, String, u32)> = Vec::new();
    for (name, ag) in &c.address_groups {
        for (n, (a, b)) in &ag.sections {
            ranges.push((u32::from(*a), u32::from(*b), name.clone(), *n));
        }
    }
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 <= w[0].1 {
            err(
                &format!("ds-lite address-group {} section {}", w[1].2, w[1].3),
                format!(
                    "address-group {} section {} overlaps address-group {} section {} at {}",
                    w[1].2,
                    w[1].3,
                    w[0].2,
                    w[0].3,
                    Ipv4Addr::from(w[1].0)
                ),
            );
        }
    }
    let mut endpoints = BTreeMap::new();
    let mut pools_used: BTreeMap<&str, &str> = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for (name, d) in &c.instances {
        let k = format!("ds-lite instance {name}");
        if let Some(id) = d.id
            && let Some(other) = ids.insert(id, name)
        {
            err(&k, format!("ds-lite instance {name}: id {id} is already used by instance {other}"));
        }
        match &d.group {
            None => {}
            Some(g) => match c.groups.get(g) {
                None => err(
                    &format!("{k} service-instance-group"),
                    format!("ds-lite instance {name}: service-instance-group {g} does not exist"),
                ),
                Some(grp) if grp.locations.is_empty() => err(
                    &format!("{k} service-instance-group"),
                    format!("ds-lite instance {name}: service-instance-group {g} has no service-location"),
                ),
                Some(_) => {}
            },
        }
        match d.local {
            None => {}
            Some(a) => {
                if let Some(other) = endpoints.insert(a, name)
                    && !may_share_endpoint(c, &c.instances[other], d)
                {
                    err(
                        &format!("{k} local-ipv6"),
                        format!(
                            "ds-lite instance {name}: endpoint {a} is already used by instance {other} (instances \
                             share an endpoint only on boards of their own, each with a route-table)"
                        ),
                    );
                }
                if a.is_multicast() || a.is_unspecified() || a.is_loopback() {
                    err(
                        &format!("{k} local-ipv6"),
                        format!("ds-lite instance {name}: {a} cannot be a tunnel endpoint"),
                    );
                }
            }
        }
        match &d.address_group {
            None => {}
            Some(ag) => {
                let key = format!("{k} ds-lite address-group");
                match c.address_groups.get(ag) {
                    None => err(&key, format!("ds-lite instance {name}: address-group {ag} does not exist")),
                    Some(group) => {
                        if let Some(other) = pools_used.insert(ag, name) {
                            err(
                                &key,
                                format!(
                                    "ds-lite instance {name}: address-group {ag} is already used by instance {other}; pools must not be shared"
                                ),
                            );
                        }
                        let n: u64 =
                            group.sections.values().map(|(a, b)| (u32::from(*b) - u32::from(*a)) as u64 + 1).sum();
                        let locs =
                            d.group.as_ref().and_then(|g| c.groups.get(g)).map(|g| g.locations.len()).unwrap_or(0)
                                as u64;
                        if n < locs {
                            err(
                                &key,
                                format!(
                                    "ds-lite instance {name}: address-group {ag} has {n} addresses for {locs} service-locations; each location needs at least one"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    // Static forwardings and own addresses (decision 0019).
    let mut forwarded: BTreeMap<(bool, Ipv4Addr, u16), String> = BTreeMap::new();
    let mut owned: Vec<(u32, u16, u16, String)> = Vec::new();
    let pools: Vec<(u32, u32, &str)> = c
        .address_groups
        .iter()
        .flat_map(|(n, g)| g.sections.values().map(move |(a, b)| (u32::from(*a), u32::from(*b), n.as_str())))
        .collect();
    for (name, d) in &c.instances {
        let authorised = |b4: &std::net::Ipv6Addr| {
            d.remotes.iter().any(|(p, l)| {
                let m = if *l == 0 { 0 } else { u128::MAX << (128 - *l as u32) };
                u128::from(*b4) & m == u128::from(*p) & m
            })
        };
        let unauthorised = |b4| {
            format!("ds-lite instance {name}: b4 {b4} is not in a remote-ipv6 prefix of the instance (not authorised)")
        };
        // The PCP server (decision 0023): lifetimes in order; an address that no packet
        // to the Internet needs (not a pool's, nor martian).
        let (min, max) = d.pcp_lifetime;
        if min > max {
            err(
                &format!("ds-lite instance {name} pcp lifetime"),
                format!("ds-lite instance {name}: pcp lifetime min {min} is above max {max}"),
            );
        }
        if let Some(a) = d.pcp_server {
            let v = u32::from(a);
            let key = format!("ds-lite instance {name} pcp server");
            if let Some(p) = pools.iter().find(|p| (p.0..=p.1).contains(&v)) {
                err(&key, format!("ds-lite instance {name}: pcp server address {a} is in address-group {}", p.2));
            }
            if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() || v >> 24 == 0 {
                err(&key, format!("ds-lite instance {name}: pcp server address {a} is not a unicast address"));
            }
        }
        for s in &d.servers {
            let key = format!("ds-lite instance {name} {}", s.line());
            let (addr, port) = s.global;
            let in_pool = |p: &&(u32, u32, &str)| (p.0..=p.1).contains(&u32::from(addr));
            if !pools.iter().filter(|p| d.address_group.as_deref() == Some(p.2)).any(|p| in_pool(&p)) {
                let pool = d.address_group.as_deref().unwrap_or("none");
                err(
                    &key,
                    format!(
                        "ds-lite instance {name}: nat server global {addr} is not in the instance's pool (address-group {pool})"
                    ),
                );
            }
            if let Some(other) = forwarded.insert((s.tcp, addr, port), key.clone()) {
                let o = at(&other);
                err(
                    &key,
                    format!(
                        "ds-lite instance {name}: global {addr} {port} ({}) is already forwarded by the nat server at line {} column {}",
                        s.protocol(),
                        o.line,
                        o.column
                    ),
                );
            }
            if !authorised(&s.b4) {
                err(&key, unauthorised(s.b4));
            }
        }
        for n in &d.no_translation {
            let key = format!("ds-lite instance {name} {}", n.line());
            let (first, last) = n.range();
            if first > last {
                err(
                    &key,
                    format!("ds-lite instance {name}: port-range {first} {last} is empty; the first port comes first"),
                );
            }
            if let Some(p) = pools.iter().find(|p| (p.0..=p.1).contains(&u32::from(n.addr))) {
                err(
                    &key,
                    format!(
                        "ds-lite instance {name}: address {} is in address-group {}; a B4's own address must be outside every pool",
                        n.addr, p.2
                    ),
                );
            }
            if !authorised(&n.b4) {
                err(&key, unauthorised(n.b4));
            }
            owned.push((u32::from(n.addr), first, last, key));
        }
    }
    owned.sort();
    for w in owned.windows(2) {
        if w[1].0 == w[0].0 && w[1].1 <= w[0].2 {
            let o = at(&w[0].3);
            err(
                &w[1].3,
                format!(
                    "nat no-translation: ports {}-{} of {} overlap the entry at line {} column {}",
                    w[1].1,
                    w[1].2,
                    Ipv4Addr::from(w[1].0),
                    o.line,
                    o.column
                ),
            );
        }
    }
    // Cores: one owner per core on a host (slots without `host` share the default host).
    let mut cores: BTreeMap<(Option<&str>, u32), u32> = BTreeMap::new();
    for (id, s) in &c.slots {
        for &core in &s.cores {
            if let Some(other) = cores.insert((s.host.as_deref(), core), *id) {
                err(
                    &format!("slot {id}"),
                    format!("slot {id}: core {core} is already claimed by slot {other} on the same host"),
                );
            }
        }
    }
    // Metrics: two boards on one named host cannot listen at the same address (the
    // second would fail to bind and stop). Slots without `host` may be anywhere.
    let mut listeners: BTreeMap<(&str, std::net::SocketAddr), u32> = BTreeMap::new();
    for (id, s) in &c.slots {
        if let (Some(host), Some(addr)) = (s.host.as_deref(), c.metrics_of(*id))
            && let Some(other) = listeners.insert((host, addr), *id)
        {
            err(
                &format!("slot {id}"),
                format!(
                    "slot {id}: slot {other} on host {host} already serves metrics at {addr}; give each board of a host its own `metrics http ADDR port P` in its slot view"
                ),
            );
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// What a valid configuration leaves unused or incomplete: committed, but inactive.
/// The boards that serve instance `d`: each location's board and its backup. None
/// when that is not known (no group, a location without its slot).
fn boards_of(c: &Config, d: &DsLite) -> Option<std::collections::BTreeSet<u32>> {
    let g = c.groups.get(d.group.as_ref()?)?;
    let mut boards = std::collections::BTreeSet::new();
    for id in g.locations.keys() {
        let l = c.locations.get(id)?;
        boards.insert(l.slot?);
        boards.extend(l.backup);
    }
    Some(boards)
}

/// Whether two instances may have one endpoint (scale-out by ECMP, decision 0022): no
/// board serves both, so that each board's endpoint names one instance, and every
/// board of both announces by BGP (`route-table`), so that routers spread the B4s
/// over the boards by ECMP rather than the boards answering neighbour discovery for
/// the one address on a shared segment.
fn may_share_endpoint(c: &Config, a: &DsLite, b: &DsLite) -> bool {
    let (Some(x), Some(y)) = (boards_of(c, a), boards_of(c, b)) else {
        return false;
    };
    x.is_disjoint(&y) && x.union(&y).all(|s| c.slots.get(s).is_some_and(|s| s.route_table.is_some()))
}

pub fn warnings(c: &Config) -> Vec<String> {
    let mut w = Vec::new();
    if c.protection.block_hold_down < 120 {
        w.push(format!(
            "port-block hold-down {} s: RFC 6888 REQ-8 asks at least 120 s before a released port goes to another subscriber",
            c.protection.block_hold_down
        ));
    }
    for (id, l) in &c.locations {
        if l.slot.is_none() {
            w.push(format!("service-location {id} has no `location slot S backup slot B`: it serves nothing"));
        }
    }
    for (name, d) in &c.instances {
        let mut missing = Vec::new();
        if d.group.is_none() {
            missing.push("service-instance-group");
        }
        if d.local.is_none() {
            missing.push("local-ipv6");
        }
        if d.remotes.is_empty() {
            missing.push("remote-ipv6");
        }
        if d.address_group.is_none() {
            missing.push("ds-lite address-group");
        }
        if !missing.is_empty() {
            w.push(format!("ds-lite instance {name} has no {}: it is inactive", missing.join(", ")));
        }
    }
    if c.ha.hot_backup && c.ha.key.is_none() {
        w.push("service-ha hot-backup is enabled without `service-ha preshared-key`: sessions will not be replicated until a key is set".to_string());
    }
    w
}

/// Is the instance complete enough to run?
pub fn active(d: &DsLite) -> bool {
    d.group.is_some() && d.local.is_some() && !d.remotes.is_empty() && d.address_group.is_some()
}
