//! Judging one signature: its chain's time-independent rules, its cryptography, and then the
//! time rules against the best signature time.
//!
//! The best signature time is the earliest independent proof of existence ([`Poe`]); with
//! none it is the validation time, and the signer's claimed time stays a claim. For every
//! certificate of the chain (the anchor's validity included):
//!
//! - validity: a claimed time after notAfter is FAILED EXPIRED and before notBefore FAILED
//!   NOT_YET_VALID (the signer's own statement places the signature outside the validity);
//!   a proof of existence before notBefore is FAILED NOT_YET_VALID; a best signature time
//!   outside the validity is INDETERMINATE OUT_OF_BOUNDS_NO_POE;
//! - revocation, from the issuer's validly signed CRLs: revoked at R with a claimed time at
//!   or after R is FAILED REVOKED; revoked at R with a proof of existence before R stands
//!   (the report names the proof); revoked with no proof before R is INDETERMINATE
//!   REVOKED_NO_POE (REVOKED_CA_NO_POE for a CA) — never PASSED, since a signature
//!   backdated with a stolen key looks exactly the same;
//! - not revoked: the CRL must be recent enough to speak for the best signature time. With a
//!   proof of existence at P, a CRL issued at or after P (any revocation it does not list
//!   came after P). Without one, a CRL issued at or after the claimed signing time (a CRL
//!   older than a signature can never speak for it) and not yet due (nextUpdate) at the
//!   validation time — the revocation freshness ETSI EN 319 102-1 clause 5.2.5 and EU DSS
//!   apply by default when the best signature time is the validation time. Otherwise
//!   INDETERMINATE TRY_LATER, naming the CA whose CRL is missing or too old.

use time::OffsetDateTime;

use super::poe::Poe;
use super::report::{CertificateReport, Reason, RevocationFinding, SignatureReport, SubIndication};
use crate::cert::Certificate;
use crate::document::envelope::{Envelope, SignatureHeader};
use crate::document::verify::{MAX_CLOCK_SKEW, Role, nfc};
use crate::format_utc;
use crate::validate::{CertSummary, ExaminedChain, RevocationEvidence, Validator};

/// What a verifier can do about a CRL that is missing or too old.
pub const FRESHER_CRL_HINT: &str = "get newer CRLs of the CAs named (each CA publishes its CRL, and every node holds its CA's) and give them with `lienthong verify FILE --crl CRLS.pem`, or fetch the document again from a node (`lienthong fetch DOCUMENT-ID --out DIR`), whose bundle carries the node's newest CRLs";

/// The times a chain is judged against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Times<'p> {
    /// What the signature (or receipt) claims.
    pub claimed: OffsetDateTime,
    /// The earliest independent proof of existence, if any.
    pub proof: Option<&'p Poe>,
    /// When the validation runs.
    pub validation: OffsetDateTime,
}

impl Times<'_> {
    /// The best signature time.
    pub(crate) fn best(&self) -> OffsetDateTime {
        self.proof.map_or(self.validation, |p| p.time)
    }

    fn best_described(&self) -> String {
        match self.proof {
            Some(p) => format!("{} (proven by {p})", format_utc(p.time)),
            None => format!(
                "{} (the validation time: there is no independent proof of existence)",
                format_utc(self.validation)
            ),
        }
    }
}

/// Judges the time rules for every certificate of an examined chain: validity (the anchor's
/// too) and revocation. Returns the chain as reported and the reasons found, leaf first.
pub(crate) fn judge_chain(chain: &ExaminedChain, times: &Times<'_>) -> (Vec<CertificateReport>, Vec<Reason>) {
    let mut reports = Vec::with_capacity(chain.path.len());
    let mut reasons = Vec::new();
    for (i, summary) in chain.path.iter().enumerate() {
        reasons.extend(validity(summary, times));
        let revocation = match chain.revocation.get(i) {
            Some(evidence) => {
                let (finding, reason) = revocation(evidence, i == 0, times);
                reasons.extend(reason);
                finding
            }
            None => RevocationFinding::Anchor,
        };
        reports.push(CertificateReport { summary: summary.clone(), revocation });
    }
    (reports, reasons)
}

fn validity(cert: &CertSummary, t: &Times<'_>) -> Option<Reason> {
    let (id, nb, na) = (&cert.id, cert.not_before, cert.not_after);
    let about = |sub, rule, message: String| Some(Reason::about(sub, rule, id.clone(), message));
    if t.claimed > na {
        return about(
            SubIndication::Expired,
            "expired",
            format!(
                "certificate {id} expired at {}; the signature claims to be made at {}, after that",
                format_utc(na),
                format_utc(t.claimed)
            ),
        );
    }
    if t.claimed < nb {
        return about(
            SubIndication::NotYetValid,
            "not_yet_valid",
            format!(
                "certificate {id} is valid only from {}; the signature claims to be made at {}, before that",
                format_utc(nb),
                format_utc(t.claimed)
            ),
        );
    }
    match t.proof {
        Some(p) if p.time < nb => about(
            SubIndication::NotYetValid,
            "not_yet_valid",
            format!(
                "certificate {id} is valid only from {}, but {p} proves the signature existed before that",
                format_utc(nb)
            ),
        ),
        _ if t.best() > na => about(
            SubIndication::OutOfBoundsNoPoe,
            "out_of_bounds_no_poe",
            format!(
                "certificate {id} expired at {}, before the best signature time {}; nothing proves the signature existed while the certificate was valid",
                format_utc(na),
                t.best_described()
            ),
        ),
        _ if t.best() < nb => about(
            SubIndication::OutOfBoundsNoPoe,
            "out_of_bounds_no_poe",
            format!(
                "certificate {id} is valid only from {}, after the best signature time {}",
                format_utc(nb),
                t.best_described()
            ),
        ),
        _ => None,
    }
}

fn refused_note(evidence: &RevocationEvidence) -> String {
    match evidence.refused.as_slice() {
        [] => String::new(),
        refused => format!(
            " ({} CRL(s) naming {} were ignored: {})",
            refused.len(),
            evidence.issuer,
            refused.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>().join("; ")
        ),
    }
}

fn revocation(evidence: &RevocationEvidence, is_leaf: bool, t: &Times<'_>) -> (RevocationFinding, Option<Reason>) {
    let cert = &evidence.cert;
    // The CA by name only: its serial is on the certificate line that names it.
    let issuer = format!("\"{}\"", evidence.issuer.name);
    let about = |sub, rule, message: String| Some(Reason::about(sub, rule, cert.clone(), message));
    if let Some((entry, crl)) = evidence.revocation() {
        let said = format!(
            "certificate {cert} was revoked at {} ({}), according to the CRL of {issuer} issued {}",
            format_utc(entry.at),
            entry.reason,
            format_utc(crl.this_update)
        );
        let revoked = RevocationFinding::Revoked { revoked_at: entry.at, reason: entry.reason };
        if t.claimed >= entry.at {
            let message = format!(
                "{said}; the signature claims to be made at {}, at or after the revocation",
                format_utc(t.claimed)
            );
            return (revoked, about(SubIndication::Revoked, "revoked", message));
        }
        if t.best() < entry.at {
            return (RevocationFinding::RevokedLater { revoked_at: entry.at, reason: entry.reason }, None);
        }
        let (sub, rule) = if is_leaf {
            (SubIndication::RevokedNoPoe, "revoked_no_poe")
        } else {
            (SubIndication::RevokedCaNoPoe, "revoked_ca_no_poe")
        };
        let proof = match t.proof {
            Some(p) => format!("the earliest independent proof of existence, {p}, comes after it"),
            None => "the bundle holds no independent proof of existence".to_owned(),
        };
        let message = format!(
            "{said}. The signature claims {}, before that, but nothing independent shows it existed before the revocation ({proof}); a signature backdated with the revoked key would look the same",
            format_utc(t.claimed)
        );
        return (revoked, about(sub, rule, message));
    }

    let newest = evidence.newest();
    let unknown = RevocationFinding::Unknown { newest_crl: newest.map(|c| c.this_update) };
    let try_later = |rule, problem: String| {
        let mut reason = Reason::about(
            SubIndication::TryLater,
            rule,
            cert.clone(),
            format!("revocation of {cert} is not established: {problem}{}", refused_note(evidence)),
        );
        reason.remedy = Some(FRESHER_CRL_HINT);
        Some(reason)
    };
    let Some(crl) = newest else {
        return (unknown, try_later("no_crl", format!("there is no CRL of {issuer} in the bundle or given")));
    };
    let good = RevocationFinding::Good { crl_this_update: crl.this_update, crl_next_update: crl.next_update };
    match t.proof {
        Some(p) if crl.this_update < p.time => {
            let problem = format!(
                "the newest CRL of {issuer} was issued {}, before the proof of existence at {}; a CRL of that CA issued after {} is needed",
                format_utc(crl.this_update),
                format_utc(p.time),
                format_utc(p.time)
            );
            (unknown, try_later("crl_before_proof", problem))
        }
        Some(_) => (good, None),
        None if crl.this_update < t.claimed => {
            let problem = format!(
                "the newest CRL of {issuer} was issued {}, before the signature's claimed time {}: a CRL older than a signature cannot speak for it. With no independent proof of existence, a CRL of that CA issued after {} and still current at the validation time {} is needed",
                format_utc(crl.this_update),
                format_utc(t.claimed),
                format_utc(t.claimed),
                format_utc(t.validation)
            );
            (unknown, try_later("crl_before_signature", problem))
        }
        None if crl.next_update < t.validation => {
            let problem = format!(
                "the newest CRL of {issuer} (issued {}) was due to be replaced at {}, before the validation time {}; with no independent proof of existence, the CRL must be current at the validation time",
                format_utc(crl.this_update),
                format_utc(crl.next_update),
                format_utc(t.validation)
            );
            (unknown, try_later("stale_crl", problem))
        }
        None => (good, None),
    }
}

/// The chain as far as it parses, for a report when a chain rule failed first.
fn parsed_chain(validator: &Validator, chain: &[Vec<u8>]) -> Vec<CertificateReport> {
    chain
        .iter()
        .map_while(|der| validator.certificate(der).ok())
        .map(|c| CertificateReport { summary: CertSummary::of(&c), revocation: RevocationFinding::NotExamined })
        .collect()
}

/// A signer's chain judged as the signature's would be: what [`judge_signature`] finds about
/// the chain, without the signature value. `lienthong sign` uses it before signing.
pub(crate) struct JudgedChain {
    /// The chain as reported.
    pub chain: Vec<CertificateReport>,
    /// The reasons found.
    pub reasons: Vec<Reason>,
    /// The leaf, when it could be read.
    pub leaf: Option<Certificate>,
}

/// Examines `chain` for `role` and judges it at `times`.
pub(crate) fn judge_signer_chain(
    validator: &Validator,
    chain: &[Vec<u8>],
    role: Role,
    times: &Times<'_>,
) -> JudgedChain {
    let mut reasons = Vec::new();
    if times.claimed > times.validation + MAX_CLOCK_SKEW {
        reasons.push(Reason::new(
            SubIndication::SigConstraintsFailure,
            "signing_time_in_future",
            format!(
                "the signature claims to be made at {}, later than the validation time {}",
                format_utc(times.claimed),
                format_utc(times.validation)
            ),
        ));
    }
    if let Some(p) = times.proof
        && p.time + MAX_CLOCK_SKEW < times.claimed
    {
        reasons.push(Reason::new(
            SubIndication::SigConstraintsFailure,
            "signing_time_after_proof",
            format!(
                "the signature claims to be made at {}, but {p} proves it existed earlier: the claimed time is wrong",
                format_utc(times.claimed)
            ),
        ));
    }
    match validator.examine(chain, role.profile()) {
        Ok(examined) => {
            let (reports, found) = judge_chain(&examined, times);
            reasons.extend(found);
            JudgedChain { chain: reports, reasons, leaf: Some(examined.leaf) }
        }
        Err(error) => {
            reasons.push(Reason::chain(error));
            let leaf =
                chain.first().and_then(|der| validator.certificate(der).ok()).map(std::sync::Arc::unwrap_or_clone);
            JudgedChain { chain: parsed_chain(validator, chain), reasons, leaf }
        }
    }
}

/// Judges one signature of `envelope`: its chain and time rules (see the module), and its
/// value against the leaf's key.
pub(crate) fn judge_signature(
    envelope: &Envelope,
    header: &SignatureHeader,
    role: Role,
    validator: &Validator,
    proof: Option<&Poe>,
    validation: OffsetDateTime,
) -> (SignatureReport, Option<Certificate>) {
    let times = Times { claimed: header.signing_time, proof, validation };
    let JudgedChain { chain, mut reasons, leaf } = judge_signer_chain(validator, &header.chain, role, &times);
    if let Some(key) = leaf.as_ref().and_then(|l| l.public_key.as_ref().ok())
        && !envelope.verify_signature(header, key)
    {
        reasons.insert(
            0,
            Reason::new(
                SubIndication::SigCryptoFailure,
                "bad_signature",
                format!(
                    "the {role} (signature #{}) does not verify: the document or the signature was altered",
                    header.index
                ),
            ),
        );
    }
    let notes = vec![match proof {
        Some(p) => format!(
            "proof of existence: {p}; the certificates are judged at that time, and the claimed signing time {} is only the signer's word",
            format_utc(header.signing_time)
        ),
        None => format!(
            "no independent proof of existence: the signing time {} is only the signer's claim, so the certificates are judged at the validation time {} with the newest CRLs at hand (a revocation published after them is not seen)",
            format_utc(header.signing_time),
            format_utc(validation)
        ),
    }];
    let report = SignatureReport {
        index: header.index,
        role,
        name: leaf.as_ref().map(|l| nfc(l.common_name.as_deref().unwrap_or(&l.subject))),
        position: leaf.as_ref().and_then(|l| l.title.as_deref()).map(nfc),
        agency: leaf.as_ref().and_then(|l| l.agency),
        claimed_signing_time: header.signing_time,
        best_signature_time: times.best(),
        proof_of_existence: proof.cloned(),
        algorithm: header.algorithm.name(),
        chain,
        conclusion: super::report::Conclusion::from_reasons(reasons),
        notes,
    };
    (report, leaf)
}
