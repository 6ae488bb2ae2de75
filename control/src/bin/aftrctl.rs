//! aftrctl: talks to a running aftrd over its management socket.
//!
//! - `aftrctl [--socket PATH] [--json] display ... [| include|exclude|begin TEXT]`: a
//!   display (abbreviations as at the router: `aftrctl dis cur`).
//! - `aftrctl [--socket PATH] reset session [...] | reset statistics`
//! - `aftrctl [--socket PATH] commit [local] FILE`: applies a whole configuration (all
//!   or nothing) on every board it names (`local`: on this board only).
//! - `aftrctl [--socket PATH] switchover [service-location ID]`
//! - `aftrctl [--socket PATH]` alone: an interactive session in the router's way:
//!   `system-view`, commands, `commit`, `quit`; on a terminal with line editing,
//!   history and Tab completion; `?` for the commands of the view, `WORDS ?` for what
//!   may follow them.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use control::cli::Aftrctl as Cli;
use control::grammar::{self, View};
use control::mgmt::pipe;
use control::mgmt::request;
use control::parse::{Outcome, Session, commands_of};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Editor, Event, EventContext, EventHandler, KeyEvent,
    RepeatCount,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = &cli.command;
    if let Some(lines) = &cli.lines {
        let script = lines.split([';', '\n']).map(|l| l.trim().to_string()).collect();
        return interactive(&cli.socket, Input::Script(script));
    }
    if args.is_empty() {
        return interactive(&cli.socket, Input::new(!cli.no_history));
    }
    let (req, piped) = if args[0] == "commit" {
        let local = args.get(1).is_some_and(|a| a == "local");
        let Some(file) = args.get(1 + local as usize) else {
            eprintln!("usage: aftrctl commit [local] FILE");
            return ExitCode::from(2);
        };
        match std::fs::read_to_string(file) {
            Ok(t) => (format!("commit{}\n{t}", if local { " local" } else { "" }), None),
            Err(e) => {
                eprintln!("{file}: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        // The daemon reads the line with the command table (abbreviations included);
        // the filters after `|` are applied here.
        match pipe::split(&args.join(" ")) {
            Ok(mut p) => {
                p.json |= cli.json;
                (p.request(), Some(p))
            }
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::from(2);
            }
        }
    };
    match request(&cli.socket, &req) {
        Ok((true, text)) => {
            print!("{}", piped.map_or(text.clone(), |p| p.apply(&text)));
            ExitCode::SUCCESS
        }
        Ok((false, text)) => {
            eprint!("{text}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("aftrctl: {}: {e}", cli.socket.display());
            ExitCode::from(1)
        }
    }
}

/// Tab completion from the command tables of the view the session is in.
struct Complete {
    view: View,
}

impl Completer for Complete {
    type Candidate = Pair;
    fn complete(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let keywords = grammar::complete(&self.view, before)
            .into_iter()
            .filter(|w| w != "<cr>" && !w.starts_with(char::is_uppercase))
            .map(|w| Pair { display: w.clone(), replacement: format!("{w} ") })
            .collect();
        Ok((start, keywords))
    }
}

impl Hinter for Complete {
    type Hint = String;
}
impl Highlighter for Complete {}
impl Validator for Complete {}
impl rustyline::Helper for Complete {}

/// `?` answers at once, as at the router: the line so far is taken, marked as asking
/// for help.
struct HelpKey(Arc<AtomicBool>);

impl ConditionalEventHandler for HelpKey {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, _: &EventContext) -> Option<Cmd> {
        self.0.store(true, Ordering::Relaxed);
        Some(Cmd::AcceptLine)
    }
}

/// Where the lines come from: a terminal (line editing, history, completion), or
/// anything else (a pipe, a file), read as it is with the prompt written out.
enum Input {
    /// The editor, the history file, and whether `?` ended the line.
    Terminal(Box<Editor<Complete, FileHistory>>, Option<PathBuf>, Arc<AtomicBool>),
    Plain(std::io::Stdin),
    /// The lines of `-c`, without prompts.
    Script(std::collections::VecDeque<String>),
}

impl Input {
    fn new(history: bool) -> Input {
        if !std::io::stdin().is_terminal() {
            return Input::Plain(std::io::stdin());
        }
        let config = Config::builder().completion_type(CompletionType::List).auto_add_history(false).build();
        let Ok(mut ed) = Editor::<Complete, FileHistory>::with_config(config) else {
            return Input::Plain(std::io::stdin());
        };
        ed.set_helper(Some(Complete { view: View::User }));
        let help = Arc::new(AtomicBool::new(false));
        ed.bind_sequence(KeyEvent::from('?'), EventHandler::Conditional(Box::new(HelpKey(help.clone()))));
        let file = history.then(history_file).flatten();
        if let Some(f) = &file {
            let _ = ed.load_history(f);
        }
        Input::Terminal(Box::new(ed), file, help)
    }

    /// The next line, with `initial` typed already; None at the end.
    fn line(&mut self, prompt: &str, initial: &str, view: &View) -> Option<String> {
        match self {
            Input::Terminal(ed, _, help) => {
                if let Some(h) = ed.helper_mut() {
                    h.view = view.clone();
                }
                match ed.readline_with_initial(prompt, (initial, "")) {
                    Ok(l) if help.swap(false, Ordering::Relaxed) => {
                        // The line was taken without the `?`: written again, as typed,
                        // over the line the editor left (up one, from its start).
                        println!("\x1b[A\r\x1b[K{prompt}{l}?");
                        Some(format!("{l}?"))
                    }
                    Ok(l) => Some(l),
                    // Ctrl-C drops the line, as at the router.
                    Err(rustyline::error::ReadlineError::Interrupted) => Some(String::new()),
                    Err(_) => None,
                }
            }
            Input::Script(lines) => lines.pop_front(),
            Input::Plain(stdin) => {
                print!("{prompt}");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        println!();
                        None
                    }
                    Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
                }
            }
        }
    }

    /// Keeps `line` in the history; a line that may hold the HA key is not kept, nor
    /// one that asked for help.
    fn remember(&mut self, line: &str) {
        let secret = line.split_whitespace().any(|w| w.len() >= 3 && "preshared-key".starts_with(w));
        if let Input::Terminal(ed, file, _) = self
            && !line.trim().is_empty()
            && !line.ends_with('?')
            && !secret
        {
            let _ = ed.add_history_entry(line);
            if let Some(f) = file {
                let _ = ed.append_history(f);
            }
        }
    }
}

/// `$XDG_STATE_HOME/aftrctl_history`, or `~/.local/state/aftrctl_history`; its
/// directory is made if missing.
fn history_file() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = env("XDG_STATE_HOME").or_else(|| env("HOME").map(|h| h.join(".local/state")))?;
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("aftrctl_history"))
}

/// Standard output, noting whether an error was written (`Error: ...`).
struct Out {
    failed: bool,
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.failed |= buf.starts_with(b"Error:");
        std::io::stdout().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn interactive(socket: &Path, mut input: Input) -> ExitCode {
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
    let mut s = Session::new(running);
    let mut out = Out { failed: false };
    let mut n = 0;
    let mut initial = String::new();
    loop {
        let name = s.running.sysname.clone().unwrap_or_else(|| "aftr".into());
        // The vendor's prompts: `<aftr>` in the user view, `[aftr-VIEW]` configuring,
        // `[*aftr-VIEW]` while the candidate holds uncommitted changes.
        let prompt = match &s.view {
            View::User => format!("<{name}>"),
            v => format!("[{}{name}{}]", if s.dirty() { "*" } else { "" }, v.prompt()),
        };
        let Some(line) = input.line(&prompt, &std::mem::take(&mut initial), &s.view) else { break };
        input.remember(&line);
        n += 1;
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        if l == "?" {
            for c in commands_of(&s.view) {
                let _ = writeln!(out, "  {c}");
            }
            continue;
        }
        if let Some(typed) = l.strip_suffix('?') {
            // `service-ha ?`: what may come next; `service-ha de?`: the keywords so begun.
            for w in grammar::complete(&s.view, typed) {
                let _ = writeln!(out, "  {w}");
            }
            // As at the router: the words typed come back, to go on with.
            initial = typed.trim_start().to_string();
            continue;
        }
        let p = match pipe::split(l) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(out, "Error: {e}");
                continue;
            }
        };
        let full = match grammar::expand(&s.view, &p.command) {
            Ok(f) => f,
            Err(e) => {
                let _ = writeln!(out, "Error: {} (column {})", e.message, e.column);
                continue;
            }
        };
        if full == "commit" && s.view != View::User {
            commit(&mut s, socket, &mut out);
            continue;
        }
        match s.execute(n, &p.command) {
            Ok(Outcome::Exit) => break,
            Ok(Outcome::Display(t)) => {
                let t = if p.json {
                    format!("{}\n", serde_json::json!({ "configuration": t.lines().collect::<Vec<_>>() }))
                } else {
                    t
                };
                let _ = write!(out, "{}", p.apply(&t));
            }
            Ok(Outcome::Daemon | Outcome::Save) => {
                let req = if p.json { format!("{full} | json") } else { full };
                match request(socket, &req) {
                    Ok((ok, text)) => {
                        out.failed |= !ok;
                        let _ = write!(out, "{}", p.apply(&text));
                    }
                    Err(e) => {
                        let _ = writeln!(out, "Error: {e}");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(out, "Error: {} (column {})", e.message, e.column);
            }
        }
    }
    let _ = out.flush();
    if out.failed && matches!(input, Input::Script(_)) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// `commit` in the session: checked here first (line numbers of this session), then
/// applied by the daemon, which checks again and applies all or nothing.
fn commit(s: &mut Session, socket: &Path, out: &mut impl Write) {
    if let Err(errors) = control::validate::validate(&s.candidate, &s.positions) {
        for e in errors {
            let _ = writeln!(out, "Error: {} (line {})", e.message, e.line);
        }
        return;
    }
    // In clear: a key typed in this session goes to the daemon (over its socket, mode
    // 0600); one read back from its display is `******`, its own.
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
}
