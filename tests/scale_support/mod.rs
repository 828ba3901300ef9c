//! Shared helpers of tests/scale_ids.rs and tests/scale_fanout.rs.
#![allow(dead_code)]

pub mod ports;
pub mod postgres;

pub use ports::free_ports;
