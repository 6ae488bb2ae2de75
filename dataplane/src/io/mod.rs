//! Packet I/O under the engine. `af_packet`: AF_PACKET with a TPACKET_V3 receive ring,
//! the fallback for interfaces where XDP cannot attach. (AF_XDP, the primary path, is
//! next: see docs/decisions/0006-io.md.) `netns`: entering a network namespace (tests and
//! tools). These modules are the engine's I/O rings: the only other place, besides
//! `prefetch` and `memory`, where `unsafe` is allowed, each use argued where it stands.

pub mod af_packet;
pub mod netns;
