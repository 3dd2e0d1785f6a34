//! The validation report in plain words, for a verifier reading a terminal: the verdict and
//! why first, then who signed in which role, when (as claimed, and as proven), each chain up to
//! the national root with what the CRLs said, the attachments, the CRLs and the receipts.

use pki::document::ReceiptKind;
use pki::document::validation::{Conclusion, Indication, RevocationFinding, ValidationReport};
use pki::document::verify::Role;

use crate::output::outln;
use crate::timefmt::{human, localize};

/// `PASSED`, or `INDETERMINATE (TRY_LATER)`.
pub(crate) fn verdict(c: &Conclusion) -> String {
    match c.sub_indication {
        Some(sub) => format!("{} ({sub})", c.indication),
        None => c.indication.to_string(),
    }
}

fn revocation_words(finding: &RevocationFinding) -> String {
    match finding {
        RevocationFinding::Anchor => "trust anchor (configured, no CRL speaks for it)".to_owned(),
        RevocationFinding::Good { crl_this_update, .. } => {
            format!("not revoked (CRL issued {})", human(*crl_this_update))
        }
        RevocationFinding::RevokedLater { revoked_at, reason } => {
            format!("revoked at {} ({reason}), after the best signature time: the signature stands", human(*revoked_at))
        }
        RevocationFinding::Revoked { revoked_at, reason } => format!("REVOKED at {} ({reason})", human(*revoked_at)),
        RevocationFinding::Unknown { newest_crl: Some(t) } => {
            format!("revocation NOT established (newest CRL at hand issued {})", human(*t))
        }
        RevocationFinding::Unknown { newest_crl: None } => "revocation NOT established (no CRL at hand)".to_owned(),
        RevocationFinding::NotExamined => "not examined (the chain failed a rule)".to_owned(),
    }
}

fn reasons(c: &Conclusion, indent: &str) -> anyhow::Result<()> {
    for r in &c.reasons {
        outln!("{indent}✗ {} {}: {}", r.indication, r.sub_indication, localize(&r.message))?;
    }
    Ok(())
}

/// What to do about an INDETERMINATE conclusion, if anything can be done (said once however
/// many reasons call for it).
pub(crate) fn remedy(c: &Conclusion) -> Option<&'static str> {
    // A fresher CRL can settle what is undetermined, never undo a failure.
    if c.indication != Indication::Indeterminate {
        return None;
    }
    c.reasons.iter().find_map(|r| r.remedy)
}

/// Prints the report.
pub(crate) fn print(report: &ValidationReport) -> anyhow::Result<()> {
    let title = report.document_id.as_deref().unwrap_or("(not a readable document)");
    outln!("{}  {title}", verdict(&report.total))?;
    if let Some(lead) = report.total.leading() {
        outln!("  why: {}", localize(&lead.message))?;
    }
    if let Some(remedy) = remedy(&report.total) {
        outln!("  what to do: {remedy}")?;
    }
    match report.total.indication {
        Indication::Passed => {}
        Indication::Indeterminate => {
            outln!("  INDETERMINATE: the evidence at hand cannot decide; the reasons below say what is missing.")?
        }
        Indication::Failed => outln!("  FAILED: the document is not what it claims to be (see the reasons below).")?,
    }
    if !report.document.reasons.is_empty() {
        outln!()?;
        outln!("Document:")?;
        reasons(&report.document, "  ")?;
    }
    if let Some(m) = &report.manifest {
        outln!()?;
        outln!("  {} số {}/{}, {}, ngày {}", m.type_name, m.number, m.notation, m.place, m.date)?;
        outln!("  Subject (trích yếu): {}", m.subject)?;
        outln!("  From:     {}", m.from)?;
        outln!("  To:       {}", m.to.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))?;
        outln!("  Urgency:  {} ({})", m.urgency.name_vi(), m.urgency.code())?;
        if let Some(due) = m.due {
            outln!("  Due:      {due}")?;
        }
        if let Some(target) = m.business.target() {
            let verb = match m.business.code() {
                1 => "Revokes",
                2 => "Updates",
                _ => "Replaces",
            };
            outln!("  {verb}: {target}")?;
        }
    }
    if !report.signatures.is_empty() {
        outln!()?;
        outln!("Signatures (in the order made):")?;
    }
    for s in &report.signatures {
        let name = s.name.as_deref().unwrap_or("(unreadable certificate)");
        let who = match (&s.role, &s.position) {
            (Role::Person, Some(p)) => format!("{name}, {p}"),
            _ => name.to_owned(),
        };
        let agency = s.agency.map(|a| format!(" [{a}]")).unwrap_or_default();
        outln!("  {}. {who}{agency} — {}: {}", s.index, s.role, verdict(&s.conclusion))?;
        outln!("     claims to be signed {} with {}", human(s.claimed_signing_time), s.algorithm)?;
        match &s.proof_of_existence {
            Some(p) => outln!("     proven to exist by {}", localize(&p.to_string()))?,
            None => outln!(
                "     NO independent proof of existence: the signing time is the signer's claim; judged at {} with the newest CRLs at hand",
                human(s.best_signature_time)
            )?,
        }
        for note in s.notes.iter().skip(1) {
            outln!("     note: {}", localize(note))?;
        }
        if s.role == Role::Seal {
            outln!("     covers the official's signature above")?;
        }
        for (depth, cert) in s.chain.iter().enumerate() {
            let label = match depth {
                0 => "certificate",
                d if d + 1 == s.chain.len() && cert.revocation == RevocationFinding::Anchor => "root",
                _ => "issued by",
            };
            let c = &cert.summary;
            let code = c.agency.map(|a| format!(" [{a}]")).unwrap_or_default();
            outln!(
                "     {label:<12} {}{code}, serial {}, valid {} to {}",
                c.id.name,
                c.id.serial,
                human(c.not_before),
                human(c.not_after)
            )?;
            outln!("     {:<12} {}", "", revocation_words(&cert.revocation))?;
        }
        reasons(&s.conclusion, "     ")?;
    }
    if !report.attachments.is_empty() || report.manifest.is_some() {
        outln!()?;
        outln!("Attachments:")?;
        if report.attachments.is_empty() {
            outln!("  none")?;
        }
    }
    for a in &report.attachments {
        outln!(
            "  {}  {}  {} bytes  sha256 {}  {}",
            a.attachment.name,
            a.attachment.media_type,
            a.attachment.size,
            hex::encode(a.attachment.sha256),
            if a.verified { "intact".to_owned() } else { verdict(&a.conclusion) }
        )?;
        reasons(&a.conclusion, "    ")?;
    }
    outln!()?;
    outln!("CRLs at hand: {}", report.crls.len())?;
    for c in &report.crls {
        outln!("  {} (issued {}, next {})", c.issuer, human(c.this_update), human(c.next_update))?;
    }
    outln!("Receipts ({}):", report.receipts.len())?;
    for r in &report.receipts {
        let Some(receipt) = &r.receipt else {
            outln!("  #{}  {}", r.index, verdict(&r.conclusion))?;
            reasons(&r.conclusion, "      ")?;
            continue;
        };
        let what = match receipt.kind {
            ReceiptKind::Hop => "took responsibility (hop receipt)".to_owned(),
            ReceiptKind::Status(code) => format!("status {code}"),
        };
        let for_whom = if receipt.recipients.is_empty() {
            String::new()
        } else {
            format!(" for {}", receipt.recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        };
        let note = receipt.note.as_deref().map(|n| format!(" — {n}")).unwrap_or_default();
        let signer = r.signer.as_deref().unwrap_or("?");
        let standing = if r.proof_of_existence {
            "proof of existence".to_owned()
        } else if !r.conclusion.is_passed() {
            format!("not accepted: {}", verdict(&r.conclusion))
        } else {
            "the signers' own agency: not independent".to_owned()
        };
        outln!("  #{} {}  {signer} [{}] {what}{for_whom}{note}  [{standing}]", r.index, human(receipt.at), receipt.by)?;
        reasons(&r.conclusion, "      ")?;
    }
    if let Some(digest) = &report.envelope_sha256 {
        outln!("Envelope SHA-256: {digest}")?;
    }
    outln!("Validated at {}", human(report.validation_time))
}
