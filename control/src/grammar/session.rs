//! The session commands, valid in every view (the user view has only these): moving
//! between views, `display`, and `commit` once configuring. `parse::Session` runs them.

use super::Word::*;
use super::{Action, Arg, Command, Kind, Print, SessionCommand, Word};

const fn session(syntax: &'static [super::Word], help: &'static str, c: SessionCommand) -> Command {
    Command { syntax, undo: None, help, action: Action::Session(c), print: Print::Never }
}

const B4: Arg = Arg { name: "B4", what: "a B4's IPv6 address", kind: Kind::Ipv6 };
const INSIDE: Arg = Arg { name: "INSIDE", what: "a subscriber's inner IPv4 address", kind: Kind::Ipv4 };
const EXTERNAL: Arg = Arg { name: "EXTERNAL", what: "an external IPv4 address", kind: Kind::Ipv4 };
const PORT: Arg = Arg { name: "PORT", what: "an external port", kind: Kind::Number { min: 0, max: 65535 } };
const LOCATION: Arg = Arg { name: "ID", what: "a service-location id", kind: Kind::Number { min: 1, max: 128 } };
const INSTANCE: Arg = Arg { name: "NAME", what: "a ds-lite instance name", kind: Kind::Name };

/// The filters of `display sessions` and `reset session`, in this order.
const BY_B4: Word = Optional(&[Key("b4"), Arg(B4)]);
const BY_INSIDE: Word = Optional(&[Key("inside"), Arg(INSIDE)]);
const BY_EXTERNAL: Word = Optional(&[Key("external"), Arg(EXTERNAL)]);
const BY_PORT: Word = Optional(&[Key("port"), Arg(PORT)]);

const fn daemon(syntax: &'static [super::Word], help: &'static str) -> Command {
    session(syntax, help, SessionCommand::Daemon)
}

/// In every view, the user view included. The daemon's requests (`display plan`,
/// `reset session`, ...) are here too: aftrctl completes and abbreviates them from
/// this table, and the daemon reads its requests with it.
pub static ANY_VIEW: &[Command] = &[
    session(&[Key("system-view")], "enter the system view, to configure", SessionCommand::SystemView),
    session(
        &[Key("display"), Key("current-configuration")],
        "show the running configuration",
        SessionCommand::DisplayRunning,
    ),
    session(
        &[Key("display"), Key("candidate-configuration")],
        "show the candidate configuration (the running one and this session's changes)",
        SessionCommand::DisplayCandidate,
    ),
    daemon(&[Key("display"), Key("plan")], "show what each board does: locations, roles, pool shares"),
    daemon(
        &[Key("display"), Key("sessions"), BY_B4, BY_INSIDE, BY_EXTERNAL, BY_PORT],
        "show the NAT sessions, or those of a B4, an inner or external address, an external port",
    ),
    daemon(&[Key("display"), Key("subscribers")], "show the subscribers: external address, port blocks, sessions"),
    daemon(&[Key("display"), Key("statistics")], "show the packet path and the counters, in total and per worker"),
    daemon(
        &[Key("display"), Key("service-ha"), Optional(&[Key("global-information"), Optional(&[Key("delay-time")])])],
        "show hot backup: role, peer, sync, replication counters (global-information: the settings)",
    ),
    daemon(
        &[Key("display"), Key("service-location"), Optional(&[Arg(LOCATION)])],
        "show the service-locations: slots, role here, batch backup",
    ),
    daemon(
        &[Key("display"), Key("ds-lite"), Key("address-usage"), Optional(&[Key("instance"), Arg(INSTANCE)])],
        "show the use of each pool, per instance and location: addresses, port blocks, top subscribers",
    ),
    daemon(
        &[Key("reset"), Key("session"), BY_B4, BY_INSIDE, BY_EXTERNAL, BY_PORT],
        "end every NAT session, or those of a B4, an inner or external address, an external port",
    ),
    daemon(&[Key("reset"), Key("statistics")], "set the counters of `display statistics` to zero"),
    daemon(
        &[
            Key("switchover"),
            Optional(&[Choice(&[&[Key("service-location"), Arg(LOCATION)], &[Key("location"), Arg(LOCATION)]])]),
        ],
        "hand over the role of every location (or of one) to the peer, or take it",
    ),
    session(&[Key("quit")], "back one view; from the user view, leave", SessionCommand::Quit),
    session(
        &[Key("save")],
        "write the running configuration to the daemon's file (the previous one kept as FILE.bak)",
        SessionCommand::Save,
    ),
    session(&[Key("return")], "back to the user view", SessionCommand::Return),
];

/// In every view but the user view.
pub static CONFIGURING: &[Command] =
    &[session(&[Key("commit")], "check the candidate and make it the running configuration", SessionCommand::Commit)];
