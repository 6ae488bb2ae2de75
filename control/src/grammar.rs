//! The configuration language as data: one table of commands per view. Each command
//! names its keywords and values, its help, how it changes the candidate (and its
//! `undo`) and how it prints from a [`Config`]; parsing (`parse`), the `?` help,
//! completion and `display` are all read from these tables, so they cannot drift.

mod address_group;
mod instance;
mod location;
mod matcher;
mod session;
mod slot;
mod system;
pub mod words;

use crate::config::{Config, Pos};
use crate::error::{ConfigError, Positions};
pub use matcher::{Found, find};
use words::Value;

/// Where the editor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// `<aftr>`: before `system-view`.
    User,
    /// `[aftr]`.
    System,
    Slot(u32),
    Location(u32),
    Group(String),
    AddressGroup(String),
    DsLite(String),
}

impl View {
    /// The prompt suffix routers show, e.g. `-service-location-1`.
    pub fn prompt(&self) -> String {
        match self {
            View::User | View::System => String::new(),
            View::Slot(n) => format!("-slot-{n}"),
            View::Location(n) => format!("-service-location-{n}"),
            View::Group(g) => format!("-service-instance-group-{g}"),
            View::AddressGroup(g) => format!("-ds-lite-address-group-{g}"),
            View::DsLite(i) => format!("-ds-lite-instance-{i}"),
        }
    }
}

/// One word of a command's syntax.
#[derive(Debug)]
pub enum Word {
    /// A keyword, typed as it is.
    Key(&'static str),
    /// A value.
    Arg(Arg),
    /// `[ ... ]`. When it starts with a keyword, it is taken if that keyword comes
    /// next; otherwise it is taken if any word is left.
    Optional(&'static [Word]),
    /// `{ a ... | b ... }`: the alternative whose first keyword comes next; an
    /// alternative that starts with a value is taken when no keyword matches.
    Choice(&'static [&'static [Word]]),
    /// `ARG [ ARG ... ]`: one value or more, to the end of the command.
    Repeated(Arg),
}

/// A value of a command: its placeholder in the syntax, what it is (for errors), kind.
#[derive(Debug, Clone, Copy)]
pub struct Arg {
    pub name: &'static str,
    pub what: &'static str,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Number {
        min: u32,
        max: u32,
    },
    PowerOfTwo {
        min: u32,
        max: u32,
    },
    /// 1-31 letters, digits, `-`, `_`, `.`.
    Name,
    /// Any word of `min` to `max` bytes.
    Text {
        min: usize,
        max: usize,
    },
    /// A secret: any word of `min` to `max` characters, or the mask displays print for
    /// one. No error quotes it.
    Secret {
        min: usize,
        max: usize,
    },
    /// An absolute path: a word that starts with `/`, up to 4096 bytes.
    Path,
    Ipv4,
    Ipv6,
    Ip,
}

/// A change of the candidate: `Edit` gives the configuration, the view the command was
/// typed in and the values typed.
pub type EditFn = fn(&mut Edit, &Args) -> Result<(), ConfigError>;

/// What running a command does.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Changes the candidate configuration.
    Edit { apply: EditFn, undo: EditFn },
    /// Acts on the session (views, commit, display): see `parse::Session`.
    Session(SessionCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCommand {
    SystemView,
    Quit,
    Return,
    Commit,
    /// `display current-configuration`: the running configuration.
    DisplayRunning,
    /// `display candidate-configuration`: the candidate with this session's changes.
    DisplayCandidate,
    /// A request the daemon answers (`display statistics`, `reset session`, ...): the
    /// session only passes it on, in full form.
    Daemon,
    /// `save`: the daemon writes its running configuration to its file.
    Save,
}

/// How a command appears in a printed configuration.
#[derive(Debug, Clone, Copy)]
pub enum Print {
    /// Its lines in the view (none where the configuration has the default).
    Lines(fn(&Config, &View) -> Vec<String>),
    /// Lines that may hold a secret: masked in displays, in clear (`true`) in what
    /// `save` writes.
    Secret(fn(&Config, bool) -> Vec<String>),
    /// Its lines, then `#` if anything was printed since the last `#`.
    Paragraph(fn(&Config, &View) -> Vec<String>),
    /// One block per object: the line that opens the object's view, and that view.
    Blocks(fn(&Config) -> Vec<(String, View)>),
    /// Not part of a configuration.
    Never,
}

/// One command of a view.
#[derive(Debug)]
pub struct Command {
    pub syntax: &'static [Word],
    /// The words after `undo`, if the command has an undo form.
    pub undo: Option<&'static [Word]>,
    pub help: &'static str,
    pub action: Action,
    pub print: Print,
}

/// The commands of `view` itself, in the order they print.
pub fn table(view: &View) -> &'static [Command] {
    match view {
        View::User => &[],
        View::System => system::COMMANDS,
        View::Slot(_) => slot::COMMANDS,
        View::Location(_) => location::LOCATION,
        View::Group(_) => location::GROUP,
        View::AddressGroup(_) => address_group::COMMANDS,
        View::DsLite(_) => instance::COMMANDS,
    }
}

/// The tables a line typed in `view` is looked up in, first match first: the session
/// commands, the view's own, then (as routers do) the system view's, so that a printed
/// configuration reads back without `quit`s.
pub fn tables(view: &View) -> Vec<&'static [Command]> {
    match view {
        View::User => vec![session::ANY_VIEW],
        View::System => vec![session::ANY_VIEW, session::CONFIGURING, system::COMMANDS],
        v => vec![session::ANY_VIEW, session::CONFIGURING, table(v), system::COMMANDS],
    }
}

/// The commands `?` lists in `view`: the session commands and the view's own.
pub fn commands(view: &View) -> impl Iterator<Item = &'static Command> {
    let mut t = tables(view);
    if !matches!(view, View::User | View::System) {
        t.pop();
    }
    t.into_iter().flatten()
}

/// The `?` help of `view`: one line per command, its syntax and what it does.
pub fn help(view: &View) -> Vec<String> {
    commands(view).map(|c| format!("{:<56} {}", syntax(c.syntax), c.help)).collect()
}

/// What may come after `line` in `view`: keywords, value placeholders (`NAME`) and
/// `<cr>` where the command may end. If `line` ends inside a word, only the keywords
/// that start with it.
pub fn complete(view: &View, line: &str) -> Vec<String> {
    let toks = words::tokenize(line);
    let partial = match toks.last() {
        Some(t) if !line.ends_with(char::is_whitespace) => t.text,
        _ => "",
    };
    let whole = if partial.is_empty() { &toks[..] } else { &toks[..toks.len() - 1] };
    let mut wanted = matcher::wanted(view, whole);
    if !partial.is_empty() {
        wanted.retain(|w| w.starts_with(partial) && w != "<cr>" && !w.starts_with(char::is_uppercase));
    }
    wanted
}

/// The line in full form: each keyword as the tables spell it (`dis cur` becomes
/// `display current-configuration`), the values as typed; or why the line is not a
/// command of `view` (an ambiguous abbreviation names the keywords it begins).
pub fn expand(view: &View, line: &str) -> Result<String, ConfigError> {
    let toks = words::tokenize(line);
    if toks.is_empty() {
        return Ok(String::new());
    }
    let found = find(view, &toks, 1, line.chars().count() + 1)?;
    let full: Vec<&str> =
        toks.iter().enumerate().map(|(i, t)| found.keys.iter().find(|k| k.0 == i).map_or(t.text, |k| k.1)).collect();
    Ok(full.join(" "))
}

/// The syntax as the `?` help shows it: `ds-lite instance NAME [ id ID ]`.
pub fn syntax(words: &[Word]) -> String {
    let one = |w: &Word| match w {
        Word::Key(k) => k.to_string(),
        Word::Arg(a) => a.name.to_string(),
        Word::Optional([Word::Choice(alts)]) => format!("[ {} ]", alternatives(alts)),
        Word::Optional(inner) => format!("[ {} ]", syntax(inner)),
        Word::Choice(alts) => format!("{{ {} }}", alternatives(alts)),
        Word::Repeated(a) => format!("{0} [ {0} ... ]", a.name),
    };
    words.iter().map(one).collect::<Vec<_>>().join(" ")
}

fn alternatives(alts: &[&[Word]]) -> String {
    alts.iter().map(|a| syntax(a)).collect::<Vec<_>>().join(" | ")
}

/// The values of a command as typed, by placeholder (keywords of a choice by name).
#[derive(Debug, Default)]
pub struct Args {
    values: Vec<(&'static str, Value, Pos)>,
}

impl Args {
    fn push(&mut self, name: &'static str, value: Value, pos: Pos) {
        self.values.push((name, value, pos));
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &(&'static str, Value, Pos)> {
        self.values.iter().filter(move |v| v.0 == name)
    }
    /// Whether the keyword or value `name` was typed.
    pub fn has(&self, name: &str) -> bool {
        self.all(name).next().is_some()
    }
    /// Where `name` was typed. The tables only ask for the values of their syntax.
    pub fn pos(&self, name: &str) -> Pos {
        self.all(name).next().map(|v| v.2).unwrap_or_else(|| missing(name))
    }
    pub fn number(&self, name: &str) -> u32 {
        self.numbers(name).next().map(|n| n.0).unwrap_or_else(|| missing(name))
    }
    pub fn numbers(&self, name: &str) -> impl Iterator<Item = (u32, Pos)> {
        self.all(name).filter_map(|v| match v.1 {
            Value::Number(n) => Some((n, v.2)),
            _ => None,
        })
    }
    pub fn text(&self, name: &str) -> String {
        match self.all(name).next() {
            Some((_, Value::Text(t), _)) => t.clone(),
            _ => missing(name),
        }
    }
    pub fn ipv4(&self, name: &str) -> std::net::Ipv4Addr {
        match self.all(name).next() {
            Some((_, Value::Ipv4(a), _)) => *a,
            _ => missing(name),
        }
    }
    pub fn ipv6(&self, name: &str) -> std::net::Ipv6Addr {
        match self.all(name).next() {
            Some((_, Value::Ipv6(a), _)) => *a,
            _ => missing(name),
        }
    }
    pub fn ip(&self, name: &str) -> std::net::IpAddr {
        match self.all(name).next() {
            Some((_, Value::Ip(a), _)) => *a,
            _ => missing(name),
        }
    }
}

/// A table asked for a value its syntax does not have: a bug of the table, which the
/// tests that run every command of every table catch.
fn missing(name: &str) -> ! {
    panic!("command table: no value `{name}` in this command's syntax")
}

/// What an [`EditFn`] works on.
pub struct Edit<'a> {
    pub config: &'a mut Config,
    pub positions: &'a mut Positions,
    /// The view the command was typed in.
    pub view: View,
    /// Where the command starts (after `undo`).
    pub at: Pos,
    /// The view the command opens, if it opens one.
    pub enter: Option<View>,
}

impl Edit<'_> {
    /// The object of the current view is gone (`undo` of it, or a discard).
    fn gone(&self) -> ConfigError {
        let what = match &self.view {
            View::User | View::System => "the object of this view".to_string(),
            View::Slot(n) => format!("slot {n}"),
            View::Location(n) => format!("service-location {n}"),
            View::Group(g) => format!("service-instance-group {g}"),
            View::AddressGroup(g) => format!("ds-lite address-group {g}"),
            View::DsLite(i) => format!("ds-lite instance {i}"),
        };
        ConfigError::at(self.at, format!("{what} no longer exists; `quit` to the system view"))
    }
}

#[cfg(test)]
mod tests;
