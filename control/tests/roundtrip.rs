//! `display current-configuration` parses back to the same configuration, for random
//! configurations; `aftrd --check` reports FILE:LINE:COLUMN and its exit status.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use control::config::*;
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,10}"
}

fn instance() -> impl Strategy<Value = DsLite> {
    (
        proptest::option::of(1u32..=255),
        proptest::option::of(any::<u128>()),
        proptest::collection::vec((any::<u128>(), 0u8..=128), 0..3),
        (3u32..=15, 1u8..=32, 1u32..=100_000, 0u32..=10_000),
        (120u32..=86400, 7440u32..=86400, 240u32..=86400, 60u32..=86400),
        (1280u16..=9000, any::<bool>(), any::<bool>(), 1u8..=255, any::<bool>(), 576u16..=9000),
        (
            proptest::collection::vec((any::<bool>(), any::<u32>(), 1u16.., any::<u32>(), 1u16.., any::<u128>()), 0..3),
            proptest::collection::vec((any::<u128>(), any::<u32>(), proptest::option::of((1u16.., 1u16..))), 0..3),
        ),
        // PCP lifetimes up to 2^31 - 1 s (the grammar's bound).
        (proptest::option::of(any::<u32>()), 1u32..=i32::MAX as u32, 1u32..=i32::MAX as u32, 1u16..),
    )
        .prop_map(
            |(
                id,
                local,
                remotes,
                (bs, bl, sl, rate),
                (u, t, tt, i),
                (mtu, mss, apdf, hop, public, imtu),
                (servers, own),
                (pcp_server, l1, l2, pcp_max_mappings),
            )| {
                let mut remotes: Vec<(Ipv6Addr, u8)> = remotes
                    .into_iter()
                    .map(|(a, l)| {
                        let m = if l == 0 { 0 } else { u128::MAX << (128 - l as u32) };
                        (Ipv6Addr::from(a & m), l)
                    })
                    .collect();
                remotes.dedup();
                DsLite {
                    id,
                    group: None,
                    local: local.map(Ipv6Addr::from),
                    remotes,
                    address_group: None,
                    port_block_size: 1 << bs,
                    session_limit: sl,
                    port_block_limit: bl,
                    new_session_rate: rate,
                    aging: dataplane::config::Timeouts { udp: u, tcp_established: t, tcp_transitory: tt, icmp: i },
                    tunnel_mtu: mtu,
                    mss_clamp: mss,
                    internet_mtu: imtu,
                    filtering: if apdf { Filtering::AddressAndPortDependent } else { Filtering::EndpointIndependent },
                    hop_limit: hop,
                    public_inner: public,
                    servers: servers
                        .into_iter()
                        .map(|(tcp, ga, gp, ia, ip, b4)| NatServer {
                            tcp,
                            global: (Ipv4Addr::from(ga), gp),
                            inside: (Ipv4Addr::from(ia), ip),
                            b4: Ipv6Addr::from(b4),
                        })
                        .fold(Vec::new(), |mut v, s| {
                            if !v.contains(&s) {
                                v.push(s);
                            }
                            v
                        }),
                    no_translation: own
                        .into_iter()
                        .map(|(b4, a, ports)| NoTranslation { b4: Ipv6Addr::from(b4), addr: Ipv4Addr::from(a), ports })
                        .fold(Vec::new(), |mut v, n| {
                            if !v.contains(&n) {
                                v.push(n);
                            }
                            v
                        }),
                    pcp_server: pcp_server.map(Ipv4Addr::from),
                    pcp_lifetime: (l1.min(l2), l1.max(l2)),
                    pcp_max_mappings,
                }
            },
        )
}

/// Where a key comes from: inline, a file, a credential, or `******` (the running key).
fn key_source() -> impl Strategy<Value = KeySource> {
    prop_oneof![
        "[a-zA-Z0-9+/=]{22,64}".prop_map(|k| KeySource::Inline(Secret::new(k))),
        "(/[a-z0-9._-]{1,8}){1,3}".prop_map(|p| KeySource::File(p.into())),
        "[a-z][a-z0-9-]{0,20}".prop_map(KeySource::Credential),
        Just(KeySource::Running),
    ]
}

prop_compose! {
    fn config()(
        sysname in proptest::option::of(name()),
        hot in any::<bool>(), delay in 1u32..=300, preempt in 0u32..=3600,
        key in proptest::option::of(key_source()), hb in 10u32..=10000, dead in 2u32..=100,
        slots in proptest::collection::btree_map(1u32..=64, (proptest::option::of(name()), proptest::collection::btree_set(0u32..64, 0..4), proptest::option::of(name()), proptest::option::of(any::<[u8; 4]>()), 0u8..5, any::<bool>(), proptest::option::of(prop_oneof![1u32..=252, 256u32..=u32::MAX])), 0..5),
        locations in proptest::collection::btree_map(1u32..=128, proptest::option::of((1u32..=64, proptest::option::of(1u32..=64))), 0..4),
        groups in proptest::collection::btree_map(name(), proptest::collection::btree_map(1u32..=128, 1u32..=100, 0..3), 0..3),
        pools in proptest::collection::btree_map(name(), proptest::collection::btree_map(0u32..=255, (any::<u32>(), 0u32..1000), 0..3), 0..3),
        instances in proptest::collection::btree_map(name(), instance(), 0..3),
        syslog in proptest::collection::vec((any::<[u8; 4]>(), 1u16.., 0u8..3, proptest::option::of((any::<[u8; 4]>(), prop_oneof![Just(0u16), 1u16..]))), 0..2),
        events in any::<(bool, bool, bool, bool)>(),
        refresh in (1u32..=86_400, 1u32..=1_000_000),
        metrics in proptest::option::of((any::<[u8; 4]>(), 1u16..)),
        protection in (0u32..=1_000_000, 1u32..=1_000_000, 0u32..=3600),
        capacity in (1024u32..=1 << 24, 256u32..=1 << 22),
        notify in proptest::option::of("/[a-z]{1,8}(/[a-z0-9.-]{1,8}){0,3}"),
    ) -> Config {
        Config {
            sysname,
            ha: Ha {
                hot_backup: hot,
                delay_time: delay,
                preempt_time: preempt,
                key,
                heartbeat_ms: hb,
                dead_count: dead,
                notify,
            },
            slots: slots.into_iter().map(|(id, (host, cores, ifname, ha, io, blocking, table))| (id, Slot {
                host,
                cores: cores.into_iter().collect(),
                softwire_if: ifname.clone(),
                internet_if: ifname.map(|n| format!("{n}x")),
                ha_address: ha.map(|a| SocketAddr::new(Ipv4Addr::from(a).into(), 62000)),
                packet_io: [PacketIo::Auto, PacketIo::AfPacket, PacketIo::AfXdp(XdpMode::Auto), PacketIo::AfXdp(XdpMode::Native), PacketIo::AfXdp(XdpMode::Generic)][io as usize],
                poll: if blocking { PollMode::Block } else { PollMode::Busy },
                metrics: ha.map(|a| SocketAddr::new(Ipv4Addr::from(a).into(), 9100 + id as u16)),
                route_table: table,
            })).collect(),
            locations: locations.into_iter().map(|(id, l)| (id, match l {
                Some((s, b)) => Location { slot: Some(s), backup: b },
                None => Location::default(),
            })).collect(),
            groups: groups.into_iter().map(|(n, l)| (n, InstanceGroup { locations: l })).collect(),
            address_groups: pools.into_iter().map(|(n, secs)| (n, AddressGroup {
                sections: secs.into_iter().map(|(k, (a, len))| (k, (Ipv4Addr::from(a), Ipv4Addr::from(a.saturating_add(len))))).collect(),
            })).collect(),
            instances,
            nat_log: {
                let mut hosts: Vec<LogHost> = syslog
                    .into_iter()
                    .map(|(a, p, k, src)| LogHost {
                        addr: SocketAddr::new(Ipv4Addr::from(a).into(), p),
                        format: LogFormat::ALL[k as usize],
                        source: src.map(|(s, sp)| SocketAddr::new(Ipv4Addr::from(s).into(), sp)),
                    })
                    .collect();
                hosts.dedup_by_key(|t| t.addr);
                NatLog {
                    hosts,
                    sessions: events.0,
                    blocks: events.1,
                    exhaustion: events.2,
                    quotas: events.3,
                    template_refresh_secs: refresh.0,
                    template_refresh_packets: refresh.1,
                }
            },
            metrics: metrics.map(|(a, p)| SocketAddr::new(Ipv4Addr::from(a).into(), p)),
            protection: Protection {
                icmp_errors_per_sec: protection.0,
                icmp_errors_burst: protection.1,
                block_hold_down: protection.2,
            },
            capacity: Capacity { sessions: capacity.0, subscribers: capacity.1 },
        }
    }
}

/// Printing and parsing must agree whether or not the configuration would commit; so
/// the round trip goes through a session that applies the text without committing.
fn reparse(text: &str) -> Config {
    let mut s = control::parse::Session::new(Config::default());
    s.view = control::parse::View::System;
    for (n, line) in text.lines().enumerate() {
        if let Err(e) = s.execute(n + 1, line) {
            panic!("line {}: {e}\n{text}", n + 1);
        }
        if s.view == control::parse::View::User {
            break;
        }
    }
    s.candidate
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_configuration(c in config()) {
        // As `save` writes it: the same configuration.
        let text = control::display::render_in_clear(&c);
        let back = reparse(&text);
        prop_assert_eq!(&back, &c, "{}", text);
        // As displays show it: an inline key masked, which reads back as the key the
        // board runs with; nothing else differs.
        let shown = control::display::render(&c);
        let mut masked = c.clone();
        if let Some(KeySource::Inline(k)) = &c.ha.key {
            prop_assert!(!shown.contains(std::str::from_utf8(k.expose()).unwrap()), "{}", shown);
            masked.ha.key = Some(KeySource::Running);
        }
        prop_assert_eq!(reparse(&shown), masked, "{}", shown);
    }
}

/// Every example of `deploy/` (the seed's procedure among them), printed, reads back to
/// the same configuration, and printing that again gives the same text.
#[test]
fn the_examples_print_and_read_back() {
    let mut seen = 0;
    for entry in std::fs::read_dir("../deploy").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "conf") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (c, _) = control::parse::parse(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let printed = control::display::render_in_clear(&c);
        assert_eq!(reparse(&printed), c, "{}:\n{printed}", path.display());
        let (committed, _) = control::parse::parse(&printed).unwrap_or_else(|e| panic!("{e:?}\n{printed}"));
        assert_eq!(control::display::render_in_clear(&committed), printed);
        seen += 1;
    }
    assert!(seen >= 2, "the examples are in deploy/");
}

fn aftrd(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aftrd")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn aftrd_check_accepts_the_examples_and_reports_errors_with_position() {
    for f in ["../deploy/aftr-ha.conf", "../deploy/aftr-two-locations.conf", "../deploy/aftr-scale-out.conf"] {
        let (code, out, err) = aftrd(&["--check", "--config", f]);
        assert_eq!(code, 0, "{f}: {err}");
        assert!(out.contains("configuration is valid"));
    }
    let dir = std::env::temp_dir().join(format!("aftrd-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        "slot 1\n worker-cores 0\nservice-location 1\n location slot 1 backup slot 2\nservice-ha delay-time 4000\n",
    )
    .unwrap();
    let (code, _, err) = aftrd(&["--check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        err.lines().next().unwrap(),
        format!("{}:5:23: expected a delay time in seconds from 1 to 300, found `4000`", bad.display())
    );
    std::fs::write(&bad, "slot 1\n worker-cores 0\nservice-location 1\n location slot 1 backup slot 2\n").unwrap();
    let (code, _, err) = aftrd(&["--check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}:4:2: service-location 1: slot 2 is not defined", bad.display())), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
