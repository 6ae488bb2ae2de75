//! The address-group view's command: `section N FIRST LAST` or `section N ADDR mask LEN`,
//! the ranges of an external address pool.

use std::net::Ipv4Addr;

use super::Word::*;
use super::{Action, Arg, Command, Edit, Kind, Print, View, Word};
use crate::config::*;
use crate::error::ConfigError;

impl Edit<'_> {
    /// The address group of the current view, and its name.
    fn address_group(&mut self) -> Result<(String, &mut AddressGroup), ConfigError> {
        let gone = self.gone();
        let View::AddressGroup(name) = &self.view else { return Err(gone) };
        let name = name.clone();
        self.config.address_groups.get_mut(&name).map(|g| (name, g)).ok_or(gone)
    }
}

const SECTION: Word = Arg(Arg { name: "ID", what: "a section number", kind: Kind::Number { min: 0, max: 255 } });
const FIRST: Word = Arg(Arg { name: "FIRST-ADDRESS", what: "the first address", kind: Kind::Ipv4 });
const LAST: Word = Arg(Arg { name: "LAST-ADDRESS", what: "the last address", kind: Kind::Ipv4 });
const LENGTH: Word = Arg(Arg { name: "LENGTH", what: "a prefix length", kind: Kind::Number { min: 8, max: 32 } });

pub static COMMANDS: &[Command] = &[Command {
    syntax: &[Key("section"), SECTION, FIRST, Choice(&[&[Key("mask"), LENGTH], &[LAST]])],
    undo: Some(&[Key("section"), SECTION]),
    help: "addresses FIRST to LAST, or the prefix FIRST mask LENGTH (8-32); sections never overlap",
    action: Action::Edit {
        apply: |e, a| {
            let (at, n, first) = (e.at, a.number("ID"), a.ipv4("FIRST-ADDRESS"));
            let range = if a.has("mask") {
                let mask = u32::MAX << (32 - a.number("LENGTH"));
                let base = u32::from(first) & mask;
                (Ipv4Addr::from(base), Ipv4Addr::from(base | !mask))
            } else {
                let last = a.ipv4("LAST-ADDRESS");
                if last < first {
                    let msg = format!("the last address {last} is before the first {first}");
                    return Err(ConfigError::at(a.pos("LAST-ADDRESS"), msg));
                }
                (first, last)
            };
            let (name, ag) = e.address_group()?;
            ag.sections.insert(n, range);
            e.positions.insert(format!("ds-lite address-group {name} section {n}"), at);
            Ok(())
        },
        undo: |e, a| {
            e.address_group()?.1.sections.remove(&a.number("ID"));
            Ok(())
        },
    },
    print: Print::Lines(|c, v| {
        let ag = match v {
            View::AddressGroup(name) => c.address_groups.get(name),
            _ => None,
        };
        ag.iter().flat_map(|ag| &ag.sections).map(|(n, (a, b))| format!("section {n} {a} {b}")).collect()
    }),
}];
