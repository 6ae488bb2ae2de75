//! The words of a command line and the readers of its values: each reader checks one
//! word against its kind and range and, on error, points at that word.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Arg, Kind};
use crate::config::Pos;
use crate::error::ConfigError;

/// A word of a line and its column (1-based, in characters).
#[derive(Debug, Clone, Copy)]
pub struct Tok<'a> {
    pub col: usize,
    pub text: &'a str,
}

/// The words of a line with their columns.
pub fn tokenize(line: &str) -> Vec<Tok<'_>> {
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

/// Which of `keywords` the typed `word` stands for: the keyword itself, or the one
/// keyword it begins (`dis` for `display`), as the router accepts abbreviations. `Err`
/// holds the keywords it begins when there are several (empty: none). Abbreviations
/// are resolved here, and only here: parsing, completion and the daemon's requests all
/// come through it, and what they keep is the keyword in full.
pub fn pick(word: &str, keywords: &[&'static str]) -> Result<&'static str, Vec<&'static str>> {
    if let Some(k) = keywords.iter().find(|k| **k == word) {
        return Ok(k);
    }
    let mut begun: Vec<&'static str> = Vec::new();
    for k in keywords.iter().filter(|k| !word.is_empty() && k.starts_with(word)) {
        if !begun.contains(k) {
            begun.push(k);
        }
    }
    match begun[..] {
        [one] => Ok(one),
        _ => Err(begun),
    }
}

/// The error for a word that begins several keywords.
pub fn ambiguous(word: &str, candidates: &[&str]) -> String {
    format!("ambiguous `{word}`: {}", listing(candidates))
}

/// "`a`, `b` or `c`": the keywords an error says were expected.
pub fn listing(keywords: &[&str]) -> String {
    let quoted: Vec<String> = keywords.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// A value read from a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A keyword of a choice, stored under its own name.
    Keyword,
    Number(u32),
    Text(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Ip(IpAddr),
}

/// A cursor over a command's words, producing errors that point at the right word.
pub struct Words<'a, 'b> {
    pub toks: &'b [Tok<'a>],
    pub at: usize,
    pub line: usize,
    /// The column just after the line, where "incomplete command" errors point.
    pub end_col: usize,
    /// Errors do not quote the words (they may be a secret).
    pub quiet: bool,
    /// The keywords read, by the index of their word: the full form of what was typed.
    pub keys: Vec<(usize, &'static str)>,
}

impl<'a> Words<'a, '_> {
    pub fn pos(&self) -> Pos {
        let column = self.toks.get(self.at).map(|t| t.col).unwrap_or(self.end_col);
        Pos { line: self.line, column }
    }
    pub fn err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.pos(), msg)
    }
    /// ", found `WORD`" for an error about `w`, unless the words are not to be quoted.
    fn found(&self, w: &str) -> String {
        if self.quiet { String::new() } else { format!(", found `{w}`") }
    }
    pub fn peek(&self) -> Option<&'a str> {
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
    /// The next word, which must stand for one of `keywords`.
    pub fn one_of(&mut self, keywords: &[&'static str]) -> Result<&'static str, ConfigError> {
        let pos = self.pos();
        let what = listing(keywords);
        let at = self.at;
        let w = self.next(&what)?;
        match pick(w, keywords) {
            Ok(k) => {
                self.keys.push((at, k));
                Ok(k)
            }
            Err(c) if c.len() > 1 => Err(ConfigError::at(pos, ambiguous(w, &c))),
            Err(_) => Err(ConfigError::at(pos, format!("expected {what}{}", self.found(w)))),
        }
    }
    /// No word left.
    pub fn end(&self) -> Result<(), ConfigError> {
        match self.peek() {
            None => Ok(()),
            Some(w) => Err(self.err(format!("unexpected `{w}` at the end of the command"))),
        }
    }
    /// The next word as a value of `arg`'s kind and range.
    pub fn value(&mut self, arg: &Arg) -> Result<Value, ConfigError> {
        let pos = self.pos();
        let what = arg.what;
        let bad = |expected: String| ConfigError::at(pos, expected);
        match arg.kind {
            Kind::Number { min, max } | Kind::PowerOfTwo { min, max } => {
                let w = self.next(&format!("{what} ({min}-{max})"))?;
                let v = match w.parse::<u32>() {
                    Ok(v) if v >= min && v <= max => v,
                    _ => return Err(bad(format!("expected {what} from {min} to {max}{}", self.found(w)))),
                };
                if matches!(arg.kind, Kind::PowerOfTwo { .. }) && !v.is_power_of_two() {
                    return Err(bad(format!("expected a power of two from {min} to {max}, found {v}")));
                }
                Ok(Value::Number(v))
            }
            Kind::Name => {
                let w = self.next(what)?;
                if w.len() > 31 || !w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                    return Err(bad(format!("expected {what} (1-31 letters, digits, `-`, `_`, `.`){}", self.found(w))));
                }
                Ok(Value::Text(w.to_string()))
            }
            Kind::Text { min, max } => {
                let w = self.next(what)?;
                if w.len() < min || w.len() > max {
                    return Err(bad(format!("expected {what} of {min} to {max} characters")));
                }
                Ok(Value::Text(w.to_string()))
            }
            Kind::Secret { min, max } => {
                let w = self.next(what)?;
                let n = w.chars().count();
                if w != crate::secret::MASK && (n < min || n > max) {
                    let how = crate::secret::HOW_TO_MAKE;
                    return Err(bad(format!(
                        "expected {what} of {min} to {max} characters, {n} given: a key carries at least 128 bits; {how}"
                    )));
                }
                Ok(Value::Text(w.to_string()))
            }
            Kind::Path => {
                let w = self.next(what)?;
                if !w.starts_with('/') || w.len() > 4096 {
                    return Err(bad(format!("expected {what} (an absolute path){}", self.found(w))));
                }
                Ok(Value::Text(w.to_string()))
            }
            Kind::Ipv4 => {
                let w = self.next(what)?;
                w.parse()
                    .map(Value::Ipv4)
                    .map_err(|_| bad(format!("expected {what} (an IPv4 address){}", self.found(w))))
            }
            Kind::Ipv6 => {
                let w = self.next(what)?;
                w.parse()
                    .map(Value::Ipv6)
                    .map_err(|_| bad(format!("expected {what} (an IPv6 address){}", self.found(w))))
            }
            Kind::Ip => {
                let w = self.next(what)?;
                w.parse().map(Value::Ip).map_err(|_| bad(format!("expected {what} (an IP address){}", self.found(w))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_carry_their_columns() {
        let t = tokenize("  slot  1\tx");
        let got: Vec<(usize, &str)> = t.iter().map(|t| (t.col, t.text)).collect();
        assert_eq!(got, vec![(3, "slot"), (9, "1"), (11, "x")]);
    }

    #[test]
    fn a_keyword_may_be_abbreviated_while_it_is_the_only_one_so_begun() {
        let keys = ["display", "system-view", "save", "sysname"];
        assert_eq!(pick("display", &keys), Ok("display"));
        assert_eq!(pick("dis", &keys), Ok("display"));
        assert_eq!(pick("sa", &keys), Ok("save"));
        assert_eq!(pick("sys", &keys), Err(vec!["system-view", "sysname"]));
        assert_eq!(pick("x", &keys), Err(vec![]));
        assert_eq!(pick("", &keys), Err(vec![]));
        // A keyword typed in full is that keyword, even where it begins a longer one.
        assert_eq!(pick("id", &["id", "idle"]), Ok("id"));
    }

    #[test]
    fn listing_reads_as_a_sentence() {
        assert_eq!(listing(&["a"]), "`a`");
        assert_eq!(listing(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
