//! NAT state: sessions, subscribers, port blocks, expiry, events.
//! Nothing here parses packets; the pipeline calls in with keys.

pub mod events;
pub mod filter;
pub mod frag_table;
pub mod fragments;
pub mod index;
pub mod owners;
pub mod pcp;
pub mod ports;
pub mod session;
pub mod statics;
pub mod subscriber;
pub mod table;
