//! Benchmarks of the components, a group each (the code is `harness::bench`, shared with the
//! `bench` binary that measures the whole pipeline).
//!
//! Run: `cargo bench -p lienthong-tests --bench lienthong -- [pki] [documents] [network] [storage] [log]`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod log_bench;

use harness::bench::measure::{Figures, cores};
use harness::bench::{documents, network, pki, storage};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    println!("lienthong benchmarks ({} threads available)", cores());
    let mut figures = Figures::new();
    let raw_verify = pki::raw_verify_rate(&mut figures);
    if wants("pki") {
        pki::run(&mut figures, raw_verify);
    }
    if wants("documents") {
        let raw_sign = pki::raw_sign_rate(&mut figures);
        documents::run(&mut figures, raw_verify, raw_sign);
    }
    if wants("network") {
        network::run(&mut figures);
    }
    if wants("storage") {
        storage::run(&mut figures);
    }
    if wants("log") {
        log_bench::run();
    }
}
