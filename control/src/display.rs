//! Prints a configuration the way routers print `display current-configuration`, from
//! the command tables of `grammar`: `#` between blocks, one space of indentation inside
//! a view, non-default settings only. Displays mask the HA key (`******`, which reads
//! back as the key the board runs); `save` writes it in clear, and its text parses back
//! to the same configuration.

use crate::config::Config;
use crate::grammar::{Print, View, table};

/// The configuration as displays show it: the key masked.
pub fn render(c: &Config) -> String {
    render_with(c, false)
}

/// The configuration as `save` writes it (and `aftrctl` commits it): the key in clear.
pub fn render_in_clear(c: &Config) -> String {
    render_with(c, true)
}

fn render_with(c: &Config, in_clear: bool) -> String {
    let mut o = String::from("#\n");
    view(c, &View::System, "", in_clear, &mut o);
    o.push_str("return\n");
    o
}

/// The lines of `v`'s commands, each after `indent`; then the views they open.
fn view(c: &Config, v: &View, indent: &str, in_clear: bool, o: &mut String) {
    // Something printed since the last `#`.
    let mut open = false;
    for command in table(v) {
        let (lines, closes) = match command.print {
            Print::Lines(f) => (f(c, v), false),
            Print::Secret(f) => (f(c, in_clear), false),
            Print::Paragraph(f) => (f(c, v), *v == View::System),
            Print::Blocks(f) => {
                for (line, inner) in f(c) {
                    o.push_str(&format!("{indent}{line}\n"));
                    view(c, &inner, " ", in_clear, o);
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
