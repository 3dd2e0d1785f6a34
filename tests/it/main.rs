//! Integration tests: one binary, one module per topic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// Generates, for each named `async fn NAME(db: Database)`, the tests `NAME::sqlite` and
/// `NAME::postgres`: one suite, run against both storage backends.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test(harness::network::Database::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test(harness::network::Database::Postgres).await
            }
        }
    )*};
}

mod authz;
mod backup;
mod browser;
mod clerk_cli;
mod clerk_protocol;
mod cli_conventions;
mod crash;
mod crl_refs;
mod disk_full;
mod document_cli;
mod faults;
mod fuzz_corpus;
mod health_alerts;
mod hostile;
mod inline;
mod intake;
mod mail;
mod network;
mod node_config;
mod outbox;
mod path;
mod pki_cli;
mod refusals;
mod resume;
mod revocation;
mod scale_out;
mod storage;
mod sync_failure;
mod tlog;
mod web;
