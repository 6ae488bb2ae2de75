//! aftrd: one board of the AFTR.
//!
//! - `aftrd --check --config FILE`: validates a configuration without running it: exit
//!   0 if valid, otherwise `FILE:LINE:COLUMN: message` for each error and exit 1.
//! - `aftrd --plan --config FILE [--slot N]`: prints the plan.
//! - `aftrd --config FILE --slot N [--socket PATH]`: runs board N: its workers (pinned
//!   to the slot's cores), NAT event logging, metrics, and the management socket for
//!   `aftrctl` (default `/run/aftrd/slotN.sock`, mode 0600). SIGTERM and SIGINT stop it
//!   cleanly; SIGHUP reloads the file (all or nothing). With the slot's interfaces
//!   set, the workers carry traffic over AF_XDP (AF_PACKET as the fallback), and a
//!   paired slot with an `ha-address` runs hot backup with its peer.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use clap::{CommandFactory, Parser};
use control::cli::Aftrd as Cli;
use control::error::ConfigError;
use control::mgmt::{self, Daemon};
use control::natlog::NatLogger;
use dataplane::nat::events::SessionEvent;
use tracing::{info, warn};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = cli.config.clone();
    if !cli.check && !cli.plan && cli.slot.is_none() {
        // Exits 2, as clap does for every bad command line.
        Cli::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, "--slot N is needed to run a board")
            .exit();
    }
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(1);
        }
    };
    // The key is read as the board would read it at start (its file or credential).
    let credentials = control::secret::credentials_directory();
    let parsed = control::parse::parse(&text).and_then(|(mut c, pos)| {
        let secret = control::secret::resolve(&mut c, &pos, None, credentials.as_deref()).map_err(|e| vec![e])?;
        Ok((c, secret))
    });
    let (config, secret) = match parsed {
        Ok(c) => c,
        Err(errors) => {
            for ConfigError { line, column, message } in errors {
                eprintln!("{file}:{line}:{column}: {message}");
            }
            return ExitCode::from(1);
        }
    };
    for w in control::validate::warnings(&config) {
        eprintln!("{file}: warning: {w}");
    }
    if cli.check {
        println!("{file}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let plan = control::plan::plan(&config);
    if cli.plan {
        print!("{}", control::plan::describe(&config, &plan, cli.slot));
        return ExitCode::SUCCESS;
    }
    let Some(slot) = cli.slot else { return ExitCode::from(2) };
    if let Err(e) = control::logging::init(cli.log_level.as_deref()) {
        eprintln!("aftrd: {e}");
        return ExitCode::from(2);
    }
    match run(&file, config, secret, slot, cli.socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("slot {slot}: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(
    file: &str,
    config: control::config::Config,
    secret: Option<control::config::Secret>,
    slot: u32,
    socket: Option<PathBuf>,
) -> anyhow::Result<()> {
    let plan = control::plan::plan(&config);
    let slot_cfg = config.slots.get(&slot).ok_or_else(|| anyhow::anyhow!("slot {slot} is not defined in {file}"))?;
    let cores = slot_cfg.cores.clone();
    let io = match (&slot_cfg.softwire_if, &slot_cfg.internet_if) {
        (Some(s), Some(i)) => Some(control::board::Interfaces {
            softwire: s.clone(),
            internet: i.clone(),
            packet_io: slot_cfg.packet_io,
            poll: slot_cfg.poll,
        }),
        _ => None,
    };
    let ec = control::plan::engine_config(&config, &plan, slot)
        .ok_or_else(|| anyhow::anyhow!("slot {slot} serves no DS-Lite instance in {file}"))?;
    let host = config.sysname.clone().unwrap_or_else(|| "aftr".into());
    let logger = Arc::new(Mutex::new(if config.nat_log.hosts.is_empty() {
        None
    } else {
        Some(NatLogger::new(&config.nat_log, &host, slot).map_err(|e| anyhow::anyhow!("NAT logging: {e}"))?)
    }));
    let l2 = logger.clone();
    let seed = dataplane::board::random_seed().map_err(|e| anyhow::anyhow!("the kernel's random source: {e}"))?;
    let ha_settings =
        control::ha::settings(&config, &plan, slot, secret.as_ref()).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    // The HA thread's event input exists before the board, which feeds it from its
    // first event; the thread itself starts once the board's handle is there.
    let (ha_events, ha_input) = ha_settings.as_ref().map(|_| ha_sync::node::events()).unzip();
    let route_table = slot_cfg.route_table;
    let board = control::board::start(slot, ec, &cores, io, route_table, seed, ha_settings.is_none(), move |events| {
        if let Some(tx) = &ha_events {
            let session_events = events.iter().map(|&(e, _)| e);
            tx.send_batch(session_events.filter(|e| !matches!(e, SessionEvent::Limit(_))).collect());
        }
        if let Some(l) = l2.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            for (e, active) in events {
                l.event(e, *active);
            }
        }
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let ha = match ha_settings.zip(ha_input) {
        Some((s, input)) => {
            let roles: Vec<String> = s
                .locations
                .iter()
                .map(|l| format!("location {} {}", l.id, if l.preferred { "preferred" } else { "backup" }))
                .collect();
            let desc = format!("hot backup with the peer at {} ({})", s.peer, roles.join(", "));
            let node = Arc::new(
                ha_sync::node::Node::start_with(s, board.handle(), input)
                    .map_err(|e| anyhow::anyhow!("HA channel: {e}"))?,
            );
            info!("slot {slot}: {desc}; inactive until the role is settled");
            Some(node)
        }
        None => None,
    };
    info!("slot {slot}: {} workers ({} pinned to cores {:?}); {}", board.config.workers, board.pinned, cores, board.io);
    // Every other thread, started or to come, off this host's worker cores.
    match control::cpus::keep_off(&control::cpus::worker_cores(&config, slot)) {
        Ok(Some(rest)) => info!("slot {slot}: threads other than the workers on cores {rest:?}"),
        Ok(None) => {}
        Err(e) => warn!("slot {slot}: threads other than the workers left where they were: {e}"),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;
    let counters = board.counters();
    let ha_status = ha.clone();
    let watch = control::logging::spawn_watch(
        control::logging::Sources {
            slot,
            workers: counters.clone(),
            ha: ha_status.map(|n| Box::new(move || n.status()) as Box<dyn Fn() -> ha_sync::node::Status + Send>),
        },
        stop.clone(),
    )?;
    let gauges = board.gauges.clone();
    let ha_metrics = ha.clone();
    let log_metrics = logger.clone();
    let metrics_body: control::metrics::Body = Arc::new(move || {
        let mut o = control::metrics::render(slot, &counters, &gauges);
        if let Some(n) = &ha_metrics {
            o.push_str(&control::metrics::render_ha(slot, &n.status()));
        }
        if let Some(l) = log_metrics.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            o.push_str(&control::metrics::render_log(slot, &l.stats));
        }
        o
    });
    let metrics = match config.metrics_of(slot) {
        Some(addr) => Some(control::metrics::Listener::start(addr, metrics_body.clone())?),
        None => None,
    };
    let path = socket.unwrap_or_else(|| PathBuf::from(format!("/run/aftrd/slot{slot}.sock")));
    let listener = mgmt::bind(&path)?;
    info!("slot {slot}: management socket {}", path.display());
    let (workers, ha_thread) = (board.handle(), ha.clone());
    let progress = move || {
        let mut p = workers.progress();
        p.extend(ha_thread.as_ref().map(|n| n.rounds()));
        p
    };
    if let Some(period) = control::systemd::watchdog(progress) {
        info!("systemd watchdog: a ping every {period:?} while every worker and the HA thread run");
    }
    control::systemd::ready();
    let mut d = Daemon {
        slot,
        file: PathBuf::from(file),
        running: config,
        secret,
        board,
        ha,
        logger,
        metrics,
        metrics_body,
        chassis: Default::default(),
        baseline: Default::default(),
    };
    mgmt::serve(&listener, &mut d, &stop, &reload, &PathBuf::from(file));
    control::systemd::stopping();
    drop(listener);
    let _ = std::fs::remove_file(&path);
    if let Some(n) = d.ha.take() {
        n.stop();
    }
    d.board.stop();
    drop(d.metrics.take());
    let _ = watch.join();
    info!("slot {slot} stopped");
    Ok(())
}
