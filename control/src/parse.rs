//! The configuration language: router-style commands in views (see `control/README.md`
//! for the grammar). An editing [`Session`] applies commands to a candidate
//! configuration; `commit` checks the candidate as a whole and makes it the running
//! one, or changes nothing. A command not known in the current view is tried in the
//! system view, as routers do, so a printed configuration reads back without `quit`s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::*;
pub use crate::error::{ConfigError, Positions};
use crate::validate;

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

/// What a command asks of the one who runs the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Committed,
    /// `display ...`: text to show.
    Display(String),
    /// `quit` or `return` from the system or user view: the session ends.
    Exit,
}

/// An editing session: running and candidate configuration and the current view.
#[derive(Debug, Clone)]
pub struct Session {
    pub running: Config,
    pub candidate: Config,
    pub view: View,
    pub positions: Positions,
    running_positions: Positions,
}

struct Tok<'a> {
    col: usize,
    text: &'a str,
}

/// The words of a line with their columns (1-based).
fn tokenize(line: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(Tok { col: line[..s].chars().count() + 1, text: &line[s..i] });
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Tok { col: line[..s].chars().count() + 1, text: &line[s..] });
    }
    out
}

/// A cursor over a command's words, producing errors that point at the right word.
struct Words<'a, 'b> {
    toks: &'b [Tok<'a>],
    at: usize,
    line: usize,
    end_col: usize,
}

impl<'a> Words<'a, '_> {
    fn pos(&self) -> Pos {
        let column = self.toks.get(self.at).map(|t| t.col).unwrap_or(self.end_col);
        Pos { line: self.line, column }
    }
    fn err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.pos(), msg)
    }
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.at).map(|t| t.text)
    }
    fn next(&mut self, what: &str) -> Result<&'a str, ConfigError> {
        match self.toks.get(self.at) {
            Some(t) => {
                self.at += 1;
                Ok(t.text)
            }
            None => Err(self.err(format!("incomplete command: expected {what}"))),
        }
    }
    /// The next word, which must be one of `choices`.
    fn one_of(&mut self, choices: &[&'static str]) -> Result<&'static str, ConfigError> {
        let listed: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
        let what = match listed.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        let pos = self.pos();
        let w = self.next(&what)?;
        choices
            .iter()
            .find(|c| **c == w)
            .copied()
            .ok_or_else(|| ConfigError::at(pos, format!("expected {what}, found `{w}`")))
    }
    fn keyword(&mut self, kw: &str) -> Result<(), ConfigError> {
        match self.peek() {
            Some(w) if w == kw => {
                self.at += 1;
                Ok(())
            }
            Some(w) => Err(self.err(format!("expected `{kw}`, found `{w}`"))),
            None => Err(self.err(format!("incomplete command: expected `{kw}`"))),
        }
    }
    fn eat(&mut self, kw: &str) -> bool {
        if self.peek() == Some(kw) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn number(&mut self, what: &str, range: (u32, u32)) -> Result<u32, ConfigError> {
        let pos = self.pos();
        let w = self.next(&format!("{what} ({}-{})", range.0, range.1))?;
        match w.parse::<u32>() {
            Ok(v) if v >= range.0 && v <= range.1 => Ok(v),
            _ => Err(ConfigError::at(pos, format!("expected {what} from {} to {}, found `{w}`", range.0, range.1))),
        }
    }
    fn name(&mut self, what: &str) -> Result<String, ConfigError> {
        let pos = self.pos();
        let w = self.next(what)?;
        let ok = w.len() <= 31 && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(ConfigError::at(
                pos,
                format!("expected {what} (1-31 letters, digits, `-`, `_`, `.`), found `{w}`"),
            ));
        }
        Ok(w.to_string())
    }
    fn ipv4(&mut self, what: &str) -> Result<Ipv4Addr, ConfigError> {
        let pos = self.pos();
        let w = self.next(what)?;
        w.parse().map_err(|_| ConfigError::at(pos, format!("expected {what} (an IPv4 address), found `{w}`")))
    }
    fn ipv6(&mut self, what: &str) -> Result<Ipv6Addr, ConfigError> {
        let pos = self.pos();
        let w = self.next(what)?;
        w.parse().map_err(|_| ConfigError::at(pos, format!("expected {what} (an IPv6 address), found `{w}`")))
    }
    fn ip(&mut self, what: &str) -> Result<IpAddr, ConfigError> {
        let pos = self.pos();
        let w = self.next(what)?;
        w.parse().map_err(|_| ConfigError::at(pos, format!("expected {what} (an IP address), found `{w}`")))
    }
    fn end(&self) -> Result<(), ConfigError> {
        match self.peek() {
            None => Ok(()),
            Some(w) => Err(self.err(format!("unexpected `{w}` at the end of the command"))),
        }
    }
}

/// Commands of each view, for `?` help and for "expected" messages.
pub fn commands_of(view: &View) -> &'static [&'static str] {
    match view {
        View::User => &["system-view", "display current-configuration", "display candidate-configuration", "quit"],
        View::System => &[
            "sysname NAME",
            "service-ha hot-backup enable",
            "service-ha delay-time SECONDS",
            "service-ha preempt-time SECONDS",
            "service-ha preshared-key KEY",
            "service-ha heartbeat interval MILLISECONDS dead-count N",
            "slot ID",
            "service-location ID",
            "service-instance-group NAME",
            "ds-lite address-group NAME",
            "ds-lite instance NAME [ id ID ]",
            "nat log syslog ADDRESS [ port PORT ]",
            "metrics http ADDRESS port PORT",
            "undo COMMAND",
            "commit",
            "display current-configuration | candidate-configuration",
            "quit",
            "return",
        ],
        View::Slot(_) => &[
            "host NAME",
            "worker-cores CORE [ CORE ... ]",
            "interface softwire IFNAME",
            "interface internet IFNAME",
            "ha-address ADDRESS [ port PORT ]",
            "packet-io auto | af-xdp [ native | generic ] | af-packet",
            "packet-poll busy | blocking",
            "undo COMMAND",
            "quit",
        ],
        View::Location(_) => &["location slot SLOT backup slot SLOT", "undo location", "quit"],
        View::Group(_) => &["service-location ID [ weight WEIGHT ]", "undo service-location ID", "quit"],
        View::AddressGroup(_) => {
            &["section ID FIRST-ADDRESS LAST-ADDRESS", "section ID ADDRESS mask LENGTH", "undo section ID", "quit"]
        }
        View::DsLite(_) => &[
            "service-instance-group NAME",
            "local-ipv6 ADDRESS",
            "remote-ipv6 PREFIX prefix-length LENGTH",
            "ds-lite address-group NAME",
            "port-block-size PORTS",
            "port-block-limit BLOCKS",
            "session-limit SESSIONS",
            "new-session-rate PER-SECOND",
            "aging-time { udp | tcp | tcp-transitory | icmp } SECONDS",
            "tunnel-mtu BYTES",
            "mss-clamp enable",
            "filtering { endpoint-independent | address-and-port-dependent }",
            "hop-limit HOPS",
            "inner-source public permit",
            "undo COMMAND",
            "quit",
        ],
    }
}

enum Step {
    Outcome(Outcome),
    /// Not a command of this view.
    Unknown,
}

impl Session {
    pub fn new(running: Config) -> Self {
        Session {
            candidate: running.clone(),
            running,
            view: View::User,
            positions: Positions::new(),
            running_positions: Positions::new(),
        }
    }

    /// Runs one line typed or read at `line_no`.
    pub fn execute(&mut self, line_no: usize, line: &str) -> Result<Outcome, ConfigError> {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            return Ok(Outcome::Done);
        }
        let toks = tokenize(line);
        let end_col = line.chars().count() + 1;
        let mut w = Words { toks: &toks, at: 0, line: line_no, end_col };
        // Session commands, valid in every view.
        match w.peek() {
            Some("display") => {
                w.at += 1;
                let what = w.next("`current-configuration` or `candidate-configuration`")?;
                let text = match what {
                    "current-configuration" => crate::display::render(&self.running),
                    "candidate-configuration" => crate::display::render(&self.candidate),
                    _ => {
                        return Err(ConfigError::at(
                            Pos { line: line_no, column: toks[1].col },
                            format!("expected `current-configuration` or `candidate-configuration`, found `{what}`"),
                        ));
                    }
                };
                w.end()?;
                return Ok(Outcome::Display(text));
            }
            Some("system-view") => {
                w.at += 1;
                w.end()?;
                if self.view == View::User {
                    self.view = View::System;
                }
                return Ok(Outcome::Done);
            }
            Some("return") => {
                w.at += 1;
                w.end()?;
                let was_user = self.view == View::User;
                self.view = View::User;
                return Ok(if was_user { Outcome::Exit } else { Outcome::Done });
            }
            Some("quit") => {
                w.at += 1;
                w.end()?;
                self.view = match self.view {
                    View::User => return Ok(Outcome::Exit),
                    View::System => View::User,
                    _ => View::System,
                };
                return Ok(Outcome::Done);
            }
            Some("commit") if self.view != View::User => {
                w.at += 1;
                w.end()?;
                self.commit().map_err(|mut e| e.remove(0))?;
                return Ok(Outcome::Committed);
            }
            _ => {}
        }
        if self.view == View::User {
            return Err(w.err(format!(
                "unknown command `{}` in the user view; `system-view` enters configuration",
                toks[0].text
            )));
        }
        // The candidate is only changed by a command that succeeds.
        let saved = (self.candidate.clone(), self.positions.clone());
        let view = self.view.clone();
        let r = match self.in_view(&view, &mut w) {
            Ok(Step::Unknown) if view != View::System => {
                w.at = 0;
                match self.in_view(&View::System, &mut w) {
                    Ok(Step::Unknown) => Err(unknown(&toks, line_no, &view)),
                    other => other,
                }
            }
            Ok(Step::Unknown) => Err(unknown(&toks, line_no, &view)),
            other => other,
        };
        match r {
            Ok(Step::Outcome(o)) => Ok(o),
            Ok(Step::Unknown) => unreachable!("handled above"),
            Err(e) => {
                (self.candidate, self.positions) = saved;
                Err(e)
            }
        }
    }

    /// Checks the candidate; makes it the running configuration if it is valid.
    pub fn commit(&mut self) -> Result<(), Vec<ConfigError>> {
        validate::validate(&self.candidate, &self.positions)?;
        self.running = self.candidate.clone();
        self.running_positions = self.positions.clone();
        Ok(())
    }

    /// Throws the candidate's changes away.
    pub fn discard(&mut self) {
        self.candidate = self.running.clone();
        self.positions = self.running_positions.clone();
    }

    /// Uncommitted changes?
    pub fn dirty(&self) -> bool {
        self.candidate != self.running
    }

    fn here(w: &Words, at: usize) -> Pos {
        Pos { line: w.line, column: w.toks.get(at).map(|t| t.col).unwrap_or(1) }
    }

    fn in_view(&mut self, view: &View, w: &mut Words) -> Result<Step, ConfigError> {
        let undo = w.eat("undo");
        let first = w.at;
        let Some(word) = w.peek() else {
            return Err(w.err("incomplete command after `undo`"));
        };
        let done = Ok(Step::Outcome(Outcome::Done));
        match view {
            View::User => Ok(Step::Unknown),
            View::System => match word {
                "sysname" => {
                    w.at += 1;
                    self.candidate.sysname = if undo { None } else { Some(w.name("a system name")?) };
                    w.end()?;
                    done
                }
                "service-ha" => {
                    w.at += 1;
                    let what = w.next("`hot-backup`, `delay-time`, `preempt-time`, `preshared-key` or `heartbeat`")?;
                    let ha = &mut self.candidate.ha;
                    match what {
                        "hot-backup" => {
                            w.keyword("enable")?;
                            ha.hot_backup = !undo;
                        }
                        "delay-time" => {
                            ha.delay_time = if undo && w.peek().is_none() {
                                DEFAULT_DELAY_TIME
                            } else {
                                w.number("a delay time in seconds", DELAY_TIME_RANGE)?
                            };
                            if undo {
                                ha.delay_time = DEFAULT_DELAY_TIME;
                            }
                        }
                        "preempt-time" => {
                            ha.preempt_time = if undo && w.peek().is_none() {
                                DEFAULT_PREEMPT_TIME
                            } else {
                                w.number("a preemption delay in seconds", PREEMPT_TIME_RANGE)?
                            };
                            if undo {
                                ha.preempt_time = DEFAULT_PREEMPT_TIME;
                            }
                        }
                        "preshared-key" => {
                            ha.key = if undo {
                                None
                            } else {
                                let pos = w.pos();
                                let k = w.next("a key")?;
                                if k.len() < 8 || k.len() > 128 {
                                    return Err(ConfigError::at(pos, "expected a key of 8 to 128 characters"));
                                }
                                Some(k.to_string())
                            };
                        }
                        "heartbeat" => {
                            if undo {
                                let d = Ha::default();
                                (ha.heartbeat_ms, ha.dead_count) = (d.heartbeat_ms, d.dead_count);
                            } else {
                                w.keyword("interval")?;
                                ha.heartbeat_ms = w.number("a heartbeat interval in milliseconds", (10, 10_000))?;
                                w.keyword("dead-count")?;
                                ha.dead_count = w.number("a number of missed heartbeats", (2, 100))?;
                            }
                        }
                        other => {
                            return Err(ConfigError::at(
                                Self::here(w, first + 1),
                                format!(
                                    "expected `hot-backup`, `delay-time`, `preempt-time`, `preshared-key` or `heartbeat`, found `{other}`"
                                ),
                            ));
                        }
                    }
                    w.end()?;
                    done
                }
                "slot" => {
                    w.at += 1;
                    let id = w.number("a slot number", (1, 64))?;
                    w.end()?;
                    if undo {
                        self.candidate.slots.remove(&id);
                        return done;
                    }
                    self.candidate.slots.entry(id).or_default();
                    self.positions.insert(format!("slot {id}"), Self::here(w, first));
                    self.view = View::Slot(id);
                    done
                }
                "service-location" => {
                    w.at += 1;
                    let id = w.number("a service-location ID", (1, 128))?;
                    w.end()?;
                    if undo {
                        self.candidate.locations.remove(&id);
                        return done;
                    }
                    self.candidate.locations.entry(id).or_default();
                    self.positions.insert(format!("service-location {id}"), Self::here(w, first));
                    self.view = View::Location(id);
                    done
                }
                "service-instance-group" => {
                    w.at += 1;
                    let name = w.name("a service-instance group name")?;
                    w.end()?;
                    if undo {
                        self.candidate.groups.remove(&name);
                        return done;
                    }
                    self.candidate.groups.entry(name.clone()).or_default();
                    self.positions.insert(format!("service-instance-group {name}"), Self::here(w, first));
                    self.view = View::Group(name);
                    done
                }
                "ds-lite" => {
                    w.at += 1;
                    match w.next("`instance` or `address-group`")? {
                        "instance" => {
                            let name = w.name("a DS-Lite instance name")?;
                            let id = if w.eat("id") { Some(w.number("an instance ID", (1, 255))?) } else { None };
                            w.end()?;
                            if undo {
                                self.candidate.instances.remove(&name);
                                return done;
                            }
                            let inst = self.candidate.instances.entry(name.clone()).or_default();
                            if id.is_some() {
                                inst.id = id;
                            }
                            self.positions.insert(format!("ds-lite instance {name}"), Self::here(w, first));
                            self.view = View::DsLite(name);
                            done
                        }
                        "address-group" => {
                            let name = w.name("an address group name")?;
                            w.end()?;
                            if undo {
                                self.candidate.address_groups.remove(&name);
                                return done;
                            }
                            self.candidate.address_groups.entry(name.clone()).or_default();
                            self.positions.insert(format!("ds-lite address-group {name}"), Self::here(w, first));
                            self.view = View::AddressGroup(name);
                            done
                        }
                        other => Err(ConfigError::at(
                            Self::here(w, first + 1),
                            format!("expected `instance` or `address-group`, found `{other}`"),
                        )),
                    }
                }
                "nat" => {
                    w.at += 1;
                    w.keyword("log")?;
                    w.keyword("syslog")?;
                    let ip = w.ip("a syslog server")?;
                    let port = if w.eat("port") { w.number("a UDP port", (1, 65535))? as u16 } else { 514 };
                    w.end()?;
                    let a = SocketAddr::new(ip, port);
                    self.candidate.syslog.retain(|x| *x != a);
                    if !undo {
                        self.candidate.syslog.push(a);
                    }
                    done
                }
                "metrics" => {
                    w.at += 1;
                    w.keyword("http")?;
                    if undo {
                        self.candidate.metrics = None;
                        return done;
                    }
                    let ip = w.ip("the address to serve metrics on")?;
                    w.keyword("port")?;
                    let port = w.number("a TCP port", (1, 65535))? as u16;
                    w.end()?;
                    self.candidate.metrics = Some(SocketAddr::new(ip, port));
                    done
                }
                _ => Ok(Step::Unknown),
            },
            View::Slot(id) => {
                let id = *id;
                let slot = self.candidate.slots.get_mut(&id).expect("view of an existing slot");
                match word {
                    "host" => {
                        w.at += 1;
                        slot.host = if undo { None } else { Some(w.name("a host name")?) };
                    }
                    "worker-cores" => {
                        w.at += 1;
                        slot.cores.clear();
                        if !undo {
                            slot.cores.push(w.number("a CPU core", (0, 1023))?);
                            while w.peek().is_some() {
                                let pos = w.pos();
                                let c = w.number("a CPU core", (0, 1023))?;
                                if slot.cores.contains(&c) {
                                    return Err(ConfigError::at(pos, format!("core {c} is listed twice")));
                                }
                                slot.cores.push(c);
                            }
                        }
                    }
                    "interface" => {
                        w.at += 1;
                        let side = w.next("`softwire` or `internet`")?;
                        let name = if undo { None } else { Some(w.name("an interface name")?) };
                        match side {
                            "softwire" => slot.softwire_if = name,
                            "internet" => slot.internet_if = name,
                            other => {
                                return Err(ConfigError::at(
                                    Self::here(w, first + 1),
                                    format!("expected `softwire` or `internet`, found `{other}`"),
                                ));
                            }
                        }
                    }
                    "ha-address" => {
                        w.at += 1;
                        slot.ha_address = if undo {
                            None
                        } else {
                            let ip = w.ip("the HA channel address")?;
                            let port = if w.eat("port") { w.number("a UDP port", (1, 65535))? as u16 } else { 4789 };
                            Some(SocketAddr::new(ip, port))
                        };
                    }
                    "packet-io" => {
                        w.at += 1;
                        slot.packet_io = if undo {
                            PacketIo::Auto
                        } else {
                            match w.one_of(&["auto", "af-xdp", "af-packet"])? {
                                "af-xdp" if w.peek().is_some() => match w.one_of(&["native", "generic"])? {
                                    "native" => PacketIo::AfXdp(XdpMode::Native),
                                    _ => PacketIo::AfXdp(XdpMode::Generic),
                                },
                                "af-xdp" => PacketIo::AfXdp(XdpMode::Auto),
                                "af-packet" => PacketIo::AfPacket,
                                _ => PacketIo::Auto,
                            }
                        };
                    }
                    "packet-poll" => {
                        w.at += 1;
                        slot.poll = if undo || w.one_of(&["busy", "blocking"])? == "busy" {
                            PollMode::Busy
                        } else {
                            PollMode::Block
                        };
                    }
                    _ => return Ok(Step::Unknown),
                }
                w.end()?;
                done
            }
            View::Location(id) => {
                let id = *id;
                if word != "location" {
                    return Ok(Step::Unknown);
                }
                w.at += 1;
                let loc = self.candidate.locations.get_mut(&id).expect("view of an existing location");
                if undo {
                    // `undo location` or the full form.
                    if w.peek().is_some() {
                        w.keyword("slot")?;
                        w.number("a slot number", (1, 64))?;
                        w.keyword("backup")?;
                        w.keyword("slot")?;
                        w.number("a slot number", (1, 64))?;
                    }
                    w.end()?;
                    *loc = Location::default();
                    return done;
                }
                w.keyword("slot")?;
                let s = w.number("a slot number", (1, 64))?;
                w.keyword("backup")?;
                w.keyword("slot")?;
                let b = w.number("a backup slot number", (1, 64))?;
                w.end()?;
                *loc = Location { slot: Some(s), backup: Some(b) };
                self.positions.insert(format!("service-location {id} location"), Self::here(w, first));
                done
            }
            View::Group(name) => {
                let name = name.clone();
                if word != "service-location" {
                    return Ok(Step::Unknown);
                }
                w.at += 1;
                let lid = w.number("a service-location ID", (1, 128))?;
                let group = self.candidate.groups.get_mut(&name).expect("view of an existing group");
                if undo {
                    w.end()?;
                    group.locations.remove(&lid);
                    return done;
                }
                let weight = if w.eat("weight") { w.number("a weight", WEIGHT_RANGE)? } else { DEFAULT_WEIGHT };
                w.end()?;
                group.locations.insert(lid, weight);
                self.positions
                    .insert(format!("service-instance-group {name} service-location {lid}"), Self::here(w, first));
                done
            }
            View::AddressGroup(name) => {
                let name = name.clone();
                if word != "section" {
                    return Ok(Step::Unknown);
                }
                w.at += 1;
                let n = w.number("a section number", (0, 255))?;
                let ag = self.candidate.address_groups.get_mut(&name).expect("view of an existing address group");
                if undo {
                    w.end()?;
                    ag.sections.remove(&n);
                    return done;
                }
                let first_addr = w.ipv4("the first address")?;
                let range = if w.eat("mask") {
                    let len = w.number("a prefix length", (8, 32))?;
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    let base = u32::from(first_addr) & mask;
                    (Ipv4Addr::from(base), Ipv4Addr::from(base | !mask))
                } else {
                    let pos = w.pos();
                    let last = w.ipv4("the last address")?;
                    if last < first_addr {
                        return Err(ConfigError::at(
                            pos,
                            format!("the last address {last} is before the first {first_addr}"),
                        ));
                    }
                    (first_addr, last)
                };
                w.end()?;
                ag.sections.insert(n, range);
                self.positions.insert(format!("ds-lite address-group {name} section {n}"), Self::here(w, first));
                done
            }
            View::DsLite(name) => {
                let name = name.clone();
                let key = |what: &str| format!("ds-lite instance {name} {what}");
                let d = DsLite::default();
                let pos_first = Self::here(w, first);
                let inst = self.candidate.instances.get_mut(&name).expect("view of an existing instance");
                match word {
                    "service-instance-group" => {
                        w.at += 1;
                        if undo {
                            if w.peek().is_some() {
                                w.name("a service-instance group name")?;
                            }
                            inst.group = None;
                        } else {
                            let pos = w.pos();
                            let g = w.name("a service-instance group name")?;
                            // The seed's rule: one instance, one group.
                            if let Some(old) = &inst.group
                                && *old != g
                            {
                                return Err(ConfigError::at(
                                    pos,
                                    format!(
                                        "ds-lite instance {name} is already bound to service-instance-group {old}; a DS-Lite instance can be bound to only one group (`undo service-instance-group` first)"
                                    ),
                                ));
                            }
                            inst.group = Some(g);
                            self.positions.insert(key("service-instance-group"), pos);
                        }
                    }
                    "local-ipv6" => {
                        w.at += 1;
                        inst.local = if undo { None } else { Some(w.ipv6("the AFTR endpoint")?) };
                        self.positions.insert(key("local-ipv6"), pos_first);
                    }
                    "remote-ipv6" => {
                        w.at += 1;
                        let p = w.ipv6("an authorised B4 prefix")?;
                        w.keyword("prefix-length")?;
                        let len = w.number("a prefix length", (0, 128))? as u8;
                        let masked = mask6(p, len);
                        inst.remotes.retain(|r| *r != (masked, len));
                        if !undo {
                            inst.remotes.push((masked, len));
                        }
                    }
                    // `ds-lite instance ...` is the system view's.
                    "ds-lite" if w.toks.get(w.at + 1).map(|t| t.text) == Some("address-group") => {
                        w.at += 1;
                        w.keyword("address-group")?;
                        if undo {
                            if w.peek().is_some() {
                                w.name("an address group name")?;
                            }
                            inst.address_group = None;
                        } else {
                            let pos = w.pos();
                            inst.address_group = Some(w.name("an address group name")?);
                            self.positions.insert(key("ds-lite address-group"), pos);
                        }
                    }
                    "port-block-size" => {
                        w.at += 1;
                        inst.port_block_size = if undo {
                            d.port_block_size
                        } else {
                            let pos = w.pos();
                            let v = w.number("a port block size", (8, 32768))?;
                            if !v.is_power_of_two() {
                                return Err(ConfigError::at(
                                    pos,
                                    format!("expected a power of two from 8 to 32768, found {v}"),
                                ));
                            }
                            v as u16
                        };
                    }
                    "port-block-limit" => {
                        w.at += 1;
                        inst.port_block_limit = if undo {
                            d.port_block_limit
                        } else {
                            w.number("a number of port blocks", (1, dataplane::nat::subscriber::MAX_BLOCKS as u32))?
                                as u8
                        };
                    }
                    "session-limit" => {
                        w.at += 1;
                        inst.session_limit =
                            if undo { d.session_limit } else { w.number("a number of sessions", (1, 1 << 20))? };
                    }
                    "new-session-rate" => {
                        w.at += 1;
                        inst.new_session_rate = if undo {
                            d.new_session_rate
                        } else {
                            w.number("new sessions per second (0: no limit)", (0, 1 << 20))?
                        };
                    }
                    "aging-time" => {
                        w.at += 1;
                        let pos = w.pos();
                        let which = w.next("`udp`, `tcp`, `tcp-transitory` or `icmp`")?;
                        // The RFC minimums: RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-1.
                        let (slot, default, min) = match which {
                            "udp" => (&mut inst.aging.udp, d.aging.udp, 120),
                            "tcp" => (&mut inst.aging.tcp_established, d.aging.tcp_established, 7440),
                            "tcp-transitory" => (&mut inst.aging.tcp_transitory, d.aging.tcp_transitory, 240),
                            "icmp" => (&mut inst.aging.icmp, d.aging.icmp, 60),
                            other => {
                                return Err(ConfigError::at(
                                    pos,
                                    format!("expected `udp`, `tcp`, `tcp-transitory` or `icmp`, found `{other}`"),
                                ));
                            }
                        };
                        *slot = if undo { default } else { w.number("an aging time in seconds", (min, 86_400))? };
                    }
                    "tunnel-mtu" => {
                        w.at += 1;
                        inst.tunnel_mtu =
                            if undo { d.tunnel_mtu } else { w.number("a tunnel MTU", (1280, 9000))? as u16 };
                    }
                    "mss-clamp" => {
                        w.at += 1;
                        w.keyword("enable")?;
                        inst.mss_clamp = !undo;
                    }
                    "filtering" => {
                        w.at += 1;
                        inst.filtering = if undo {
                            d.filtering
                        } else {
                            let pos = w.pos();
                            match w.next("`endpoint-independent` or `address-and-port-dependent`")? {
                                "endpoint-independent" => Filtering::EndpointIndependent,
                                "address-and-port-dependent" => Filtering::AddressAndPortDependent,
                                other => {
                                    return Err(ConfigError::at(
                                        pos,
                                        format!(
                                            "expected `endpoint-independent` or `address-and-port-dependent`, found `{other}`"
                                        ),
                                    ));
                                }
                            }
                        };
                    }
                    "hop-limit" => {
                        w.at += 1;
                        inst.hop_limit = if undo { d.hop_limit } else { w.number("a hop limit", (1, 255))? as u8 };
                    }
                    "inner-source" => {
                        w.at += 1;
                        w.keyword("public")?;
                        w.keyword("permit")?;
                        inst.public_inner = !undo;
                    }
                    _ => return Ok(Step::Unknown),
                }
                w.end()?;
                done
            }
        }
    }
}

fn mask6(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let m = if len == 0 { 0 } else { u128::MAX << (128 - len as u32) };
    Ipv6Addr::from(u128::from(a) & m)
}

fn unknown(toks: &[Tok], line: usize, view: &View) -> ConfigError {
    let (i, word) = if toks[0].text == "undo" && toks.len() > 1 { (1, toks[1].text) } else { (0, toks[0].text) };
    let list =
        commands_of(view).iter().map(|c| c.split(' ').next().unwrap_or(c)).collect::<std::collections::BTreeSet<_>>();
    ConfigError {
        line,
        column: toks[i].col,
        message: format!(
            "unknown command `{word}`; expected one of: {}",
            list.into_iter().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Parses a configuration file (a printed configuration, or a script with
/// `system-view`, `commit` and `quit`): everything is checked, every `commit` and the
/// end of the file commit. Returns the running configuration and the positions of its
/// statements, or every error found; nothing is applied on error.
pub fn parse(text: &str) -> Result<(Config, Positions), Vec<ConfigError>> {
    let mut s = Session::new(Config::default());
    s.view = View::System;
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        match s.execute(n + 1, line) {
            Ok(Outcome::Exit) => break,
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        if s.view == View::User {
            // A script's `quit` from the system view: keep reading as configuration.
            s.view = View::System;
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    s.commit()?;
    Ok((s.running, s.running_positions))
}
