//! The shared test harness: finding and running the shipped binaries, scratch directories,
//! nodes and networks, databases, the seeded UDP fault proxy, the exactly-once audit, and
//! the benchmarks.
//!
//! Tests drive the real binaries as separate processes wherever a person or operator would,
//! so what is tested is what ships.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]

pub mod bench;
pub mod cli;
pub mod delivery;
pub mod fail_sync;
pub mod fault_net;
pub mod fault_proxy;
pub mod hostile;
pub mod identities;
pub mod network;
pub mod operator;
pub mod postgres;
pub mod probe;
pub mod scripted_peer;
pub mod silent_peer;
pub mod smtp;
pub mod tmpfs;
pub mod web;

pub use cli::{Cli, Run, bin};

/// Sends the nodes' logs to the test's output when `LIENTHONG_LOG` is set (e.g.
/// `LIENTHONG_LOG=info cargo test ...`); quiet otherwise.
pub fn logging() {
    if let Ok(filter) = std::env::var("LIENTHONG_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
