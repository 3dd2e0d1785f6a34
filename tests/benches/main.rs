//! Benchmarks. Each prints its figure next to a limit measured in the same run on the same
//! machine (raw signature verification, raw QUIC transfer, raw database insert), and the
//! ratio between them: a ratio survives a change of machine, a bare number does not.
//!
//! Run: `cargo bench -p lienthong-tests --bench lienthong -- [pki] [documents] [network] [storage] [log]`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod document_bench;
mod log_bench;
mod measure;
mod network_bench;
mod pki_bench;
mod storage_bench;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    println!(
        "lienthong benchmarks ({} threads available)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let raw_verify = pki_bench::raw_verify_rate();
    if wants("pki") {
        pki_bench::run(raw_verify);
    }
    if wants("documents") {
        document_bench::run(raw_verify);
    }
    if wants("network") {
        network_bench::run();
    }
    if wants("storage") {
        storage_bench::run();
    }
    if wants("log") {
        log_bench::run();
    }
}
