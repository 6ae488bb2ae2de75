//! Hot backup between two AFTR boards.
//!
//! Empty on purpose: the hot-backup issue fills this crate (replication protocol, roles,
//! heartbeat, bulk sync). The engine side it will use already exists: the per-worker
//! session event rings and `Engine::install_*` in `dataplane`.
#![forbid(unsafe_code)]
