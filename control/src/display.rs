//! Prints a configuration the way routers print `display current-configuration`, from
//! the command tables of `grammar`: `#` between blocks, one space of indentation inside
//! a view, non-default settings only. The text parses back to the same configuration.

use crate::config::Config;
use crate::grammar::{Print, View, table};

pub fn render(c: &Config) -> String {
    let mut o = String::from("#\n");
    view(c, &View::System, "", &mut o);
    o.push_str("return\n");
    o
}

/// The lines of `v`'s commands, each after `indent`; then the views they open.
fn view(c: &Config, v: &View, indent: &str, o: &mut String) {
    // Something printed since the last `#`.
    let mut open = false;
    for command in table(v) {
        let (lines, closes) = match command.print {
            Print::Lines(f) => (f(c, v), false),
            Print::Paragraph(f) => (f(c, v), *v == View::System),
            Print::Blocks(f) => {
                for (line, inner) in f(c) {
                    o.push_str(&format!("{indent}{line}\n"));
                    view(c, &inner, " ", o);
                    o.push_str("#\n");
                }
                continue;
            }
            Print::Never => continue,
        };
        for line in &lines {
            o.push_str(&format!("{indent}{line}\n"));
        }
        open |= !lines.is_empty();
        if closes && open {
            o.push_str("#\n");
            open = false;
        }
    }
}
