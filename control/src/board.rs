//! Starts a board as its slot's configuration says: the workers' ports on the slot's
//! interfaces, next hops from the kernel's tables, and the ARP/ND announcer that follows
//! the board's role and addresses. The board itself (workers, hand-offs, the handle hot backup uses)
//! is `dataplane::board`.

use std::sync::Arc;

pub use dataplane::board::{Board, BoardHandle};
pub use dataplane::worker::SessionFilter;

pub use crate::config::Interfaces;
use dataplane::board::{BoardSpec, Neighbours, NextHopSource};
use dataplane::config::EngineConfig;
use dataplane::io::port::Ports;
use dataplane::nat::events::SessionEvent;

/// Starts the workers of `slot` on `cores`, on `io`'s interfaces (None: without
/// packets); forwarding from the start if `active`; events go to `on_event`, with
/// whether the board was forwarding.
pub fn start(
    slot: u32,
    cfg: EngineConfig,
    cores: &[u32],
    io: Option<Interfaces>,
    seed: u64,
    active: bool,
    on_event: impl FnMut(SessionEvent, bool) + Send + 'static,
) -> Result<Board, String> {
    let n = cfg.workers as usize;
    let ports = match &io {
        Some(io) => Ports::open(io, &cfg, slot, n, active)?,
        None => Ports::none(n),
    };
    let hops = match &io {
        Some(io) => Some(
            crate::nexthop::NextHops::start(&io.softwire, &io.internet)
                .map_err(|e| format!("reading the kernel's routes for {}: {e}", io.internet))?,
        ),
        None => None,
    };
    let fib = hops.as_ref().map(|h| h.fib());
    // The board's thread owns the watcher: it stops with the board.
    let next_hops = hops.map(|hops| Box::new(move || hops.resolve()) as NextHopSource);
    let neighbours = io.as_ref().map(|io| Arc::new(crate::announce::Announce::new(io, &cfg)) as Arc<dyn Neighbours>);
    Board::start(BoardSpec {
        slot,
        cfg,
        cores: cores.to_vec(),
        ports,
        seed,
        active,
        next_hops,
        fib,
        on_event: Box::new(on_event),
        neighbours,
    })
}
