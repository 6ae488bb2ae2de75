//! aftrctl: talks to a running aftrd over its management socket.
//!
//! - `aftrctl [--socket PATH] display current-configuration | plan | sessions [...] |
//!   subscribers | statistics | service-ha`
//! - `aftrctl [--socket PATH] commit [local] FILE`: applies a whole configuration (all
//!   or nothing) on every board it names (`local`: on this board only).
//! - `aftrctl [--socket PATH] switchover [service-location ID]`
//! - `aftrctl [--socket PATH]` alone: an interactive session in the router's way:
//!   `system-view`, commands, `commit`, `quit`, `?` for the commands of the view,
//!   `WORDS ?` for what may follow them.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use control::cli::Aftrctl as Cli;
use control::mgmt::request;
use control::parse::{Outcome, Session, View, commands_of};

fn main() -> ExitCode {
    let Cli { socket, command: args } = Cli::parse();
    if args.is_empty() {
        return interactive(&socket);
    }
    let req = if args[0] == "commit" {
        let local = args.get(1).is_some_and(|a| a == "local");
        let Some(file) = args.get(1 + local as usize) else {
            eprintln!("usage: aftrctl commit [local] FILE");
            return ExitCode::from(2);
        };
        match std::fs::read_to_string(file) {
            Ok(t) => format!("commit{}\n{t}", if local { " local" } else { "" }),
            Err(e) => {
                eprintln!("{file}: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        args.join(" ")
    };
    match request(&socket, &req) {
        Ok((true, text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok((false, text)) => {
            eprint!("{text}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("aftrctl: {}: {e}", socket.display());
            ExitCode::from(1)
        }
    }
}

fn interactive(socket: &std::path::Path) -> ExitCode {
    let running = match request(socket, "display current-configuration") {
        Ok((true, text)) => match control::parse::parse(&text) {
            Ok((c, _)) => c,
            Err(e) => {
                eprintln!("aftrctl: the daemon's configuration does not parse: {e:?}");
                return ExitCode::from(1);
            }
        },
        Ok((false, text)) => {
            eprint!("{text}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("aftrctl: {}: {e}", socket.display());
            return ExitCode::from(1);
        }
    };
    let name = running.sysname.clone().unwrap_or_else(|| "aftr".into());
    let mut s = Session::new(running);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut n = 0;
    loop {
        let prompt = match &s.view {
            View::User => format!("<{name}>"),
            v => format!("[{name}{}]", v.prompt()),
        };
        let _ = write!(out, "{prompt}");
        let _ = out.flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                let _ = writeln!(out);
                break;
            }
            Ok(_) => {}
        }
        n += 1;
        let l = line.trim();
        if l == "?" {
            for c in commands_of(&s.view) {
                let _ = writeln!(out, "  {c}");
            }
            continue;
        }
        if let Some(typed) = l.strip_suffix('?') {
            // `service-ha ?`: what may come next; `service-ha de?`: the keywords so begun.
            for w in control::grammar::complete(&s.view, typed) {
                let _ = writeln!(out, "  {w}");
            }
            continue;
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        if words.first() == Some(&"display") && words.get(1) != Some(&"candidate-configuration") {
            match request(socket, l) {
                Ok((_, text)) => {
                    let _ = write!(out, "{text}");
                }
                Err(e) => {
                    let _ = writeln!(out, "Error: {e}");
                }
            }
            continue;
        }
        if words == ["save"] {
            match request(socket, "save") {
                Ok((_, text)) => {
                    let _ = write!(out, "{text}");
                }
                Err(e) => {
                    let _ = writeln!(out, "Error: {e}");
                }
            }
            continue;
        }
        if words == ["commit"] && s.view != View::User {
            // Checked here first (line numbers of this session), then applied by the
            // daemon, which checks again and applies all or nothing.
            if let Err(errors) = control::validate::validate(&s.candidate, &s.positions) {
                for e in errors {
                    let _ = writeln!(out, "Error: {} (line {})", e.message, e.line);
                }
                continue;
            }
            // In clear: a key typed in this session goes to the daemon (over its socket,
            // mode 0600); one read back from its display is `******`, its own.
            let text = control::display::render_in_clear(&s.candidate);
            match request(socket, &format!("commit\n{text}")) {
                Ok((true, msg)) => {
                    // The daemon took it: it is the running configuration now.
                    let _ = s.commit();
                    let _ = write!(out, "Info: {msg}");
                }
                Ok((false, msg)) => {
                    let _ = write!(out, "Error: the daemon refused the commit:\n{msg}");
                }
                Err(e) => {
                    let _ = writeln!(out, "Error: {e}");
                }
            }
            continue;
        }
        match s.execute(n, &line) {
            Ok(Outcome::Exit) => break,
            Ok(Outcome::Display(t)) => {
                let _ = write!(out, "{t}");
            }
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(out, "Error: {} (column {})", e.message, e.column);
            }
        }
    }
    ExitCode::SUCCESS
}
