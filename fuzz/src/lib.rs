//! The body of every fuzz target, shared by the libFuzzer binaries (`fuzz_targets/*.rs`, one
//! line each) and by the ordinary test that replays the committed corpora
//! (`tests/it/fuzz_corpus.rs`, which compiles this file as a module), so every seed and every
//! crash found runs in `cargo test` through exactly the code the fuzzer ran.
//!
//! Each entry feeds the fuzzer's bytes to one decoder of untrusted input the way the node or
//! the CLI does, asserts the properties that must hold for whatever decodes (a panic is a
//! finding), and returns whether the input was accepted — decoded, and verified where the
//! target verifies — so the replay can check that the valid seeds still are.
//!
//! Deterministic: the PKI and the times are fixed ([`fixtures`]); nothing reads the clock.

pub mod fixtures;
pub mod node_targets;
pub mod pki_targets;
pub mod tlog_targets;

/// A target's entry: the input in, whether it was accepted out.
pub type Entry = fn(&[u8]) -> bool;

/// Every target by name: the name of its binary in `fuzz_targets/` and of its corpus
/// directory in `corpus/`.
pub const TARGETS: &[(&str, Entry)] = &[
    ("agency_code", pki_targets::agency_code),
    ("bundle", pki_targets::bundle),
    ("cbor_scan", pki_targets::cbor_scan),
    ("certificate", pki_targets::certificate),
    ("checkpoint", tlog_targets::checkpoint),
    ("config", node_targets::config),
    ("crl", pki_targets::crl),
    ("envelope", pki_targets::envelope),
    ("frame", node_targets::frame),
    ("log_entry", tlog_targets::log_entry),
    ("log_proof", tlog_targets::log_proof),
    ("manifest", pki_targets::manifest),
    ("merkle_proof", tlog_targets::merkle_proof),
    ("node_request", node_targets::node_request),
    ("pem", pki_targets::pem),
    ("receipt", pki_targets::receipt),
];
