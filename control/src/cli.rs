//! The command lines of `aftrd` and `aftrctl` (clap), here so that the man pages and
//! shell completions are generated from the same definitions (`aftr-gen-docs`).

use std::path::PathBuf;

use clap::Parser;

/// One board of the DS-Lite AFTR: runs the slot of a configuration (its workers, hot
/// backup with its peer, NAT logs, metrics, the management socket for aftrctl), or
/// checks a configuration, or prints its plan.
#[derive(Parser)]
#[command(name = "aftrd", version)]
pub struct Aftrd {
    /// The configuration (the router's language; see aftr.conf(5)).
    #[arg(long, value_name = "FILE")]
    pub config: String,
    /// Check the configuration and exit: 0 if valid, else FILE:LINE:COLUMN: message for
    /// each error and 1.
    #[arg(long, conflicts_with = "plan")]
    pub check: bool,
    /// Print the plan (what each slot does) and exit; only the slot's with --slot.
    #[arg(long)]
    pub plan: bool,
    /// The slot (board) to run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub slot: Option<u32>,
    /// The management socket for aftrctl [default: /run/aftrd/slotN.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The least level logged (to journald under systemd, else stderr) [default: info,
    /// or RUST_LOG's `target=level,...`].
    #[arg(long, value_name = "LEVEL", value_parser = clap::builder::PossibleValuesParser::new(crate::logging::LEVELS))]
    pub log_level: Option<String>,
}

/// Talks to a running aftrd over its management socket: one command from the command
/// line (display ..., reset ..., commit [local] FILE, save, switchover [service-location
/// ID]), or, with none, an interactive session in the router's way (system-view,
/// commands, commit, quit; Tab completes, `?` lists what may follow).
#[derive(Parser)]
#[command(name = "aftrctl", version)]
pub struct Aftrctl {
    /// The board's management socket.
    #[arg(long, value_name = "PATH", default_value = "/run/aftrd/slot1.sock")]
    pub socket: PathBuf,
    /// A display's JSON form (the same as `| json` after it).
    #[arg(long)]
    pub json: bool,
    /// The interactive session keeps no history file (by default
    /// `$XDG_STATE_HOME/aftrctl_history`, or `~/.local/state/aftrctl_history`).
    #[arg(long)]
    pub no_history: bool,
    /// Runs these lines as a session (`;` or new lines between them), as if typed, and
    /// exits 1 if any failed: `aftrctl -c 'sys; service-ha preempt-time 90; commit'`.
    #[arg(short = 'c', value_name = "LINES", conflicts_with = "command")]
    pub lines: Option<String>,
    /// The command, e.g. `display service-ha` (none: interactive).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}
