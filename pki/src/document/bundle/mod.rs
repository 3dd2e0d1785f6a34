//! The bundle: one self-contained file a verifier can be sent, in the spirit of ETSI ASiC-E.
//!
//! A ZIP container with exactly one possible byte layout, so that every reader — ours, `unzip`,
//! Python's `zipfile`, a streaming reader that walks local headers — sees the same entries with
//! the same bytes. The entries come in this order:
//!
//! ```text
//! mimetype                       application/vnd.lienthong.bundle+zip
//! META-INF/envelope.cose         the COSE_Sign envelope
//! META-INF/crl/001.crl ...       DER CRLs used to verify the signers, numbered from 001
//! META-INF/receipts/001.cose ... signed receipts, as they are collected, numbered from 001
//! META-INF/log/001.proof ...     transparency-log proofs of the envelope, numbered from 001
//! Công văn 123.pdf ...           the attachments, in the manifest's order, under its names
//! ```
//!
//! `mimetype` first and stored lets `file` and other tools recognise a bundle; attachments at
//! the top level under their own names let any ZIP tool open them. Entries are stored
//! uncompressed: attachments are usually PDFs that do not compress, and a reader that never
//! inflates cannot be hit by a decompression bomb.
//!
//! The log proofs (`crate::tlog::LogProof`, one per entry) say that a node's log recorded the
//! envelope and a witness co-signed that log: evidence gathered after the document was signed,
//! carried so that a verifier needs nothing beside the file. A bundle without them is as valid
//! as before; the verifier counts each one that verifies as a proof of existence.
//!
//! The byte layout (`layout.rs`) leaves no choice: local records back to back from offset 0,
//! the central directory listing them in the same order, the end record last; no comments,
//! extra fields, data descriptors, encryption, compression or ZIP64; fixed versions, flags,
//! timestamps and attributes; entry names in NFC UTF-8 without path tricks or bidirectional
//! controls (`names.rs`). Every byte of the file belongs to exactly one record, so there is no
//! room for content that one reader shows and another does not. The reader ([`Bundle::open`])
//! checks all of it against the raw bytes and refuses anything else with a [`LayoutError`] or
//! a [`BundleError`] naming the entry and the rule; the writer ([`write_bundle`]) produces only
//! that layout.

mod layout;
mod layout_error;
mod names;
mod reader;
mod writer;

#[cfg(test)]
pub(crate) mod tests;

use std::io;

use super::envelope::EnvelopeError;
use super::manifest::ManifestError;

pub use layout::MAX_BUNDLE_OFFSET;
pub use layout_error::{HeaderField, LayoutError};
pub use names::{NameRule, check_entry_name};
pub use reader::Bundle;
pub use writer::{write_bundle, write_bundle_carrying};

/// The `mimetype` entry's content.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.lienthong.bundle+zip";
/// Conventional file extension of a bundle.
pub const BUNDLE_EXTENSION: &str = "ltd";
/// The first entry's name.
const MEDIA_TYPE_ENTRY: &str = "mimetype";
/// The second entry's name.
const ENVELOPE_ENTRY: &str = "META-INF/envelope.cose";
/// The prefix of the entries that hold CRLs (`001.crl`, `002.crl`, …).
const CRL_DIR: &str = "META-INF/crl/";
/// The prefix of the entries that hold receipts (`001.cose`, `002.cose`, …).
const RECEIPT_DIR: &str = "META-INF/receipts/";
/// The prefix of the entries that hold transparency-log proofs (`001.proof`, …).
const LOG_PROOF_DIR: &str = "META-INF/log/";
/// The directory of the bundle's own entries; no attachment may live there.
const META_DIR: &str = "META-INF/";

/// The name of the `index`-th CRL entry (from 1): the only name it may have.
fn crl_entry(index: usize) -> String {
    format!("{CRL_DIR}{index:03}.crl")
}

/// The name of the `index`-th receipt entry (from 1): the only name it may have.
fn receipt_entry(index: usize) -> String {
    format!("{RECEIPT_DIR}{index:03}.cose")
}

/// The name of the `index`-th log proof entry (from 1): the only name it may have.
fn log_proof_entry(index: usize) -> String {
    format!("{LOG_PROOF_DIR}{index:03}.proof")
}

/// What a bundle carries besides the envelope and the attachments: the evidence a verifier
/// needs offline. Every part may be empty.
#[derive(Clone, Copy, Debug, Default)]
pub struct Carried<'a> {
    /// DER CRLs covering the signers (and the receipts' and proofs' sealers).
    pub crls: &'a [Vec<u8>],
    /// Signed receipts and statuses (COSE bytes).
    pub receipts: &'a [Vec<u8>],
    /// Transparency-log proofs of the envelope (encoded `crate::tlog::LogProof`s).
    pub log_proofs: &'a [Vec<u8>],
}

/// The default of [`BundleLimits::max_log_proofs`]; also how many proofs a node gathers for
/// a fetched bundle.
pub const DEFAULT_MAX_LOG_PROOFS: usize = 64;

/// Bounds on reading a bundle. Every default is explicit and has a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleLimits {
    /// Largest single attachment. 256 MiB holds a scanned dossier of several hundred pages.
    pub max_attachment_bytes: u64,
    /// Largest sum of attachments. 1 GiB. With the CRLs (64 × 8 MiB at most) and receipts
    /// (4,096 × 256 KiB at most) a bundle stays under the 4 GiB the layout allows without
    /// ZIP64 ([`MAX_BUNDLE_OFFSET`]); raising limits past that makes the writer refuse.
    pub max_total_bytes: u64,
    /// Most CRLs carried (one per CA on two signers' paths is 6; 64 leaves room for history).
    pub max_crls: usize,
    /// Most receipts carried (hop, delivery and status receipts of up to 200 recipients).
    pub max_receipts: usize,
    /// Most transparency-log proofs carried, each at most
    /// [`crate::tlog::MAX_LOG_PROOF_BYTES`]: 64 covers the entries of every node on the
    /// paths to a few dozen recipients, and 64 × 256 KiB keeps the bundle's bound.
    pub max_log_proofs: usize,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_attachment_bytes: 256 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
            max_crls: 64,
            max_receipts: 4096,
            max_log_proofs: DEFAULT_MAX_LOG_PROOFS,
        }
    }
}

impl BundleLimits {
    /// Most entries a bundle within these limits has: `mimetype`, the envelope, the
    /// attachments, the CRLs, the receipts and the log proofs. It bounds the central
    /// directory read into memory.
    pub fn max_entries(&self) -> usize {
        2 + super::manifest::MAX_ATTACHMENTS + self.max_crls + self.max_receipts + self.max_log_proofs
    }
}

/// Why a bundle cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The ZIP container breaks the one layout a bundle has (see [`LayoutError`]).
    #[error("not a canonical lienthong bundle: {0}")]
    Layout(#[from] LayoutError),
    /// I/O failed.
    #[error("bundle I/O: {0}")]
    Io(#[from] io::Error),
    /// `mimetype` missing, not first, or wrong.
    #[error("not a lienthong bundle: the first entry must be `mimetype` holding {BUNDLE_MEDIA_TYPE}")]
    MediaType,
    /// An entry that has no place in a bundle.
    #[error("bundle has an unexpected entry {0:?} (not an attachment named in the manifest)")]
    Unexpected(String),
    /// An entry that belongs in a bundle, at a place where the layout puts another.
    #[error("bundle entry #{position} is {found:?}, where the layout puts {expected}")]
    Order {
        /// Its position in the archive, from 1.
        position: usize,
        /// The entry found there.
        found: String,
        /// What the layout puts there.
        expected: String,
    },
    /// An entry's bytes do not match its ZIP checksum.
    #[error("bundle entry {0:?} is damaged or altered (its checksum does not match)")]
    Checksum(String),
    /// A limit is exceeded.
    #[error("bundle exceeds a limit: {0}")]
    Limit(String),
    /// No envelope.
    #[error("bundle has no {ENVELOPE_ENTRY}")]
    NoEnvelope,
    /// The envelope is refused.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The manifest is refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An attachment named in the manifest is absent.
    #[error("attachment {0:?} named in the manifest is missing from the bundle")]
    MissingAttachment(String),
    /// An attachment's size differs from the manifest.
    #[error("attachment {name:?} is {actual} bytes, the manifest says {declared}")]
    AttachmentSize {
        /// Its name.
        name: String,
        /// What the manifest says.
        declared: u64,
        /// What it is.
        actual: u64,
    },
    /// An attachment is longer than the manifest says (reading stopped there, so its full
    /// size is not known).
    #[error("attachment {name:?} is longer than the {declared} bytes the manifest says")]
    AttachmentTooLong {
        /// Its name.
        name: String,
        /// What the manifest says.
        declared: u64,
    },
    /// An attachment's hash differs from the manifest.
    #[error("attachment {0:?} does not match its SHA-256 in the manifest (altered)")]
    AttachmentHash(String),
    /// A CRL carried in the bundle is unreadable.
    #[error("CRL #{index} in the bundle is unreadable: {error}")]
    Crl {
        /// Its position, from 1.
        index: usize,
        /// Why.
        error: crate::crl::CrlParseError,
    },
}
