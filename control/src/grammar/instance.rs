//! The DS-Lite instance view's commands: its group, AFTR endpoint, B4 prefixes, pool,
//! and the per-subscriber settings of its NAT (port blocks, limits, aging, MTU, ...).

use std::net::Ipv6Addr;

use super::Word::*;
use super::system::differs;
use super::{Action, Arg, Command, Edit, Kind, Print, View, Word};
use crate::config::*;
use crate::error::ConfigError;

/// The longest PCP lifetime (about 68 years): a lease's end is compared in wrapping
/// 32-bit seconds, which hold less than 2^31 s ahead.
const PCP_LIFETIME_MAX: u32 = i32::MAX as u32;

impl Edit<'_> {
    /// The instance of the current view, and its name.
    fn instance(&mut self) -> Result<(String, &mut DsLite), ConfigError> {
        let gone = self.gone();
        let View::DsLite(name) = &self.view else { return Err(gone) };
        let name = name.clone();
        self.config.instances.get_mut(&name).map(|i| (name, i)).ok_or(gone)
    }
}

/// The lines of the instance of view `v`.
fn print(c: &Config, v: &View, f: impl Fn(&DsLite, &DsLite) -> Vec<String>) -> Vec<String> {
    match v {
        View::DsLite(name) => c.instances.get(name).map(|i| f(i, &DsLite::default())).unwrap_or_default(),
        _ => vec![],
    }
}

const fn number(name: &'static str, what: &'static str, min: u32, max: u32) -> Word {
    Arg(Arg { name, what, kind: Kind::Number { min, max } })
}
const GROUP: Word = Arg(Arg { name: "NAME", what: "a service-instance group name", kind: Kind::Name });
const POOL: Word = Arg(Arg { name: "NAME", what: "an address group name", kind: Kind::Name });
const B4S: &[Word] = &[
    Key("remote-ipv6"),
    Arg(Arg { name: "PREFIX", what: "an authorised B4 prefix", kind: Kind::Ipv6 }),
    Key("prefix-length"),
    number("LENGTH", "a prefix length", 0, 128),
];
const MAX_BLOCKS: u32 = dataplane::nat::subscriber::MAX_BLOCKS as u32;

/// Changes the instance of the current view.
fn set(e: &mut Edit, f: impl FnOnce(&mut DsLite)) -> Result<(), ConfigError> {
    f(e.instance()?.1);
    Ok(())
}

pub static COMMANDS: &[Command] = &[
    Command {
        syntax: &[Key("service-instance-group"), GROUP],
        undo: Some(&[Key("service-instance-group"), Optional(&[GROUP])]),
        help: "the group whose service locations carry the instance; one only",
        action: Action::Edit {
            apply: |e, a| {
                let (group, pos) = (a.text("NAME"), a.pos("NAME"));
                let (name, inst) = e.instance()?;
                // The seed's rule: one instance, one group.
                if let Some(old) = &inst.group
                    && *old != group
                {
                    let msg = format!(
                        "ds-lite instance {name} is already bound to service-instance-group {old}; a DS-Lite instance can be bound to only one group (`undo service-instance-group` first)"
                    );
                    return Err(ConfigError::at(pos, msg));
                }
                inst.group = Some(group);
                e.positions.insert(format!("ds-lite instance {name} service-instance-group"), pos);
                Ok(())
            },
            undo: |e, _| set(e, |i| i.group = None),
        },
        print: Print::Lines(|c, v| print(c, v, |i, _| line_of(&i.group, "service-instance-group"))),
    },
    Command {
        syntax: &[Key("local-ipv6"), Arg(Arg { name: "ADDRESS", what: "the AFTR endpoint", kind: Kind::Ipv6 })],
        undo: Some(&[Key("local-ipv6")]),
        help: "the AFTR endpoint, the softwires' IPv6 destination; unique, but instances on boards of their own that all have a route-table may share one",
        action: Action::Edit {
            apply: |e, a| {
                let at = e.at;
                let (name, inst) = e.instance()?;
                inst.local = Some(a.ipv6("ADDRESS"));
                e.positions.insert(format!("ds-lite instance {name} local-ipv6"), at);
                Ok(())
            },
            undo: |e, _| set(e, |i| i.local = None),
        },
        print: Print::Lines(|c, v| print(c, v, |i, _| line_of(&i.local, "local-ipv6"))),
    },
    Command {
        syntax: B4S,
        undo: Some(B4S),
        help: "a prefix of authorised B4s; repeatable",
        action: Action::Edit {
            apply: |e, a| {
                let b4s = b4s(a);
                set(e, |i| {
                    i.remotes.retain(|r| *r != b4s);
                    i.remotes.push(b4s);
                })
            },
            undo: |e, a| set(e, |i| i.remotes.retain(|r| *r != b4s(a))),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, _| i.remotes.iter().map(|(p, l)| format!("remote-ipv6 {p} prefix-length {l}")).collect())
        }),
    },
    Command {
        syntax: &[Key("ds-lite"), Key("address-group"), POOL],
        undo: Some(&[Key("ds-lite"), Key("address-group"), Optional(&[POOL])]),
        help: "the pool of external addresses; one instance per pool",
        action: Action::Edit {
            apply: |e, a| {
                let (pool, pos) = (a.text("NAME"), a.pos("NAME"));
                let (name, inst) = e.instance()?;
                inst.address_group = Some(pool);
                e.positions.insert(format!("ds-lite instance {name} ds-lite address-group"), pos);
                Ok(())
            },
            undo: |e, _| set(e, |i| i.address_group = None),
        },
        print: Print::Lines(|c, v| print(c, v, |i, _| line_of(&i.address_group, "ds-lite address-group"))),
    },
    Command {
        syntax: &[
            Key("port-block-size"),
            Arg(Arg { name: "PORTS", what: "a port block size", kind: Kind::PowerOfTwo { min: 8, max: 32768 } }),
        ],
        undo: Some(&[Key("port-block-size")]),
        help: "ports per block, a power of two 8-32768; 512",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.port_block_size = a.number("PORTS") as u16),
            undo: |e, _| set(e, |i| i.port_block_size = DsLite::default().port_block_size),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| differs(i.port_block_size, d.port_block_size, "port-block-size"))
        }),
    },
    Command {
        syntax: &[Key("port-block-limit"), number("BLOCKS", "a number of port blocks", 1, MAX_BLOCKS)],
        undo: Some(&[Key("port-block-limit")]),
        help: "port blocks per subscriber, 1-32; 8",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.port_block_limit = a.number("BLOCKS") as u8),
            undo: |e, _| set(e, |i| i.port_block_limit = DsLite::default().port_block_limit),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| differs(i.port_block_limit, d.port_block_limit, "port-block-limit"))
        }),
    },
    Command {
        syntax: &[Key("session-limit"), number("SESSIONS", "a number of sessions", 1, 1 << 20)],
        undo: Some(&[Key("session-limit")]),
        help: "sessions per subscriber; 4096",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.session_limit = a.number("SESSIONS")),
            undo: |e, _| set(e, |i| i.session_limit = DsLite::default().session_limit),
        },
        print: Print::Lines(|c, v| print(c, v, |i, d| differs(i.session_limit, d.session_limit, "session-limit"))),
    },
    Command {
        syntax: &[Key("new-session-rate"), number("PER-SECOND", "new sessions per second (0: no limit)", 0, 1 << 20)],
        undo: Some(&[Key("new-session-rate")]),
        help: "new sessions per second per subscriber, 0 = no limit; 0",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.new_session_rate = a.number("PER-SECOND")),
            undo: |e, _| set(e, |i| i.new_session_rate = DsLite::default().new_session_rate),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| differs(i.new_session_rate, d.new_session_rate, "new-session-rate"))
        }),
    },
    // The RFC minimums: RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-1.
    Command {
        syntax: &[Key("aging-time"), Key("udp"), number("SECONDS", "an aging time in seconds", 120, 86_400)],
        undo: Some(&[Key("aging-time"), Key("udp")]),
        help: "UDP mapping timeout, 120-86400 s (RFC 4787 REQ-5); 300",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.aging.udp = a.number("SECONDS")),
            undo: |e, _| set(e, |i| i.aging.udp = DsLite::default().aging.udp),
        },
        print: Print::Lines(|c, v| print(c, v, |i, d| differs(i.aging.udp, d.aging.udp, "aging-time udp"))),
    },
    Command {
        syntax: &[Key("aging-time"), Key("tcp"), number("SECONDS", "an aging time in seconds", 7440, 86_400)],
        undo: Some(&[Key("aging-time"), Key("tcp")]),
        help: "established TCP timeout, 7440-86400 s (RFC 5382 REQ-5); 7440",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.aging.tcp_established = a.number("SECONDS")),
            undo: |e, _| set(e, |i| i.aging.tcp_established = DsLite::default().aging.tcp_established),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| differs(i.aging.tcp_established, d.aging.tcp_established, "aging-time tcp"))
        }),
    },
    Command {
        syntax: &[Key("aging-time"), Key("tcp-transitory"), number("SECONDS", "an aging time in seconds", 240, 86_400)],
        undo: Some(&[Key("aging-time"), Key("tcp-transitory")]),
        help: "transitory TCP timeout, 240-86400 s (RFC 5382 REQ-5); 240",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.aging.tcp_transitory = a.number("SECONDS")),
            undo: |e, _| set(e, |i| i.aging.tcp_transitory = DsLite::default().aging.tcp_transitory),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| differs(i.aging.tcp_transitory, d.aging.tcp_transitory, "aging-time tcp-transitory"))
        }),
    },
    Command {
        syntax: &[Key("aging-time"), Key("icmp"), number("SECONDS", "an aging time in seconds", 60, 86_400)],
        undo: Some(&[Key("aging-time"), Key("icmp")]),
        help: "ICMP query timeout, 60-86400 s (RFC 5508 REQ-1); 60",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.aging.icmp = a.number("SECONDS")),
            undo: |e, _| set(e, |i| i.aging.icmp = DsLite::default().aging.icmp),
        },
        print: Print::Lines(|c, v| print(c, v, |i, d| differs(i.aging.icmp, d.aging.icmp, "aging-time icmp"))),
    },
    Command {
        syntax: &[Key("tunnel-mtu"), number("BYTES", "a tunnel MTU", 1280, dataplane::config::MAX_TUNNEL_MTU as u32)],
        undo: Some(&[Key("tunnel-mtu")]),
        help: "MTU of the softwires, 1280-9000; 1500",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.tunnel_mtu = a.number("BYTES") as u16),
            undo: |e, _| set(e, |i| i.tunnel_mtu = DsLite::default().tunnel_mtu),
        },
        print: Print::Lines(|c, v| print(c, v, |i, d| differs(i.tunnel_mtu, d.tunnel_mtu, "tunnel-mtu"))),
    },
    Command {
        syntax: &[
            Key("internet-mtu"),
            number(
                "BYTES",
                "an Internet MTU",
                dataplane::config::MIN_INTERNET_MTU as u32,
                dataplane::config::MAX_TUNNEL_MTU as u32,
            ),
        ],
        undo: Some(&[Key("internet-mtu")]),
        help: "MTU towards the Internet, 576-9000; 1500: larger DF packets get ICMP 3/4, others are fragmented",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.internet_mtu = a.number("BYTES") as u16),
            undo: |e, _| set(e, |i| i.internet_mtu = DsLite::default().internet_mtu),
        },
        print: Print::Lines(|c, v| print(c, v, |i, d| differs(i.internet_mtu, d.internet_mtu, "internet-mtu"))),
    },
    Command {
        syntax: &[Key("mss-clamp"), Key("enable")],
        undo: Some(&[Key("mss-clamp"), Key("enable")]),
        help: "clamp the TCP MSS to tunnel-mtu - 80; on",
        action: Action::Edit {
            apply: |e, _| set(e, |i| i.mss_clamp = true),
            undo: |e, _| set(e, |i| i.mss_clamp = false),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| match (i.mss_clamp, d.mss_clamp) {
                (true, false) => vec!["mss-clamp enable".into()],
                (false, true) => vec!["undo mss-clamp enable".into()],
                _ => vec![],
            })
        }),
    },
    Command {
        syntax: &[Key("filtering"), Choice(&[&[Key("endpoint-independent")], &[Key("address-and-port-dependent")]])],
        undo: Some(&[Key("filtering")]),
        help: "which inbound packets a mapping lets in (RFC 4787 REQ-8); endpoint-independent",
        action: Action::Edit {
            apply: |e, a| {
                let f = match a.has("address-and-port-dependent") {
                    true => Filtering::AddressAndPortDependent,
                    false => Filtering::EndpointIndependent,
                };
                set(e, |i| i.filtering = f)
            },
            undo: |e, _| set(e, |i| i.filtering = DsLite::default().filtering),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| match i.filtering {
                f if f == d.filtering => vec![],
                Filtering::EndpointIndependent => vec!["filtering endpoint-independent".into()],
                Filtering::AddressAndPortDependent => vec!["filtering address-and-port-dependent".into()],
            })
        }),
    },
    Command {
        syntax: &[Key("hop-limit"), number("HOPS", "a hop limit", 1, 255)],
        undo: Some(&[Key("hop-limit")]),
        help: "hop limit of the IPv6 packets the AFTR sends, 1-255; 64",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.hop_limit = a.number("HOPS") as u8),
            undo: |e, _| set(e, |i| i.hop_limit = DsLite::default().hop_limit),
        },
        print: Print::Lines(|c, v| print(c, v, |i, d| differs(i.hop_limit, d.hop_limit, "hop-limit"))),
    },
    Command {
        syntax: &[Key("inner-source"), Key("public"), Key("permit")],
        undo: Some(&[Key("inner-source"), Key("public"), Key("permit")]),
        help: "accept inner sources outside RFC 1918 and 192.0.0.0/29; off",
        action: Action::Edit {
            apply: |e, _| set(e, |i| i.public_inner = true),
            undo: |e, _| set(e, |i| i.public_inner = false),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, _| if i.public_inner { vec!["inner-source public permit".into()] } else { vec![] })
        }),
    },
    Command {
        syntax: NAT_SERVER,
        undo: Some(NAT_SERVER),
        help: "a static port forwarding: a pool address and port to a host behind a B4; repeatable",
        action: Action::Edit {
            apply: |e, a| {
                let server = nat_server(a);
                add(e, |i| &mut i.servers, server, server.line())
            },
            undo: |e, a| set(e, |i| i.servers.retain(|s| *s != nat_server(a))),
        },
        print: Print::Lines(|c, v| print(c, v, |i, _| i.servers.iter().map(NatServer::line).collect())),
    },
    Command {
        syntax: NO_TRANSLATION,
        undo: Some(NO_TRANSLATION),
        help: "a B4 with a public address (or an A+P port range) of its own, not translated; repeatable",
        action: Action::Edit {
            apply: |e, a| {
                let entry = no_translation(a);
                add(e, |i| &mut i.no_translation, entry, entry.line())
            },
            undo: |e, a| set(e, |i| i.no_translation.retain(|n| *n != no_translation(a))),
        },
        print: Print::Lines(|c, v| print(c, v, |i, _| i.no_translation.iter().map(NoTranslation::line).collect())),
    },
    Command {
        syntax: PCP_SERVER,
        undo: Some(&[Key("pcp"), Key("server"), Key("enable")]),
        help: "the instance's PCP server (RFC 6887), at this IPv4 address through the softwires, UDP port 5351; off",
        action: Action::Edit {
            apply: |e, a| {
                let at = e.at;
                let (name, inst) = e.instance()?;
                inst.pcp_server = Some(a.ipv4("ADDRESS"));
                e.positions.insert(format!("ds-lite instance {name} pcp server"), at);
                Ok(())
            },
            undo: |e, _| set(e, |i| i.pcp_server = None),
        },
        print: Print::Lines(|c, v| print(c, v, |i, _| line_of(&i.pcp_server, "pcp server enable address"))),
    },
    Command {
        syntax: &[
            Key("pcp"),
            Key("lifetime"),
            Key("min"),
            number("MIN-SECONDS", "the shortest lifetime granted", 1, PCP_LIFETIME_MAX),
            Key("max"),
            number("MAX-SECONDS", "the longest lifetime granted", 1, PCP_LIFETIME_MAX),
        ],
        undo: Some(&[Key("pcp"), Key("lifetime")]),
        help: "the lifetimes PCP grants: a request's is clamped between them; 120 86400",
        action: Action::Edit {
            apply: |e, a| {
                let at = e.at;
                let (name, inst) = e.instance()?;
                inst.pcp_lifetime = (a.number("MIN-SECONDS"), a.number("MAX-SECONDS"));
                e.positions.insert(format!("ds-lite instance {name} pcp lifetime"), at);
                Ok(())
            },
            undo: |e, _| set(e, |i| i.pcp_lifetime = DsLite::default().pcp_lifetime),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| match i.pcp_lifetime {
                l if l == d.pcp_lifetime => vec![],
                (min, max) => vec![format!("pcp lifetime min {min} max {max}")],
            })
        }),
    },
    Command {
        syntax: &[Key("pcp"), Key("max-mappings"), number("MAPPINGS", "PCP mappings per subscriber", 1, 65535)],
        undo: Some(&[Key("pcp"), Key("max-mappings")]),
        help: "PCP mappings per subscriber, on top of (and counted in) its session-limit; 64",
        action: Action::Edit {
            apply: |e, a| set(e, |i| i.pcp_max_mappings = a.number("MAPPINGS") as u16),
            undo: |e, _| set(e, |i| i.pcp_max_mappings = DsLite::default().pcp_max_mappings),
        },
        print: Print::Lines(|c, v| {
            print(c, v, |i, d| differs(i.pcp_max_mappings, d.pcp_max_mappings, "pcp max-mappings"))
        }),
    },
];

const PCP_SERVER: &[Word] =
    &[Key("pcp"), Key("server"), Key("enable"), Key("address"), ipv4("ADDRESS", "the PCP server's IPv4 address")];

const fn ipv4(name: &'static str, what: &'static str) -> Word {
    Arg(Arg { name, what, kind: Kind::Ipv4 })
}
const NAT_SERVER: &[Word] = &[
    Key("nat"),
    Key("server"),
    Key("protocol"),
    Choice(&[&[Key("tcp")], &[Key("udp")]]),
    Key("global"),
    ipv4("GLOBAL-ADDRESS", "an external (pool) address"),
    number("GLOBAL-PORT", "an external port", 1, 65535),
    Key("inside"),
    ipv4("INSIDE-ADDRESS", "the inside host's address"),
    number("INSIDE-PORT", "the inside host's port", 1, 65535),
    Key("b4"),
    Arg(Arg { name: "B4-ADDRESS", what: "the B4's IPv6 address", kind: Kind::Ipv6 }),
];
const NO_TRANSLATION: &[Word] = &[
    Key("nat"),
    Key("no-translation"),
    Key("b4"),
    Arg(Arg { name: "B4-ADDRESS", what: "the B4's IPv6 address", kind: Kind::Ipv6 }),
    Key("address"),
    ipv4("ADDRESS", "the B4's public address"),
    Optional(&[
        Key("port-range"),
        number("FIRST-PORT", "the first port of the range", 1, 65535),
        number("LAST-PORT", "the last port of the range", 1, 65535),
    ]),
];

/// Adds `entry` to the instance's list `of`, once, and remembers where `line` was typed
/// (the commit's checks point there).
fn add<T: PartialEq>(
    e: &mut Edit,
    of: fn(&mut DsLite) -> &mut Vec<T>,
    entry: T,
    line: String,
) -> Result<(), ConfigError> {
    let at = e.at;
    let (name, inst) = e.instance()?;
    let list = of(inst);
    list.retain(|x| *x != entry);
    list.push(entry);
    e.positions.insert(format!("ds-lite instance {name} {line}"), at);
    Ok(())
}

fn nat_server(a: &super::Args) -> NatServer {
    NatServer {
        tcp: a.has("tcp"),
        global: (a.ipv4("GLOBAL-ADDRESS"), a.number("GLOBAL-PORT") as u16),
        inside: (a.ipv4("INSIDE-ADDRESS"), a.number("INSIDE-PORT") as u16),
        b4: a.ipv6("B4-ADDRESS"),
    }
}

fn no_translation(a: &super::Args) -> NoTranslation {
    NoTranslation {
        b4: a.ipv6("B4-ADDRESS"),
        addr: a.ipv4("ADDRESS"),
        ports: a.has("FIRST-PORT").then(|| (a.number("FIRST-PORT") as u16, a.number("LAST-PORT") as u16)),
    }
}

fn b4s(a: &super::Args) -> (Ipv6Addr, u8) {
    let len = a.number("LENGTH") as u8;
    let m = if len == 0 { 0 } else { u128::MAX << (128 - len as u32) };
    (Ipv6Addr::from(u128::from(a.ipv6("PREFIX")) & m), len)
}

fn line_of<T: std::fmt::Display>(v: &Option<T>, keywords: &str) -> Vec<String> {
    v.iter().map(|v| format!("{keywords} {v}")).collect()
}
