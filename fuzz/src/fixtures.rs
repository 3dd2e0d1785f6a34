//! The fixed world every target runs in: one PKI (the 2024 Quảng Ninh network, built once by
//! `tests/it/fuzz_corpus.rs::write_seed_corpus` and committed under `fuzz/fixtures/`), one
//! node's view of it (district 000.00.41.H49), and fixed times. Nothing reads the clock or a
//! random source, so an input does the same thing on every run and every machine.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use pki::{AgencyCode, Certificate, Crl};
use time::OffsetDateTime;

/// When the fixture PKI was built: certificates are valid from an hour before, for ten years.
pub const BUILT: OffsetDateTime = time::macros::datetime!(2026-01-01 0:00 UTC);
/// When the seed documents and receipts were signed.
pub const SIGNED: OffsetDateTime = time::macros::datetime!(2026-01-01 1:00 UTC);
/// "Now" for every verification: a day after signing, while the fixture CRLs are fresh.
pub const NOW: OffsetDateTime = time::macros::datetime!(2026-01-02 0:00 UTC);
/// The CRL freshness budget of the fixture node (the node's default).
pub const FRESHNESS: Duration = Duration::from_secs(7 * 24 * 3600);

/// The node whose view the node targets take.
pub const OWN: &str = "000.00.41.H49";
/// Its routing parent (the province).
pub const PARENT: &str = "000.00.00.H49";
/// Its routing children (two communes).
pub const CHILDREN: [&str; 2] = ["000.01.41.H49", "000.02.41.H49"];
/// An agency whose seal certificate its own CA revoked (a sibling district): its receipts and
/// documents must be refused as revoked.
pub const REVOKED_SEAL: &str = "000.00.42.H49";

const ROOT_PEM: &str = include_str!("../fixtures/root.pem");
const CRLS_PEM: &str = include_str!("../fixtures/crls.pem");

/// The directory of the fixture files on disk (`fuzz/fixtures`): the config target points
/// every file a configuration names at one of them. Both crates that compile this file
/// (`fuzz/` and `tests/`) sit beside each other at the workspace root.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fixtures")
}

/// The national root of the fixture PKI.
pub fn root() -> &'static Certificate {
    static ROOT: OnceLock<Certificate> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mut all = Certificate::from_pem_all(ROOT_PEM).unwrap_or_else(|e| panic!("fuzz/fixtures/root.pem: {e}"));
        all.remove(0)
    })
}

/// The fixture CRLs: the root's and every sub-CA's, issued at [`BUILT`], due a week after
/// [`SIGNED`]; [`REVOKED_SEAL`]'s CA lists its seal.
pub fn crls() -> &'static [Crl] {
    static CRLS: OnceLock<Vec<Crl>> = OnceLock::new();
    CRLS.get_or_init(|| Crl::from_pem_all(CRLS_PEM).unwrap_or_else(|e| panic!("fuzz/fixtures/crls.pem: {e}")))
}

/// An agency code of the fixture network.
pub fn code(text: &str) -> AgencyCode {
    text.parse().unwrap_or_else(|e| panic!("fixture agency code {text}: {e}"))
}
