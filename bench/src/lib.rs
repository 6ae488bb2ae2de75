//! Shared pieces of the benchmark programs: frame templates and measurement helpers.
#![forbid(unsafe_code)]

pub mod frames;
pub mod measure;
