//! Fuzzes the whole pipeline: the body is `dataplane::testing::fuzz::run` (its doc gives
//! the input format), which a unit test also runs so that it cannot rot.
//!
//! Run: `cargo fuzz run pipeline` in `dataplane/` (cargo-fuzz; nightly, or
//! `RUSTC_BOOTSTRAP=1` on a stable toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::testing::fuzz::run(data);
});
