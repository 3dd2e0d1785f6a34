//! The shared test harness: finding and running the shipped binaries, scratch directories,
//! and (in later modules) nodes, databases and the fault proxy.
//!
//! Tests drive the real binaries as separate processes wherever a person or operator would,
//! so what is tested is what ships.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]

pub mod cli;
pub mod operator;

pub use cli::{Cli, Run, bin};
