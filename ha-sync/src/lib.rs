//! Hot backup between two AFTR boards: the active board streams the sessions that have
//! lived longer than `delay-time`, their refreshes and deletions and the port blocks
//! behind them to the standby, which installs them; heartbeats decide who is active.
//!
//! - `wire`: the messages, authenticated with the pre-shared key;
//! - `stream`: the sequenced, acknowledged, retransmitted replication stream;
//! - `replicate`: which session events go out, and when (delay-time);
//! - `role`: init, standby, active; failover, preempt, switchover;
//! - `protocol`: one board's side of the protocol without I/O, driving all of the above;
//! - `node`: the HA thread of a board, tying the protocol to sockets, a clock and the board;
//! - `local`: the board's handle (`dataplane::board`) as the HA thread's local side.
#![forbid(unsafe_code)]

pub mod local;
pub mod node;
pub mod protocol;
pub mod replicate;
pub mod role;
pub mod stream;
pub mod wire;
