//! Packet I/O under the engine (docs/decisions/0006-io.md).
//! - `xdp`: the board's XDP program on an interface, which steers to the AF_XDP sockets
//!   only what the data plane owns; `xsk`: a worker's AF_XDP sockets on both interfaces
//!   over one UMEM. The primary path.
//! - `af_packet`: AF_PACKET with a TPACKET_V3 receive ring, the fallback for interfaces
//!   where XDP cannot attach.
//! - `port`: a worker's port over either, and the policy that opens a board's ports.
//! - `netns`: entering a network namespace (tests and tools).
//!
//! These modules are the engine's I/O rings: the only other place, besides `prefetch`
//! and `memory`, where `unsafe` is allowed, each use argued where it stands.

pub mod af_packet;
pub mod netns;
pub mod port;
pub mod rtnl;
pub mod xdp;
pub mod xsk;
