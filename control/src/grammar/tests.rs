//! The tables checked against themselves: every command has help, is found by its own
//! syntax, runs (and its undo runs) on sample values, and prints what it set; `?` and
//! completion list what the tables hold.

use super::*;
use crate::config::Config;
use crate::parse::{Outcome, Session};

const VIEWS: [fn() -> View; 7] = [
    || View::User,
    || View::System,
    || View::Slot(1),
    || View::Location(1),
    || View::Group("g".into()),
    || View::AddressGroup("p".into()),
    || View::DsLite("d".into()),
];

/// A session in `view`, whose objects exist.
fn session_in(view: View) -> Session {
    let mut s = Session::new(Config::default());
    for l in ["system-view", "slot 1", "service-location 1", "service-instance-group g", "ds-lite address-group p"] {
        s.execute(1, l).unwrap();
    }
    s.execute(1, "ds-lite instance d").unwrap();
    s.view = view;
    s
}

/// A line for `words`, taking every optional part and the first alternative (or the
/// last, with `last`), with a valid sample value for each placeholder.
fn sample(words: &[Word], last: bool) -> Vec<String> {
    let mut out = Vec::new();
    for w in words {
        match w {
            Word::Key(k) => out.push(k.to_string()),
            Word::Arg(a) | Word::Repeated(a) => out.push(value(a)),
            Word::Optional(inner) => out.extend(sample(inner, last)),
            Word::Choice(alts) => out.extend(sample(if last { alts[alts.len() - 1] } else { alts[0] }, last)),
        }
    }
    out
}

fn value(a: &Arg) -> String {
    match a.kind {
        Kind::Number { min, max } => (if min == 0 { max.min(9) } else { min }).to_string(),
        Kind::PowerOfTwo { min, .. } => (min * 2).to_string(),
        Kind::Name => "n1".into(),
        Kind::Text { min, .. } | Kind::Secret { min, .. } => "k".repeat(min),
        Kind::Path => "/etc/aftr/ha.key".into(),
        Kind::Ipv4 => "198.51.100.7".into(),
        Kind::Ipv6 => "2001:db8::7".into(),
        Kind::Ip => "192.0.2.9".into(),
    }
}

fn all_views() -> impl Iterator<Item = View> {
    VIEWS.iter().map(|v| v())
}

#[test]
fn every_command_has_help_and_starts_with_a_keyword() {
    for v in all_views() {
        for c in commands(&v) {
            assert!(!c.help.is_empty(), "{}: no help", syntax(c.syntax));
            assert!(matches!(c.syntax.first(), Some(Word::Key(_))), "{}", syntax(c.syntax));
            assert!(c.undo.is_none_or(|u| matches!(u.first(), Some(Word::Key(_)))), "{}", syntax(c.syntax));
        }
    }
}

/// The number ranges a command's words take (in any optional or alternative part).
fn ranges(words: &[Word], out: &mut Vec<(u32, u32)>) {
    for w in words {
        match w {
            Word::Arg(a) | Word::Repeated(a) => {
                if let Kind::Number { min, max } = a.kind {
                    out.push((min, max));
                }
            }
            Word::Optional(ws) => ranges(ws, out),
            Word::Choice(alts) => alts.iter().for_each(|ws| ranges(ws, out)),
            Word::Key(_) => {}
        }
    }
}

/// A help text that states a range (`1-300`) states one of the command's own: the
/// texts are published in aftr.conf(5) and `?`, and drifted from the code before.
#[test]
fn the_ranges_help_states_are_the_commands_own() {
    for v in all_views() {
        for c in commands(&v) {
            let mut own = Vec::new();
            ranges(c.syntax, &mut own);
            if own.is_empty() {
                // (A range of characters, as the key's, is no number's.)
                continue;
            }
            for word in c.help.split(|ch: char| !(ch.is_ascii_digit() || ch == '-')) {
                let Some((lo, hi)) = word.split_once('-') else { continue };
                let (Ok(lo), Ok(hi)) = (lo.parse::<u32>(), hi.parse::<u32>()) else { continue };
                assert!(
                    own.contains(&(lo, hi)),
                    "{}: help says {lo}-{hi}, the command takes {own:?}",
                    syntax(c.syntax)
                );
            }
        }
    }
}

#[test]
fn every_command_runs_from_its_own_syntax_and_undoes() {
    for v in all_views().filter(|v| *v != View::User) {
        for c in table(&v) {
            for last in [false, true] {
                let line = sample(c.syntax, last).join(" ");
                let mut s = session_in(v.clone());
                let found =
                    find(&v, &words::tokenize(&line), 1, line.len() + 1).unwrap_or_else(|e| panic!("{line}: {e}"));
                assert!(std::ptr::eq(found.command, c), "{line} found another command");
                assert_eq!(s.execute(1, &line), Ok(Outcome::Done), "{v:?}: {line}");
                if let Some(undo) = c.undo {
                    let line = format!("undo {}", sample(undo, last).join(" "));
                    let mut s = session_in(v.clone());
                    assert_eq!(s.execute(1, &line), Ok(Outcome::Done), "{v:?}: {line}");
                }
            }
        }
    }
}

#[test]
fn every_setting_prints_back_as_set() {
    // Each command of a view, set alone on sample values, prints a line that parses
    // back to the same configuration (as `save` prints it: displays mask the key).
    for v in all_views().filter(|v| *v != View::User) {
        for c in table(&v).iter().filter(|c| !matches!(c.print, Print::Never)) {
            let mut s = session_in(v.clone());
            s.execute(1, &sample(c.syntax, true).join(" ")).unwrap();
            let printed = crate::display::render_in_clear(&s.candidate);
            let mut back = session_in(View::System);
            back.candidate = Config::default();
            for (n, l) in printed.lines().enumerate().take_while(|(_, l)| *l != "return") {
                back.execute(n + 1, l).unwrap_or_else(|e| panic!("{e}\n{printed}"));
            }
            assert_eq!(back.candidate, s.candidate, "{}\n{printed}", syntax(c.syntax));
        }
    }
}

#[test]
fn no_two_commands_of_a_view_share_their_keywords() {
    for v in all_views() {
        for undo in [false, true] {
            let mut seen = Vec::new();
            for c in commands(&v) {
                let Some(words) = (if undo { c.undo } else { Some(c.syntax) }) else { continue };
                let lead = sample(words, false).into_iter().take_while(|w| !w.starts_with(char::is_numeric));
                let lead: Vec<String> = lead.collect();
                assert!(!seen.contains(&lead), "{v:?}: two commands start with {lead:?}");
                seen.push(lead);
            }
        }
    }
}

#[test]
fn help_lists_exactly_the_commands_of_the_view() {
    for v in all_views() {
        let listed = help(&v);
        let own = table(&v).len();
        let session = session::ANY_VIEW.len() + if v == View::User { 0 } else { session::CONFIGURING.len() };
        assert_eq!(listed.len(), own + session, "{v:?}");
        for (line, c) in listed.iter().zip(commands(&v)) {
            assert!(line.starts_with(&syntax(c.syntax)) && line.ends_with(c.help), "{line}");
        }
    }
    assert!(
        help(&View::Slot(1))
            .iter()
            .any(|l| l.starts_with("packet-io { auto | af-xdp [ native | generic ] | af-packet }"))
    );
    let location = help(&View::Location(1));
    assert!(location.iter().any(|l| l.starts_with("location slot SLOT [ backup slot SLOT ] ")));
}

#[test]
fn completion_offers_the_next_keywords_and_values() {
    let sys = View::System;
    let c = |v: &View, l: &str| complete(v, l);
    assert!(c(&sys, "").contains(&"undo".to_string()) && c(&sys, "").contains(&"sysname".to_string()));
    assert_eq!(c(&sys, "service-ha de"), ["delay-time"]);
    assert_eq!(c(&sys, "service-ha delay-time "), ["SECONDS"]);
    assert_eq!(c(&sys, "service-ha delay-time 5 "), ["<cr>"]);
    assert_eq!(c(&sys, "undo service-ha delay-time "), ["SECONDS", "<cr>"]);
    assert_eq!(c(&sys, "ds-lite "), ["address-group", "instance"]);
    assert_eq!(c(&sys, "ds-lite instance d "), ["id", "<cr>"]);
    assert_eq!(c(&sys, "display c"), ["current-configuration", "candidate-configuration"]);
    assert_eq!(c(&View::Slot(1), "packet-io "), ["auto", "af-xdp", "af-packet"]);
    assert_eq!(c(&View::Slot(1), "packet-io af-xdp "), ["native", "generic", "<cr>"]);
    assert_eq!(c(&View::Slot(1), "worker-cores 1 2 "), ["CORE", "<cr>"]);
    assert_eq!(c(&View::AddressGroup("p".into()), "section 0 10.0.0.1 "), ["mask", "LAST-ADDRESS"]);
    assert_eq!(c(&View::DsLite("d".into()), "aging-time t"), ["tcp", "tcp-transitory"]);
    // The instance's own `ds-lite address-group`, and the system view's commands.
    assert_eq!(c(&View::DsLite("d".into()), "ds-lite "), ["address-group", "instance"]);
    assert!(c(&View::DsLite("d".into()), "sl").contains(&"slot".to_string()));
    assert_eq!(c(&View::User, ""), ["system-view", "display", "reset", "switchover", "quit", "save", "return"]);
    assert_eq!(c(&View::User, "dis"), ["display"]);
    assert_eq!(c(&View::User, "dis s"), ["sessions", "subscribers", "statistics", "service-ha", "service-location"]);
    assert_eq!(c(&View::User, "dis service-ha "), ["global-information", "<cr>"]);
    assert_eq!(c(&View::User, "reset session b4 2001:db8::1 "), ["inside", "external", "port", "<cr>"]);
    assert!(c(&sys, "service-ha delay-time x ").is_empty(), "nothing follows a wrong word");
}

#[test]
fn a_view_whose_object_was_removed_refuses_its_commands() {
    let mut s = session_in(View::Slot(1));
    s.execute(1, "undo slot 1").unwrap();
    let e = s.execute(2, "host h").unwrap_err();
    assert_eq!((e.line, e.column), (2, 1));
    assert!(e.message.contains("slot 1 no longer exists"), "{e}");
}

#[test]
fn keywords_may_be_abbreviated_as_long_as_one_keyword_begins_so() {
    let full = |v: &View, l: &str| expand(v, l).unwrap_or_else(|e| panic!("{l}: {e}"));
    assert_eq!(full(&View::User, "dis cur"), "display current-configuration");
    assert_eq!(full(&View::User, "dis service-ha glob del"), "display service-ha global-information delay-time");
    assert_eq!(full(&View::User, "sys"), "system-view");
    let e = expand(&View::User, "re").unwrap_err();
    assert!(e.message.contains("ambiguous `re`: `reset` or `return`"), "{e}");
    assert_eq!(full(&View::User, "res sess b 2001:db8::2 p 1024"), "reset session b4 2001:db8::2 port 1024");
    assert_eq!(full(&View::System, "ds-lite inst x"), "ds-lite instance x");
    assert_eq!(full(&View::System, "undo service-h delay"), "undo service-ha delay-time");
    assert_eq!(full(&View::Slot(1), "packet-io af-x gen"), "packet-io af-xdp generic");
    // A word that begins several keywords names them.
    let e = expand(&View::System, "sys").unwrap_err();
    assert!(e.message.contains("ambiguous `sys`: `system-view` or `sysname`"), "{e}");
    let e = expand(&View::User, "s").unwrap_err();
    assert!(e.message.contains("ambiguous `s`: `system-view`, `switchover` or `save`"), "{e}");
    let e = expand(&View::User, "dis c").unwrap_err();
    assert!(e.message.contains("`current-configuration` or `candidate-configuration`"), "{e}");
    assert_eq!((e.line, e.column), (1, 5));
    let e = expand(&View::Slot(1), "packet-io af").unwrap_err();
    assert!(e.message.contains("ambiguous `af`: `af-xdp` or `af-packet`"), "{e}");
    // What a session keeps is the full form: a configuration typed with abbreviations
    // prints (and saves) in full.
    let (c, _) = crate::parse::parse(
        "sysn a\nservice-h delay-t 5\nds-lite address-g p\n sec 0 10.0.0.0 mask 24\nds-lite inst d\n port-block-s 256\n",
    )
    .unwrap();
    let text = crate::display::render(&c);
    for line in [
        "sysname a",
        "service-ha delay-time 5",
        "ds-lite address-group p",
        "ds-lite instance d",
        " port-block-size 256",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[test]
fn an_operation_is_not_configuration() {
    let e = crate::parse::parse("sysname a\nreset session\n").unwrap_err();
    assert_eq!((e[0].line, e[0].message.as_str()), (2, "an operation on the running board, not configuration"));
}
