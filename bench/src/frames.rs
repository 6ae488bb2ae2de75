//! The addresses of the benchmarks' traffic (frames are built by `crate::generator`):
//! the defaults of `generator::Addresses`, which `dslite-gen` can change. They are the
//! lab's, kept with the frame builders in `dataplane::testing::frames`.

pub use dataplane::testing::frames::{AFTR_MAC, ENDPOINT, HOST, PEER_MAC, POOL, SERVER, b4};
