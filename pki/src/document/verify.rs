//! The envelope's own rules, shared by every way a document is judged: exactly the official's
//! signature then the seal's over it, each signer's chain, and signer fidelity (the seal is the
//! sender's, the official is of the seal's agency, the manifest names the official as the
//! certificate does, in NFC).
//!
//! Two judgements are built on them. The offline verifier's report, with proof of existence
//! and ETSI indications, is [`super::validation`]. A node judges at arrival
//! ([`super::validation::verify_arrival`]); [`verify_envelope`] is the older judgement with
//! each chain validated at the signer's own claimed time, kept until the node's intake moves
//! to the arrival check.

use time::{Duration, OffsetDateTime};
use unicode_normalization::UnicodeNormalization;

use super::envelope::{Envelope, EnvelopeError, SignatureHeader};
use super::manifest::{Manifest, ManifestError};
use super::validation::SubIndication;
/// Bundle validation lives in [`super::validation`]; kept reachable at its former path.
pub use super::validation::{VerifyOptions, verify_bundle};
use crate::agency::AgencyCode;
use crate::cert::{Certificate, Profile};
use crate::validate::{CertSummary, ChainError, RevocationStatus, Validator};

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

impl Role {
    /// The certificate profile this role signs with.
    pub fn profile(self) -> Profile {
        match self {
            Role::Person => Profile::Person,
            Role::Seal => Profile::Seal,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Person => "official's signature",
            Role::Seal => "agency seal",
        })
    }
}

/// Why an envelope does not verify. Each variant names the stage and what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
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
    /// A signer's chain does not validate.
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
    /// The official's certificate is of another agency than the seal's. lienthong supports no
    /// delegation across agencies: no verifiable, revocable delegation instrument exists in
    /// the national format, and accepting the hierarchy as an implicit one would let a
    /// district's seal issue documents in any of its communes' officials' names.
    #[error(
        "the official's certificate is of {person}, but the seal is of {seal}: an official signs only for their own agency (delegation to another agency's seal is not supported)"
    )]
    PersonNotOfSealAgency {
        /// The official's agency.
        person: AgencyCode,
        /// The seal's agency.
        seal: AgencyCode,
    },
    /// The manifest's signer fields do not match the official's certificate (compared in NFC).
    #[error(
        "the manifest names the signer's {field} {manifest:?}, but the official's certificate says {certificate:?}"
    )]
    SignerMismatch {
        /// `name` or `position`.
        field: &'static str,
        /// What the manifest says.
        manifest: String,
        /// What the certificate says (NFC).
        certificate: String,
    },
}

impl DocumentError {
    /// A short stable name of the failure, for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            DocumentError::Envelope(_) => "envelope",
            DocumentError::Manifest(_) => "manifest",
            DocumentError::Signatures(_) | DocumentError::SealDoesNotCover | DocumentError::SigningTime(_) => {
                "signatures"
            }
            DocumentError::BadSignature { .. } => "bad_signature",
            DocumentError::Chain { .. } => "chain",
            DocumentError::SealNotSender { .. } | DocumentError::PersonNotOfSealAgency { .. } => "hierarchy",
            DocumentError::SignerMismatch { .. } => "signer_mismatch",
        }
    }

    /// The ETSI sub-indication this failure amounts to.
    pub fn sub_indication(&self) -> SubIndication {
        match self {
            DocumentError::Envelope(_) | DocumentError::Manifest(_) | DocumentError::Signatures(_) => {
                SubIndication::FormatFailure
            }
            DocumentError::BadSignature { .. } => SubIndication::SigCryptoFailure,
            DocumentError::Chain { error, .. } => SubIndication::of_chain_error(error),
            DocumentError::SealDoesNotCover => SubIndication::HashFailure,
            DocumentError::SigningTime(_)
            | DocumentError::SealNotSender { .. }
            | DocumentError::PersonNotOfSealAgency { .. }
            | DocumentError::SignerMismatch { .. } => SubIndication::SigConstraintsFailure,
        }
    }
}

/// One signer, as a node records them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SignerReport {
    /// Official or seal.
    pub role: Role,
    /// The person's or agency's name (NFC).
    pub name: String,
    /// The person's position (NFC).
    pub position: Option<String>,
    /// The agency the certificate is for.
    pub agency: AgencyCode,
    /// When they claim to have signed.
    #[serde(with = "time::serde::rfc3339")]
    pub signing_time: OffsetDateTime,
    /// The COSE algorithm.
    pub algorithm: &'static str,
    /// The chain from the signer to the national root.
    pub chain: Vec<CertSummary>,
    /// Revocation status of each certificate below the root, at the time the chain was
    /// validated.
    pub revocation: Vec<RevocationStatus>,
}

/// A document whose signatures, chains and signers verified (attachments not yet): the
/// envelope with what verifying it found. Only verification makes one (its fields are
/// private), so a function that takes it — a node's storage does — cannot be handed a
/// document nobody verified, or a manifest that is not the one the signatures cover.
#[derive(Clone, Debug)]
pub struct VerifiedEnvelope {
    envelope: Envelope,
    manifest: Manifest,
    signers: Vec<SignerReport>,
}

impl VerifiedEnvelope {
    /// The envelope that verified, byte for byte.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Its manifest (the signed one).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The official, then the seal.
    pub fn signers(&self) -> &[SignerReport] {
        &self.signers
    }

    /// The sending agency's name, from its seal certificate.
    pub fn sender_name(&self) -> &str {
        self.signers.get(1).map_or("", |s| s.name.as_str())
    }
}

/// Text as names are compared: trimmed, NFC.
pub(crate) fn nfc(text: &str) -> String {
    text.trim().nfc().collect()
}

/// The manifest and the two signature headers, in the order the law requires: exactly the
/// official's signature, then the seal's, which names the signature it covers.
pub fn signature_pair(envelope: &Envelope) -> Result<(Manifest, SignatureHeader, SignatureHeader), DocumentError> {
    let manifest = envelope.manifest()?;
    let mut headers = envelope.headers()?;
    let (person, seal) = match headers.len() {
        0 => return Err(DocumentError::Signatures("the document is not signed")),
        1 => {
            return Err(DocumentError::Signatures(
                "the document is signed by one party only; it needs the official's signature and then the agency seal",
            ));
        }
        2 => {
            let seal = headers.remove(1);
            (headers.remove(0), seal)
        }
        _ => {
            return Err(DocumentError::Signatures(
                "the document has more than two signatures; lienthong expects the official's, then the agency seal",
            ));
        }
    };
    // The second signature must seal the first.
    if person.seals.is_some() || seal.seals.is_none() {
        return Err(wrong_order());
    }
    Ok((manifest, person, seal))
}

fn wrong_order() -> DocumentError {
    DocumentError::Signatures(
        "signatures are in the wrong order: the official signs first, then the agency seal over it",
    )
}

/// Whether the seal's protected header names exactly the official's signature bytes.
pub fn check_seal_covers(
    envelope: &Envelope,
    person: &SignatureHeader,
    seal: &SignatureHeader,
) -> Result<(), DocumentError> {
    let person_sig = envelope.signature_bytes(person.index).unwrap_or_default();
    if seal.seals != Some(crate::sha256(person_sig)) {
        return Err(DocumentError::SealDoesNotCover);
    }
    Ok(())
}

/// Whether the official signed before (or when) the seal did, as each claims.
pub fn check_signing_order(person: &SignatureHeader, seal: &SignatureHeader) -> Result<(), DocumentError> {
    if person.signing_time > seal.signing_time {
        return Err(DocumentError::SigningTime(format!(
            "the official signed at {}, after the seal at {}",
            crate::format_utc(person.signing_time),
            crate::format_utc(seal.signing_time)
        )));
    }
    Ok(())
}

/// Signer fidelity: every way the manifest and the signers' certificates disagree, each with
/// the role it concerns. The seal must be the sender's; the official must be of the seal's
/// agency (no delegation, see [`DocumentError::PersonNotOfSealAgency`]); the manifest's signer
/// name and position must be the certificate's common name and title, both compared in NFC
/// (a certificate issued elsewhere may carry NFD text; the manifest always holds NFC).
pub fn signer_problems(
    manifest: &Manifest,
    person: Option<&Certificate>,
    seal: Option<&Certificate>,
) -> Vec<(Role, DocumentError)> {
    let mut problems = Vec::new();
    if let Some(seal_agency) = seal.and_then(|s| s.agency)
        && seal_agency != manifest.from
    {
        problems.push((Role::Seal, DocumentError::SealNotSender { seal: seal_agency, sender: manifest.from }));
    }
    let Some(person) = person else { return problems };
    let authority = seal.and_then(|s| s.agency).unwrap_or(manifest.from);
    if let Some(person_agency) = person.agency
        && person_agency != authority
    {
        problems.push((Role::Person, DocumentError::PersonNotOfSealAgency { person: person_agency, seal: authority }));
    }
    for (field, in_manifest, in_cert) in
        [("name", &manifest.signer_name, &person.common_name), ("position", &manifest.signer_position, &person.title)]
    {
        let certificate = in_cert.as_deref().map(nfc).unwrap_or_default();
        if nfc(in_manifest) != certificate {
            problems.push((
                Role::Person,
                DocumentError::SignerMismatch { field, manifest: in_manifest.clone(), certificate },
            ));
        }
    }
    problems
}

/// Verifies the envelope's signatures, chains and signers with each chain validated at its
/// signer's claimed signing time, `at` being "now" for the verifier. This trusts the claimed
/// time, which a signer with a stolen key chooses; nodes move to
/// [`super::validation::verify_arrival`] and verifiers to [`super::validation::verify_bundle`].
pub fn verify_envelope(
    envelope: &Envelope,
    validator: &Validator,
    at: OffsetDateTime,
) -> Result<VerifiedEnvelope, DocumentError> {
    verify_chains_at(envelope, validator, at, |h| h.signing_time)
}

/// Verifies the envelope with each signer's chain validated at `chain_time(signature)`.
pub(crate) fn verify_chains_at(
    envelope: &Envelope,
    validator: &Validator,
    now: OffsetDateTime,
    chain_time: impl Fn(&SignatureHeader) -> OffsetDateTime,
) -> Result<VerifiedEnvelope, DocumentError> {
    let (manifest, person, seal) = signature_pair(envelope)?;
    // A seal in first place with a person in second is named as the wrong order rather than
    // as a wrong certificate (the leaves are parsed for that only when the first signer's
    // certificate is refused).
    let profile_of = |h: &SignatureHeader| {
        h.chain.first().and_then(|der| validator.certificate(der).ok()).and_then(|c| c.profile().ok())
    };
    let (person_report, person_leaf) =
        match verify_signer(envelope, validator, &person, Role::Person, now, chain_time(&person)) {
            Err(DocumentError::Chain { error: ChainError::WrongUsage { .. }, .. })
                if profile_of(&person) == Some(Profile::Seal) && profile_of(&seal) == Some(Profile::Person) =>
            {
                return Err(wrong_order());
            }
            result => result?,
        };
    let (seal_report, seal_leaf) = verify_signer(envelope, validator, &seal, Role::Seal, now, chain_time(&seal))?;
    check_seal_covers(envelope, &person, &seal)?;
    check_signing_order(&person, &seal)?;
    if let Some((_, problem)) = signer_problems(&manifest, Some(&person_leaf), Some(&seal_leaf)).into_iter().next() {
        return Err(problem);
    }
    Ok(VerifiedEnvelope { envelope: envelope.clone(), manifest, signers: vec![person_report, seal_report] })
}

fn verify_signer(
    envelope: &Envelope,
    validator: &Validator,
    header: &SignatureHeader,
    role: Role,
    now: OffsetDateTime,
    chain_time: OffsetDateTime,
) -> Result<(SignerReport, Certificate), DocumentError> {
    if header.signing_time > now + MAX_CLOCK_SKEW {
        return Err(DocumentError::SigningTime(format!(
            "the {role} claims to be made at {}, later than now ({})",
            crate::format_utc(header.signing_time),
            crate::format_utc(now)
        )));
    }
    let chain = validator
        .validate(&header.chain, chain_time, role.profile())
        .map_err(|error| DocumentError::Chain { index: header.index, role, error })?;
    let key = chain.leaf.public_key.as_ref().map_err(|problem| DocumentError::Chain {
        index: header.index,
        role,
        error: ChainError::WeakKey { cert: chain.leaf.id(), problem: problem.clone() },
    })?;
    if !envelope.verify_signature(header, key) {
        return Err(DocumentError::BadSignature { index: header.index, role });
    }
    let report = SignerReport {
        role,
        name: nfc(chain.leaf.common_name.as_deref().unwrap_or(&chain.leaf.subject)),
        position: chain.leaf.title.as_deref().map(nfc),
        agency: chain.agency,
        signing_time: header.signing_time,
        algorithm: header.algorithm.name(),
        chain: chain.path,
        revocation: chain.revocation,
    };
    Ok((report, chain.leaf))
}
