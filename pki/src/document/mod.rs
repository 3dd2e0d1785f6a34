//! The signed official document: the manifest of national e-document fields, the COSE
//! envelope signed by the competent official and then the agency seal, the self-contained
//! bundle a verifier receives, and validation with proof of existence and a report in the
//! shape of ETSI EN 319 102-1.

pub mod bundle;
pub mod cbor;
pub mod envelope;
pub mod manifest;
pub mod receipt;
pub mod report_text;
pub mod validation;
pub mod verify;

pub use bundle::{Bundle, BundleError, BundleLimits, Carried, write_bundle, write_bundle_carrying};
pub use envelope::{Envelope, EnvelopeError};
pub use manifest::{Attachment, Business, DocumentId, DocumentKind, Manifest, ManifestError, Urgency};
pub use receipt::{Receipt, ReceiptError, ReceiptKind, SignedReceipt, StatusCode};
pub use validation::{
    Arrival, ArrivalError, Indication, SubIndication, ValidationReport, VerifyError, VerifyOptions, verify_arrival,
    verify_bundle,
};
pub use verify::{DocumentError, Role, verify_envelope};

#[cfg(test)]
mod tests;
