//! Configuration language, commit, the service-location plan, `aftrd` and `aftrctl`.
//!
//! The operator's model is the router's (`../shared/reference/seed-vsm-ha-dslite.txt`):
//! `service-ha` hot backup, service-location groups pairing an active and a standby
//! slot, weighted service-instance groups, DS-Lite instances. `grammar` holds the
//! language as one table of commands per view; `parse` turns text into a
//! [`config::Config`] through an editing [`parse::Session`] (candidate and running
//! configuration, atomic commit); `display` prints it back from the same tables; `plan`
//! computes what each board does and the engine settings it runs with.
#![forbid(unsafe_code)]

pub mod announce;
pub mod board;
pub mod chassis;
pub mod cli;
pub mod config;
pub mod cpus;
pub mod display;
pub mod docs;
pub mod error;
pub mod grammar;
pub mod ha;
pub mod ipfix;
pub mod logging;
pub mod metrics;
pub mod mgmt;
pub mod natlog;
pub mod nexthop;
pub mod parse;
pub mod plan;
pub mod routes;
pub mod secret;
pub mod systemd;
pub mod validate;
