//! The manifest: the national e-document fields of one official document, as the deterministic
//! CBOR payload every signature covers.
//!
//! Text is normalised to Unicode NFC (and trimmed) before encoding, so a document typed in NFD
//! by another system produces the very same bytes; a decoded manifest must already be NFC and
//! deterministically encoded, so one document has exactly one encoding and one digest.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use ciborium::Value;
use time::Date;
use unicode_normalization::{UnicodeNormalization, is_nfc};

use super::cbor::{self, CborError, CborLimits};
use crate::agency::AgencyCode;

/// Manifest format version written by this code.
pub const MANIFEST_VERSION: u64 = 1;
/// Longest subject (trích yếu), in characters, as the national format allows.
pub const MAX_SUBJECT_CHARS: usize = 500;
/// Most recipients of one document: a circular to every province and ministry stays under it.
pub const MAX_RECIPIENTS: usize = 200;
/// Most attachments of one document.
pub const MAX_ATTACHMENTS: usize = 64;
/// Longest attachment name, in bytes of UTF-8 (the common file-system limit).
pub const MAX_ATTACHMENT_NAME_BYTES: usize = 255;
/// Longest short text field (names, positions, places, notation), in characters.
pub const MAX_SHORT_TEXT_CHARS: usize = 100;

/// The document identifier: `{sender code},{yyyy/MM/dd},{number}/{notation}`, e.g.
/// `000.01.41.H49,2026/11/23,123/UBND-VP`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId {
    /// The issuing agency.
    pub sender: AgencyCode,
    /// Promulgation date.
    pub date: Date,
    /// Number (số).
    pub number: u32,
    /// Notation (ký hiệu), e.g. `UBND-VP`.
    pub notation: String,
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{:04}/{:02}/{:02},{}/{}",
            self.sender,
            self.date.year(),
            u8::from(self.date.month()),
            self.date.day(),
            self.number,
            self.notation
        )
    }
}

impl serde::Serialize for DocumentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for DocumentId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected {sender code},{yyyy/MM/dd},{number}/{notation}";
        let mut parts = s.splitn(3, ',');
        let (Some(sender), Some(date), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("document id {s:?}: {expected}"));
        };
        let sender = sender.parse::<AgencyCode>().map_err(|e| format!("document id {s:?}: {e}"))?;
        let date = Date::parse(date, time::macros::format_description!("[year]/[month]/[day]"))
            .map_err(|_| format!("document id {s:?}: date {date:?} is not yyyy/MM/dd"))?;
        let (number, notation) = rest.split_once('/').ok_or_else(|| format!("document id {s:?}: {expected}"))?;
        let number =
            number.parse::<u32>().map_err(|_| format!("document id {s:?}: number {number:?} is not a number"))?;
        check_notation(notation).map_err(|p| format!("document id {s:?}: notation {p}"))?;
        Ok(DocumentId { sender, date, number, notation: notation.to_owned() })
    }
}

/// Kind of document (loại văn bản).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// 1: legal-normative document (văn bản quy phạm pháp luật).
    LegalNormative,
    /// 2: administrative document (văn bản hành chính).
    Administrative,
}

impl DocumentKind {
    /// The code in the national format.
    pub fn code(self) -> u8 {
        match self {
            DocumentKind::LegalNormative => 1,
            DocumentKind::Administrative => 2,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(DocumentKind::LegalNormative),
            2 => Some(DocumentKind::Administrative),
            _ => None,
        }
    }
}

/// Urgency (độ khẩn), 0 to 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// 0: thường.
    Normal,
    /// 1: khẩn.
    Urgent,
    /// 2: thượng khẩn.
    VeryUrgent,
    /// 3: hỏa tốc.
    Flash,
    /// 4: hỏa tốc hẹn giờ.
    FlashTimed,
}

impl Urgency {
    /// Every urgency, lowest first.
    pub const ALL: [Urgency; 5] =
        [Urgency::Normal, Urgency::Urgent, Urgency::VeryUrgent, Urgency::Flash, Urgency::FlashTimed];

    /// The code in the national format.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// From the code 0..=4.
    pub fn from_code(code: u64) -> Option<Self> {
        Urgency::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// The Vietnamese name, as clerks know it.
    pub fn name_vi(self) -> &'static str {
        match self {
            Urgency::Normal => "Thường",
            Urgency::Urgent => "Khẩn",
            Urgency::VeryUrgent => "Thượng khẩn",
            Urgency::Flash => "Hỏa tốc",
            Urgency::FlashTimed => "Hỏa tốc hẹn giờ",
        }
    }
}

impl FromStr for Urgency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(code) = s.parse::<u64>() {
            return Urgency::from_code(code).ok_or_else(|| format!("urgency {code} is not 0 to 4"));
        }
        let wanted: String = s.trim().nfc().collect::<String>().to_lowercase();
        let by_name = |u: &Urgency| {
            let vi = u.name_vi().to_lowercase();
            let en = format!("{u:?}").to_lowercase();
            wanted == vi || wanted == en || wanted.replace(['-', '_', ' '], "") == en
        };
        Urgency::ALL.iter().copied().find(by_name).ok_or_else(|| {
            format!("unknown urgency {s:?}; use 0-4 or thường, khẩn, thượng khẩn, hỏa tốc, hỏa tốc hẹn giờ")
        })
    }
}

/// What a document does to earlier ones (nghiệp vụ).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", content = "of", rename_all = "snake_case")]
pub enum Business {
    /// 0: a new document.
    New,
    /// 1: revokes the document it names.
    Revoke(DocumentId),
    /// 2: updates the document it names.
    Update(DocumentId),
    /// 3: replaces the document it names.
    Replace(DocumentId),
}

impl Business {
    /// The code in the national format.
    pub fn code(&self) -> u8 {
        match self {
            Business::New => 0,
            Business::Revoke(_) => 1,
            Business::Update(_) => 2,
            Business::Replace(_) => 3,
        }
    }

    /// The earlier document acted on, if any.
    pub fn target(&self) -> Option<&DocumentId> {
        match self {
            Business::New => None,
            Business::Revoke(id) | Business::Update(id) | Business::Replace(id) => Some(id),
        }
    }
}

/// One attachment, by name, media type, size and SHA-256; the bytes travel beside the envelope.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    /// File name, also its name inside the bundle.
    pub name: String,
    /// Media type, e.g. `application/pdf`.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    #[serde(serialize_with = "hex_bytes")]
    pub sha256: [u8; 32],
}

fn date_text<S: serde::Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(date)
}

fn optional_date_text<S: serde::Serializer>(date: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(d) => s.collect_str(d),
        None => s.serialize_none(),
    }
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&hex::encode(bytes))
}

/// The signed content of an official document.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Manifest {
    /// The issuing agency; its seal signs the document.
    pub from: AgencyCode,
    /// Recipients, in order given, without duplicates.
    pub to: Vec<AgencyCode>,
    /// Number (số).
    pub number: u32,
    /// Notation (ký hiệu), e.g. `UBND-VP`.
    pub notation: String,
    /// Promulgation place (địa danh), e.g. `Phong Dụ`.
    pub place: String,
    /// Promulgation date.
    #[serde(serialize_with = "date_text")]
    pub date: Date,
    /// Legal-normative or administrative.
    pub kind: DocumentKind,
    /// Type name, e.g. `Công văn`, `Quyết định`.
    pub type_name: String,
    /// Subject (trích yếu), at most 500 characters.
    pub subject: String,
    /// The competent official's name.
    pub signer_name: String,
    /// The official's position.
    pub signer_position: String,
    /// Due date for handling, if any.
    #[serde(serialize_with = "optional_date_text")]
    pub due: Option<Date>,
    /// Urgency.
    pub urgency: Urgency,
    /// Steering type (loại chỉ đạo), the code of the national format, carried as given.
    pub steering: u8,
    /// New, or revoking, updating or replacing an earlier document.
    pub business: Business,
    /// Attachments.
    pub attachments: Vec<Attachment>,
}

/// What is wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldProblem {
    /// Missing.
    #[error("is missing")]
    Missing,
    /// Empty.
    #[error("is empty")]
    Empty,
    /// Too long.
    #[error("has {len} characters, more than {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too many entries.
    #[error("has {len} entries, more than {max}")]
    TooMany {
        /// How many.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Wrong CBOR type.
    #[error("should be {0}")]
    WrongType(&'static str),
    /// Text not in NFC.
    #[error("is not in Unicode NFC")]
    NotNfc,
    /// Contains a control character or a character the field forbids.
    #[error("contains {0}")]
    BadCharacter(String),
    /// A value appears twice.
    #[error("lists {0} twice")]
    Duplicate(String),
    /// Invalid value.
    #[error("{0}")]
    Invalid(String),
}

/// Why a manifest is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The CBOR itself is refused.
    #[error("manifest: {0}")]
    Cbor(#[from] CborError),
    /// A field is wrong.
    #[error("manifest field {field} {problem}")]
    Field {
        /// The field, e.g. `subject` or `attachments[1].name`.
        field: String,
        /// What is wrong.
        problem: FieldProblem,
    },
    /// A field this version does not know.
    #[error("manifest has an unknown field {0:?}")]
    UnknownField(String),
    /// A version this code does not read.
    #[error("manifest version {0} is not supported (this program reads version {MANIFEST_VERSION})")]
    Version(u64),
}

fn field_err(field: impl Into<String>, problem: FieldProblem) -> ManifestError {
    ManifestError::Field { field: field.into(), problem }
}

/// NFC, trimmed.
fn norm(text: &str) -> String {
    text.trim().nfc().collect()
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), ManifestError> {
    if text.is_empty() {
        return Err(field_err(field, FieldProblem::Empty));
    }
    let len = text.chars().count();
    if len > max {
        return Err(field_err(field, FieldProblem::TooLong { len, max }));
    }
    if !is_nfc(text) {
        return Err(field_err(field, FieldProblem::NotNfc));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\n') {
        return Err(field_err(field, FieldProblem::BadCharacter(format!("control character U+{:04X}", c as u32))));
    }
    Ok(())
}

fn check_notation(notation: &str) -> Result<(), FieldProblem> {
    if notation.is_empty() {
        return Err(FieldProblem::Empty);
    }
    let len = notation.chars().count();
    if len > 50 {
        return Err(FieldProblem::TooLong { len, max: 50 });
    }
    if let Some(c) = notation.chars().find(|c| matches!(c, ',' | '/') || c.is_whitespace() || c.is_control()) {
        return Err(FieldProblem::BadCharacter(format!("{c:?} (a notation has no spaces, commas or slashes)")));
    }
    if !is_nfc(notation) {
        return Err(FieldProblem::NotNfc);
    }
    Ok(())
}

/// Checks an attachment name: one path component that any file system and ZIP tool takes,
/// and that cannot collide with the bundle's own entries.
pub fn check_attachment_name(name: &str) -> Result<(), FieldProblem> {
    if name.is_empty() {
        return Err(FieldProblem::Empty);
    }
    if name.len() > MAX_ATTACHMENT_NAME_BYTES {
        return Err(FieldProblem::TooLong { len: name.len(), max: MAX_ATTACHMENT_NAME_BYTES });
    }
    if let Some(c) =
        name.chars().find(|c| matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control())
    {
        return Err(FieldProblem::BadCharacter(format!("{c:?}, which file names must not contain")));
    }
    if name.starts_with('.') || name.ends_with(' ') || name.ends_with('.') {
        return Err(FieldProblem::Invalid("a file name must not start with a dot or end with a dot or space".into()));
    }
    if name == "mimetype" || name.eq_ignore_ascii_case("META-INF") {
        return Err(FieldProblem::Invalid(format!("{name:?} is reserved for the bundle itself")));
    }
    if !is_nfc(name) {
        return Err(FieldProblem::NotNfc);
    }
    Ok(())
}

impl Manifest {
    /// The document's identifier.
    pub fn id(&self) -> DocumentId {
        DocumentId { sender: self.from, date: self.date, number: self.number, notation: self.notation.clone() }
    }

    /// The manifest with every text field in NFC and trimmed: what a clerk types, ready to
    /// sign.
    pub fn normalized(mut self) -> Self {
        for text in [
            &mut self.notation,
            &mut self.place,
            &mut self.type_name,
            &mut self.subject,
            &mut self.signer_name,
            &mut self.signer_position,
        ] {
            *text = norm(text);
        }
        for a in &mut self.attachments {
            a.name = norm(&a.name);
            a.media_type = norm(&a.media_type);
        }
        self
    }

    /// Checks every field; the first problem is returned with the field's name.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.to.is_empty() {
            return Err(field_err("to", FieldProblem::Empty));
        }
        if self.to.len() > MAX_RECIPIENTS {
            return Err(field_err("to", FieldProblem::TooMany { len: self.to.len(), max: MAX_RECIPIENTS }));
        }
        let mut seen = BTreeSet::new();
        for code in &self.to {
            if !seen.insert(*code) {
                return Err(field_err("to", FieldProblem::Duplicate(code.to_string())));
            }
            if *code == self.from {
                return Err(field_err("to", FieldProblem::Invalid(format!("the sender {code} cannot send to itself"))));
            }
        }
        if self.number == 0 {
            return Err(field_err("number", FieldProblem::Invalid("a document number starts at 1".into())));
        }
        check_notation(&self.notation).map_err(|p| field_err("notation", p))?;
        check_text("place", &self.place, MAX_SHORT_TEXT_CHARS)?;
        check_text("type", &self.type_name, MAX_SHORT_TEXT_CHARS)?;
        check_text("subject", &self.subject, MAX_SUBJECT_CHARS)?;
        check_text("signer.name", &self.signer_name, MAX_SHORT_TEXT_CHARS)?;
        check_text("signer.position", &self.signer_position, MAX_SHORT_TEXT_CHARS)?;
        if let Some(due) = self.due
            && due < self.date
        {
            return Err(field_err(
                "due",
                FieldProblem::Invalid(format!("{due} is before the document date {}", self.date)),
            ));
        }
        if let Some(target) = self.business.target() {
            if target.sender != self.from {
                return Err(field_err(
                    "business.of",
                    FieldProblem::Invalid(format!(
                        "{} can only revoke, update or replace its own documents, not {target}",
                        self.from
                    )),
                ));
            }
            if *target == self.id() {
                return Err(field_err("business.of", FieldProblem::Invalid("a document cannot act on itself".into())));
            }
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(field_err(
                "attachments",
                FieldProblem::TooMany { len: self.attachments.len(), max: MAX_ATTACHMENTS },
            ));
        }
        let mut names = BTreeSet::new();
        for (i, a) in self.attachments.iter().enumerate() {
            check_attachment_name(&a.name).map_err(|p| field_err(format!("attachments[{i}].name"), p))?;
            if !names.insert(a.name.to_lowercase()) {
                return Err(field_err("attachments", FieldProblem::Duplicate(a.name.clone())));
            }
            let parts: Vec<&str> = a.media_type.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty() || p.contains(char::is_whitespace)) {
                return Err(field_err(
                    format!("attachments[{i}].media_type"),
                    FieldProblem::Invalid(format!("{:?} is not a media type like application/pdf", a.media_type)),
                ));
            }
        }
        Ok(())
    }

    /// The deterministic CBOR encoding, after validation.
    pub fn to_cbor(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        let text = |s: &str| Value::Text(s.to_owned());
        let int = |n: u64| Value::Integer(n.into());
        let date = |d: Date| Value::Text(d.to_string());
        let mut map = vec![
            (text("v"), int(MANIFEST_VERSION)),
            (text("from"), text(&self.from.to_string())),
            (text("to"), Value::Array(self.to.iter().map(|c| text(&c.to_string())).collect())),
            (text("number"), int(u64::from(self.number))),
            (text("notation"), text(&self.notation)),
            (text("place"), text(&self.place)),
            (text("date"), date(self.date)),
            (text("kind"), int(u64::from(self.kind.code()))),
            (text("type"), text(&self.type_name)),
            (text("subject"), text(&self.subject)),
            (
                text("signer"),
                Value::Map(vec![
                    (text("name"), text(&self.signer_name)),
                    (text("position"), text(&self.signer_position)),
                ]),
            ),
            (text("urgency"), int(u64::from(self.urgency.code()))),
            (text("steering"), int(u64::from(self.steering))),
        ];
        let mut business = vec![(text("code"), int(u64::from(self.business.code())))];
        if let Some(target) = self.business.target() {
            business.push((text("of"), text(&target.to_string())));
        }
        map.push((text("business"), Value::Map(business)));
        if let Some(due) = self.due {
            map.push((text("due"), date(due)));
        }
        map.push((
            text("attachments"),
            Value::Array(
                self.attachments
                    .iter()
                    .map(|a| {
                        Value::Map(vec![
                            (text("name"), text(&a.name)),
                            (text("media_type"), text(&a.media_type)),
                            (text("size"), int(a.size)),
                            (text("sha256"), Value::Bytes(a.sha256.to_vec())),
                        ])
                    })
                    .collect(),
            ),
        ));
        Ok(cbor::encode(&Value::Map(map)))
    }

    /// Decodes and validates a manifest; it must be deterministically encoded and NFC.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ManifestError> {
        let value = cbor::decode(bytes, CborLimits::MANIFEST, true)?;
        let mut fields = Fields::new("", value)?;
        let version = fields.uint("v")?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::Version(version));
        }
        let mut signer = Fields::new("signer.", fields.take("signer")?)?;
        let mut business = Fields::new("business.", fields.take("business")?)?;
        let business_code = business.uint("code")?;
        let mut target = || -> Result<DocumentId, ManifestError> {
            business
                .text_opt("of")?
                .ok_or_else(|| field_err("business.of", FieldProblem::Missing))?
                .parse()
                .map_err(|e| field_err("business.of", FieldProblem::Invalid(e)))
        };
        let business_value = match business_code {
            0 => Business::New,
            1 => Business::Revoke(target()?),
            2 => Business::Update(target()?),
            3 => Business::Replace(target()?),
            other => return Err(field_err("business.code", FieldProblem::Invalid(format!("{other} is not 0 to 3")))),
        };
        let attachments = match fields.take("attachments")? {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let mut a = Fields::new(&format!("attachments[{i}]."), item)?;
                    let sha = a.bytes("sha256")?;
                    let sha256: [u8; 32] = sha.try_into().map_err(|_| {
                        field_err(format!("attachments[{i}].sha256"), FieldProblem::Invalid("is not 32 bytes".into()))
                    })?;
                    let attachment = Attachment {
                        name: a.text("name")?,
                        media_type: a.text("media_type")?,
                        size: a.uint("size")?,
                        sha256,
                    };
                    a.done()?;
                    Ok(attachment)
                })
                .collect::<Result<Vec<_>, ManifestError>>()?,
            _ => return Err(field_err("attachments", FieldProblem::WrongType("an array"))),
        };
        let to = match fields.take("to")? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Text(t) => {
                        t.parse::<AgencyCode>().map_err(|e| field_err("to", FieldProblem::Invalid(e.to_string())))
                    }
                    _ => Err(field_err("to", FieldProblem::WrongType("an array of agency codes"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(field_err("to", FieldProblem::WrongType("an array"))),
        };
        let manifest = Manifest {
            from: fields
                .text("from")?
                .parse()
                .map_err(|e: crate::AgencyCodeError| field_err("from", FieldProblem::Invalid(e.to_string())))?,
            to,
            number: u32::try_from(fields.uint("number")?)
                .map_err(|_| field_err("number", FieldProblem::Invalid("too large".into())))?,
            notation: fields.text("notation")?,
            place: fields.text("place")?,
            date: fields.date("date")?,
            kind: DocumentKind::from_code(fields.uint("kind")?)
                .ok_or_else(|| field_err("kind", FieldProblem::Invalid("is not 1 or 2".into())))?,
            type_name: fields.text("type")?,
            subject: fields.text("subject")?,
            signer_name: signer.text("name")?,
            signer_position: signer.text("position")?,
            due: fields.date_opt("due")?,
            urgency: Urgency::from_code(fields.uint("urgency")?)
                .ok_or_else(|| field_err("urgency", FieldProblem::Invalid("is not 0 to 4".into())))?,
            steering: u8::try_from(fields.uint("steering")?)
                .map_err(|_| field_err("steering", FieldProblem::Invalid("too large".into())))?,
            business: business_value,
            attachments,
        };
        signer.done()?;
        business.done()?;
        fields.done()?;
        manifest.validate()?;
        Ok(manifest)
    }
}

/// A CBOR map being taken apart field by field; leftover fields are an error.
struct Fields {
    prefix: String,
    entries: Vec<(String, Value)>,
}

impl Fields {
    fn new(prefix: &str, value: Value) -> Result<Self, ManifestError> {
        let field = prefix.trim_end_matches('.');
        let Value::Map(map) = value else {
            return Err(field_err(
                if field.is_empty() { "(top level)" } else { field },
                FieldProblem::WrongType("a map"),
            ));
        };
        let entries = map
            .into_iter()
            .map(|(k, v)| match k {
                Value::Text(k) => Ok((k, v)),
                _ => Err(field_err(
                    if field.is_empty() { "(top level)" } else { field },
                    FieldProblem::WrongType("a map with text keys"),
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Fields { prefix: prefix.to_owned(), entries })
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn take_opt(&mut self, key: &str) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(pos).1)
    }

    fn take(&mut self, key: &str) -> Result<Value, ManifestError> {
        self.take_opt(key).ok_or_else(|| field_err(self.name(key), FieldProblem::Missing))
    }

    fn text_opt(&mut self, key: &str) -> Result<Option<String>, ManifestError> {
        match self.take_opt(key) {
            None => Ok(None),
            Some(Value::Text(t)) => {
                if !is_nfc(&t) {
                    return Err(field_err(self.name(key), FieldProblem::NotNfc));
                }
                Ok(Some(t))
            }
            Some(_) => Err(field_err(self.name(key), FieldProblem::WrongType("text"))),
        }
    }

    fn text(&mut self, key: &str) -> Result<String, ManifestError> {
        self.text_opt(key)?.ok_or_else(|| field_err(self.name(key), FieldProblem::Missing))
    }

    fn uint(&mut self, key: &str) -> Result<u64, ManifestError> {
        match self.take(key)? {
            Value::Integer(i) => {
                u64::try_from(i).map_err(|_| field_err(self.name(key), FieldProblem::WrongType("an unsigned integer")))
            }
            _ => Err(field_err(self.name(key), FieldProblem::WrongType("an unsigned integer"))),
        }
    }

    fn bytes(&mut self, key: &str) -> Result<Vec<u8>, ManifestError> {
        match self.take(key)? {
            Value::Bytes(b) => Ok(b),
            _ => Err(field_err(self.name(key), FieldProblem::WrongType("a byte string"))),
        }
    }

    fn date_opt(&mut self, key: &str) -> Result<Option<Date>, ManifestError> {
        let Some(text) = self.text_opt(key)? else { return Ok(None) };
        Date::parse(&text, time::macros::format_description!("[year]-[month]-[day]")).map(Some).map_err(|_| {
            field_err(self.name(key), FieldProblem::Invalid(format!("{text:?} is not a date like 2026-11-23")))
        })
    }

    fn date(&mut self, key: &str) -> Result<Date, ManifestError> {
        self.date_opt(key)?.ok_or_else(|| field_err(self.name(key), FieldProblem::Missing))
    }

    fn done(self) -> Result<(), ManifestError> {
        match self.entries.into_iter().next() {
            Some((k, _)) => Err(ManifestError::UnknownField(format!("{}{k}", self.prefix))),
            None => Ok(()),
        }
    }
}
