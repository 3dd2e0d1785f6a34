//! Validating a document the way a court can rely on: a report in the shape of ETSI EN 319
//! 102-1 (what EU DSS reports) for every signature, attachment and receipt and for the whole
//! document, with proof of existence from independent parties.
//!
//! - [`report`]: indications, sub-indications, reasons and the report itself.
//! - [`poe`]: proofs of existence (receipts today; a log checkpoint later).
//! - `receipts`: judging carried receipts, keeping the independent ones as proofs.
//! - `signature`: one signature's chain, cryptography and time rules.
//! - [`arrival`]: the node's check at arrival, with chains validated at its clock.
//!
//! [`verify_bundle`] always returns a report — a bundle that is not a ZIP, an altered
//! attachment, a revoked signer are all in it — and fails only when the input cannot be read.

pub mod arrival;
pub mod poe;
mod receipts;
pub mod report;
mod signature;

use std::io::{Read, Seek};
use std::sync::Arc;

use time::OffsetDateTime;

pub use arrival::{Arrival, ArrivalError, DEFAULT_MAX_SIGNATURE_AGE, verify_arrival};
pub use poe::{Poe, PoeEvidence};
pub use report::{
    AttachmentReport, CertificateReport, Conclusion, CrlReport, Indication, Reason, ReceiptReport, RevocationFinding,
    SignatureReport, SubIndication, ValidationReport,
};
pub use signature::FRESHER_CRL_HINT;

use super::bundle::{Bundle, BundleError, BundleLimits};
use super::envelope::Envelope;
use super::manifest::Manifest;
use super::verify::{DocumentError, Role, check_seal_covers, check_signing_order, signature_pair, signer_problems};
use crate::cert::Certificate;
use crate::crl::{Crl, CrlSet};
use crate::validate::{SignatureCache, Validator};

/// What validation trusts and when it runs.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Trust anchors: the national root.
    pub anchors: Vec<Certificate>,
    /// CRLs from outside the bundle (fresher ones than it carries, typically).
    pub crls: Vec<Crl>,
    /// The validation time ("now" for the verifier).
    pub at: OffsetDateTime,
    /// A signature cache to share across many validations; without one, a validation keeps
    /// its own for the one bundle.
    pub cache: Option<Arc<SignatureCache>>,
    /// Limits on the bundle.
    pub limits: BundleLimits,
    /// Transparency-log proofs of the envelope given beside the bundle, counted after those it
    /// carries (encoded
    /// `crate::tlog::LogProof`s): each that verifies, co-signed by an agency other than the
    /// signers, is a proof of existence at its witness's time.
    pub log_proofs: Vec<Vec<u8>>,
}

impl VerifyOptions {
    /// Validation against `anchors` at `at`.
    pub fn new(anchors: Vec<Certificate>, at: OffsetDateTime) -> Self {
        VerifyOptions {
            anchors,
            crls: Vec::new(),
            at,
            cache: None,
            limits: BundleLimits::default(),
            log_proofs: Vec::new(),
        }
    }
}

/// The only way validation fails without a report: the input could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Reading the bundle failed (not a malformed bundle: those are FAILED in the report).
    #[error("cannot read the bundle: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether a bundle error is the input failing to read, rather than bytes that are not a
/// well-formed bundle (a truncated or damaged file reads fine and is FORMAT_FAILURE).
fn unreadable(error: &BundleError) -> bool {
    use std::io::ErrorKind;
    matches!(error, BundleError::Io(e) if !matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData | ErrorKind::InvalidInput))
}

fn io_error(error: BundleError) -> VerifyError {
    match error {
        BundleError::Io(e) => VerifyError::Io(e),
        other => VerifyError::Io(std::io::Error::other(other.to_string())),
    }
}

/// Validates a whole bundle: the container, the envelope, both signatures with their chains
/// judged at the best signature time (the earliest independent proof of existence the
/// receipts and log proofs give, else the validation time), signer fidelity, every
/// attachment, every receipt. The CRLs are the bundle's and `options.crls`; the log proofs
/// the bundle's and `options.log_proofs`.
pub fn verify_bundle<R: Read + Seek>(reader: R, options: &VerifyOptions) -> Result<ValidationReport, VerifyError> {
    let mut bundle = match Bundle::open(reader, options.limits) {
        Ok(b) => b,
        Err(e) if unreadable(&e) => return Err(io_error(e)),
        // Well formed but without an attachment the manifest names: the signed data cannot be
        // found, which is not the same as a broken container.
        Err(e @ BundleError::MissingAttachment(_)) => {
            let crls = given_crls(options);
            let mut report = empty_report(options.at, Conclusion::from_reasons(vec![attachment_reason(e)]), &crls);
            report.total = total(&report);
            return Ok(report);
        }
        Err(e) => {
            return Ok(format_failure(options, "bundle_format", e.to_string(), given_crls(options)));
        }
    };
    let mut crls = given_crls(options);
    // Without a cache to share, one for this bundle: its signers' chains share their CAs and
    // are judged against the same CRLs, so a cold bundle of two signers under a four-level
    // hierarchy checked 15 signatures without one, 10 with it.
    let validator = Validator::new(options.anchors.clone()).with_cache(options.cache.clone().unwrap_or_default());
    let mut document_reasons = Vec::new();
    for (i, der) in bundle.crls.iter().enumerate() {
        match validator.crl(der) {
            Ok(crl) => crls.add_shared(crl),
            Err(error) => document_reasons.push(Reason::new(
                SubIndication::FormatFailure,
                "bundle_crl",
                BundleError::Crl { index: i + 1, error }.to_string(),
            )),
        }
    }
    let validator = validator.with_crls(crls);
    // The proofs the bundle carries first, then those given beside it: their numbers in the
    // report follow this order.
    let log_proofs: Vec<Vec<u8>> = bundle.log_proofs.iter().chain(&options.log_proofs).cloned().collect();
    let mut report = validate_envelope_with_log_proofs(
        &bundle.envelope,
        &bundle.receipts,
        &log_proofs,
        &validator,
        options.at,
        document_reasons,
    );

    let attachments: Vec<_> = bundle.manifest.attachments.clone();
    for attachment in attachments {
        let conclusion = match bundle.copy_attachment(&attachment.name, &mut std::io::sink()) {
            Ok(_) => Conclusion::passed(),
            Err(e) if unreadable(&e) => return Err(io_error(e)),
            Err(e) => Conclusion::from_reasons(vec![attachment_reason(e)]),
        };
        report.attachments.push(AttachmentReport { attachment, verified: conclusion.is_passed(), conclusion });
    }
    report.total = total(&report);
    Ok(report)
}

/// The CRLs given beside the bundle, as a set: shared through the cache when there is one, so
/// verifying many bundles does not copy them for each.
fn given_crls(options: &VerifyOptions) -> CrlSet {
    match &options.cache {
        Some(cache) => options.crls.iter().map(|c| cache.share_crl(c)).collect(),
        None => options.crls.iter().cloned().collect(),
    }
}

fn attachment_reason(error: BundleError) -> Reason {
    let (sub, rule) = match &error {
        BundleError::AttachmentHash(_)
        | BundleError::AttachmentSize { .. }
        | BundleError::AttachmentTooLong { .. }
        | BundleError::Checksum(_) => (SubIndication::HashFailure, "attachment_altered"),
        BundleError::MissingAttachment(_) => (SubIndication::SignedDataNotFound, "attachment_missing"),
        _ => (SubIndication::FormatFailure, "attachment_format"),
    };
    Reason::new(sub, rule, error.to_string())
}

fn crl_reports(crls: &CrlSet) -> Vec<CrlReport> {
    crls.iter()
        .map(|c| CrlReport { issuer: c.issuer.clone(), this_update: c.this_update, next_update: c.next_update })
        .collect()
}

/// The report on something that is not a bundle (or not a readable envelope): FAILED
/// FORMAT_FAILURE, nothing else examined.
fn format_failure(options: &VerifyOptions, rule: &'static str, message: String, crls: CrlSet) -> ValidationReport {
    let document = Conclusion::from_reasons(vec![Reason::new(SubIndication::FormatFailure, rule, message)]);
    let mut report = empty_report(options.at, document, &crls);
    report.total = total(&report);
    report
}

fn empty_report(validation_time: OffsetDateTime, document: Conclusion, crls: &CrlSet) -> ValidationReport {
    ValidationReport {
        total: Conclusion::passed(),
        document_id: None,
        manifest: None,
        envelope_sha256: None,
        document,
        signatures: Vec::new(),
        attachments: Vec::new(),
        receipts: Vec::new(),
        proofs_of_existence: Vec::new(),
        crls: crl_reports(crls),
        validation_time,
    }
}

/// Validates an envelope and the receipts carried with it (attachments are the caller's):
/// the report [`verify_bundle`] completes. `document_reasons` are problems already found
/// with the container.
pub fn validate_envelope(
    envelope: &Envelope,
    receipts: &[Vec<u8>],
    validator: &Validator,
    at: OffsetDateTime,
    document_reasons: Vec<Reason>,
) -> ValidationReport {
    validate_envelope_with_log_proofs(envelope, receipts, &[], validator, at, document_reasons)
}

/// [`validate_envelope`] with transparency-log proofs of the envelope as further proofs of
/// existence (see [`VerifyOptions::log_proofs`]). A log proof that does not verify is not
/// counted, and the signatures' notes say why.
pub fn validate_envelope_with_log_proofs(
    envelope: &Envelope,
    receipts: &[Vec<u8>],
    log_proofs: &[Vec<u8>],
    validator: &Validator,
    at: OffsetDateTime,
    document_reasons: Vec<Reason>,
) -> ValidationReport {
    let mut reasons = document_reasons;
    let manifest = envelope.manifest().ok();
    let mut report = empty_report(at, Conclusion::passed(), validator.crls());
    report.document_id = manifest.as_ref().map(|m| m.id().to_string());
    report.envelope_sha256 = Some(hex::encode(envelope.digest()));
    report.manifest = manifest;
    match signature_pair(envelope) {
        Err(e) => reasons.push(document_reason(&e)),
        Ok((manifest, person, seal)) => {
            // The signers' agencies, from the leaves as carried: receipts sealed by them are
            // not independent (whether the leaves are trustworthy is each signature's verdict).
            let signers: Vec<_> = [&person, &seal]
                .iter()
                .filter_map(|h| h.chain.first().and_then(|der| validator.certificate(der).ok()).and_then(|c| c.agency))
                .collect();
            let mut judged =
                receipts::judge_receipts(receipts, envelope.digest(), &manifest.id(), &signers, validator, at);
            let mut log_notes = Vec::new();
            for (i, bytes) in log_proofs.iter().enumerate() {
                match poe::from_log_proof(i + 1, bytes, &envelope.digest(), &signers, validator, at) {
                    Ok(Some(proof)) => judged.proofs.push(proof),
                    Ok(None) => log_notes.push(format!(
                        "log proof #{} is co-signed only by the signers' own agencies: not a proof of existence",
                        i + 1
                    )),
                    Err(e) => log_notes.push(format!("log proof #{} is not counted: {e}", i + 1)),
                }
            }
            judged.proofs.sort_by_key(|p| p.time);
            let proof = poe::earliest(&judged.proofs);
            let (mut person_report, person_leaf) =
                signature::judge_signature(envelope, &person, Role::Person, validator, proof, at);
            let (mut seal_report, seal_leaf) =
                signature::judge_signature(envelope, &seal, Role::Seal, validator, proof, at);
            for (role, problem) in signer_problems(&manifest, person_leaf.as_ref(), seal_leaf.as_ref()) {
                let target = if role == Role::Person { &mut person_report } else { &mut seal_report };
                let mut found = std::mem::take(&mut target.conclusion.reasons);
                found.push(document_reason(&problem));
                target.conclusion = Conclusion::from_reasons(found);
            }
            if let Err(e) = check_seal_covers(envelope, &person, &seal) {
                reasons.push(document_reason(&e));
            }
            if let Err(e) = check_signing_order(&person, &seal) {
                reasons.push(document_reason(&e));
            }
            if judged.proofs.is_empty() && !judged.reports.is_empty() {
                let note = format!(
                    "the bundle carries {} receipt(s), none of them accepted as an independent proof of existence (see the receipts)",
                    judged.reports.len()
                );
                person_report.notes.push(note.clone());
                seal_report.notes.push(note);
            }
            person_report.notes.extend(log_notes.iter().cloned());
            seal_report.notes.extend(log_notes);
            report.signatures = vec![person_report, seal_report];
            report.receipts = judged.reports;
            report.proofs_of_existence = judged.proofs;
            report.manifest = Some(manifest);
        }
    }
    report.document = Conclusion::from_reasons(reasons);
    report.total = total(&report);
    report
}

fn document_reason(error: &DocumentError) -> Reason {
    let mut reason = Reason::new(error.sub_indication(), error.kind(), error.to_string());
    if let DocumentError::Chain { error, .. } = error {
        reason.chain_error = Some(error.clone());
    }
    reason
}

/// The document's total: every reason of the container and envelope, the signatures, the
/// attachments, and the receipts that break the bundle, each located.
fn total(report: &ValidationReport) -> Conclusion {
    // The signatures first: among equally decisive reasons the first leads, and a signature
    // that does not verify says more than the seal no longer covering it.
    let mut reasons = Vec::new();
    for s in &report.signatures {
        let place = format!("the {} (signature #{})", s.role, s.index);
        reasons.extend(s.conclusion.reasons.iter().map(|r| r.located(&place)));
    }
    reasons.extend(report.document.reasons.iter().cloned());
    for a in &report.attachments {
        reasons.extend(a.conclusion.reasons.iter().cloned());
    }
    for r in report.receipts.iter().filter(|r| receipts::breaks_the_bundle(r)) {
        reasons.extend(r.conclusion.reasons.iter().cloned());
    }
    Conclusion::from_reasons(reasons)
}

/// Judges a signer's chain as [`verify_bundle`] would judge a signature claiming `claimed`
/// validated at `now`, with no proof of existence: what `lienthong sign` checks before it
/// signs (or seals a draft), so it refuses with the reasons `verify` would give. A CRL
/// published before the signature cannot speak for it, so a signer should expect TRY_LATER
/// among the reasons and nothing else.
pub fn judge_signer(
    validator: &Validator,
    chain: &[Certificate],
    role: Role,
    claimed: OffsetDateTime,
    now: OffsetDateTime,
) -> Conclusion {
    let der: Vec<Vec<u8>> = chain.iter().map(|c| c.der().to_vec()).collect();
    let times = signature::Times { claimed, proof: None, validation: now };
    Conclusion::from_reasons(signature::judge_signer_chain(validator, &der, role, &times).reasons)
}

/// Signer fidelity for a document about to be signed or sealed: the reasons `verify` would
/// give about the manifest and these certificates (see [`super::verify::signer_problems`]).
pub fn judge_signers(manifest: &Manifest, person: Option<&Certificate>, seal: Option<&Certificate>) -> Vec<Reason> {
    signer_problems(manifest, person, seal).iter().map(|(_, e)| document_reason(e)).collect()
}

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod tests;
