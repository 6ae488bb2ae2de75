//! The DS-Lite AFTR packet engine (RFC 6333): softwire decapsulation and encapsulation
//! and the softwire-aware NAT44 behind it, on per-worker session tables.
//!
//! I/O-agnostic: [`Engine::process`] takes an Ethernet frame in a buffer with headroom
//! and returns a [`Verdict`]; the I/O layer (AF_XDP, AF_PACKET) moves the frames. The
//! engine takes typed settings ([`config::EngineConfig`]) and emits typed session events
//! ([`nat::events::SessionEvent`]); it knows nothing of configuration text or of the hot
//! backup wire format.
// Unsafe code is denied everywhere but in `prefetch`, `memory` and the I/O rings (`io`).
#![deny(unsafe_code)]

pub mod board;
pub mod config;
pub mod counters;
pub mod engine;
pub mod fib;
pub mod frame;
pub mod handoff;
pub mod io;
pub mod memory;
pub mod nat;
pub mod pipeline;
pub mod prefetch;
pub mod testing;
pub mod wire;
pub mod worker;

pub use engine::Engine;
pub use frame::{Egress, FragmentPorts, Frame, HEADROOM, Sink, VecSink, Verdict, WorkerId};
