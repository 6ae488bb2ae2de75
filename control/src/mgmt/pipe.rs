//! What follows a display's `|` in aftrctl, as on the router: `| include WORDS`,
//! `| exclude WORDS`, `| begin WORDS` filter the lines shown (plain text, not regular
//! expressions), `| json` asks the daemon for the display's JSON form. Keywords may be
//! abbreviated (`| inc`) like any other.

use crate::grammar::words::{ambiguous, pick};

/// A filter of the lines shown.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    /// Only the lines that hold the text.
    Include(String),
    /// The lines that do not.
    Exclude(String),
    /// From the first line that holds it on.
    Begin(String),
}

/// A command line split at its `|`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piped {
    /// The command, before the first `|`.
    pub command: String,
    /// `| json` was asked for.
    pub json: bool,
    filters: Vec<Filter>,
}

const PIPES: &[&str] = &["include", "exclude", "begin", "json"];

/// Splits `line` at its `|`s: the command, then each filter. Only a display has
/// filters: any other line is the command whole (a key or a path may hold a `|`).
pub fn split(line: &str) -> Result<Piped, String> {
    let first = line.split_whitespace().next().unwrap_or("");
    if first.is_empty() || !"display".starts_with(first) {
        return Ok(Piped { command: line.trim().to_string(), json: false, filters: Vec::new() });
    }
    let mut parts = line.split('|');
    let command = parts.next().unwrap_or("").trim().to_string();
    let mut p = Piped { command, json: false, filters: Vec::new() };
    for part in parts {
        let part = part.trim();
        let (word, rest) = part.split_once(char::is_whitespace).unwrap_or((part, ""));
        let rest = rest.trim().to_string();
        let key = match pick(word, PIPES) {
            Ok(k) => k,
            Err(c) if c.len() > 1 => return Err(ambiguous(word, &c)),
            Err(_) => {
                return Err(format!("after `|`: expected `include`, `exclude`, `begin` or `json`, found `{word}`"));
            }
        };
        if key == "json" {
            if !rest.is_empty() {
                return Err(format!("unexpected `{rest}` after `| json`"));
            }
            p.json = true;
            continue;
        }
        if rest.is_empty() {
            return Err(format!("`| {key}` needs the text to look for"));
        }
        p.filters.push(match key {
            "include" => Filter::Include(rest),
            "exclude" => Filter::Exclude(rest),
            _ => Filter::Begin(rest),
        });
    }
    if (p.json || !p.filters.is_empty()) && p.command.split_whitespace().count() < 2 {
        return Err("nothing to display before `|`".into());
    }
    Ok(p)
}

impl Piped {
    /// `text` through the filters, in the order typed.
    pub fn apply(&self, text: &str) -> String {
        let mut lines: Vec<&str> = text.lines().collect();
        for f in &self.filters {
            lines = match f {
                Filter::Include(w) => lines.into_iter().filter(|l| l.contains(w.as_str())).collect(),
                Filter::Exclude(w) => lines.into_iter().filter(|l| !l.contains(w.as_str())).collect(),
                Filter::Begin(w) => lines.into_iter().skip_while(|l| !l.contains(w.as_str())).collect(),
            };
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// The request for the daemon: the command, and `| json` if asked for.
    pub fn request(&self) -> String {
        if self.json { format!("{} | json", self.command) } else { self.command.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "sysname a\n#\nslot 1\n host h1\n#\nslot 2\n host h2\n";

    #[test]
    fn include_exclude_and_begin_filter_the_lines_in_the_order_typed() {
        let p = split("display current-configuration | include host").unwrap();
        assert_eq!(p.command, "display current-configuration");
        assert_eq!(p.apply(TEXT), " host h1\n host h2\n");
        assert_eq!(split("dis cur | exc #").unwrap().apply(TEXT), "sysname a\nslot 1\n host h1\nslot 2\n host h2\n");
        assert_eq!(split("dis cur | begin slot 2").unwrap().apply(TEXT), "slot 2\n host h2\n");
        assert_eq!(split("dis cur | begin slot | inc h2").unwrap().apply(TEXT), " host h2\n");
        let j = split("display statistics | json").unwrap();
        assert!(j.json);
        assert_eq!(j.request(), "display statistics | json");
        assert_eq!(split("display statistics").unwrap().request(), "display statistics");
    }

    #[test]
    fn a_bad_pipe_is_an_error() {
        assert!(split("dis cur | count").unwrap_err().contains("found `count`"));
        assert!(split("dis cur | include").unwrap_err().contains("needs the text"));
        assert!(split("dis cur | json x").is_err());
        assert!(split("di | json").is_err());
    }

    #[test]
    fn only_a_display_has_filters() {
        let key = "service-ha preshared-key abc|defghijklmnopqrstuvwxyz";
        assert_eq!(split(key).unwrap().command, key);
        assert_eq!(split(key).unwrap().apply("a\n"), "a\n");
        assert_eq!(split("d cur | inc x").unwrap().command, "d cur");
        assert_eq!(split("display").unwrap().command, "display");
    }
}
