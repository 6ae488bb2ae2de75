//! Shared pieces of the benchmark programs: frame templates and measurement helpers.
// Unsafe code only in `tun` (the TUN device ioctl).
#![deny(unsafe_code)]

pub mod attack;
pub mod frames;
pub mod generator;
pub mod lab;
pub mod measure;
pub mod start;
pub mod tap;
pub mod tun;
