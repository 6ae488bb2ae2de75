//! Configuration language, commit, the service-location plan, `aftrd` and `aftrctl`.
//!
//! Empty on purpose: the control-plane issue fills this crate. The engine takes typed
//! settings (`dataplane::config::EngineConfig`); this crate will produce them from the
//! router-style configuration.
#![forbid(unsafe_code)]
