//! The slot view's commands: a board's host, worker cores, interfaces, HA channel
//! address, how its workers move packets, where its metrics are served and where it
//! keeps its routes.

use std::net::SocketAddr;

use super::Word::*;
use super::{Action, Arg, Command, Edit, Kind, Print, View, Word};
use crate::config::*;
use crate::error::ConfigError;

/// The HA channel's default port (its witness heartbeats use the next one). IANA never
/// assigns ports 49152-65535 (RFC 6335 section 6), so no registered protocol uses it,
/// and it is above Linux's ephemeral range (32768-60999), so no local client gets it.
/// 4789, the default before, is VXLAN's.
const HA_PORT: u16 = 62000;
const CORE: Arg = Arg { name: "CORE", what: "a CPU core", kind: Kind::Number { min: 0, max: 1023 } };
const IFNAME: Word = Arg(Arg { name: "IFNAME", what: "an interface name", kind: Kind::Name });

impl Edit<'_> {
    /// The slot of the current view.
    fn slot(&mut self) -> Result<&mut Slot, ConfigError> {
        let gone = self.gone();
        let View::Slot(id) = self.view else { return Err(gone) };
        self.config.slots.get_mut(&id).ok_or(gone)
    }
}

/// The lines of the slot of view `v`.
fn print(c: &Config, v: &View, f: impl Fn(&Slot) -> Vec<String>) -> Vec<String> {
    match v {
        View::Slot(id) => c.slots.get(id).map(f).unwrap_or_default(),
        _ => vec![],
    }
}

pub static COMMANDS: &[Command] = &[
    Command {
        syntax: &[Key("host"), Arg(Arg { name: "NAME", what: "a host name", kind: Kind::Name })],
        undo: Some(&[Key("host")]),
        help: "the machine the board runs on; cores are per host",
        action: Action::Edit {
            apply: |e, a| {
                e.slot()?.host = Some(a.text("NAME"));
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.host = None;
                Ok(())
            },
        },
        print: Print::Lines(|c, v| print(c, v, |s| s.host.iter().map(|h| format!("host {h}")).collect())),
    },
    Command {
        syntax: &[Key("worker-cores"), Repeated(CORE)],
        undo: Some(&[Key("worker-cores")]),
        help: "one worker per core, pinned",
        action: Action::Edit {
            apply: |e, a| {
                let mut cores = Vec::new();
                for (c, pos) in a.numbers("CORE") {
                    if cores.contains(&c) {
                        return Err(ConfigError::at(pos, format!("core {c} is listed twice")));
                    }
                    cores.push(c);
                }
                e.slot()?.cores = cores;
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.cores.clear();
                Ok(())
            },
        },
        print: Print::Lines(|c, v| {
            print(c, v, |s| {
                let cores: Vec<String> = s.cores.iter().map(|c| c.to_string()).collect();
                if cores.is_empty() { vec![] } else { vec![format!("worker-cores {}", cores.join(" "))] }
            })
        }),
    },
    Command {
        syntax: &[Key("interface"), Key("softwire"), IFNAME],
        undo: Some(&[Key("interface"), Key("softwire")]),
        help: "the interface towards the B4s",
        action: Action::Edit {
            apply: |e, a| {
                e.slot()?.softwire_if = Some(a.text("IFNAME"));
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.softwire_if = None;
                Ok(())
            },
        },
        print: Print::Lines(|c, v| {
            print(c, v, |s| s.softwire_if.iter().map(|i| format!("interface softwire {i}")).collect())
        }),
    },
    Command {
        syntax: &[Key("interface"), Key("internet"), IFNAME],
        undo: Some(&[Key("interface"), Key("internet")]),
        help: "the interface towards the Internet",
        action: Action::Edit {
            apply: |e, a| {
                e.slot()?.internet_if = Some(a.text("IFNAME"));
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.internet_if = None;
                Ok(())
            },
        },
        print: Print::Lines(|c, v| {
            print(c, v, |s| s.internet_if.iter().map(|i| format!("interface internet {i}")).collect())
        }),
    },
    Command {
        syntax: &[
            Key("ha-address"),
            Arg(Arg { name: "ADDRESS", what: "the HA channel address", kind: Kind::Ip }),
            Optional(&[
                Key("port"),
                Arg(Arg { name: "PORT", what: "a UDP port", kind: Kind::Number { min: 1, max: 65535 } }),
            ]),
        ],
        undo: Some(&[Key("ha-address")]),
        help: "where this board's HA channel listens; port 62000",
        action: Action::Edit {
            apply: |e, a| {
                let port = if a.has("PORT") { a.number("PORT") as u16 } else { HA_PORT };
                e.slot()?.ha_address = Some(SocketAddr::new(a.ip("ADDRESS"), port));
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.ha_address = None;
                Ok(())
            },
        },
        print: Print::Lines(|c, v| {
            print(c, v, |s| s.ha_address.iter().map(|a| format!("ha-address {} port {}", a.ip(), a.port())).collect())
        }),
    },
    Command {
        syntax: &[
            Key("packet-io"),
            Choice(&[
                &[Key("auto")],
                &[Key("af-xdp"), Optional(&[Choice(&[&[Key("native")], &[Key("generic")]])])],
                &[Key("af-packet")],
            ]),
        ],
        undo: Some(&[Key("packet-io")]),
        help: "AF_XDP, AF_PACKET, or AF_XDP where it attaches (auto, the default)",
        action: Action::Edit {
            apply: |e, a| {
                e.slot()?.packet_io = match () {
                    _ if a.has("native") => PacketIo::AfXdp(XdpMode::Native),
                    _ if a.has("generic") => PacketIo::AfXdp(XdpMode::Generic),
                    _ if a.has("af-xdp") => PacketIo::AfXdp(XdpMode::Auto),
                    _ if a.has("af-packet") => PacketIo::AfPacket,
                    _ => PacketIo::Auto,
                };
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.packet_io = PacketIo::Auto;
                Ok(())
            },
        },
        print: Print::Lines(|c, v| {
            print(c, v, |s| match s.packet_io {
                PacketIo::Auto => vec![],
                PacketIo::AfXdp(XdpMode::Auto) => vec!["packet-io af-xdp".into()],
                PacketIo::AfXdp(m) => vec![format!("packet-io af-xdp {m}")],
                PacketIo::AfPacket => vec!["packet-io af-packet".into()],
            })
        }),
    },
    Command {
        syntax: &[Key("packet-poll"), Choice(&[&[Key("busy")], &[Key("blocking")]])],
        undo: Some(&[Key("packet-poll")]),
        help: "AF_XDP workers spin on their rings (busy, the default) or sleep in poll(2)",
        action: Action::Edit {
            apply: |e, a| {
                e.slot()?.poll = if a.has("blocking") { PollMode::Block } else { PollMode::Busy };
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.poll = PollMode::Busy;
                Ok(())
            },
        },
        print: Print::Lines(|c, v| {
            print(c, v, |s| if s.poll == PollMode::Block { vec!["packet-poll blocking".into()] } else { vec![] })
        }),
    },
    Command {
        syntax: super::system::METRICS,
        undo: Some(super::system::METRICS_UNDO),
        help: "serve this board's Prometheus metrics at /metrics (instead of the system view's)",
        action: Action::Edit {
            apply: |e, a| {
                e.slot()?.metrics = Some(SocketAddr::new(a.ip("ADDRESS"), a.number("PORT") as u16));
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.metrics = None;
                Ok(())
            },
        },
        print: Print::Lines(|c, v| {
            print(c, v, |s| s.metrics.iter().map(|m| format!("metrics http {} port {}", m.ip(), m.port())).collect())
        }),
    },
    Command {
        syntax: &[
            Key("route-table"),
            Arg(Arg { name: "TABLE", what: "a kernel routing table", kind: Kind::Number { min: 1, max: u32::MAX } }),
        ],
        undo: Some(&[Key("route-table")]),
        help: "while active, keep routes to the endpoints and pool shares in this kernel table, for BGP",
        action: Action::Edit {
            apply: |e, a| {
                let Some((table, pos)) = a.numbers("TABLE").next() else { return Err(e.gone()) };
                if (253..=255).contains(&table) {
                    let name = ["default", "main", "local"][(table - 253) as usize];
                    return Err(ConfigError::at(
                        pos,
                        format!("table {table} is the kernel's `{name}` table; choose another"),
                    ));
                }
                e.slot()?.route_table = Some(table);
                Ok(())
            },
            undo: |e, _| {
                e.slot()?.route_table = None;
                Ok(())
            },
        },
        print: Print::Lines(|c, v| print(c, v, |s| s.route_table.iter().map(|t| format!("route-table {t}")).collect())),
    },
];
