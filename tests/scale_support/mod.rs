//! Shared helpers of tests/scale_ids.rs and tests/scale_fanout.rs.
#![allow(dead_code)]

pub mod postgres;
