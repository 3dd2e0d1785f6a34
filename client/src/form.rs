//! The document form: the manifest fields a clerk fills in, as a small TOML (or JSON) file,
//! turned into a validated [`Manifest`] before anything is signed.
//!
//! ```toml
//! to = ["000.01.42.H49", "000.00.00.G22"]
//! number = 123
//! notation = "UBND-VP"
//! place = "Phong Dụ"
//! date = 2026-11-23
//! kind = "administrative"          # or "legal-normative"
//! type = "Công văn"
//! subject = "Về việc chủ động ứng phó với bão số 3"
//! due = 2026-12-01                  # optional
//! urgency = "hỏa tốc"               # 0-4 or thường, khẩn, thượng khẩn, hỏa tốc, hỏa tốc hẹn giờ
//! steering = 0                      # optional
//! # business = { replace = "000.01.41.H49,2026/11/20,120/UBND-VP" }   # revoke, update, replace
//! # [signer]                        # optional: defaults to the official's certificate
//! # name = "Nguyễn Văn An"
//! # position = "Chủ tịch"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pki::AgencyCode;
use pki::document::manifest::{Attachment, Business, DocumentId, DocumentKind, Manifest, Urgency};
use time::Date;

/// A date given as TOML date or as text.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum DateInput {
    Toml(toml::value::Datetime),
    Text(String),
}

impl DateInput {
    fn to_date(&self, field: &str) -> anyhow::Result<Date> {
        let text = match self {
            DateInput::Toml(d) => d.to_string(),
            DateInput::Text(t) => t.clone(),
        };
        crate::timefmt::parse_date(&text, field)
    }
}

/// A number or a name.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum CodeOrName {
    Code(u64),
    Name(String),
}

/// The form as written (every field may also come from a command-line flag).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Form {
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    pub number: Option<u32>,
    pub notation: Option<String>,
    pub place: Option<String>,
    pub date: Option<DateInput>,
    pub kind: Option<CodeOrName>,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub subject: Option<String>,
    pub due: Option<DateInput>,
    pub urgency: Option<CodeOrName>,
    pub steering: Option<u8>,
    pub business: Option<BusinessInput>,
    pub signer: Option<SignerInput>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignerInput {
    pub name: String,
    pub position: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum BusinessInput {
    New(String),
    Acting(BusinessAct),
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusinessAct {
    pub revoke: Option<String>,
    pub update: Option<String>,
    pub replace: Option<String>,
}

/// An urgency word as people type it: `hỏa tốc`, `Hỏa tốc`, `hoả tốc` (the old accent
/// placement), or without diacritics, `hoa toc`, `khan`, `thuong khan` — the same words, as
/// typed on a keyboard without Vietnamese input. Also 0–4 and the English names.
pub(crate) fn parse_urgency(text: &str) -> anyhow::Result<Urgency> {
    if let Ok(u) = text.parse::<Urgency>() {
        return Ok(u);
    }
    let wanted = fold(text);
    Urgency::ALL.iter().copied().find(|u| fold(u.name_vi()) == wanted).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown urgency {text:?}; use 0-4 or thường, khẩn, thượng khẩn, hỏa tốc, hỏa tốc hẹn giờ (with or without diacritics: thuong, khan, thuong khan, hoa toc, hoa toc hen gio)"
        )
    })
}

/// Lower case, without diacritics (đ as d), words separated by single spaces.
fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let bare: String = text
        .nfd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            c => c,
        })
        .collect::<String>()
        .to_lowercase();
    bare.split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a form file (TOML, or JSON when the name ends in `.json`).
pub(crate) fn read_form(path: &Path) -> anyhow::Result<Form> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the form {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("form {}", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("form {}", path.display()))
    }
}

/// Guesses a media type from a file name's extension; `application/octet-stream` otherwise.
pub(crate) fn media_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "txt" => "text/plain",
        "xml" => "application/xml",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "tif" | "tiff" => "image/tiff",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Hashes an attachment file by streaming it.
pub(crate) fn describe_attachment(path: &Path) -> anyhow::Result<Attachment> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("attachment {} has no usable file name", path.display()))?
        .to_owned();
    let mut file =
        std::fs::File::open(path).with_context(|| format!("attachment {} cannot be opened", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(ctx.finish().as_ref());
    Ok(Attachment { name, media_type: media_type(path).to_owned(), size, sha256 })
}

/// The file among `paths` that is the manifest's attachment `name` (file names are compared
/// in NFC, trimmed, as the manifest holds them).
pub(crate) fn attachment_path<'a>(paths: &'a [PathBuf], name: &str) -> Option<&'a PathBuf> {
    use unicode_normalization::UnicodeNormalization;
    paths.iter().find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.trim().nfc().eq(name.chars())))
}

/// Who signs, as the certificates say, to fill the fields a form may leave out.
pub(crate) struct SignerDefaults {
    /// The sender: the seal's agency (or the official's, when not sealing now).
    pub from: AgencyCode,
    /// The official's name, from the person certificate.
    pub name: Option<String>,
    /// The official's position, from the person certificate.
    pub position: Option<String>,
}

impl Form {
    /// The validated, NFC-normalised manifest for this form and attachments. Every problem
    /// is reported with the field's name, before anything is signed.
    pub(crate) fn to_manifest(&self, attachments: &[PathBuf], defaults: &SignerDefaults) -> anyhow::Result<Manifest> {
        let from = match &self.from {
            Some(code) => code.parse::<AgencyCode>().context("sender (from)")?,
            None => defaults.from,
        };
        if from != defaults.from {
            bail!("the form says the sender is {from}, but the signing certificates are of {}", defaults.from);
        }
        let missing = |field: &str, flag: &str| {
            anyhow::anyhow!("the document has no {field}: give --{flag} or `{field} = …` in the form")
        };
        if self.to.is_empty() {
            bail!(
                "the document has no recipient: give --to CODE (several times for several) or `to = [\"…\"]` in the form"
            );
        }
        let to = self
            .to
            .iter()
            .map(|c| c.parse::<AgencyCode>().with_context(|| format!("recipient {c:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let kind = match self.kind.as_ref().unwrap_or(&CodeOrName::Code(2)) {
            CodeOrName::Code(1) => DocumentKind::LegalNormative,
            CodeOrName::Code(2) => DocumentKind::Administrative,
            CodeOrName::Name(n) if matches!(n.as_str(), "legal-normative" | "legal_normative" | "1") => {
                DocumentKind::LegalNormative
            }
            CodeOrName::Name(n) if matches!(n.as_str(), "administrative" | "2") => DocumentKind::Administrative,
            other => bail!("document kind {other:?} is not 1 (legal-normative) or 2 (administrative)"),
        };
        let urgency = match self.urgency.as_ref().unwrap_or(&CodeOrName::Code(0)) {
            CodeOrName::Code(c) => Urgency::from_code(*c).with_context(|| format!("urgency {c} is not 0 to 4"))?,
            CodeOrName::Name(n) => parse_urgency(n)?,
        };
        let business = match &self.business {
            None => Business::New,
            Some(BusinessInput::New(s)) if s == "new" => Business::New,
            Some(BusinessInput::New(s)) => {
                bail!("business {s:?}: use \"new\" or {{ revoke|update|replace = \"DOCUMENT ID\" }}")
            }
            Some(BusinessInput::Acting(act)) => {
                let parse = |id: &str| {
                    id.parse::<DocumentId>().map_err(anyhow::Error::msg).context("the earlier document's id")
                };
                match (&act.revoke, &act.update, &act.replace) {
                    (Some(id), None, None) => Business::Revoke(parse(id)?),
                    (None, Some(id), None) => Business::Update(parse(id)?),
                    (None, None, Some(id)) => Business::Replace(parse(id)?),
                    _ => bail!("business: give exactly one of revoke, update or replace"),
                }
            }
        };
        let (signer_name, signer_position) = match (&self.signer, &defaults.name, &defaults.position) {
            (Some(s), _, _) => (s.name.clone(), s.position.clone()),
            (None, Some(n), Some(p)) => (n.clone(), p.clone()),
            _ => bail!(
                "no signer: there is no official's certificate to take the name and position from, and the form has no [signer]"
            ),
        };
        let attachments = attachments.iter().map(|p| describe_attachment(p)).collect::<anyhow::Result<Vec<_>>>()?;
        let manifest = Manifest {
            from,
            to,
            number: self.number.ok_or_else(|| missing("number", "number"))?,
            notation: self.notation.clone().ok_or_else(|| missing("notation", "notation"))?,
            place: self.place.clone().ok_or_else(|| missing("place", "place"))?,
            date: match &self.date {
                Some(d) => d.to_date("date")?,
                None => crate::timefmt::today_vietnam(),
            },
            kind,
            type_name: self.type_name.clone().unwrap_or_else(|| "Công văn".to_owned()),
            subject: self.subject.clone().ok_or_else(|| missing("subject", "subject"))?,
            signer_name,
            signer_position,
            due: self.due.as_ref().map(|d| d.to_date("due")).transpose()?,
            urgency,
            steering: self.steering.unwrap_or(0),
            business,
            attachments,
        }
        .normalized();
        manifest.validate()?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgency_words_with_or_without_diacritics() {
        for (typed, expected) in [
            ("khẩn", Urgency::Urgent),
            ("khan", Urgency::Urgent),
            ("KHAN", Urgency::Urgent),
            ("thuong khan", Urgency::VeryUrgent),
            ("Thượng khẩn", Urgency::VeryUrgent),
            ("hoa toc", Urgency::Flash),
            ("hoả tốc", Urgency::Flash),
            ("hoa-toc-hen-gio", Urgency::FlashTimed),
            ("thuong", Urgency::Normal),
            ("3", Urgency::Flash),
        ] {
            assert_eq!(parse_urgency(typed).unwrap(), expected, "{typed}");
        }
        let e = parse_urgency("gấp").unwrap_err().to_string();
        assert!(e.contains("unknown urgency") && e.contains("hoa toc"), "{e}");
    }
}
