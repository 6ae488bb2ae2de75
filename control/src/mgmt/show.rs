//! The daemon's displays: `display service-ha` (and the vendor's `global-information`
//! and `service-location`), `display sessions`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Daemon, Reply};
use crate::board::SessionFilter;

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
    pub(super) fn display_ha(&self) -> String {
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
            "bulk syncs sent: {}, queue overflows: {}, events dropped: {}",
            st.bulk_syncs, st.overflows, st.events_dropped
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
    pub(super) fn display_ha_global(&self, only_delay: bool) -> String {
        let ha = &self.running.ha;
        let delay = format!("  Delay-time          : {} (s)\n", ha.delay_time);
        if only_delay {
            return format!("Service-HA global information:\n{delay}");
        }
        format!(
            "Service-HA global information:\n  Hot-backup          : {}\n{delay}  Preempt-time        : {} (s)\n  Heartbeat           : {} (ms), dead-count {}\n  Preshared-key       : {}\n",
            if ha.hot_backup { "enable" } else { "disable" },
            ha.preempt_time,
            ha.heartbeat_ms,
            ha.dead_count,
            match &ha.key {
                None => "not configured".to_string(),
                Some(crate::config::KeySource::File(p)) => format!("file {}", p.display()),
                Some(crate::config::KeySource::Credential(n)) => format!("credential {n}"),
                Some(_) => "configured".to_string(),
            },
        )
    }

    /// `display service-location [ID]`: each location of the running configuration with
    /// its slots and, for this board's locations, its role there and whether the batch
    /// backup (bulk sync) finished.
    pub(super) fn display_locations(&self, only: Option<u32>) -> Reply {
        if let Some(id) = only
            && !self.running.locations.contains_key(&id)
        {
            return Reply::Error(format!("Error: service-location {id} is not configured\n"));
        }
        let st = self.ha.as_ref().map(|n| n.status());
        let mut o = String::new();
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
        }
        if o.is_empty() {
            o.push_str("no service-location is configured\n");
        }
        Reply::Ok(o)
    }

    pub(super) fn sessions(&self, words: &[&str]) -> Reply {
        let mut f = SessionFilter::default();
        let mut i = 0;
        while i < words.len() {
            let (k, v) = (words[i], words.get(i + 1).copied().unwrap_or(""));
            let bad = || Reply::Error(format!("display sessions: bad value `{v}` for `{k}`\n"));
            match k {
                "b4" => {
                    f.b4 = Some(match v.parse::<Ipv6Addr>() {
                        Ok(a) => a.octets(),
                        Err(_) => return bad(),
                    })
                }
                "inside" => {
                    f.inside = Some(match v.parse::<Ipv4Addr>() {
                        Ok(a) => a.into(),
                        Err(_) => return bad(),
                    })
                }
                "external" => {
                    f.external = Some(match v.parse::<Ipv4Addr>() {
                        Ok(a) => a.into(),
                        Err(_) => return bad(),
                    })
                }
                "port" => {
                    f.port = Some(match v.parse() {
                        Ok(p) => p,
                        Err(_) => return bad(),
                    })
                }
                other => {
                    return Reply::Error(format!(
                        "display sessions: unknown filter `{other}` (b4, inside, external, port)\n"
                    ));
                }
            }
            i += 2;
        }
        let mut o = String::from(
            "B4                                       Inside                 External               Proto Age(s) Idle(s)\n",
        );
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        let list = self.board.sessions(&f);
        for r in &list {
            let _ = writeln!(
                o,
                "{:<40} {:<22} {:<22} {:<5} {:>6} {:>7}",
                Ipv6Addr::from(r.b4),
                format!("{}:{}", Ipv4Addr::from(r.inner_addr), r.inner_port),
                format!("{}:{}", Ipv4Addr::from(r.ext_addr), r.ext_port),
                proto_name(r.proto),
                now.saturating_sub(r.created),
                now.saturating_sub(r.last_seen)
            );
        }
        let _ = writeln!(o, "total {} sessions", list.len());
        Reply::Ok(o)
    }
}
