//! The daemon's displays: `display service-ha` (and the vendor's `global-information`
//! and `service-location`), `display sessions`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Daemon, Reply, Shown};
use crate::board::SessionFilter;
use dataplane::counters::Counter;

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        _ => "?",
    }
}

impl Daemon {
    /// `display service-ha`: the settings, then the live state of the HA thread.
    pub(super) fn display_ha(&self) -> Shown {
        let text = self.display_ha_text();
        let ha = &self.running.ha;
        let mut json = serde_json::json!({
            "slot": self.slot,
            "hot_backup": ha.hot_backup,
            "delay_time_s": ha.delay_time,
            "preempt_time_s": ha.preempt_time,
            "heartbeat_ms": ha.heartbeat_ms,
            "dead_count": ha.dead_count,
            "role": "standalone",
        });
        if let Some(n) = &self.ha {
            let st = n.status();
            let role = |r: ha_sync::role::Role| r.name();
            let more = serde_json::json!({
                "role": role(st.role),
                "channel_error": st.channel_error,
                "fit": st.unfit.is_none(),
                "unfit_reason": st.unfit,
                "witness": st.witness,
                "locations": st.locations.iter().map(|l| serde_json::json!({
                    "id": l.id,
                    "role": role(l.role),
                    "preferred": l.preferred,
                    "peer_role": l.peer_role.map(role),
                    "in_sync": l.in_sync,
                })).collect::<Vec<_>>(),
                "peer_alive": st.peer_alive,
                "peer_role": st.peer_role.map(role),
                "in_sync": st.in_sync,
                "sync_problem": st.sync_problem,
                "config_digest": format!("{:016x}", st.config_digest),
                "peer_config_digest": st.peer_config_digest.map(|d| format!("{d:016x}")),
                "config_differs": st.config_differs(),
                "sessions_replicated": st.replicated,
                "sessions_waiting_delay_time": st.young,
                "records_sent": st.records_sent,
                "messages_sent": st.messages_sent,
                "retransmitted": st.retransmitted,
                "records_received": st.records_received,
                "install_refused": st.install_refused,
                "refused_active_here": st.refused_active_here,
                "swept": st.swept,
                "queue_depth": st.queue_depth,
                "lag_ms": st.lag_ms,
                "bulk_syncs": st.bulk_syncs,
                "queue_overflows": st.overflows,
                "events_dropped": st.events_dropped,
                "notify_dropped": st.notify_dropped,
                "rejected_unauthenticated": st.rejected_auth,
                "rejected_replayed": st.rejected_replay,
                "rejected_malformed": st.rejected_malformed,
                "rejected_other_slot": st.rejected_slot,
                "last_change": st.last_change.as_ref().map(|(ms, why)| serde_json::json!({ "unix_ms": ms, "reason": why })),
            });
            if let (Some(j), serde_json::Value::Object(m)) = (json.as_object_mut(), more) {
                j.extend(m);
            }
        }
        Shown { text, json }
    }

    fn display_ha_text(&self) -> String {
        let ha = &self.running.ha;
        let mut o = format!(
            "slot {}\nhot-backup: {}\ndelay-time: {} s\npreempt-time: {} s\nheartbeat: {} ms, dead after {}\n",
            self.slot,
            if ha.hot_backup { "enabled" } else { "disabled (cold standby)" },
            ha.delay_time,
            ha.preempt_time,
            ha.heartbeat_ms,
            ha.dead_count
        );
        let Some(n) = &self.ha else {
            o.push_str("role: standalone (no service-location pairs this board with another, or no ha-address)\n");
            return o;
        };
        let st = n.status();
        if let Some(e) = &st.channel_error {
            let _ = writeln!(o, "HA channel: down, {e} (retried every second; the board stays inactive)");
        }
        if let Some(why) = &st.unfit {
            let _ = writeln!(o, "fit: no, {why} (its locations go to a fit peer; none is taken back until fit)");
        }
        let _ = writeln!(
            o,
            "witness on the softwire segment: {}",
            if st.witness { "on" } else { "off (the HA link alone tells whether the peer lives)" }
        );
        let role = |r: ha_sync::role::Role| r.name();
        let _ = writeln!(o, "role: {} (active for any location, else standby for any)", role(st.role));
        for l in &st.locations {
            let _ = writeln!(
                o,
                "  service-location {}: {}{}, peer {}, {}",
                l.id,
                role(l.role),
                if l.preferred { " (its preferred board)" } else { "" },
                l.peer_role.map_or("never heard", role),
                if l.in_sync { "in sync" } else { "not in sync" }
            );
        }
        let _ = writeln!(
            o,
            "peer: {}",
            match (st.peer_alive, st.peer_role) {
                (true, Some(r)) => format!("alive, {}", role(r)),
                (false, Some(r)) => format!("silent (last seen {})", role(r)),
                _ => "never heard".to_string(),
            }
        );
        let _ = match &st.sync_problem {
            Some(why) if !st.in_sync => writeln!(o, "in sync: no ({why}; a bulk sync follows)"),
            _ => writeln!(o, "in sync: {}", if st.in_sync { "yes" } else { "no" }),
        };
        let _ = writeln!(
            o,
            "configuration: {}",
            match st.peer_config_digest {
                None => format!("digest {:016x}; the peer's not heard yet", st.config_digest),
                Some(_) if !st.config_differs() => format!("the same as the peer's (digest {:016x})", st.config_digest),
                Some(p) => format!(
                    "DIFFERS from the peer's (digest {:016x}, the peer's {p:016x}): commit the same on both boards",
                    st.config_digest
                ),
            }
        );
        let _ = writeln!(o, "sessions replicated: {} (waiting for delay-time: {})", st.replicated, st.young);
        let _ = writeln!(
            o,
            "records sent: {} in {} messages ({} retransmitted)",
            st.records_sent, st.messages_sent, st.retransmitted
        );
        let _ = writeln!(
            o,
            "records received: {} (refused on install: {}; of a location active here: {}; swept after a bulk sync: {})",
            st.records_received, st.install_refused, st.refused_active_here, st.swept
        );
        let _ = writeln!(o, "queue depth: {}, lag: {} ms", st.queue_depth, st.lag_ms);
        let _ = writeln!(
            o,
            "bulk syncs sent: {}, queue overflows: {}, events dropped: {}, notify commands dropped: {}",
            st.bulk_syncs, st.overflows, st.events_dropped, st.notify_dropped
        );
        let _ = writeln!(
            o,
            "refused messages: {} unauthenticated, {} replayed, {} malformed, {} from another slot",
            st.rejected_auth, st.rejected_replay, st.rejected_malformed, st.rejected_slot
        );
        match &st.last_change {
            Some((ms, why)) => {
                let _ = writeln!(o, "last change: {why} (unix time {}.{:03})", ms / 1000, ms % 1000);
            }
            None => o.push_str("last change: none\n"),
        }
        o
    }

    /// `display service-ha global-information [delay-time]`, as the vendor names it: the
    /// running `service-ha` settings.
    pub(super) fn display_ha_global(&self, only_delay: bool) -> Shown {
        let ha = &self.running.ha;
        let delay = format!("  Delay-time          : {} (s)\n", ha.delay_time);
        if only_delay {
            let json = serde_json::json!({ "delay_time_s": ha.delay_time });
            return Shown { text: format!("Service-HA global information:\n{delay}"), json };
        }
        let key = match &ha.key {
            None => "not configured".to_string(),
            Some(crate::config::KeySource::File(p)) => format!("file {}", p.display()),
            Some(crate::config::KeySource::Credential(n)) => format!("credential {n}"),
            Some(_) => "configured".to_string(),
        };
        let json = serde_json::json!({
            "hot_backup": ha.hot_backup,
            "delay_time_s": ha.delay_time,
            "preempt_time_s": ha.preempt_time,
            "heartbeat_ms": ha.heartbeat_ms,
            "dead_count": ha.dead_count,
            "preshared_key": key,
        });
        let text = format!(
            "Service-HA global information:\n  Hot-backup          : {}\n{delay}  Preempt-time        : {} (s)\n  Heartbeat           : {} (ms), dead-count {}\n  Preshared-key       : {}\n",
            if ha.hot_backup { "enable" } else { "disable" },
            ha.preempt_time,
            ha.heartbeat_ms,
            ha.dead_count,
            key,
        );
        Shown { text, json }
    }

    /// `display service-location [ID]`: each location of the running configuration with
    /// its slots and, for this board's locations, its role there and whether the batch
    /// backup (bulk sync) finished.
    pub(super) fn display_locations(&self, only: Option<u32>, json: bool) -> Reply {
        if let Some(id) = only
            && !self.running.locations.contains_key(&id)
        {
            return Reply::Error(format!("Error: service-location {id} is not configured\n"));
        }
        let st = self.ha.as_ref().map(|n| n.status());
        let mut o = String::new();
        let mut all = Vec::new();
        for (id, l) in self.running.locations.iter().filter(|(id, _)| only.is_none_or(|o| o == **id)) {
            let slot = |s: Option<u32>| s.map_or("-".to_string(), |s| s.to_string());
            let _ = writeln!(o, "Service-location {id}:");
            let _ = writeln!(o, "  Location slot ID    : {}", slot(l.slot));
            let _ = writeln!(o, "  Backup slot ID      : {}", slot(l.backup));
            let here = l.slot == Some(self.slot) || l.backup == Some(self.slot);
            let (role, batch) = match (&st, here) {
                (_, false) => ("not on this board".to_string(), "-"),
                (None, true) => ("standalone".to_string(), "-"),
                (Some(s), true) => (s.role.name().to_string(), if s.in_sync { "finished" } else { "unfinished" }),
            };
            let _ = writeln!(o, "  State on slot {:<5}: {role}", self.slot);
            let _ = writeln!(o, "  Batch-backup state  : {batch}");
            let groups: Vec<&str> = self
                .running
                .groups
                .iter()
                .filter(|(_, g)| g.locations.contains_key(id))
                .map(|(n, _)| n.as_str())
                .collect();
            let _ = writeln!(o, "  Bound service-instance-group number: {} ({})", groups.len(), groups.join(", "));
            all.push(serde_json::json!({
                "id": id,
                "slot": l.slot,
                "backup_slot": l.backup,
                "role_here": role,
                "batch_backup": batch,
                "groups": groups,
            }));
        }
        if json {
            return Reply::Ok(format!("{}\n", serde_json::json!({ "service_locations": all })));
        }
        if o.is_empty() {
            o.push_str("no service-location is configured\n");
        }
        Reply::Ok(o)
    }

    /// `display sessions [...]`: the sessions the filter selects, each worker filtering
    /// its own table in bounded pieces (`BoardHandle::sessions`).
    pub(super) fn sessions(&self, f: &SessionFilter) -> Shown {
        let mut o = String::from(
            "B4                                       Inside                 External               Proto Age(s) Idle(s)\n",
        );
        let now = unix_now();
        let list = self.board.sessions(f);
        let mut json = Vec::with_capacity(list.len());
        for r in &list {
            let (age, idle) = (now.saturating_sub(r.created), now.saturating_sub(r.last_seen));
            // A PCP mapping (decision 0023): its lease's seconds left, and its opcode.
            let lease = r.pcp.map(|l| (l.until.saturating_sub(now), if l.open { "map" } else { "peer" }));
            let _ = writeln!(
                o,
                "{:<40} {:<22} {:<22} {:<5} {:>6} {:>7}{}",
                Ipv6Addr::from(r.b4),
                format!("{}:{}", Ipv4Addr::from(r.inner_addr), r.inner_port),
                format!("{}:{}", Ipv4Addr::from(r.ext_addr), r.ext_port),
                proto_name(r.proto),
                age,
                idle,
                lease.map(|(left, op)| format!(" pcp {op} {left}s")).unwrap_or_default()
            );
            json.push(serde_json::json!({
                "b4": Ipv6Addr::from(r.b4).to_string(),
                "inside_address": Ipv4Addr::from(r.inner_addr).to_string(),
                "inside_port": r.inner_port,
                "external_address": Ipv4Addr::from(r.ext_addr).to_string(),
                "external_port": r.ext_port,
                "protocol": proto_name(r.proto),
                "age_s": age,
                "idle_s": idle,
                "pcp": lease.map(|(left, op)| serde_json::json!({ "opcode": op, "lease_left_s": left })),
            }));
        }
        let _ = writeln!(o, "total {} sessions", list.len());
        Shown { text: o, json: serde_json::json!({ "sessions": json, "total": list.len() }) }
    }

    /// `display subscribers`.
    pub(super) fn subscribers(&self) -> Shown {
        let mut o = String::from(
            "B4                                       External         Port blocks                Sessions\n",
        );
        let subs = self.board.subscribers();
        let mut json = Vec::with_capacity(subs.len());
        for s in &subs {
            let blocks: Vec<(u16, u32)> = s.blocks.iter().map(|&(a, n)| (a, a as u32 + n as u32 - 1)).collect();
            let listed: Vec<String> = blocks.iter().map(|(a, b)| format!("{a}-{b}")).collect();
            let _ = writeln!(
                o,
                "{:<40} {:<16} {:<26} {}",
                Ipv6Addr::from(s.b4),
                Ipv4Addr::from(s.ext_addr),
                listed.join(","),
                s.sessions
            );
            json.push(serde_json::json!({
                "b4": Ipv6Addr::from(s.b4).to_string(),
                "external_address": Ipv4Addr::from(s.ext_addr).to_string(),
                "port_blocks": blocks.iter().map(|(a, b)| serde_json::json!({ "first": a, "last": b })).collect::<Vec<_>>(),
                "sessions": s.sessions,
            }));
        }
        let _ = writeln!(o, "total {} subscribers", subs.len());
        Shown { text: o, json: serde_json::json!({ "subscribers": json, "total": subs.len() }) }
    }

    /// `display statistics`: the packet path, then a table of the XDP programs'
    /// counters (in total, on the softwire and on the Internet side) and the workers'
    /// (in total and per worker), counted since the last `reset statistics`. A worker
    /// counter that is zero on every worker is left out of the table when it is a
    /// drop (the JSON form has every counter).
    pub(super) fn statistics(&self) -> Shown {
        let since = |now: u64, base: Option<&u64>| now.saturating_sub(base.copied().unwrap_or(0));
        let mut o = format!("packet-io: {}\n", self.board.io);
        let mut json = serde_json::json!({ "packet_io": self.board.io, "xdp": {}, "counters": {} });
        let xdp = self.board.steering_stats();
        if !xdp.is_empty() {
            let _ = writeln!(o, "\n{:<32} {:>14} {:>14} {:>14}", "XDP program", "total", "softwire", "internet");
            for (i, (name, _)) in xdp[0].named().iter().enumerate() {
                let per: Vec<u64> = xdp
                    .iter()
                    .enumerate()
                    .map(|(side, s)| since(s.named()[i].1, self.baseline.xdp.get(side).and_then(|b| b.get(i))))
                    .collect();
                let total: u64 = per.iter().sum();
                let cells: String = per.iter().map(|v| format!(" {v:>14}")).collect();
                let _ = writeln!(o, "{name:<32} {total:>14}{cells}");
                json["xdp"][*name] = serde_json::json!({ "total": total, "per_interface": per });
            }
        }
        let workers = self.board.counters();
        let head: String = (0..workers.len()).map(|w| format!(" {:>12}", format!("worker {w}"))).collect();
        let _ = writeln!(o, "\n{:<32} {:>14}{head}", "counter", "total");
        for (i, &c) in Counter::ALL.iter().enumerate() {
            let per: Vec<u64> = workers
                .iter()
                .enumerate()
                .map(|(w, k)| since(k.get(c), self.baseline.workers.get(w).and_then(|b| b.get(i))))
                .collect();
            let total: u64 = per.iter().sum();
            json["counters"][c.name()] = serde_json::json!({ "total": total, "per_worker": per });
            if total > 0 || !c.name().starts_with("drop_") {
                let cells: String = per.iter().map(|v| format!(" {v:>12}")).collect();
                let _ = writeln!(o, "{:<32} {total:>14}{cells}", c.name());
            }
        }
        Shown { text: o, json }
    }

    /// `display ds-lite address-usage [instance NAME]`: per instance and location, its
    /// share of the pool (addresses, those in use), the port blocks in use and the
    /// subscribers with the most sessions.
    pub(super) fn address_usage(&self, only: Option<&str>) -> Shown {
        const TOP: usize = 5;
        let plan = crate::plan::plan(&self.running);
        let subs = self.board.subscribers();
        let mut o = String::new();
        let mut instances = Vec::new();
        for (name, inst) in plan.instances.iter().filter(|(n, _)| only.is_none_or(|o| o == n.as_str())) {
            let pool = self.running.instances.get(name).and_then(|i| i.address_group.clone()).unwrap_or_default();
            let block_size = self.running.instances.get(name).map_or(0, |i| i.port_block_size);
            let _ = writeln!(o, "ds-lite instance {name}, address-group {pool}, port-block-size {block_size}");
            let mut locations = Vec::new();
            for (location, ranges) in &inst.pool_shares {
                let inside = |a: u32| ranges.iter().any(|(f, l)| u32::from(*f) <= a && a <= u32::from(*l));
                let addresses: u64 = ranges.iter().map(|(f, l)| (u32::from(*l) - u32::from(*f)) as u64 + 1).sum();
                let mut here: Vec<_> = subs.iter().filter(|s| inside(s.ext_addr)).collect();
                let mut used: Vec<u32> = here.iter().map(|s| s.ext_addr).collect();
                used.sort_unstable();
                used.dedup();
                let blocks: usize = here.iter().map(|s| s.blocks.len()).sum();
                let ports: u64 = here.iter().flat_map(|s| s.blocks.iter().map(|b| b.1 as u64)).sum();
                here.sort_by(|a, b| b.sessions.cmp(&a.sessions).then(a.b4.cmp(&b.b4)));
                let shares: Vec<String> = ranges.iter().map(|(f, l)| format!("{f}-{l}")).collect();
                let _ = writeln!(o, "  service-location {location}: {}", shares.join(", "));
                let _ = writeln!(o, "    addresses            : {addresses} ({} in use)", used.len());
                let _ = writeln!(o, "    port blocks in use   : {blocks} ({ports} ports)");
                let _ = writeln!(o, "    subscribers          : {}", here.len());
                let top: Vec<_> = here.iter().take(TOP).collect();
                if !top.is_empty() {
                    let _ = writeln!(o, "    top subscribers (by sessions):");
                }
                for s in &top {
                    let _ = writeln!(
                        o,
                        "      {:<40} {:<16} {} blocks, {} sessions",
                        Ipv6Addr::from(s.b4),
                        Ipv4Addr::from(s.ext_addr),
                        s.blocks.len(),
                        s.sessions
                    );
                }
                locations.push(serde_json::json!({
                    "service_location": location,
                    "ranges": ranges.iter().map(|(f, l)| serde_json::json!({ "first": f.to_string(), "last": l.to_string() })).collect::<Vec<_>>(),
                    "addresses": addresses,
                    "addresses_in_use": used.len(),
                    "port_blocks_in_use": blocks,
                    "ports_in_use": ports,
                    "subscribers": here.len(),
                    "top_subscribers": top.iter().map(|s| serde_json::json!({
                        "b4": Ipv6Addr::from(s.b4).to_string(),
                        "external_address": Ipv4Addr::from(s.ext_addr).to_string(),
                        "port_blocks": s.blocks.len(),
                        "sessions": s.sessions,
                    })).collect::<Vec<_>>(),
                }));
            }
            instances.push(serde_json::json!({
                "name": name,
                "address_group": pool,
                "port_block_size": block_size,
                "locations": locations,
            }));
        }
        if o.is_empty() {
            o.push_str("no ds-lite instance is configured\n");
        }
        Shown { text: o, json: serde_json::json!({ "instances": instances }) }
    }
}

fn unix_now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0)
}

/// The session filter of `display sessions` and `reset session`: the words after them,
/// in full form (the table has checked each value).
pub(super) fn filter(words: &[&str]) -> Result<SessionFilter, String> {
    let mut f = SessionFilter::default();
    for pair in words.chunks(2) {
        let (k, v) = (pair[0], pair.get(1).copied().unwrap_or(""));
        let bad = || format!("Error: bad value `{v}` for `{k}`\n");
        match k {
            "b4" => f.b4 = Some(v.parse::<Ipv6Addr>().map_err(|_| bad())?.octets()),
            "inside" => f.inside = Some(v.parse::<Ipv4Addr>().map_err(|_| bad())?.into()),
            "external" => f.external = Some(v.parse::<Ipv4Addr>().map_err(|_| bad())?.into()),
            "port" => f.port = Some(v.parse().map_err(|_| bad())?),
            other => return Err(format!("Error: unknown filter `{other}` (b4, inside, external, port)\n")),
        }
    }
    Ok(f)
}
