//! aftrd: one board of the AFTR.
//!
//! `aftrd --check --config FILE` validates a configuration without running it: exit 0
//! if valid, otherwise `FILE:LINE:COLUMN: message` for each error and exit 1.
//! `aftrd --plan --config FILE [--slot N]` prints the plan (what each board does).
//! Running a board (`--config FILE --slot N`) needs the AF_XDP I/O layer, which is the
//! next piece of work; until then aftrd says so and exits.

use std::process::ExitCode;

use control::parse::ConfigError;

fn usage() -> ExitCode {
    eprintln!(
        "usage: aftrd --check --config FILE\n       aftrd --plan --config FILE [--slot N]\n       aftrd --config FILE --slot N"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let value = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)).cloned();
    let Some(file) = value("--config") else { return usage() };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(1);
        }
    };
    let (config, _) = match control::parse::parse(&text) {
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
    if flag("--check") {
        println!("{file}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let plan = control::plan::plan(&config);
    let slot: Option<u32> = value("--slot").and_then(|s| s.parse().ok());
    if flag("--plan") {
        for (id, sp) in &plan.slots {
            if slot.is_some_and(|s| s != *id) {
                continue;
            }
            println!(
                "slot {id}: active for {:?}, standby for {:?}, worker cores {:?}, peers {:?}",
                sp.active_for, sp.standby_for, sp.cores, sp.peers
            );
            if let Some(ec) = control::plan::engine_config(&config, &plan, *id) {
                for i in &ec.instances {
                    let pool: Vec<String> =
                        i.pool.iter().map(|p| format!("{}/{}", std::net::Ipv4Addr::from(p.addr), p.len)).collect();
                    println!(
                        "  ds-lite instance {}: endpoint {}, pool {}",
                        i.name,
                        std::net::Ipv6Addr::from(i.endpoint),
                        pool.join(" ")
                    );
                }
            }
        }
        for (name, ip) in &plan.instances {
            println!("ds-lite instance {name} (id {}): locations {:?}", ip.id, ip.locations);
        }
        return ExitCode::SUCCESS;
    }
    if slot.is_none() {
        return usage();
    }
    eprintln!("aftrd: running a board needs the AF_XDP I/O layer, which is not built yet; use --check or --plan");
    ExitCode::from(3)
}
