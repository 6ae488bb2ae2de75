//! The system view's commands: the host name, `service-ha`, the commands that open the
//! views of slots, service locations, groups, pools and instances, NAT logs, metrics.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::Word::*;
use super::{Action, Arg, Command, Kind, Print, View, Word};
use crate::config::*;
use crate::error::ConfigError;
use crate::secret::{MASK, MAX_CHARS, MIN_CHARS};

const fn number(name: &'static str, what: &'static str, (min, max): (u32, u32)) -> Word {
    Arg(Arg { name, what, kind: Kind::Number { min, max } })
}
const fn name(name: &'static str, what: &'static str) -> Word {
    Arg(Arg { name, what, kind: Kind::Name })
}
const fn ip(name: &'static str, what: &'static str) -> Word {
    Arg(Arg { name, what, kind: Kind::Ip })
}

const DELAY: Word = number("SECONDS", "a delay time in seconds", DELAY_TIME_RANGE);
const PREEMPT: Word = number("SECONDS", "a preemption delay in seconds", PREEMPT_TIME_RANGE);
const SYSLOG_PORT: u16 = 514;

/// The lines of an optional setting.
fn line_of<T>(v: &Option<T>, f: impl Fn(&T) -> String) -> Vec<String> {
    v.iter().map(f).collect()
}

pub static COMMANDS: &[Command] = &[
    Command {
        syntax: &[Key("sysname"), name("NAME", "a system name")],
        undo: Some(&[Key("sysname")]),
        help: "host name in logs and prompts",
        action: Action::Edit {
            apply: |e, a| {
                e.config.sysname = Some(a.text("NAME"));
                Ok(())
            },
            undo: |e, _| {
                e.config.sysname = None;
                Ok(())
            },
        },
        print: Print::Paragraph(|c, _| line_of(&c.sysname, |n| format!("sysname {n}"))),
    },
    Command {
        syntax: &[Key("service-ha"), Key("hot-backup"), Key("enable")],
        undo: Some(&[Key("service-ha"), Key("hot-backup"), Key("enable")]),
        help: "replicate sessions to the standby board; off",
        action: Action::Edit {
            apply: |e, _| {
                e.config.ha.hot_backup = true;
                Ok(())
            },
            undo: |e, _| {
                e.config.ha.hot_backup = false;
                Ok(())
            },
        },
        print: Print::Lines(|c, _| if c.ha.hot_backup { vec!["service-ha hot-backup enable".into()] } else { vec![] }),
    },
    Command {
        syntax: &[Key("service-ha"), Key("delay-time"), DELAY],
        undo: Some(&[Key("service-ha"), Key("delay-time"), Optional(&[DELAY])]),
        help: "back up only sessions older than this, 1-300 s; 1",
        action: Action::Edit {
            apply: |e, a| {
                e.config.ha.delay_time = a.number("SECONDS");
                Ok(())
            },
            undo: |e, _| {
                e.config.ha.delay_time = DEFAULT_DELAY_TIME;
                Ok(())
            },
        },
        print: Print::Lines(|c, _| differs(c.ha.delay_time, DEFAULT_DELAY_TIME, "service-ha delay-time")),
    },
    Command {
        syntax: &[Key("service-ha"), Key("preempt-time"), PREEMPT],
        undo: Some(&[Key("service-ha"), Key("preempt-time"), Optional(&[PREEMPT])]),
        help: "a recovered preferred board waits this long, 0-3600 s; 60",
        action: Action::Edit {
            apply: |e, a| {
                e.config.ha.preempt_time = a.number("SECONDS");
                Ok(())
            },
            undo: |e, _| {
                e.config.ha.preempt_time = DEFAULT_PREEMPT_TIME;
                Ok(())
            },
        },
        print: Print::Lines(|c, _| differs(c.ha.preempt_time, DEFAULT_PREEMPT_TIME, "service-ha preempt-time")),
    },
    Command {
        syntax: &[
            Key("service-ha"),
            Key("preshared-key"),
            Choice(&[
                &[Key("file"), Arg(Arg { name: "PATH", what: "a key file", kind: Kind::Path })],
                &[Key("credential"), name("NAME", "a systemd credential")],
                &[Arg(Arg { name: "KEY", what: "a key", kind: Kind::Secret { min: MIN_CHARS, max: MAX_CHARS } })],
            ]),
        ],
        undo: Some(&[Key("service-ha"), Key("preshared-key")]),
        help: "the HA secret: 22-128 characters (`openssl rand -base64 24`), or read from a file or a systemd credential; displayed ******",
        action: Action::Edit {
            apply: |e, a| {
                let source = if a.has("file") {
                    KeySource::File(PathBuf::from(a.text("PATH")))
                } else if a.has("credential") {
                    let name = a.text("NAME");
                    if name.starts_with('.') {
                        return Err(ConfigError::at(a.pos("NAME"), "a credential's name does not start with `.`"));
                    }
                    KeySource::Credential(name)
                } else {
                    match a.text("KEY") {
                        k if k == MASK => KeySource::Running,
                        k => KeySource::Inline(Secret::new(k)),
                    }
                };
                e.config.ha.key = Some(source);
                e.positions.insert(crate::secret::STATEMENT.to_string(), e.at);
                Ok(())
            },
            undo: |e, _| {
                e.config.ha.key = None;
                Ok(())
            },
        },
        print: Print::Secret(|c, in_clear| line_of(&c.ha.key, |k| crate::secret::statement(k, in_clear))),
    },
    Command {
        syntax: &[
            Key("service-ha"),
            Key("heartbeat"),
            Key("interval"),
            number("MILLISECONDS", "a heartbeat interval in milliseconds", (10, 10_000)),
            Key("dead-count"),
            number("N", "a number of missed heartbeats", (2, 100)),
        ],
        undo: Some(&[Key("service-ha"), Key("heartbeat")]),
        help: "heartbeat every 10-10000 ms, peer dead after 2-100 missed; 40 ms, 3",
        action: Action::Edit {
            apply: |e, a| {
                (e.config.ha.heartbeat_ms, e.config.ha.dead_count) = (a.number("MILLISECONDS"), a.number("N"));
                Ok(())
            },
            undo: |e, _| {
                let d = Ha::default();
                (e.config.ha.heartbeat_ms, e.config.ha.dead_count) = (d.heartbeat_ms, d.dead_count);
                Ok(())
            },
        },
        print: Print::Paragraph(|c, _| {
            let (ha, d) = (&c.ha, Ha::default());
            if (ha.heartbeat_ms, ha.dead_count) == (d.heartbeat_ms, d.dead_count) {
                return vec![];
            }
            vec![format!("service-ha heartbeat interval {} dead-count {}", ha.heartbeat_ms, ha.dead_count)]
        }),
    },
    Command {
        syntax: &[Key("service-ha"), Key("notify"), Arg(Arg { name: "PROGRAM", what: "a program", kind: Kind::Path })],
        undo: Some(&[Key("service-ha"), Key("notify")]),
        help: "runs PROGRAM SLOT LOCATION ROLE REASON on every change of role",
        action: Action::Edit {
            apply: |e, a| {
                e.config.ha.notify = Some(a.text("PROGRAM"));
                Ok(())
            },
            undo: |e, _| {
                e.config.ha.notify = None;
                Ok(())
            },
        },
        print: Print::Lines(|c, _| line_of(&c.ha.notify, |p| format!("service-ha notify {p}"))),
    },
    // Printed before the views: after a slot's lines it would read as the slot's own.
    Command {
        syntax: METRICS,
        undo: Some(METRICS_UNDO),
        help: "serve Prometheus metrics at /metrics, on every board without its own (slot view)",
        action: Action::Edit {
            apply: |e, a| {
                e.config.metrics = Some(SocketAddr::new(a.ip("ADDRESS"), a.number("PORT") as u16));
                Ok(())
            },
            undo: |e, _| {
                e.config.metrics = None;
                Ok(())
            },
        },
        print: Print::Paragraph(|c, _| line_of(&c.metrics, |m| format!("metrics http {} port {}", m.ip(), m.port()))),
    },
    Command {
        syntax: &[Key("slot"), number("ID", "a slot number", (1, 64))],
        undo: Some(&[Key("slot"), number("ID", "a slot number", (1, 64))]),
        help: "a board (one aftrd), 1-64: enters its view",
        action: Action::Edit {
            apply: |e, a| {
                let id = a.number("ID");
                e.config.slots.entry(id).or_default();
                e.positions.insert(format!("slot {id}"), e.at);
                e.enter = Some(View::Slot(id));
                Ok(())
            },
            undo: |e, a| {
                e.config.slots.remove(&a.number("ID"));
                Ok(())
            },
        },
        print: Print::Blocks(|c| c.slots.keys().map(|id| (format!("slot {id}"), View::Slot(*id))).collect()),
    },
    Command {
        syntax: &[Key("service-location"), number("ID", "a service-location ID", (1, 128))],
        undo: Some(&[Key("service-location"), number("ID", "a service-location ID", (1, 128))]),
        help: "a pair of active and standby boards, 1-128: enters its view",
        action: Action::Edit {
            apply: |e, a| {
                let id = a.number("ID");
                e.config.locations.entry(id).or_default();
                e.positions.insert(format!("service-location {id}"), e.at);
                e.enter = Some(View::Location(id));
                Ok(())
            },
            undo: |e, a| {
                e.config.locations.remove(&a.number("ID"));
                Ok(())
            },
        },
        print: Print::Blocks(|c| {
            c.locations.keys().map(|id| (format!("service-location {id}"), View::Location(*id))).collect()
        }),
    },
    Command {
        syntax: &[Key("service-instance-group"), name("NAME", "a service-instance group name")],
        undo: Some(&[Key("service-instance-group"), name("NAME", "a service-instance group name")]),
        help: "service locations with weights: enters its view",
        action: Action::Edit {
            apply: |e, a| {
                let name = a.text("NAME");
                e.config.groups.entry(name.clone()).or_default();
                e.positions.insert(format!("service-instance-group {name}"), e.at);
                e.enter = Some(View::Group(name));
                Ok(())
            },
            undo: |e, a| {
                e.config.groups.remove(&a.text("NAME"));
                Ok(())
            },
        },
        print: Print::Blocks(|c| {
            c.groups.keys().map(|n| (format!("service-instance-group {n}"), View::Group(n.clone()))).collect()
        }),
    },
    Command {
        syntax: &[Key("ds-lite"), Key("address-group"), name("NAME", "an address group name")],
        undo: Some(&[Key("ds-lite"), Key("address-group"), name("NAME", "an address group name")]),
        help: "an external address pool: enters its view",
        action: Action::Edit {
            apply: |e, a| {
                let name = a.text("NAME");
                e.config.address_groups.entry(name.clone()).or_default();
                e.positions.insert(format!("ds-lite address-group {name}"), e.at);
                e.enter = Some(View::AddressGroup(name));
                Ok(())
            },
            undo: |e, a| {
                e.config.address_groups.remove(&a.text("NAME"));
                Ok(())
            },
        },
        print: Print::Blocks(|c| {
            let pools = c.address_groups.keys();
            pools.map(|n| (format!("ds-lite address-group {n}"), View::AddressGroup(n.clone()))).collect()
        }),
    },
    Command {
        syntax: INSTANCE,
        undo: Some(INSTANCE),
        help: "a DS-Lite instance, id 1-255: enters its view",
        action: Action::Edit {
            apply: |e, a| {
                let name = a.text("NAME");
                let inst = e.config.instances.entry(name.clone()).or_default();
                if a.has("ID") {
                    inst.id = Some(a.number("ID"));
                }
                e.positions.insert(format!("ds-lite instance {name}"), e.at);
                e.enter = Some(View::DsLite(name));
                Ok(())
            },
            undo: |e, a| {
                e.config.instances.remove(&a.text("NAME"));
                Ok(())
            },
        },
        print: Print::Blocks(|c| {
            let line = |name: &String, i: &DsLite| match i.id {
                Some(id) => format!("ds-lite instance {name} id {id}"),
                None => format!("ds-lite instance {name}"),
            };
            c.instances.iter().map(|(n, i)| (line(n, i), View::DsLite(n.clone()))).collect()
        }),
    },
    Command {
        syntax: LOG_HOST,
        undo: Some(LOG_HOST_UNDO),
        help: "send NAT logs to a collector: RFC 5424 syslog over UDP (default) or TCP (RFC 6587), or IPFIX (RFC 8158); repeatable",
        action: Action::Edit {
            apply: |e, a| {
                let host = LogHost {
                    addr: SocketAddr::new(a.ip("ADDRESS"), a.number("PORT") as u16),
                    format: if a.has("syslog-tcp") {
                        LogFormat::SyslogTcp
                    } else if a.has("ipfix") {
                        LogFormat::Ipfix
                    } else {
                        LogFormat::SyslogUdp
                    },
                    source: a.has("SOURCE").then(|| {
                        let port = if a.has("SOURCE-PORT") { a.number("SOURCE-PORT") as u16 } else { 0 };
                        SocketAddr::new(a.ip("SOURCE"), port)
                    }),
                };
                if let Some(src) = host.source
                    && src.is_ipv4() != host.addr.is_ipv4()
                {
                    return Err(ConfigError::at(
                        a.pos("SOURCE"),
                        "the source address is not of the collector's family",
                    ));
                }
                add_log_host(e, host);
                Ok(())
            },
            undo: |e, a| {
                let to = SocketAddr::new(a.ip("ADDRESS"), a.number("PORT") as u16);
                e.config.nat_log.hosts.retain(|x| x.addr != to);
                Ok(())
            },
        },
        print: Print::Lines(|c, _| {
            c.nat_log
                .hosts
                .iter()
                .map(|h| {
                    let source = match h.source {
                        None => String::new(),
                        Some(s) if s.port() == 0 => format!(" source {}", s.ip()),
                        Some(s) => format!(" source {} port {}", s.ip(), s.port()),
                    };
                    format!("nat log host {} {}{source} type {}", h.addr.ip(), h.addr.port(), h.format.keyword())
                })
                .collect()
        }),
    },
    Command {
        syntax: SYSLOG,
        undo: Some(SYSLOG),
        help: "a syslog collector (the older form of `nat log host`, printed as it); port 514, over UDP",
        action: Action::Edit {
            apply: |e, a| {
                add_log_host(e, syslog(a));
                Ok(())
            },
            undo: |e, a| {
                let to = syslog(a);
                e.config.nat_log.hosts.retain(|x| x.addr != to.addr);
                Ok(())
            },
        },
        print: Print::Never,
    },
    log_event(
        &[Key("nat"), Key("log"), Key("session"), Key("enable")],
        "log session creation and deletion; off (port blocks say it)",
        |e, _| set(&mut e.config.nat_log.sessions, true),
        |e, _| set(&mut e.config.nat_log.sessions, false),
        Print::Lines(|c, _| {
            // The four switches print here, in one place.
            let (l, d) = (&c.nat_log, NatLog::default());
            [("session", l.sessions, d.sessions), ("port-block", l.blocks, d.blocks)]
                .into_iter()
                .chain([("exhaustion", l.exhaustion, d.exhaustion), ("quota", l.quotas, d.quotas)])
                .filter(|(_, v, d)| v != d)
                .map(|(k, v, _)| format!("{}nat log {k} enable", if v { "" } else { "undo " }))
                .collect()
        }),
    ),
    log_event(
        &[Key("nat"), Key("log"), Key("port-block"), Key("enable")],
        "log port block allocation and release; on",
        |e, _| set(&mut e.config.nat_log.blocks, true),
        |e, _| set(&mut e.config.nat_log.blocks, false),
        Print::Lines(|_, _| vec![]),
    ),
    log_event(
        &[Key("nat"), Key("log"), Key("exhaustion"), Key("enable")],
        "log NAT addresses and ports exhausted; on",
        |e, _| set(&mut e.config.nat_log.exhaustion, true),
        |e, _| set(&mut e.config.nat_log.exhaustion, false),
        Print::Lines(|_, _| vec![]),
    ),
    log_event(
        &[Key("nat"), Key("log"), Key("quota"), Key("enable")],
        "log a subscriber's session, port-block and rate limits, and full tables, met (at most 50 a second per worker); on",
        |e, _| set(&mut e.config.nat_log.quotas, true),
        |e, _| set(&mut e.config.nat_log.quotas, false),
        Print::Lines(|_, _| vec![]),
    ),
    Command {
        syntax: &[
            Key("nat"),
            Key("log"),
            Key("ipfix"),
            Key("template-refresh"),
            Key("time"),
            number("SECONDS", "seconds between templates", (1, 86_400)),
            Key("packets"),
            number("PACKETS", "messages between templates", (1, 1_000_000)),
        ],
        undo: Some(&[Key("nat"), Key("log"), Key("ipfix"), Key("template-refresh")]),
        help: "IPFIX templates go again after SECONDS (1-86400) or PACKETS messages (1-1000000), whichever first; 60, 1000",
        action: Action::Edit {
            apply: |e, a| {
                let l = &mut e.config.nat_log;
                (l.template_refresh_secs, l.template_refresh_packets) = (a.number("SECONDS"), a.number("PACKETS"));
                Ok(())
            },
            undo: |e, _| {
                let (l, d) = (&mut e.config.nat_log, NatLog::default());
                (l.template_refresh_secs, l.template_refresh_packets) =
                    (d.template_refresh_secs, d.template_refresh_packets);
                Ok(())
            },
        },
        print: Print::Paragraph(|c, _| {
            let (l, d) = (&c.nat_log, NatLog::default());
            if (l.template_refresh_secs, l.template_refresh_packets)
                == (d.template_refresh_secs, d.template_refresh_packets)
            {
                return vec![];
            }
            vec![format!(
                "nat log ipfix template-refresh time {} packets {}",
                l.template_refresh_secs, l.template_refresh_packets
            )]
        }),
    },
    Command {
        syntax: &[
            Key("icmp-error"),
            Key("rate"),
            number("PER-SECOND", "ICMP errors a second per worker (0: no limit)", (0, 1_000_000)),
            Key("burst"),
            number("N", "a burst of ICMP errors", (1, 1_000_000)),
        ],
        undo: Some(&[Key("icmp-error"), Key("rate")]),
        help: "ICMP errors the AFTR generates, per worker: 0-1000000 a second (0: no limit), burst 1-1000000; 1000, 50",
        action: Action::Edit {
            apply: |e, a| {
                let p = &mut e.config.protection;
                (p.icmp_errors_per_sec, p.icmp_errors_burst) = (a.number("PER-SECOND"), a.number("N"));
                Ok(())
            },
            undo: |e, _| {
                let d = Protection::default();
                let p = &mut e.config.protection;
                (p.icmp_errors_per_sec, p.icmp_errors_burst) = (d.icmp_errors_per_sec, d.icmp_errors_burst);
                Ok(())
            },
        },
        print: Print::Paragraph(|c, _| {
            let (p, d) = (c.protection, Protection::default());
            if (p.icmp_errors_per_sec, p.icmp_errors_burst) == (d.icmp_errors_per_sec, d.icmp_errors_burst) {
                return vec![];
            }
            vec![format!("icmp-error rate {} burst {}", p.icmp_errors_per_sec, p.icmp_errors_burst)]
        }),
    },
    Command {
        syntax: &[Key("port-block"), Key("hold-down"), number("SECONDS", "a hold-down in seconds", (0, 3600))],
        undo: Some(&[Key("port-block"), Key("hold-down")]),
        help: "a released port block waits this long before another subscriber gets it, 0-3600 s (RFC 6888 REQ-8: 120 at least); 120",
        action: Action::Edit {
            apply: |e, a| {
                e.config.protection.block_hold_down = a.number("SECONDS");
                Ok(())
            },
            undo: |e, _| {
                e.config.protection.block_hold_down = Protection::default().block_hold_down;
                Ok(())
            },
        },
        print: Print::Paragraph(|c, _| {
            let (p, d) = (c.protection, Protection::default());
            differs(p.block_hold_down, d.block_hold_down, "port-block hold-down")
        }),
    },
    Command {
        syntax: &[
            Key("nat"),
            Key("session-table"),
            Key("size"),
            number("SESSIONS", "sessions per worker", SESSION_TABLE),
        ],
        undo: Some(&[Key("nat"), Key("session-table"), Key("size")]),
        help: "room for this many sessions on each worker of every board, 1024-16777216; 65536 (a commit resizes running boards, ending what no longer fits)",
        action: Action::Edit {
            apply: |e, a| {
                e.config.capacity.sessions = a.number("SESSIONS");
                Ok(())
            },
            undo: |e, _| {
                e.config.capacity.sessions = Capacity::default().sessions;
                Ok(())
            },
        },
        print: Print::Paragraph(|c, _| {
            differs(c.capacity.sessions, Capacity::default().sessions, "nat session-table size")
        }),
    },
    Command {
        syntax: &[
            Key("nat"),
            Key("subscriber-table"),
            Key("size"),
            number("SUBSCRIBERS", "subscribers per worker", SUBSCRIBER_TABLE),
        ],
        undo: Some(&[Key("nat"), Key("subscriber-table"), Key("size")]),
        help: "room for this many B4s on each worker of every board, 256-4194304; 16384",
        action: Action::Edit {
            apply: |e, a| {
                e.config.capacity.subscribers = a.number("SUBSCRIBERS");
                Ok(())
            },
            undo: |e, _| {
                e.config.capacity.subscribers = Capacity::default().subscribers;
                Ok(())
            },
        },
        print: Print::Paragraph(|c, _| {
            differs(c.capacity.subscribers, Capacity::default().subscribers, "nat subscriber-table size")
        }),
    },
];

/// Sessions a worker may have room for: a session's index is 32 bits, and 16 M of 40
/// bytes each (plus their indexes) is about a gigabyte per worker.
const SESSION_TABLE: (u32, u32) = (1024, 1 << 24);
const SUBSCRIBER_TABLE: (u32, u32) = (256, 1 << 22);

const INSTANCE: &[Word] = &[
    Key("ds-lite"),
    Key("instance"),
    name("NAME", "a DS-Lite instance name"),
    Optional(&[Key("id"), number("ID", "an instance ID", (1, 255))]),
];
const LOG_HOST: &[Word] = &[
    Key("nat"),
    Key("log"),
    Key("host"),
    ip("ADDRESS", "a collector's address"),
    number("PORT", "the collector's port", (1, 65535)),
    Optional(&[Key("source"), ip("SOURCE", "the address to send from"), Optional(&[Key("port"), SOURCE_PORT])]),
    Optional(&[Key("type"), Choice(&[&[Key("syslog-udp")], &[Key("syslog-tcp")], &[Key("ipfix")]])]),
];
const SOURCE_PORT: Word = number("SOURCE-PORT", "the port to send from", (1, 65535));
const LOG_HOST_UNDO: &[Word] = &[
    Key("nat"),
    Key("log"),
    Key("host"),
    ip("ADDRESS", "a collector's address"),
    number("PORT", "the collector's port", (1, 65535)),
];
const SYSLOG: &[Word] = &[
    Key("nat"),
    Key("log"),
    Key("syslog"),
    ip("ADDRESS", "a syslog server"),
    Optional(&[Key("port"), number("PORT", "a port", (1, 65535))]),
    Optional(&[Key("transport"), Choice(&[&[Key("udp")], &[Key("tcp")]])]),
];
pub(super) const METRICS: &[Word] = &[Key("metrics"), Key("http"), METRICS_AT, Key("port"), METRICS_PORT];
pub(super) const METRICS_UNDO: &[Word] =
    &[Key("metrics"), Key("http"), Optional(&[METRICS_AT, Key("port"), METRICS_PORT])];
const METRICS_AT: Word = ip("ADDRESS", "the address to serve metrics on");
const METRICS_PORT: Word = number("PORT", "a TCP port", (1, 65535));

fn syslog(a: &super::Args) -> LogHost {
    let port = if a.has("PORT") { a.number("PORT") as u16 } else { SYSLOG_PORT };
    let format = if a.has("tcp") { LogFormat::SyslogTcp } else { LogFormat::SyslogUdp };
    LogHost { addr: SocketAddr::new(a.ip("ADDRESS"), port), format, source: None }
}

/// Adds a collector, replacing the one at the same address and port.
fn add_log_host(e: &mut super::Edit, host: LogHost) {
    let hosts = &mut e.config.nat_log.hosts;
    hosts.retain(|x| x.addr != host.addr);
    hosts.push(host);
}

fn set(switch: &mut bool, on: bool) -> Result<(), ConfigError> {
    *switch = on;
    Ok(())
}

/// `nat log EVENT enable`, which sets or (undo) clears one switch.
const fn log_event(
    syntax: &'static [Word],
    help: &'static str,
    apply: super::EditFn,
    undo: super::EditFn,
    print: Print,
) -> Command {
    Command { syntax, undo: Some(syntax), help, action: Action::Edit { apply, undo }, print }
}

/// `KEYWORDS VALUE` where the value is not the default.
pub(super) fn differs<T: PartialEq + std::fmt::Display>(v: T, default: T, keywords: &str) -> Vec<String> {
    if v == default { vec![] } else { vec![format!("{keywords} {v}")] }
}
