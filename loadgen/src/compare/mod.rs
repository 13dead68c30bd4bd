//! Flash-sale claims side by side: yunquan against the designs in use today (a Redis
//! Lua script, a PostgreSQL hot row), the same workload for every target, each
//! target's correctness read back from its own store.
//!
//! [`target::ClaimTarget`] is what a design offers; [`workload`] is what every target
//! gets; [`driver`] sends it; [`check`] judges the store; [`run`] runs every target
//! interleaved and [`report`] and [`svg`] show the result.

pub mod check;
pub mod driver;
pub mod http;
pub mod inprocess;
pub mod postgres;
pub mod redis;
pub mod report;
#[cfg(test)]
mod report_tests;
pub mod run;
pub mod spec;
pub mod svg;
pub mod target;
pub mod wire;
pub mod workload;

pub use run::{run, CompareConfig, Targets};
