//! Prints a configuration the way routers print `display current-configuration`: `#`
//! between blocks, one space of indentation inside a view, non-default settings only.
//! The text parses back to the same configuration.

use std::fmt::Write;

use crate::config::*;

pub fn render(c: &Config) -> String {
    let mut o = String::new();
    let d = DsLite::default();
    let ha0 = Ha::default();
    o.push_str("#\n");
    if let Some(n) = &c.sysname {
        let _ = writeln!(o, "sysname {n}\n#");
    }
    let ha = &c.ha;
    let mut any = false;
    if ha.hot_backup {
        o.push_str("service-ha hot-backup enable\n");
        any = true;
    }
    if ha.delay_time != ha0.delay_time {
        let _ = writeln!(o, "service-ha delay-time {}", ha.delay_time);
        any = true;
    }
    if ha.preempt_time != ha0.preempt_time {
        let _ = writeln!(o, "service-ha preempt-time {}", ha.preempt_time);
        any = true;
    }
    if let Some(k) = &ha.key {
        let _ = writeln!(o, "service-ha preshared-key {k}");
        any = true;
    }
    if (ha.heartbeat_ms, ha.dead_count) != (ha0.heartbeat_ms, ha0.dead_count) {
        let _ = writeln!(o, "service-ha heartbeat interval {} dead-count {}", ha.heartbeat_ms, ha.dead_count);
        any = true;
    }
    if any {
        o.push_str("#\n");
    }
    for (id, s) in &c.slots {
        let _ = writeln!(o, "slot {id}");
        if let Some(h) = &s.host {
            let _ = writeln!(o, " host {h}");
        }
        if !s.cores.is_empty() {
            let cores: Vec<String> = s.cores.iter().map(|c| c.to_string()).collect();
            let _ = writeln!(o, " worker-cores {}", cores.join(" "));
        }
        if let Some(i) = &s.softwire_if {
            let _ = writeln!(o, " interface softwire {i}");
        }
        if let Some(i) = &s.internet_if {
            let _ = writeln!(o, " interface internet {i}");
        }
        if let Some(a) = &s.ha_address {
            let _ = writeln!(o, " ha-address {} port {}", a.ip(), a.port());
        }
        match s.packet_io {
            PacketIo::Auto => {}
            PacketIo::AfXdp(XdpMode::Auto) => o.push_str(" packet-io af-xdp\n"),
            PacketIo::AfXdp(m) => {
                let _ = writeln!(o, " packet-io af-xdp {m}");
            }
            PacketIo::AfPacket => o.push_str(" packet-io af-packet\n"),
        }
        if s.poll == PollMode::Block {
            o.push_str(" packet-poll blocking\n");
        }
        o.push_str("#\n");
    }
    for (id, l) in &c.locations {
        let _ = writeln!(o, "service-location {id}");
        if let (Some(s), Some(b)) = (l.slot, l.backup) {
            let _ = writeln!(o, " location slot {s} backup slot {b}");
        }
        o.push_str("#\n");
    }
    for (name, g) in &c.groups {
        let _ = writeln!(o, "service-instance-group {name}");
        for (lid, w) in &g.locations {
            let _ = writeln!(o, " service-location {lid} weight {w}");
        }
        o.push_str("#\n");
    }
    for (name, ag) in &c.address_groups {
        let _ = writeln!(o, "ds-lite address-group {name}");
        for (n, (a, b)) in &ag.sections {
            let _ = writeln!(o, " section {n} {a} {b}");
        }
        o.push_str("#\n");
    }
    for (name, i) in &c.instances {
        match i.id {
            Some(id) => {
                let _ = writeln!(o, "ds-lite instance {name} id {id}");
            }
            None => {
                let _ = writeln!(o, "ds-lite instance {name}");
            }
        }
        if let Some(g) = &i.group {
            let _ = writeln!(o, " service-instance-group {g}");
        }
        if let Some(a) = &i.local {
            let _ = writeln!(o, " local-ipv6 {a}");
        }
        for (p, l) in &i.remotes {
            let _ = writeln!(o, " remote-ipv6 {p} prefix-length {l}");
        }
        if let Some(a) = &i.address_group {
            let _ = writeln!(o, " ds-lite address-group {a}");
        }
        let num = |o: &mut String, k: &str, v: u64, dv: u64| {
            if v != dv {
                let _ = writeln!(o, " {k} {v}");
            }
        };
        num(&mut o, "port-block-size", i.port_block_size as u64, d.port_block_size as u64);
        num(&mut o, "port-block-limit", i.port_block_limit as u64, d.port_block_limit as u64);
        num(&mut o, "session-limit", i.session_limit as u64, d.session_limit as u64);
        num(&mut o, "new-session-rate", i.new_session_rate as u64, d.new_session_rate as u64);
        num(&mut o, "aging-time udp", i.aging.udp as u64, d.aging.udp as u64);
        num(&mut o, "aging-time tcp", i.aging.tcp_established as u64, d.aging.tcp_established as u64);
        num(&mut o, "aging-time tcp-transitory", i.aging.tcp_transitory as u64, d.aging.tcp_transitory as u64);
        num(&mut o, "aging-time icmp", i.aging.icmp as u64, d.aging.icmp as u64);
        num(&mut o, "tunnel-mtu", i.tunnel_mtu as u64, d.tunnel_mtu as u64);
        if i.mss_clamp != d.mss_clamp {
            o.push_str(if i.mss_clamp { " mss-clamp enable\n" } else { " undo mss-clamp enable\n" });
        }
        if i.filtering != d.filtering {
            o.push_str(match i.filtering {
                Filtering::EndpointIndependent => " filtering endpoint-independent\n",
                Filtering::AddressAndPortDependent => " filtering address-and-port-dependent\n",
            });
        }
        num(&mut o, "hop-limit", i.hop_limit as u64, d.hop_limit as u64);
        if i.public_inner {
            o.push_str(" inner-source public permit\n");
        }
        o.push_str("#\n");
    }
    for s in &c.syslog {
        let _ = writeln!(o, "nat log syslog {} port {}", s.ip(), s.port());
    }
    if let Some(m) = &c.metrics {
        let _ = writeln!(o, "metrics http {} port {}", m.ip(), m.port());
    }
    if !c.syslog.is_empty() || c.metrics.is_some() {
        o.push_str("#\n");
    }
    o.push_str("return\n");
    o
}
