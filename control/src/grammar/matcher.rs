//! Reads a command line against the tables of a view: picks the command by its leading
//! keywords, then reads its values. Errors point at the word concerned; at the end of
//! the words it notes what could come next, which is what completion shows.

use super::words::{Tok, Value, Words, ambiguous, listing, pick};
use super::{Args, Command, View, Word, tables};
use crate::config::Pos;
use crate::error::ConfigError;

/// A command recognised on a line, with its values.
pub struct Found {
    pub command: &'static Command,
    pub undo: bool,
    pub args: Args,
    /// Where the command starts (after `undo`).
    pub at: Pos,
    /// The keywords in full, by the index of the word typed for each.
    pub keys: Vec<(usize, &'static str)>,
}

/// Recognises the command on the words `toks` (not empty) of line `line`, typed in
/// `view`. `end_col` is the column after the line.
pub fn find(view: &View, toks: &[Tok], line: usize, end_col: usize) -> Result<Found, ConfigError> {
    Matcher::new(toks, line, end_col).command(view)
}

/// What could follow the words `toks` in `view` (see `grammar::complete`).
pub fn wanted(view: &View, toks: &[Tok]) -> Vec<String> {
    let mut m = Matcher::new(toks, 0, 0);
    let _ = m.command(view);
    let mut once: Vec<String> = Vec::new();
    for w in m.wanted {
        if !once.contains(&w) {
            once.push(w);
        }
    }
    once
}

struct Matcher<'a, 'b> {
    w: Words<'a, 'b>,
    args: Args,
    /// What the line could go on with, noted when the words run out.
    wanted: Vec<String>,
}

/// The keywords a command starts with, up to its first value or choice.
fn leading(words: &[Word]) -> Vec<&'static str> {
    words
        .iter()
        .map_while(|w| match w {
            Word::Key(k) => Some(*k),
            _ => None,
        })
        .collect()
}

impl<'a, 'b> Matcher<'a, 'b> {
    fn new(toks: &'b [Tok<'a>], line: usize, end_col: usize) -> Self {
        Matcher {
            w: Words { toks, at: 0, line, end_col, quiet: false, keys: Vec::new() },
            args: Args::default(),
            wanted: Vec::new(),
        }
    }

    /// Notes `what` as a possible next word if the words have run out.
    fn want<S: ToString>(&mut self, what: impl IntoIterator<Item = S>) {
        if self.w.peek().is_none() {
            self.wanted.extend(what.into_iter().map(|s| s.to_string()));
        }
    }

    fn command(&mut self, view: &View) -> Result<Found, ConfigError> {
        let configuring = *view != View::User;
        if configuring {
            self.want(["undo"]);
        }
        let undo = configuring && self.w.peek() == Some("undo");
        if undo {
            self.w.at += 1;
        }
        let syntax = |c: &'static Command| if undo { c.undo } else { Some(c.syntax) };
        let at = self.w.pos();
        let first = self.w.at;
        // The commands still possible after the keywords read so far, with their
        // leading keywords; of two with the same keywords, the earlier table's.
        let mut alive: Vec<(&'static Command, Vec<&'static str>)> =
            tables(view).into_iter().flatten().filter_map(|c| syntax(c).map(|s| (c, leading(s)))).collect();
        let mut i = 0;
        let command = loop {
            if let Some((c, _)) = alive.iter().find(|(_, lead)| lead.len() == i) {
                break *c;
            }
            let mut keys: Vec<&'static str> = Vec::new();
            for (_, lead) in &alive {
                if !keys.contains(&lead[i]) {
                    keys.push(lead[i]);
                }
            }
            self.want(keys.iter().copied());
            let Some(word) = self.w.peek() else {
                return Err(self.w.err(match (undo, i) {
                    (true, 0) => "incomplete command after `undo`".to_string(),
                    _ => format!("incomplete command: expected {}", listing(&keys)),
                }));
            };
            let chosen = match pick(word, &keys) {
                Ok(k) => k,
                Err(c) if c.len() > 1 => return Err(self.w.err(ambiguous(word, &c))),
                Err(_) if i == 0 => return Err(self.unknown(view, first)),
                Err(_) => return Err(self.w.err(format!("expected {}, found `{word}`", listing(&keys)))),
            };
            alive.retain(|(_, lead)| lead[i] == chosen);
            self.w.keys.push((self.w.at, chosen));
            self.w.at += 1;
            i += 1;
        };
        let words = syntax(command).unwrap_or_default();
        // Any word of a command that takes a key may be a key typed in the wrong place,
        // or the rest of one typed with spaces: no error quotes them.
        self.w.quiet = holds_secret(words);
        self.seq(&words[i..])?;
        self.want(["<cr>"]);
        if self.w.peek().is_some() && self.w.quiet {
            return Err(self.w.err("unexpected words after the key (a key is one word)"));
        }
        self.w.end()?;
        Ok(Found { command, undo, args: std::mem::take(&mut self.args), at, keys: std::mem::take(&mut self.w.keys) })
    }

    fn unknown(&self, view: &View, first: usize) -> ConfigError {
        let word = self.w.toks[first].text;
        if *view == View::User {
            let t = &self.w.toks[0];
            return ConfigError::at(
                Pos { line: self.w.line, column: t.col },
                format!("unknown command `{}` in the user view; `system-view` enters configuration", t.text),
            );
        }
        let mut known: Vec<&str> = super::commands(view).map(|c| leading(c.syntax)[0]).collect();
        if super::table(view).iter().any(|c| c.undo.is_some()) {
            known.push("undo");
        }
        known.sort();
        known.dedup();
        self.w.err(format!("unknown command `{word}`; expected one of: {}", known.join(", ")))
    }

    fn seq(&mut self, words: &[Word]) -> Result<(), ConfigError> {
        words.iter().try_for_each(|w| self.word(w))
    }

    fn word(&mut self, word: &Word) -> Result<(), ConfigError> {
        match word {
            Word::Key(k) => {
                self.want([k]);
                self.w.one_of(&[*k])?;
            }
            Word::Arg(a) => {
                self.want([a.name]);
                let pos = self.w.pos();
                let v = self.w.value(a)?;
                self.args.push(a.name, v, pos);
            }
            Word::Optional(inner) => {
                let take = match inner.first() {
                    Some(Word::Key(k)) => self.w.peek().is_some_and(|w| pick(w, &[k]).is_ok()),
                    _ => self.w.peek().is_some(),
                };
                if take {
                    self.seq(inner)?;
                } else {
                    self.want(first_words(inner));
                }
            }
            Word::Choice(alts) => {
                let keys: Vec<&'static str> = alts.iter().filter_map(|a| leading(a).first().copied()).collect();
                self.want(alts.iter().flat_map(|a| first_words(a)));
                let by_key = match self.w.peek().map(|w| (w, pick(w, &keys))) {
                    Some((_, Ok(k))) => Some(k),
                    Some((w, Err(c))) if c.len() > 1 => return Err(self.w.err(ambiguous(w, &c))),
                    _ => None,
                };
                let fallback = alts.iter().find(|a| !matches!(a.first(), Some(Word::Key(_))));
                match (by_key, fallback) {
                    (Some(k), _) => {
                        let pos = self.w.pos();
                        self.w.keys.push((self.w.at, k));
                        self.w.at += 1;
                        self.args.push(k, Value::Keyword, pos);
                        let alt = alts.iter().find(|a| leading(a).first() == Some(&k)).expect("k is a leading keyword");
                        self.seq(&alt[1..])?;
                    }
                    (None, Some(alt)) => self.seq(alt)?,
                    (None, None) => {
                        self.w.one_of(&keys)?;
                    }
                }
            }
            Word::Repeated(a) => {
                self.word(&Word::Arg(*a))?;
                while self.w.peek().is_some() {
                    self.word(&Word::Arg(*a))?;
                }
                self.want([a.name]);
            }
        }
        Ok(())
    }
}

/// Whether a command's words take a secret.
fn holds_secret(words: &[Word]) -> bool {
    words.iter().any(|w| match w {
        Word::Arg(a) | Word::Repeated(a) => matches!(a.kind, super::Kind::Secret { .. }),
        Word::Optional(inner) => holds_secret(inner),
        Word::Choice(alts) => alts.iter().any(|a| holds_secret(a)),
        Word::Key(_) => false,
    })
}

/// What a sequence of words may start with, for completion.
fn first_words(words: &[Word]) -> Vec<&'static str> {
    match words.first() {
        Some(Word::Key(k)) => vec![k],
        Some(Word::Arg(a) | Word::Repeated(a)) => vec![a.name],
        Some(Word::Optional(inner)) => first_words(inner),
        Some(Word::Choice(alts)) => alts.iter().flat_map(|a| first_words(a)).collect(),
        None => Vec::new(),
    }
}
