//! The signed official document: the manifest of national e-document fields, the COSE
//! envelope signed by the competent official and then the agency seal, the self-contained
//! bundle a verifier receives, and offline verification with a provenance report.

pub mod bundle;
pub mod cbor;
pub mod envelope;
pub mod manifest;
pub mod receipt;
pub mod verify;

pub use bundle::{Bundle, BundleError, BundleLimits, write_bundle};
pub use envelope::{Envelope, EnvelopeError};
pub use manifest::{Attachment, Business, DocumentId, DocumentKind, Manifest, ManifestError, Urgency};
pub use receipt::{Receipt, ReceiptError, ReceiptKind, SignedReceipt, StatusCode};
pub use verify::{DocumentError, Provenance, Role, VerifyOptions, verify_bundle, verify_envelope};

#[cfg(test)]
mod tests;
