//! Starts a board as its slot's configuration says: the workers' ports on the slot's
//! interfaces, next hops from the kernel's tables, and what follows the board's role
//! and addresses: the ARP/ND announcer and the routes for a routing daemon. The board itself (workers, hand-offs, the handle hot backup uses)
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
/// packets), with its routes in `route_table` if set; forwarding from the start if
/// `active`; events go to `on_events` in batches, each with whether the board was
/// forwarding for its location.
#[allow(clippy::too_many_arguments)]
pub fn start(
    slot: u32,
    cfg: EngineConfig,
    cores: &[u32],
    io: Option<Interfaces>,
    route_table: Option<u32>,
    seed: u64,
    active: bool,
    on_events: impl FnMut(&[(SessionEvent, bool)]) + Send + 'static,
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
    let announce = io.as_ref().map(|io| Arc::new(crate::announce::Announce::new(io, &cfg)) as Arc<dyn Neighbours>);
    let routes = match route_table {
        Some(t) => Some(Arc::new(crate::routes::Routes::new(t, &cfg)?) as Arc<dyn Neighbours>),
        None => None,
    };
    if let Some(r) = routes.as_ref().filter(|_| active) {
        // A board without a peer is active for every location from the start.
        r.set_active(u64::MAX >> (64 - cfg.locations.len().clamp(1, 64)));
    }
    let neighbours = match (announce, routes) {
        (Some(a), Some(r)) => Some(Arc::new(Both(a, r)) as Arc<dyn Neighbours>),
        (a, r) => a.or(r),
    };
    Board::start(BoardSpec {
        slot,
        cfg,
        cores: cores.to_vec(),
        ports,
        seed,
        active,
        next_hops,
        fib,
        on_events: Box::new(on_events),
        neighbours,
    })
}

/// The announcer and the routes, both told of every change.
struct Both(Arc<dyn Neighbours>, Arc<dyn Neighbours>);

impl Neighbours for Both {
    fn set_active(&self, locations: u64) {
        self.0.set_active(locations);
        self.1.set_active(locations);
    }
    fn reannounce(&self, locations: u64) {
        self.0.reannounce(locations);
        self.1.reannounce(locations);
    }
    fn set_addresses(&self, cfg: &EngineConfig) {
        self.0.set_addresses(cfg);
        self.1.set_addresses(cfg);
    }
}
