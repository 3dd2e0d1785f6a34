//! Integration tests: one binary, one module per topic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod clerk_cli;
mod clerk_protocol;
mod crash;
mod document_cli;
mod network;
mod pki_cli;
mod refusals;
mod revocation;
