//! The service-location view (`location slot S [ backup slot B ]`: a board, or a pair
//! of boards in hot backup) and
//! the service-instance-group view (`service-location ID [ weight W ]`).

use super::Word::*;
use super::{Action, Arg, Command, Edit, Kind, Print, View, Word};
use crate::config::*;
use crate::error::ConfigError;

impl Edit<'_> {
    /// The service location of the current view, and its ID.
    fn location(&mut self) -> Result<(u32, &mut Location), ConfigError> {
        let gone = self.gone();
        let View::Location(id) = self.view else { return Err(gone) };
        self.config.locations.get_mut(&id).map(|l| (id, l)).ok_or(gone)
    }
    /// The service-instance group of the current view, and its name.
    fn group(&mut self) -> Result<(String, &mut InstanceGroup), ConfigError> {
        let gone = self.gone();
        let View::Group(name) = &self.view else { return Err(gone) };
        let name = name.clone();
        self.config.groups.get_mut(&name).map(|g| (name, g)).ok_or(gone)
    }
}

const fn number(name: &'static str, what: &'static str, (min, max): (u32, u32)) -> Word {
    Arg(Arg { name, what, kind: Kind::Number { min, max } })
}

/// The words after `location`.
const PAIR: &[Word] = &[Key("slot"), SLOT, Key("backup"), Key("slot"), BACKUP];
const SLOT: Word = number("SLOT", "a slot number", (1, 64));
// Both are `SLOT` in the syntax, as the help has always shown them.
const BACKUP: Word = number("SLOT", "a backup slot number", (1, 64));
const LOCATION_ID: Word = number("ID", "a service-location ID", (1, 128));

pub static LOCATION: &[Command] = &[Command {
    syntax: &[Key("location"), Key("slot"), SLOT, Optional(&[Key("backup"), Key("slot"), BACKUP])],
    undo: Some(&[Key("location"), Optional(PAIR)]),
    help: "the active board and, in a pair, the standby board; they differ",
    action: Action::Edit {
        apply: |e, a| {
            let at = e.at;
            let (id, l) = e.location()?;
            let mut pair = a.numbers("SLOT").map(|(n, _)| n);
            *l = Location { slot: pair.next(), backup: pair.next() };
            e.positions.insert(format!("service-location {id} location"), at);
            Ok(())
        },
        undo: |e, _| {
            *e.location()?.1 = Location::default();
            Ok(())
        },
    },
    print: Print::Lines(|c, v| {
        let l = match v {
            View::Location(id) => c.locations.get(id),
            _ => None,
        };
        match l {
            Some(Location { slot: Some(s), backup: Some(b) }) => vec![format!("location slot {s} backup slot {b}")],
            Some(Location { slot: Some(s), backup: None }) => vec![format!("location slot {s}")],
            _ => vec![],
        }
    }),
}];

pub static GROUP: &[Command] = &[Command {
    syntax: &[
        Key("service-location"),
        LOCATION_ID,
        Optional(&[Key("weight"), number("WEIGHT", "a weight", WEIGHT_RANGE)]),
    ],
    undo: Some(&[Key("service-location"), LOCATION_ID]),
    help: "a service location and its weight, 1-100; 1. Subscribers split by weight",
    action: Action::Edit {
        apply: |e, a| {
            let (at, lid) = (e.at, a.number("ID"));
            let weight = if a.has("WEIGHT") { a.number("WEIGHT") } else { DEFAULT_WEIGHT };
            let (name, g) = e.group()?;
            g.locations.insert(lid, weight);
            e.positions.insert(format!("service-instance-group {name} service-location {lid}"), at);
            Ok(())
        },
        undo: |e, a| {
            e.group()?.1.locations.remove(&a.number("ID"));
            Ok(())
        },
    },
    print: Print::Lines(|c, v| {
        let g = match v {
            View::Group(name) => c.groups.get(name),
            _ => None,
        };
        g.iter().flat_map(|g| &g.locations).map(|(lid, w)| format!("service-location {lid} weight {w}")).collect()
    }),
}];
