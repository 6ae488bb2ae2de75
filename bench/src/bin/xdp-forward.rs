//! xdp-forward: the bare AF_XDP forwarder, the physical limit against which `aftrd` is
//! measured (`bench-report`). The same XDP program, sockets, batching and poll strategy as
//! `aftrd`, and nothing of the AFTR: every frame the program steers to it is sent out of
//! the other interface with its MAC addresses swapped.
//!
//! Usage: xdp-forward --softwire IF --internet IF [--core N] [--poll busy|blocking]
//! Steers traffic to the benchmark endpoint (2001:db8::1) and pool (198.51.100.0/24).
//! Stops on SIGTERM or SIGINT, detaching the program, and prints what it forwarded.

use bench::measure::{arg, known_options};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dataplane::config::Ipv4Prefix;
use dataplane::io::xdp::{Mode, Steering};
use dataplane::io::xsk::{PollMode, XskPair};
use dataplane::{Egress, Verdict};

const USAGE: &str = "usage: xdp-forward --softwire IF --internet IF [--core N] [--poll busy|blocking]";

/// The interfaces, the core and the poll mode from the command line.
fn options(args: &[String]) -> Result<(String, String, Option<usize>, PollMode), String> {
    known_options(args, &["--softwire", "--internet", "--core", "--poll"], &[])?;
    let (Some(sw), Some(inet)) = (arg::<String>(args, "--softwire")?, arg::<String>(args, "--internet")?) else {
        return Err(USAGE.into());
    };
    let poll = match arg::<String>(args, "--poll")?.as_deref() {
        None | Some("busy") => PollMode::Busy,
        Some("blocking") => PollMode::Block,
        Some(p) => return Err(format!("--poll {p:?}: busy or blocking")),
    };
    Ok((sw, inet, arg(args, "--core")?, poll))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (sw, inet, core, poll) = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xdp-forward: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(core) = core {
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
    }
    match run(&sw, &inet, poll) {
        Ok(n) => {
            println!("forwarded {n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xdp-forward: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(sw: &str, inet: &str, poll: PollMode) -> std::io::Result<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    let pool = [Ipv4Prefix { addr: 0xc633_6400, len: 24 }];
    let mut sides = [Steering::attach(sw, Mode::Auto)?, Steering::attach(inet, Mode::Auto)?];
    let mut xsk = XskPair::open(sw, inet, 0)?;
    let (a, b) = xsk.fds();
    sides[0].register(0, a)?;
    sides[1].register(0, b)?;
    for s in &mut sides {
        s.set_targets(&[bench::frames::ENDPOINT], &pool)?;
        s.set_active(true)?;
    }
    eprintln!("xdp-forward: {} XDP on {sw} and {inet}", sides[0].mode());
    let mut forwarded = 0u64;
    while !stop.load(Ordering::Relaxed) {
        xsk.wait(poll, 10);
        for (from, to) in [(Egress::Softwire, Egress::Internet), (Egress::Internet, Egress::Softwire)] {
            xsk.receive(from, |frames, verdicts| {
                for (f, v) in frames.iter_mut().zip(verdicts.iter_mut()) {
                    let b = &mut f.buf[f.start..f.start + f.len];
                    if b.len() >= 12 {
                        let (dst, src) = b.split_at_mut(6);
                        dst.swap_with_slice(&mut src[..6]);
                    }
                    *v = Verdict::Forward(to);
                }
                forwarded += frames.len() as u64;
            });
        }
        xsk.flush();
    }
    let [a, b] = xsk.stats();
    eprintln!(
        "xdp-forward: softwire socket {a:?}\nxdp-forward: internet socket {b:?}\nxdp-forward: tx ring full {}",
        xsk.tx_dropped()
    );
    Ok(forwarded)
}
