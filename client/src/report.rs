//! The provenance report in plain words, for a verifier reading a terminal.

use pki::document::verify::{Provenance, Role};
use pki::validate::RevocationStatus;

use crate::timefmt::human;

fn revocation_words(status: &RevocationStatus) -> String {
    match status {
        RevocationStatus::Good { crl_this_update, .. } => {
            format!("not revoked at signing time (CRL of {})", human(*crl_this_update))
        }
        RevocationStatus::RevokedLater { revoked_at, reason } => {
            format!("revoked later, at {} ({reason}); the signature was made before and stands", human(*revoked_at))
        }
        RevocationStatus::Stale { crl_next_update, .. } => {
            format!("revocation unknown: the CRL was stale since {}", human(*crl_next_update))
        }
        RevocationStatus::NotChecked => "revocation NOT checked (no CRL)".to_owned(),
    }
}

/// Prints the report.
pub(crate) fn print(report: &Provenance) {
    let m = &report.manifest;
    println!("VERIFIED  {}", report.document_id);
    println!();
    println!("  {} số {}/{}, {}, ngày {}", m.type_name, m.number, m.notation, m.place, m.date);
    println!("  Subject (trích yếu): {}", m.subject);
    println!("  From:     {}", m.from);
    println!("  To:       {}", m.to.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
    println!("  Urgency:  {} ({})", m.urgency.name_vi(), m.urgency.code());
    if let Some(due) = m.due {
        println!("  Due:      {due}");
    }
    if let Some(target) = m.business.target() {
        let verb = match m.business.code() {
            1 => "Revokes",
            2 => "Updates",
            _ => "Replaces",
        };
        println!("  {verb}: {target}");
    }
    println!();
    println!("Signatures (in the order made):");
    for (i, s) in report.signers.iter().enumerate() {
        let who = match (&s.role, &s.position) {
            (Role::Person, Some(p)) => format!("{}, {p}", s.name),
            _ => s.name.clone(),
        };
        println!("  {}. {who} [{}] — {}", i + 1, s.agency, s.role);
        println!("     signed {} with {}", human(s.signing_time), s.algorithm);
        if s.role == Role::Seal {
            println!("     covers the official's signature above");
        }
        for (depth, cert) in s.chain.iter().enumerate() {
            let label = match depth {
                0 => "certificate",
                d if d + 1 == s.chain.len() => "root",
                _ => "issued by",
            };
            let code = cert.agency.map(|c| format!(" [{c}]")).unwrap_or_default();
            println!(
                "     {label:<12} {}{code}, serial {}, valid {} to {}",
                cert.id.name,
                cert.id.serial,
                human(cert.not_before),
                human(cert.not_after)
            );
            if let Some(status) = s.revocation.get(depth) {
                println!("     {:<12} {}", "", revocation_words(status));
            }
        }
    }
    println!();
    println!("Attachments:");
    if report.attachments.is_empty() {
        println!("  none");
    }
    for a in &report.attachments {
        println!(
            "  {}  {}  {} bytes  sha256 {}  {}",
            a.attachment.name,
            a.attachment.media_type,
            a.attachment.size,
            hex::encode(a.attachment.sha256),
            if a.verified { "intact" } else { "NOT CHECKED" }
        );
    }
    println!();
    println!("CRLs used: {}", report.crls.len());
    for c in &report.crls {
        println!("  {} (issued {}, next {})", c.issuer, human(c.this_update), human(c.next_update));
    }
    println!("Receipts ({}):", report.receipts.len());
    for r in &report.receipts {
        let what = match r.receipt.kind {
            pki::document::ReceiptKind::Hop => "took responsibility (hop receipt)".to_owned(),
            pki::document::ReceiptKind::Status(code) => format!("status {code}"),
        };
        let for_whom = if r.receipt.recipients.is_empty() {
            String::new()
        } else {
            format!(" for {}", r.receipt.recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        };
        let note = r.receipt.note.as_deref().map(|n| format!(" — {n}")).unwrap_or_default();
        println!("  {}  {} [{}] {what}{for_whom}{note}", human(r.receipt.at), r.signer, r.receipt.by);
    }
    println!("Envelope SHA-256: {}", report.envelope_sha256);
    println!("Verified at {}", human(report.verified_at));
}
