//! The editing session over the configuration language (the commands are the tables of
//! `grammar`; the grammar is in `control/README.md`). A [`Session`] applies commands to
//! a candidate configuration; `commit` checks the candidate as a whole and makes it the
//! running one, or changes nothing. [`parse`] reads a whole file the same way.

use crate::config::*;
use crate::error::{ConfigError, Positions};
use crate::grammar::{self, Action, Edit, SessionCommand, words};
use crate::validate;

pub use crate::grammar::View;

/// What a command asks of the one who runs the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Committed,
    /// `display ...`: text to show.
    Display(String),
    /// `quit` or `return` from the system or user view: the session ends.
    Exit,
    /// `save`: the running configuration is to be written to the daemon's file.
    Save,
    /// A request for the daemon (`display statistics`, `reset session`, ...).
    Daemon,
}

/// An editing session: running and candidate configuration and the current view.
#[derive(Debug, Clone)]
pub struct Session {
    pub running: Config,
    pub candidate: Config,
    pub view: View,
    pub positions: Positions,
    running_positions: Positions,
}

/// The `?` help of a view: one line per command of its table, with what it does.
pub fn commands_of(view: &View) -> Vec<String> {
    grammar::help(view)
}

impl Session {
    pub fn new(running: Config) -> Self {
        Session {
            candidate: running.clone(),
            running,
            view: View::User,
            positions: Positions::new(),
            running_positions: Positions::new(),
        }
    }

    /// Runs one line typed or read at `line_no`. A command that fails changes nothing.
    pub fn execute(&mut self, line_no: usize, line: &str) -> Result<Outcome, ConfigError> {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            return Ok(Outcome::Done);
        }
        let toks = words::tokenize(line);
        let found = grammar::find(&self.view, &toks, line_no, line.chars().count() + 1)?;
        let (apply, undo) = match found.command.action {
            Action::Session(c) => return self.session(c),
            Action::Edit { apply, undo } => (apply, undo),
        };
        let mut edit = Edit {
            config: &mut self.candidate,
            positions: &mut self.positions,
            view: self.view.clone(),
            at: found.at,
            enter: None,
        };
        // The candidate is only changed by a command that succeeds.
        let saved = (edit.config.clone(), edit.positions.clone());
        let run = if found.undo { undo } else { apply };
        match run(&mut edit, &found.args) {
            Ok(()) => {
                if let Some(v) = edit.enter {
                    self.view = v;
                }
                Ok(Outcome::Done)
            }
            Err(e) => {
                (self.candidate, self.positions) = saved;
                Err(e)
            }
        }
    }

    fn session(&mut self, c: SessionCommand) -> Result<Outcome, ConfigError> {
        match c {
            SessionCommand::SystemView => {
                if self.view == View::User {
                    self.view = View::System;
                }
            }
            SessionCommand::Quit => {
                self.view = match self.view {
                    View::User => return Ok(Outcome::Exit),
                    View::System => View::User,
                    _ => View::System,
                }
            }
            SessionCommand::Return => {
                let was_user = self.view == View::User;
                self.view = View::User;
                if was_user {
                    return Ok(Outcome::Exit);
                }
            }
            SessionCommand::Commit => {
                self.commit().map_err(|mut e| e.remove(0))?;
                return Ok(Outcome::Committed);
            }
            SessionCommand::Save => return Ok(Outcome::Save),
            SessionCommand::DisplayRunning => return Ok(Outcome::Display(crate::display::render(&self.running))),
            SessionCommand::DisplayCandidate => return Ok(Outcome::Display(crate::display::render(&self.candidate))),
            SessionCommand::Daemon => return Ok(Outcome::Daemon),
        }
        Ok(Outcome::Done)
    }

    /// Checks the candidate; makes it the running configuration if it is valid.
    pub fn commit(&mut self) -> Result<(), Vec<ConfigError>> {
        validate::validate(&self.candidate, &self.positions)?;
        self.running = self.candidate.clone();
        self.running_positions = self.positions.clone();
        Ok(())
    }

    /// Throws the candidate's changes away.
    pub fn discard(&mut self) {
        self.candidate = self.running.clone();
        self.positions = self.running_positions.clone();
    }

    /// Uncommitted changes?
    pub fn dirty(&self) -> bool {
        self.candidate != self.running
    }
}

/// Parses a configuration file (a printed configuration, or a script with
/// `system-view`, `commit` and `quit`): everything is checked, every `commit` and the
/// end of the file commit. Returns the running configuration and the positions of its
/// statements, or every error found; nothing is applied on error.
pub fn parse(text: &str) -> Result<(Config, Positions), Vec<ConfigError>> {
    let mut s = Session::new(Config::default());
    s.view = View::System;
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        match s.execute(n + 1, line) {
            Ok(Outcome::Exit) => break,
            Ok(Outcome::Daemon) => errors.push(ConfigError::at(
                Pos { line: n + 1, column: 1 },
                "an operation on the running board, not configuration",
            )),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        if s.view == View::User {
            // A script's `quit` from the system view: keep reading as configuration.
            s.view = View::System;
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    s.commit()?;
    Ok((s.running, s.running_positions))
}
