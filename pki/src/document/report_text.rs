//! The validation report in plain words: the verdict and why first, then who signed in which
//! role, when (as claimed, and as proven), each chain up to the national root with what the
//! CRLs said, the attachments, the CRLs and the receipts.
//!
//! One list of [`Line`]s, so that `lienthong verify` (which prints them) and the node's web
//! verifier (which lays them out as a page) say the same thing in the same words; neither has
//! wording of its own for a report. Times are written by the caller's formatter (the terminal
//! shows the machine's local time, the web page Vietnam time), those `pki` wrote into reasons,
//! notes and proofs of existence (in UTC, as `pki` knows no zone) too ([`localize`]).

use time::{OffsetDateTime, PrimitiveDateTime};

use super::ReceiptKind;
use super::validation::{Conclusion, Indication, PoeEvidence, RevocationFinding, ValidationReport};
use super::verify::Role;

/// The part of the report a line belongs to (a page shows each under its heading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The total verdict, why, and what to do.
    Verdict,
    /// The container's and the envelope's structure.
    Document,
    /// The manifest's fields.
    Manifest,
    /// The signatures and their chains.
    Signatures,
    /// The attachments.
    Attachments,
    /// The CRLs at hand.
    Crls,
    /// The receipts carried.
    Receipts,
    /// The envelope's digest and the validation time.
    Footer,
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// The first line: the verdict and the document's identifier.
    Title,
    /// A part's heading (`Signatures (in the order made):`).
    Heading,
    /// A statement.
    Text,
    /// A reason a part is not PASSED, with that reason's indication.
    Reason(Indication),
    /// A blank line between parts (a page skips it).
    Blank,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The part it belongs to.
    pub part: Part,
    /// What it is.
    pub kind: Kind,
    /// Spaces of indentation in the terminal (nesting on a page).
    pub indent: usize,
    /// The words.
    pub text: String,
}

impl std::fmt::Display for Line {
    /// The line as the terminal shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:indent$}{}", "", self.text, indent = self.indent)
    }
}

/// `PASSED`, or `INDETERMINATE (TRY_LATER)`.
pub fn verdict(c: &Conclusion) -> String {
    match c.sub_indication {
        Some(sub) => format!("{} ({sub})", c.indication),
        None => c.indication.to_string(),
    }
}

/// What to do about an INDETERMINATE conclusion, if anything can be done (said once however
/// many reasons call for it). A fresher CRL can settle what is undetermined, never undo a
/// failure.
pub fn remedy(c: &Conclusion) -> Option<&'static str> {
    if c.indication != Indication::Indeterminate {
        return None;
    }
    c.reasons.iter().find_map(|r| r.remedy)
}

/// What the CRLs said about a certificate, in words.
pub fn revocation_words(finding: &RevocationFinding, time: &dyn Fn(OffsetDateTime) -> String) -> String {
    match finding {
        RevocationFinding::Anchor => "trust anchor (configured, no CRL speaks for it)".to_owned(),
        RevocationFinding::Good { crl_this_update, .. } => {
            format!("not revoked (CRL issued {})", time(*crl_this_update))
        }
        RevocationFinding::RevokedLater { revoked_at, reason } => {
            format!("revoked at {} ({reason}), after the best signature time: the signature stands", time(*revoked_at))
        }
        RevocationFinding::Revoked { revoked_at, reason } => format!("REVOKED at {} ({reason})", time(*revoked_at)),
        RevocationFinding::Unknown { newest_crl: Some(t) } => {
            format!("revocation NOT established (newest CRL at hand issued {})", time(*t))
        }
        RevocationFinding::Unknown { newest_crl: None } => "revocation NOT established (no CRL at hand)".to_owned(),
        RevocationFinding::NotExamined => "not examined (the chain failed a rule)".to_owned(),
    }
}

/// `text` with every time `pki` wrote into it (`2026-11-23 02:15:00 UTC`, its one format for
/// times in messages) written by `time` instead, so that a report reads in one zone.
pub fn localize(text: &str, time: &dyn Fn(OffsetDateTime) -> String) -> String {
    const LEN: usize = "2026-11-23 02:15:00 UTC".len();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" UTC") {
        let end = at + " UTC".len();
        let parsed = at
            .checked_sub(LEN - " UTC".len())
            .and_then(|start| rest.get(start..at).map(|t| (start, t)))
            .and_then(|(start, t)| PrimitiveDateTime::parse(t, &format).ok().map(|p| (start, p.assume_utc())));
        match parsed {
            Some((start, t)) => {
                out.push_str(&rest[..start]);
                out.push_str(&time(t));
            }
            None => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

struct Writer<'a> {
    lines: Vec<Line>,
    part: Part,
    time: &'a dyn Fn(OffsetDateTime) -> String,
}

impl Writer<'_> {
    fn push(&mut self, kind: Kind, indent: usize, text: impl Into<String>) {
        self.lines.push(Line { part: self.part, kind, indent, text: text.into() });
    }

    fn text(&mut self, indent: usize, text: impl Into<String>) {
        self.push(Kind::Text, indent, text);
    }

    fn start(&mut self, part: Part, heading: Option<String>) {
        self.part = part;
        self.push(Kind::Blank, 0, "");
        if let Some(h) = heading {
            self.push(Kind::Heading, 0, h);
        }
    }

    fn reasons(&mut self, c: &Conclusion, indent: usize) {
        for r in &c.reasons {
            self.push(
                Kind::Reason(r.indication),
                indent,
                format!("✗ {} {}: {}", r.indication, r.sub_indication, localize(&r.message, self.time)),
            );
        }
    }
}

/// The report as lines, times written by `time`.
pub fn lines(report: &ValidationReport, time: &dyn Fn(OffsetDateTime) -> String) -> Vec<Line> {
    let mut w = Writer { lines: Vec::new(), part: Part::Verdict, time };
    let title = report.document_id.as_deref().unwrap_or("(not a readable document)");
    w.push(Kind::Title, 0, format!("{}  {title}", verdict(&report.total)));
    if let Some(lead) = report.total.leading() {
        w.text(2, format!("why: {}", localize(&lead.message, time)));
    }
    if let Some(remedy) = remedy(&report.total) {
        w.text(2, format!("what to do: {remedy}"));
    }
    match report.total.indication {
        Indication::Passed => {}
        Indication::Indeterminate => {
            w.text(2, "INDETERMINATE: the evidence at hand cannot decide; the reasons below say what is missing.")
        }
        Indication::Failed => w.text(2, "FAILED: the document is not what it claims to be (see the reasons below)."),
    }
    if !report.document.reasons.is_empty() {
        w.start(Part::Document, Some("Document:".into()));
        w.reasons(&report.document, 2);
    }
    if let Some(m) = &report.manifest {
        w.start(Part::Manifest, None);
        w.text(2, format!("{} số {}/{}, {}, ngày {}", m.type_name, m.number, m.notation, m.place, m.date));
        w.text(2, format!("Subject (trích yếu): {}", m.subject));
        w.text(2, format!("From:     {}", m.from));
        w.text(2, format!("To:       {}", m.to.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")));
        w.text(2, format!("Urgency:  {} ({})", m.urgency.name_vi(), m.urgency.code()));
        if let Some(due) = m.due {
            w.text(2, format!("Due:      {due}"));
        }
        if let Some(target) = m.business.target() {
            let verb = match m.business.code() {
                1 => "Revokes",
                2 => "Updates",
                _ => "Replaces",
            };
            w.text(2, format!("{verb}: {target}"));
        }
    }
    if !report.signatures.is_empty() {
        w.start(Part::Signatures, Some("Signatures (in the order made):".into()));
    }
    for s in &report.signatures {
        let name = s.name.as_deref().unwrap_or("(unreadable certificate)");
        let who = match (&s.role, &s.position) {
            (Role::Person, Some(p)) => format!("{name}, {p}"),
            _ => name.to_owned(),
        };
        let agency = s.agency.map(|a| format!(" [{a}]")).unwrap_or_default();
        w.text(2, format!("{}. {who}{agency} — {}: {}", s.index, s.role, verdict(&s.conclusion)));
        w.text(5, format!("claims to be signed {} with {}", time(s.claimed_signing_time), s.algorithm));
        match &s.proof_of_existence {
            Some(p) => w.text(5, format!("proven to exist by {}", localize(&p.to_string(), time))),
            None => w.text(
                5,
                format!(
                    "NO independent proof of existence: the signing time is the signer's claim; judged at {} with the newest CRLs at hand",
                    time(s.best_signature_time)
                ),
            ),
        }
        for note in s.notes.iter().skip(1) {
            w.text(5, format!("note: {}", localize(note, time)));
        }
        if s.role == Role::Seal {
            w.text(5, "covers the official's signature above");
        }
        for (depth, cert) in s.chain.iter().enumerate() {
            let label = match depth {
                0 => "certificate",
                d if d + 1 == s.chain.len() && cert.revocation == RevocationFinding::Anchor => "root",
                _ => "issued by",
            };
            let c = &cert.summary;
            let code = c.agency.map(|a| format!(" [{a}]")).unwrap_or_default();
            w.text(
                5,
                format!(
                    "{label:<12} {}{code}, serial {}, valid {} to {}",
                    c.id.name,
                    c.id.serial,
                    time(c.not_before),
                    time(c.not_after)
                ),
            );
            w.text(5, format!("{:<12} {}", "", revocation_words(&cert.revocation, time)));
        }
        w.reasons(&s.conclusion, 5);
    }
    if !report.attachments.is_empty() || report.manifest.is_some() {
        w.start(Part::Attachments, Some("Attachments:".into()));
        if report.attachments.is_empty() {
            w.text(2, "none");
        }
    }
    for a in &report.attachments {
        w.text(
            2,
            format!(
                "{}  {}  {} bytes  sha256 {}  {}",
                a.attachment.name,
                a.attachment.media_type,
                a.attachment.size,
                hex::encode(a.attachment.sha256),
                if a.verified { "intact".to_owned() } else { verdict(&a.conclusion) }
            ),
        );
        w.reasons(&a.conclusion, 4);
    }
    w.start(Part::Crls, Some(format!("CRLs at hand: {}", report.crls.len())));
    for c in &report.crls {
        w.text(2, format!("{} (issued {}, next {})", c.issuer, time(c.this_update), time(c.next_update)));
    }
    w.part = Part::Receipts;
    w.push(Kind::Heading, 0, format!("Receipts ({}):", report.receipts.len()));
    for r in &report.receipts {
        let Some(receipt) = &r.receipt else {
            w.text(2, format!("#{}  {}", r.index, verdict(&r.conclusion)));
            w.reasons(&r.conclusion, 6);
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
        w.text(
            2,
            format!(
                "#{} {}  {signer} [{}] {what}{for_whom}{note}  [{standing}]",
                r.index,
                time(receipt.at),
                receipt.by
            ),
        );
        w.reasons(&r.conclusion, 6);
    }
    // Log proofs that counted: which node's log holds the envelope, where, and who co-signed
    // that log when (those that did not count are in the signatures' notes).
    let mut logged: Vec<_> =
        report.proofs_of_existence.iter().filter(|p| matches!(p.evidence, PoeEvidence::LogCheckpoint { .. })).collect();
    logged.sort_by_key(|p| match p.evidence {
        PoeEvidence::LogCheckpoint { index, .. } => index,
        PoeEvidence::Receipt { index, .. } => index,
    });
    if !logged.is_empty() {
        w.push(Kind::Heading, 0, format!("Logged by ({}):", logged.len()));
        for p in logged {
            w.text(2, format!("{}  [proof of existence]", localize(&p.to_string(), time)));
        }
    }
    w.part = Part::Footer;
    if let Some(digest) = &report.envelope_sha256 {
        w.text(0, format!("Envelope SHA-256: {digest}"));
    }
    w.text(0, format!("Validated at {}", time(report.validation_time)));
    w.lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::validation::{VerifyOptions, verify_bundle};

    #[test]
    fn a_report_reads_as_titled_parted_lines_with_its_reasons() {
        let options = VerifyOptions::new(Vec::new(), OffsetDateTime::UNIX_EPOCH);
        let report = verify_bundle(std::io::Cursor::new(b"not a bundle".to_vec()), &options).unwrap();
        let lines = lines(&report, &|t| t.unix_timestamp().to_string());
        assert_eq!(lines[0].kind, Kind::Title);
        assert_eq!(lines[0].to_string(), "FAILED (FORMAT_FAILURE)  (not a readable document)");
        let why = lines.iter().find(|l| l.text.starts_with("why: ")).unwrap();
        assert_eq!((why.part, why.indent), (Part::Verdict, 2));
        assert!(why.to_string().starts_with("  why: "));
        let reason = lines.iter().find(|l| matches!(l.kind, Kind::Reason(_))).unwrap();
        assert_eq!((reason.kind, reason.part), (Kind::Reason(Indication::Failed), Part::Document));
        assert!(reason.text.starts_with("✗ FAILED FORMAT_FAILURE: "), "{}", reason.text);
        assert_eq!(lines.last().unwrap().to_string(), "Validated at 0");
        assert!(lines.iter().any(|l| l.kind == Kind::Heading && l.text == "Receipts (0):"));
    }

    #[test]
    fn times_pki_wrote_into_messages_are_written_by_the_caller() {
        let time = |t: OffsetDateTime| format!("<{}>", t.unix_timestamp());
        assert_eq!(
            localize("revoked 1970-01-01 00:01:00 UTC, before 1970-01-01 00:00:01 UTC.", &time),
            "revoked <60>, before <1>."
        );
        for untouched in ["no time here", " UTC", "at 2026-13-01 00:00:00 UTC", "UTC 2026-01-01 00:00:00"] {
            assert_eq!(localize(untouched, &time), untouched);
        }
    }
}
