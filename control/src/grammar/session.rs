//! The session commands, valid in every view (the user view has only these): moving
//! between views, `display`, and `commit` once configuring. `parse::Session` runs them.

use super::Word::*;
use super::{Action, Command, Print, SessionCommand};

const fn session(syntax: &'static [super::Word], help: &'static str, c: SessionCommand) -> Command {
    Command { syntax, undo: None, help, action: Action::Session(c), print: Print::Never }
}

/// In every view, the user view included.
pub static ANY_VIEW: &[Command] = &[
    session(&[Key("system-view")], "enter the system view, to configure", SessionCommand::SystemView),
    session(
        &[Key("display"), Choice(&[&[Key("current-configuration")], &[Key("candidate-configuration")]])],
        "show the running or the candidate configuration",
        SessionCommand::Display,
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
