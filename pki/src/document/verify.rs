//! Verifying a signed document and reporting its provenance.
//!
//! Stages, each with its own error: the container ([`BundleError`]), the envelope and
//! manifest, the signatures (count, order, the seal covering the person), each signer's chain
//! at its signing time ([`ChainError`]), the hierarchy (the seal is the sender's, the person is
//! under the sender), and the attachments. The result is a [`Provenance`] report a verifier can
//! read or a tool can parse.

use std::io::{Read, Seek};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::bundle::{Bundle, BundleError, BundleLimits};
use super::envelope::{Envelope, EnvelopeError, SignatureHeader};
use super::manifest::{Attachment, Manifest, ManifestError};
use super::receipt::{Receipt, SignedReceipt};
use crate::agency::AgencyCode;
use crate::cert::{Certificate, Profile};
use crate::crl::{Crl, CrlSet};
use crate::validate::{CertSummary, ChainError, RevocationMode, RevocationStatus, SignatureCache, Validator};

/// How far in the future of the verification time a signing time may lie (clock skew
/// between a signer's machine and the verifier's).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// Who a signature is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The competent official, signing personally.
    Person,
    /// The agency's seal.
    Seal,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Person => "official's signature",
            Role::Seal => "agency seal",
        })
    }
}

/// Why a document does not verify. Each variant names the stage and what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// The container.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The manifest.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Not exactly a person's signature followed by the seal.
    #[error("{0}")]
    Signatures(&'static str),
    /// A signature does not verify.
    #[error("the {role} (signature #{index}) does not verify: the document or the signature was altered")]
    BadSignature {
        /// 1-based position.
        index: usize,
        /// Whose.
        role: Role,
    },
    /// A signer's chain does not validate at the signing time.
    #[error("the {role} (signature #{index}): {error}")]
    Chain {
        /// 1-based position.
        index: usize,
        /// Whose.
        role: Role,
        /// The rule broken.
        error: ChainError,
    },
    /// The seal does not cover the person's signature.
    #[error("the agency seal does not cover the official's signature (signatures were swapped or replaced)")]
    SealDoesNotCover,
    /// A signing time is out of order or in the future.
    #[error("signing times are wrong: {0}")]
    SigningTime(String),
    /// The seal belongs to an agency other than the sender.
    #[error("the seal is of {seal}, but the document is from {sender}")]
    SealNotSender {
        /// The seal's agency.
        seal: AgencyCode,
        /// The manifest's sender.
        sender: AgencyCode,
    },
    /// The person is outside the sender's subtree.
    #[error("the official's certificate is of {person}, outside the sender {sender}")]
    PersonOutsideSender {
        /// The person's agency.
        person: AgencyCode,
        /// The sender.
        sender: AgencyCode,
    },
    /// A receipt carried in the bundle does not verify or is for another document.
    #[error("receipt #{index} in the bundle: {problem}")]
    Receipt {
        /// 1-based position.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// The manifest's signer fields do not match the person's certificate.
    #[error("the manifest names the signer {manifest:?}, but the official's certificate names {certificate:?}")]
    SignerMismatch {
        /// What the manifest says.
        manifest: String,
        /// What the certificate says.
        certificate: String,
    },
}

impl DocumentError {
    /// A short stable name of the failure, for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            DocumentError::Bundle(
                BundleError::AttachmentHash(_)
                | BundleError::AttachmentSize { .. }
                | BundleError::AttachmentTooLong { .. }
                | BundleError::MissingAttachment(_),
            ) => "attachment",
            DocumentError::Bundle(_) => "bundle",
            DocumentError::Envelope(_) => "envelope",
            DocumentError::Manifest(_) => "manifest",
            DocumentError::Signatures(_) | DocumentError::SealDoesNotCover | DocumentError::SigningTime(_) => {
                "signatures"
            }
            DocumentError::BadSignature { .. } => "bad_signature",
            DocumentError::Chain { .. } => "chain",
            DocumentError::SealNotSender { .. } | DocumentError::PersonOutsideSender { .. } => "hierarchy",
            DocumentError::SignerMismatch { .. } => "signer_mismatch",
            DocumentError::Receipt { .. } => "receipt",
        }
    }
}

/// One signer, as the report shows them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SignerReport {
    /// Official or seal.
    pub role: Role,
    /// The person's or agency's name.
    pub name: String,
    /// The person's position.
    pub position: Option<String>,
    /// The agency the certificate is for.
    pub agency: AgencyCode,
    /// When they signed (as claimed in the signature, and checked against the chain).
    #[serde(with = "time::serde::rfc3339")]
    pub signing_time: OffsetDateTime,
    /// The COSE algorithm.
    pub algorithm: &'static str,
    /// The chain from the signer to the national root.
    pub chain: Vec<CertSummary>,
    /// Revocation status at the signing time of each certificate below the root.
    pub revocation: Vec<RevocationStatus>,
}

/// An attachment, as verified.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AttachmentReport {
    /// What the manifest says (name, media type, size, SHA-256).
    #[serde(flatten)]
    pub attachment: Attachment,
    /// True once the bytes were read and matched.
    pub verified: bool,
}

/// A CRL that was used.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CrlReport {
    /// Its issuer.
    pub issuer: String,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    /// When the next was due.
    #[serde(with = "time::serde::rfc3339")]
    pub next_update: OffsetDateTime,
}

/// What a verifier learns about a document: who signed it in which role, the chains up to the
/// national root with validity and revocation at signing time, the attachments, the CRLs used.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Provenance {
    /// The document identifier.
    pub document_id: String,
    /// The manifest.
    pub manifest: Manifest,
    /// SHA-256 of the envelope, hex.
    pub envelope_sha256: String,
    /// The official, then the seal.
    pub signers: Vec<SignerReport>,
    /// The attachments.
    pub attachments: Vec<AttachmentReport>,
    /// CRLs carried in the bundle or given.
    pub crls: Vec<CrlReport>,
    /// The signed receipts carried in the bundle, each verified, in time order.
    pub receipts: Vec<ReceiptReport>,
    /// When the verification ran.
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
}

/// A receipt, as verified.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReceiptReport {
    /// The receipt's content.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// The sealing agency's name, from its certificate.
    pub signer: String,
}

/// What verification trusts and when it runs.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Trust anchors: the national root.
    pub anchors: Vec<Certificate>,
    /// CRLs from outside the bundle.
    pub crls: Vec<Crl>,
    /// The verification time ("now" for the verifier).
    pub at: OffsetDateTime,
    /// Whether a missing or stale CRL fails verification.
    pub revocation: RevocationMode,
    /// A signature cache to share across many verifications (a node).
    pub cache: Option<Arc<SignatureCache>>,
    /// Limits on the bundle.
    pub limits: BundleLimits,
}

impl VerifyOptions {
    /// Verification against `anchors` at `at`, revocation required.
    pub fn new(anchors: Vec<Certificate>, at: OffsetDateTime) -> Self {
        VerifyOptions {
            anchors,
            crls: Vec::new(),
            at,
            revocation: RevocationMode::Required,
            cache: None,
            limits: BundleLimits::default(),
        }
    }
}

/// A document whose signatures, chains and hierarchy verified (attachments not yet).
#[derive(Clone, Debug)]
pub struct VerifiedEnvelope {
    /// The manifest.
    pub manifest: Manifest,
    /// The official, then the seal.
    pub signers: Vec<SignerReport>,
}

/// Verifies the envelope's signatures, chains and hierarchy at each signing time with
/// `validator` (its anchors, CRLs, revocation mode and cache), `at` being "now" for the
/// verifier. A node passes the validator it already holds, so nothing is rebuilt per document.
pub fn verify_envelope(
    envelope: &Envelope,
    validator: &Validator,
    at: OffsetDateTime,
) -> Result<VerifiedEnvelope, DocumentError> {
    let manifest = envelope.manifest()?;
    let headers = envelope.headers()?;
    let (person, seal) = match headers.as_slice() {
        [] => return Err(DocumentError::Signatures("the document is not signed")),
        [_] => {
            return Err(DocumentError::Signatures(
                "the document is signed by one party only; it needs the official's signature and then the agency seal",
            ));
        }
        [p, s] => (p, s),
        _ => {
            return Err(DocumentError::Signatures(
                "the document has more than two signatures; lienthong expects the official's, then the agency seal",
            ));
        }
    };
    // Order first: the second signature must seal the first, and a seal in first place with a
    // person in second is named as the wrong order rather than as a wrong certificate (the
    // leaves are parsed for that only when the first signer's certificate is refused).
    let wrong_order = || {
        DocumentError::Signatures(
            "signatures are in the wrong order: the official signs first, then the agency seal over it",
        )
    };
    if person.seals.is_some() || seal.seals.is_none() {
        return Err(wrong_order());
    }
    let profile_of = |h: &SignatureHeader| {
        h.chain.first().and_then(|der| Certificate::from_der(der).ok()).and_then(|c| c.profile().ok())
    };
    let person_report = match verify_signer(envelope, validator, person, Role::Person, at) {
        Err(DocumentError::Chain { error: ChainError::WrongUsage { .. }, .. })
            if profile_of(person) == Some(Profile::Seal) && profile_of(seal) == Some(Profile::Person) =>
        {
            return Err(wrong_order());
        }
        result => result?,
    };
    let seal_report = verify_signer(envelope, validator, seal, Role::Seal, at)?;
    let person_sig = envelope.signature_bytes(person.index).unwrap_or_default();
    if seal.seals != Some(crate::sha256(person_sig)) {
        return Err(DocumentError::SealDoesNotCover);
    }
    if person.signing_time > seal.signing_time {
        return Err(DocumentError::SigningTime(format!(
            "the official signed at {}, after the seal at {}",
            crate::format_utc(person.signing_time),
            crate::format_utc(seal.signing_time)
        )));
    }
    if seal_report.agency != manifest.from {
        return Err(DocumentError::SealNotSender { seal: seal_report.agency, sender: manifest.from });
    }
    if !person_report.agency.is_within(&manifest.from) {
        return Err(DocumentError::PersonOutsideSender { person: person_report.agency, sender: manifest.from });
    }
    if person_report.name != manifest.signer_name {
        return Err(DocumentError::SignerMismatch {
            manifest: manifest.signer_name.clone(),
            certificate: person_report.name.clone(),
        });
    }
    Ok(VerifiedEnvelope { manifest, signers: vec![person_report, seal_report] })
}

fn verify_signer(
    envelope: &Envelope,
    validator: &Validator,
    header: &SignatureHeader,
    role: Role,
    now: OffsetDateTime,
) -> Result<SignerReport, DocumentError> {
    if header.signing_time > now + MAX_CLOCK_SKEW {
        return Err(DocumentError::SigningTime(format!(
            "the {role} claims to be made at {}, later than now ({})",
            crate::format_utc(header.signing_time),
            crate::format_utc(now)
        )));
    }
    let usage = match role {
        Role::Person => Profile::Person,
        Role::Seal => Profile::Seal,
    };
    let chain = validator
        .validate(&header.chain, header.signing_time, usage)
        .map_err(|error| DocumentError::Chain { index: header.index, role, error })?;
    let key = chain.leaf.public_key.as_ref().map_err(|problem| DocumentError::Chain {
        index: header.index,
        role,
        error: ChainError::WeakKey { cert: chain.leaf.id(), problem: problem.clone() },
    })?;
    if !envelope.verify_signature(header, key) {
        return Err(DocumentError::BadSignature { index: header.index, role });
    }
    Ok(SignerReport {
        role,
        name: chain.leaf.common_name.clone().unwrap_or_else(|| chain.leaf.subject.clone()),
        position: chain.leaf.title.clone(),
        agency: chain.agency,
        signing_time: header.signing_time,
        algorithm: header.algorithm.name(),
        chain: chain.path,
        revocation: chain.revocation,
    })
}

/// Verifies a whole bundle: container, envelope, signatures, chains with the bundle's CRLs and
/// the given ones, hierarchy, and every attachment's bytes.
pub fn verify_bundle<R: Read + Seek>(reader: R, options: &VerifyOptions) -> Result<Provenance, DocumentError> {
    let mut bundle = Bundle::open(reader, options.limits)?;
    let mut crls = CrlSet::new();
    for (i, der) in bundle.crls.iter().enumerate() {
        let crl = Crl::from_der(der).map_err(|error| BundleError::Crl { index: i + 1, error })?;
        crls.add(crl);
    }
    for crl in &options.crls {
        crls.add(crl.clone());
    }
    let mut validator = Validator::new(options.anchors.clone()).with_crls(crls).with_mode(options.revocation);
    if let Some(cache) = &options.cache {
        validator = validator.with_cache(cache.clone());
    }
    let verified = verify_envelope(&bundle.envelope, &validator, options.at)?;
    bundle.check_attachments()?;
    let digest = bundle.envelope.digest();
    let mut receipts = Vec::with_capacity(bundle.receipts.len());
    for (i, bytes) in bundle.receipts.iter().enumerate() {
        let problem = |p: String| DocumentError::Receipt { index: i + 1, problem: p };
        let signed = SignedReceipt::from_bytes(bytes).map_err(|e| problem(e.to_string()))?;
        let chain = signed.verify(&validator).map_err(|e| problem(e.to_string()))?;
        if signed.receipt.envelope != digest {
            return Err(problem("it is for another document".to_owned()));
        }
        let signer = chain.leaf.common_name.clone().unwrap_or_else(|| chain.leaf.subject.clone());
        receipts.push(ReceiptReport { receipt: signed.receipt, signer });
    }
    receipts.sort_by_key(|r| r.receipt.at);
    Ok(Provenance {
        document_id: verified.manifest.id().to_string(),
        envelope_sha256: hex::encode(bundle.envelope.digest()),
        signers: verified.signers,
        attachments: verified
            .manifest
            .attachments
            .iter()
            .map(|a| AttachmentReport { attachment: a.clone(), verified: true })
            .collect(),
        manifest: verified.manifest,
        crls: validator
            .crls()
            .iter()
            .map(|c| CrlReport { issuer: c.issuer.clone(), this_update: c.this_update, next_update: c.next_update })
            .collect(),
        receipts,
        verified_at: options.at,
    })
}
