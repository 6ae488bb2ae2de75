//! The operator's documents generated from the definitions they describe: man pages of
//! `aftrd(8)` and `aftrctl(8)` from the clap command lines, `aftr.conf(5)` from the
//! command tables of `grammar` (so it lists exactly the commands the parser takes), and
//! shell completions. `aftr-gen-docs DIR` writes them; `scripts/build-deb.sh` packages
//! them.

use std::path::Path;

use clap::CommandFactory;

use crate::grammar::{self, View};

/// The views of the language, each with how it is entered and what it holds.
const VIEWS: &[(&str, &str)] = &[
    ("slot ID", "a board: one aftrd, its host, cores, interfaces, HA channel and metrics"),
    ("service-location ID", "the boards of a location: active and standby"),
    ("service-instance-group NAME", "the locations an instance is served at, with weights"),
    ("ds-lite address-group NAME", "an external IPv4 pool"),
    ("ds-lite instance NAME", "a DS-Lite instance: endpoint, B4 prefixes, pool, limits, timers"),
];

fn view_of(i: usize) -> View {
    match i {
        0 => View::Slot(1),
        1 => View::Location(1),
        2 => View::Group("g".into()),
        3 => View::AddressGroup("p".into()),
        _ => View::DsLite("d".into()),
    }
}

/// Text for roff: backslashes and hyphens escaped, no line starting as a request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') { format!("\\&{t}") } else { t }
}

/// One `.TP` entry per command of `commands`: its syntax in bold, its help.
fn entries<'a>(o: &mut String, commands: impl Iterator<Item = &'a grammar::Command>) {
    for c in commands {
        o.push_str(&format!(".TP\n.B {}\n{}\n", roff(&grammar::syntax(c.syntax)), roff(c.help)));
        if let Some(undo) = c.undo {
            o.push_str(&format!(".br\n\\fBundo {}\\fR\n", roff(&grammar::syntax(undo))));
        }
    }
}

/// aftr.conf(5): the configuration language, every command of every view.
pub fn aftr_conf_5() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut o = format!(
        ".TH AFTR.CONF 5 \"\" \"aftr {version}\" \"File Formats\"\n\
         .SH NAME\naftr.conf \\- configuration of the DS\\-Lite AFTR\n\
         .SH SYNOPSIS\n/etc/aftr/aftr.conf\n\
         .SH DESCRIPTION\n\
         The configuration is written in a router's language: commands in views, one a line. \
         A line is a command, optionally preceded by \\fBundo\\fR (remove it, or back to the default), \
         or a comment (\\fB#\\fR or \\fB!\\fR, also the block separators). \
         Indentation is for people. A command that is not one of the current view is tried in the \
         system view, so a printed configuration reads back without \\fBquit\\fR. \
         \\fBaftrd \\-\\-check \\-\\-config FILE\\fR checks a file; errors read FILE:LINE:COLUMN: message.\n\
         .PP\nOne file describes the whole chassis: every board (slot) runs \\fBaftrd \\-\\-slot N\\fR \
         with the same file. A commit through \\fBaftrctl\\fR(8) goes to every board it names.\n\
         .PP\nThe commands below are generated from the parser's own tables. \
         Upper-case words are values; [ ] is optional, {{ a | b }} a choice.\n\
         .SH SESSION COMMANDS\n"
    );
    let system = grammar::table(&View::System);
    let session = grammar::commands(&View::System).filter(|c| !system.iter().any(|s| std::ptr::eq(s, *c)));
    entries(&mut o, session);
    o.push_str(".SH SYSTEM VIEW\n");
    entries(&mut o, system.iter());
    for (i, (enter, what)) in VIEWS.iter().enumerate() {
        o.push_str(&format!(
            ".SH {} VIEW\nEntered by \\fB{}\\fR: {}.\n",
            roff(&enter.to_uppercase()),
            roff(enter),
            roff(what)
        ));
        entries(&mut o, grammar::table(&view_of(i)).iter());
    }
    o.push_str(
        ".SH CHECKS AT COMMIT\n\
         Nothing is applied if one fails: a location's slots differ and exist, a paired board has an \
         \\fBha\\-address\\fR and \\fBservice\\-ha preshared\\-key\\fR is set; groups, pools and instances \
         referred to exist; pools do not overlap and are not shared; instance ids are unique, and so are \
         endpoints, but that instances whose boards all differ and all have a \\fBroute\\-table\\fR may share \
         one (scale\\-out by ECMP); a core is claimed by one slot per host; two boards of one host do not serve metrics at one address.\n\
         .SH EXAMPLES\n/usr/share/doc/aftr/examples/aftr\\-ha.conf, /usr/share/doc/aftr/examples/aftr\\-two\\-locations.conf\n\
         .SH SEE ALSO\n\\fBaftrd\\fR(8), \\fBaftrctl\\fR(8)\n",
    );
    o
}

fn man_page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut out)?;
    Ok(out)
}

/// Writes `DIR/man/aftrd.8`, `aftrctl.8`, `aftr.conf.5` and the completions for bash
/// (`DIR/completions/bash/NAME`), zsh (`_NAME`) and fish (`NAME.fish`).
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    use clap_complete::Shell;
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    std::fs::write(man.join("aftrd.8"), man_page(crate::cli::Aftrd::command())?)?;
    std::fs::write(man.join("aftrctl.8"), man_page(crate::cli::Aftrctl::command())?)?;
    std::fs::write(man.join("aftr.conf.5"), aftr_conf_5())?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let d = dir.join("completions").join(shell.to_string());
        std::fs::create_dir_all(&d)?;
        for mut cmd in [crate::cli::Aftrd::command(), crate::cli::Aftrctl::command()] {
            let name = cmd.get_name().to_string();
            clap_complete::generate_to(shell, &mut cmd, &name, &d)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn aftr_conf_lists_every_command_of_every_view() {
        let page = super::aftr_conf_5();
        for needle in [
            ".B metrics http ADDRESS port PORT",
            ".B ha\\-address ADDRESS [ port PORT ]",
            ".B service\\-ha preempt\\-time",
            ".B port\\-block\\-size",
            ".B section ID FIRST\\-ADDRESS",
            ".SH SLOT ID VIEW",
            ".B commit",
        ] {
            assert!(page.contains(needle), "{needle} not in\n{page}");
        }
        assert!(!page.lines().any(|l| l.starts_with('\'')), "a line would be a roff request");
    }
}
