//! Judging the receipts a bundle carries, and keeping the independent ones as proofs of
//! existence.
//!
//! A receipt is a signature too, with no proof of time of its own: its seal's chain is judged
//! by the same rules as a document signature without proof of existence (see
//! [`super::signature`]), at the receipt's own time as the claimed time. So a receipt whose
//! seal was revoked at or before its time is FAILED REVOKED, one whose seal was revoked later
//! is INDETERMINATE REVOKED_NO_POE (a thief with the seal's key could have dated it so), and
//! one judged with no CRL recent enough is INDETERMINATE TRY_LATER; none of them is a proof.
//!
//! A receipt that is unreadable, altered, or about another document means the bundle itself
//! was tampered with or wrongly assembled: that is FAILED and counts against the document's
//! total. A receipt that is merely not trustworthy (its seal revoked, expired, unknown, or
//! claiming to be by another agency than the seal's) is reported and left out, and does not
//! count against the document.

use time::OffsetDateTime;

use super::poe::{Poe, PoeEvidence};
use super::report::{Conclusion, Reason, ReceiptReport, SubIndication};
use super::signature::{Times, judge_signer_chain};
use crate::agency::AgencyCode;
use crate::document::manifest::DocumentId;
use crate::document::receipt::SignedReceipt;
use crate::document::verify::{MAX_CLOCK_SKEW, Role, nfc};
use crate::format_utc;
use crate::validate::Validator;

/// The receipts judged, and the proofs of existence they give, earliest first.
pub(crate) struct JudgedReceipts {
    pub reports: Vec<ReceiptReport>,
    pub proofs: Vec<Poe>,
}

/// Judges every receipt. `signers` are the agencies of the document's own signers: their
/// receipts are judged but are not independent, so they prove nothing about time.
pub(crate) fn judge_receipts(
    receipts: &[Vec<u8>],
    envelope_digest: [u8; 32],
    document: &DocumentId,
    signers: &[AgencyCode],
    validator: &Validator,
    validation: OffsetDateTime,
) -> JudgedReceipts {
    let mut reports = Vec::with_capacity(receipts.len());
    let mut proofs = Vec::new();
    for (i, bytes) in receipts.iter().enumerate() {
        let index = i + 1;
        let (report, proof) = judge_receipt(index, bytes, envelope_digest, document, signers, validator, validation);
        reports.push(report);
        proofs.extend(proof);
    }
    proofs.sort_by_key(|p| p.time);
    reports.sort_by_key(|r| r.receipt.as_ref().map(|r| r.at));
    JudgedReceipts { reports, proofs }
}

fn judge_receipt(
    index: usize,
    bytes: &[u8],
    envelope_digest: [u8; 32],
    document: &DocumentId,
    signers: &[AgencyCode],
    validator: &Validator,
    validation: OffsetDateTime,
) -> (ReceiptReport, Option<Poe>) {
    let broken = |sub, rule, message: String| ReceiptReport {
        index,
        receipt: None,
        signer: None,
        independent: false,
        proof_of_existence: false,
        conclusion: Conclusion::from_reasons(vec![Reason::new(sub, rule, message)]),
    };
    let signed = match SignedReceipt::from_bytes(bytes) {
        Ok(s) => s,
        Err(e) => {
            return (
                broken(SubIndication::FormatFailure, "receipt_format", format!("receipt #{index} is unreadable: {e}")),
                None,
            );
        }
    };
    let receipt = signed.receipt.clone();
    if receipt.envelope != envelope_digest || &receipt.document != document {
        let mut report = broken(
            SubIndication::FormatFailure,
            "receipt_for_another_document",
            format!("receipt #{index} is about another document ({}), not this one", receipt.document),
        );
        report.receipt = Some(receipt);
        return (report, None);
    }
    let times = Times { claimed: receipt.at, proof: None, validation };
    let judged = judge_signer_chain(validator, signed.chain_der(), Role::Seal, &times);
    let mut reasons = judged.reasons;
    let key = judged.leaf.as_ref().and_then(|l| l.public_key.as_ref().ok());
    if key.is_some_and(|k| !signed.signature_verifies(k)) {
        reasons.insert(
            0,
            Reason::new(
                SubIndication::SigCryptoFailure,
                "bad_signature",
                format!("receipt #{index}'s signature does not verify: the receipt was altered"),
            ),
        );
    }
    let sealed_by = judged.leaf.as_ref().and_then(|l| l.agency);
    if let Some(sealed) = sealed_by
        && sealed != receipt.by
    {
        reasons.push(Reason::new(
            SubIndication::SigConstraintsFailure,
            "receipt_wrong_signer",
            format!("receipt #{index} claims to be by {} but is sealed by {sealed}", receipt.by),
        ));
    }
    if receipt.at > validation + MAX_CLOCK_SKEW {
        reasons.push(Reason::new(
            SubIndication::SigConstraintsFailure,
            "receipt_in_future",
            format!("receipt #{index} is dated {}, later than the validation time", format_utc(receipt.at)),
        ));
    }
    let conclusion = Conclusion::from_reasons(reasons);
    let independent = !signers.contains(&receipt.by);
    let signer = judged.leaf.as_ref().map(|l| nfc(l.common_name.as_deref().unwrap_or(&l.subject)));
    let proof = (conclusion.is_passed() && independent).then(|| Poe {
        time: receipt.at,
        by: receipt.by,
        by_name: signer.clone().unwrap_or_default(),
        evidence: PoeEvidence::Receipt { index, receipt: receipt.kind },
    });
    let report = ReceiptReport {
        index,
        receipt: Some(receipt),
        signer,
        independent,
        proof_of_existence: proof.is_some(),
        conclusion,
    };
    (report, proof)
}

/// Whether a receipt's failure means the bundle's bytes are wrong (and so counts against the
/// document), rather than that the receipt is just not to be trusted.
pub(crate) fn breaks_the_bundle(report: &ReceiptReport) -> bool {
    report
        .conclusion
        .reasons
        .iter()
        .any(|r| matches!(r.sub_indication, SubIndication::FormatFailure | SubIndication::SigCryptoFailure))
}
