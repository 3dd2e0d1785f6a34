//! Human and JSON read-outs of certificates, CRLs and validated chains.

use std::path::Path;

use pki::validate::{CertSummary, RevocationStatus};
use pki::{Certificate, Crl, VerifiedChain};
use serde_json::json;
use time::OffsetDateTime;

use super::{certificates_from, crls_from, hex_colon, read_pem_or_der};
use crate::outln;
use crate::timefmt::human;

/// `lienthong pki show FILE`.
pub(super) fn show(path: &Path, as_json: bool) -> anyhow::Result<()> {
    let (bytes, pem) = read_pem_or_der(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let is_crl =
        text.contains("-----BEGIN X509 CRL-----") || (!text.contains("-----BEGIN") && Crl::from_der(&bytes).is_ok());
    if is_crl {
        let crls = crls_from(path, &bytes, pem)?;
        if as_json {
            outln!("{}", serde_json::to_string_pretty(&crls.iter().map(crl_json).collect::<Vec<_>>())?)?;
        } else {
            for crl in &crls {
                print_crl(crl)?;
            }
        }
        return Ok(());
    }
    let certs = certificates_from(path, &bytes, pem)?;
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&certs.iter().map(cert_json).collect::<Vec<_>>())?)?;
    } else {
        for (i, cert) in certs.iter().enumerate() {
            if i > 0 {
                outln!()?;
            }
            print_cert(cert)?;
        }
    }
    Ok(())
}

fn profile_text(cert: &Certificate) -> String {
    match cert.profile() {
        Ok(pki::Profile::Ca) if cert.agency.is_none() => "ca (national root)".to_owned(),
        Ok(p) => p.to_string(),
        Err(problem) => format!("none ({problem})"),
    }
}

fn print_cert(cert: &Certificate) -> anyhow::Result<()> {
    outln!("Subject:      {}", cert.subject)?;
    if let Some(code) = cert.agency {
        outln!("Agency code:  {code}")?;
    }
    outln!("Profile:      {}", profile_text(cert))?;
    if let Some(title) = &cert.title {
        outln!("Position:     {title}")?;
    }
    if let Some(ca) = cert.ca {
        outln!("Path length:  {}", ca.path_len.map_or("unlimited".to_owned(), |p| p.to_string()))?;
    }
    outln!("Issuer:       {}", cert.issuer)?;
    outln!("Serial:       {}", cert.serial)?;
    outln!("Valid from:   {}", human(cert.not_before))?;
    outln!("Valid until:  {}", human(cert.not_after))?;
    match &cert.public_key {
        Ok(k) => outln!("Key:          {}", k.kind)?,
        Err(p) => outln!("Key:          refused: {p}")?,
    }
    outln!("SHA-256:      {}", hex_colon(&cert.fingerprint()))?;
    Ok(())
}

fn cert_json(cert: &Certificate) -> serde_json::Value {
    json!({
        "subject": cert.subject,
        "common_name": cert.common_name,
        "agency": cert.agency,
        "profile": cert.profile().ok(),
        "position": cert.title,
        "issuer": cert.issuer,
        "serial": cert.serial.to_string(),
        "not_before": rfc3339(cert.not_before),
        "not_after": rfc3339(cert.not_after),
        "key": cert.public_key.as_ref().map(|k| k.kind.to_string()).unwrap_or_else(|p| format!("refused: {p}")),
        "path_len": cert.ca.and_then(|c| c.path_len),
        "sha256": hex::encode(cert.fingerprint()),
    })
}

fn print_crl(crl: &Crl) -> anyhow::Result<()> {
    outln!("CRL issuer:   {}", crl.issuer)?;
    if let Some(n) = &crl.number {
        outln!("CRL number:   {n}")?;
    }
    outln!("This update:  {}", human(crl.this_update))?;
    outln!("Next update:  {}", human(crl.next_update))?;
    outln!("Revoked:      {}", crl.revoked.len())?;
    let mut entries: Vec<_> = crl.revoked.iter().collect();
    entries.sort_by_key(|(_, r)| r.at);
    for (serial, r) in entries {
        outln!("  {serial}  {}  {}", human(r.at), r.reason)?;
    }
    Ok(())
}

fn crl_json(crl: &Crl) -> serde_json::Value {
    json!({
        "issuer": crl.issuer,
        "number": crl.number.as_ref().map(ToString::to_string),
        "this_update": rfc3339(crl.this_update),
        "next_update": rfc3339(crl.next_update),
        "revoked": crl.revoked.iter().map(|(s, r)| json!({"serial": s.to_string(), "at": rfc3339(r.at), "reason": r.reason})).collect::<Vec<_>>(),
    })
}

/// Times in JSON: RFC 3339 in UTC, whatever the machine's zone.
fn rfc3339(t: OffsetDateTime) -> String {
    crate::timefmt::machine(t)
}

fn revocation_text(status: &RevocationStatus) -> String {
    match status {
        RevocationStatus::Good { crl_this_update, .. } => format!("not revoked (CRL of {})", human(*crl_this_update)),
        RevocationStatus::RevokedLater { revoked_at, reason } => {
            format!("revoked later, at {} ({reason}); valid at the time checked", human(*revoked_at))
        }
        RevocationStatus::Stale { crl_next_update, .. } => {
            format!("unknown: CRL stale since {}", human(*crl_next_update))
        }
        RevocationStatus::NotChecked => "not checked (no CRL given)".to_owned(),
    }
}

/// Prints a successful chain validation.
pub(super) fn print_verified(ok: &VerifiedChain, at: OffsetDateTime, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let out = json!({
            "valid": true,
            "agency": ok.agency,
            "profile": ok.profile,
            "at": rfc3339(at),
            "path": ok.path,
            "revocation": ok.revocation,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    outln!("valid: {} certificate of {} at {}", ok.profile, ok.agency, human(at))?;
    for (i, c) in ok.path.iter().enumerate() {
        let status = ok.revocation.get(i).map(revocation_text).unwrap_or_else(|| "trust anchor".to_owned());
        outln!("  {}{}", "  ".repeat(i), summary_line(c))?;
        outln!("  {}  revocation: {status}", "  ".repeat(i))?;
    }
    Ok(())
}

fn summary_line(c: &CertSummary) -> String {
    let code = c.agency.map(|a| format!(" [{a}]")).unwrap_or_default();
    format!("{}{code} serial {}, valid until {}", c.id.name, c.id.serial, human(c.not_after))
}
