//! The trust core of lienthong: agency codes, the certificate hierarchy from the national root
//! down to communes, revocation, chain validation and the signed document envelope.
//!
//! **Architecture invariant:** this crate does no I/O and reads no clock. Bytes and times come
//! in, verdicts go out, so the offline verifier can be embedded anywhere (another program, a
//! web page through WebAssembly) and every test controls time.
#![forbid(unsafe_code)]

pub mod agency;
pub mod algorithm;
pub mod cert;
pub mod crl;
pub mod document;
pub mod issue;
pub mod keys;
#[cfg(any(test, feature = "memory-ca"))]
pub mod memory_ca;
pub mod pem;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tlog;
pub mod validate;

pub use agency::{AgencyCode, AgencyCodeError, Scope};
pub use cert::{CertId, Certificate, Profile, Serial};
pub use crl::{Crl, CrlSet, RevocationReason};
pub use keys::{KeyAlgorithm, PrivateKey};
pub use validate::{ChainError, RevocationMode, RevocationStatus, Validator, VerifiedChain};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A time for messages and reports: `2026-11-23 08:15:00 UTC`, whatever offset it carries.
pub fn format_utc(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(format).unwrap_or_else(|_| t.to_string())
}
