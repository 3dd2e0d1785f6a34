//! What a node appends to its log, version 1.
//!
//! One leaf per event, in the transaction that records the event:
//!
//! - **document** — the node took responsibility for a document: its envelope digest, its
//!   id (which names the sending agency), who handed it over (`clerk`: this agency's own
//!   clerk; otherwise the neighbour node's agency code), and when;
//! - **signed** — the node's seal signed a receipt or status: the signed receipt's digest,
//!   its kind (`hop`, or `status` with the national code), the envelope it is about, when;
//! - **recorded** — the node kept a receipt or status another agency signed: the same fields
//!   and that agency's code.
//!
//! The leaf's bytes are a deterministic CBOR map (RFC 8949 §4.2.1, through
//! [`crate::document::cbor`]) with text keys:
//!
//! | key | value |
//! | --- | --- |
//! | `v` | 1 |
//! | `t` | `"document"`, `"signed"` or `"recorded"` |
//! | `env` | envelope digest, 32 bytes |
//! | `at` | seconds since 1970 (the node's clock: a claim; witnesses give the proven time) |
//! | `doc` | (document) document id, `{sender},{yyyy/MM/dd},{number}/{notation}` |
//! | `via` | (document) `"clerk"` or the neighbour's agency code |
//! | `rcpt` | (signed, recorded) SHA-256 of the signed receipt's bytes, 32 bytes |
//! | `kind` | (signed, recorded) `"hop"` or `"status"` |
//! | `status` | (kind status) the two-digit national status code as an integer |
//! | `by` | (recorded) the signing agency's code |
//!
//! Decoding takes exactly this: no other key, the deterministic encoding only, within
//! [`MAX_LEAF_BYTES`]; so an entry has one encoding and one leaf hash.

use ciborium::Value;
use time::OffsetDateTime;

use crate::agency::AgencyCode;
use crate::document::cbor::{self, CborError, CborLimits};
use crate::document::{DocumentId, ReceiptKind, StatusCode};

use super::Hash;

/// The leaf format version written.
pub const LEAF_VERSION: u64 = 1;
/// Largest leaf read, in bytes. A leaf is about 150 bytes; a document id's notation is
/// bounded by the manifest's rules, so 2 KiB is generous without letting a proof carry
/// anything large.
pub const MAX_LEAF_BYTES: usize = 2048;
const LEAF_LIMITS: CborLimits = CborLimits { max_bytes: MAX_LEAF_BYTES, max_depth: 2, max_items: 32 };

/// Who handed a document to the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A clerk of this node's own agency (the agency sends it).
    Clerk,
    /// A neighbour node: the agency whose certificate it presented.
    Node(AgencyCode),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// The node took responsibility for a document.
    Document {
        /// SHA-256 of the envelope.
        envelope: Hash,
        /// The document id (it names the sending agency).
        document: DocumentId,
        /// Who handed it over.
        via: Via,
        /// When, by the node's clock (whole seconds).
        at: OffsetDateTime,
    },
    /// The node's seal signed a receipt or status.
    Signed {
        /// SHA-256 of the signed receipt's bytes.
        receipt: Hash,
        /// Hop receipt or status.
        kind: ReceiptKind,
        /// The envelope it is about.
        envelope: Hash,
        /// When, by the node's clock.
        at: OffsetDateTime,
    },
    /// The node kept a receipt or status another agency signed.
    Recorded {
        /// SHA-256 of the signed receipt's bytes.
        receipt: Hash,
        /// Hop receipt or status.
        kind: ReceiptKind,
        /// The agency whose seal signed it.
        by: AgencyCode,
        /// The envelope it is about.
        envelope: Hash,
        /// When, by the node's clock.
        at: OffsetDateTime,
    },
}

/// Why leaf bytes are not a log entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafError {
    /// The CBOR itself (size, depth, deterministic encoding).
    #[error("log entry: {0}")]
    Cbor(#[from] CborError),
    /// A field is missing, unknown or wrong.
    #[error("log entry field {field}: {problem}")]
    Field {
        /// Which.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn field(field: &'static str, problem: impl Into<String>) -> LeafError {
    LeafError::Field { field, problem: problem.into() }
}

const KEYS: [&str; 10] = ["v", "t", "env", "at", "doc", "via", "rcpt", "kind", "status", "by"];

impl LogEntry {
    /// The envelope the entry is about.
    pub fn envelope(&self) -> &Hash {
        match self {
            LogEntry::Document { envelope, .. }
            | LogEntry::Signed { envelope, .. }
            | LogEntry::Recorded { envelope, .. } => envelope,
        }
    }

    /// When the node says it happened.
    pub fn at(&self) -> OffsetDateTime {
        match self {
            LogEntry::Document { at, .. } | LogEntry::Signed { at, .. } | LogEntry::Recorded { at, .. } => *at,
        }
    }

    /// The leaf bytes: the deterministic CBOR map described above.
    pub fn to_bytes(&self) -> Vec<u8> {
        let text = |s: &str| Value::Text(s.to_owned());
        let bytes = |h: &Hash| Value::Bytes(h.to_vec());
        let mut map = vec![
            (text("v"), Value::Integer(LEAF_VERSION.into())),
            (text("env"), bytes(self.envelope())),
            (text("at"), Value::Integer(self.at().unix_timestamp().into())),
        ];
        let receipt_fields = |map: &mut Vec<(Value, Value)>, receipt: &Hash, kind: &ReceiptKind| {
            map.push((text("rcpt"), bytes(receipt)));
            match kind {
                ReceiptKind::Hop => map.push((text("kind"), text("hop"))),
                ReceiptKind::Status(code) => {
                    map.push((text("kind"), text("status")));
                    map.push((text("status"), Value::Integer(code.code().into())));
                }
            }
        };
        match self {
            LogEntry::Document { document, via, .. } => {
                map.push((text("t"), text("document")));
                map.push((text("doc"), text(&document.to_string())));
                let via = match via {
                    Via::Clerk => "clerk".to_owned(),
                    Via::Node(code) => code.to_string(),
                };
                map.push((text("via"), Value::Text(via)));
            }
            LogEntry::Signed { receipt, kind, .. } => {
                map.push((text("t"), text("signed")));
                receipt_fields(&mut map, receipt, kind);
            }
            LogEntry::Recorded { receipt, kind, by, .. } => {
                map.push((text("t"), text("recorded")));
                receipt_fields(&mut map, receipt, kind);
                map.push((text("by"), text(&by.to_string())));
            }
        }
        cbor::encode(&Value::Map(map))
    }

    /// The leaf hash of the entry ([`super::leaf_hash`] of its bytes).
    pub fn leaf_hash(&self) -> Hash {
        super::leaf_hash(&self.to_bytes())
    }

    /// Reads leaf bytes from an untrusted source (a proof bundle, a log being audited).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LeafError> {
        let Value::Map(entries) = cbor::decode(bytes, LEAF_LIMITS, true)? else {
            return Err(field("(top level)", "not a map"));
        };
        for (key, _) in &entries {
            if !matches!(key, Value::Text(k) if KEYS.contains(&k.as_str())) {
                return Err(field("(top level)", format!("unknown key {key:?}")));
            }
        }
        let get = |k: &str| entries.iter().find(|(key, _)| matches!(key, Value::Text(t) if t == k)).map(|(_, v)| v);
        let text = |k: &'static str| match get(k) {
            Some(Value::Text(t)) => Ok(t.as_str()),
            Some(_) => Err(field(k, "not text")),
            None => Err(field(k, "missing")),
        };
        let int = |k: &'static str| match get(k) {
            Some(Value::Integer(i)) => i64::try_from(*i).map_err(|_| field(k, "out of range")),
            Some(_) => Err(field(k, "not an integer")),
            None => Err(field(k, "missing")),
        };
        let hash = |k: &'static str| match get(k) {
            Some(Value::Bytes(b)) => <Hash>::try_from(b.as_slice()).map_err(|_| field(k, "not 32 bytes")),
            Some(_) => Err(field(k, "not bytes")),
            None => Err(field(k, "missing")),
        };
        let agency = |k: &'static str, t: &str| -> Result<AgencyCode, LeafError> {
            let code = t.parse::<AgencyCode>().map_err(|e| field(k, e.to_string()))?;
            if code.to_string() != t {
                return Err(field(k, "not in the code's own form"));
            }
            Ok(code)
        };
        let allowed = |keys: &[&str]| -> Result<(), LeafError> {
            match entries.iter().find(|(key, _)| !matches!(key, Value::Text(k) if keys.contains(&k.as_str()))) {
                Some((key, _)) => Err(field("(top level)", format!("key {key:?} does not belong to this entry type"))),
                None => Ok(()),
            }
        };
        let kind = || -> Result<ReceiptKind, LeafError> {
            match text("kind")? {
                "hop" => {
                    if get("status").is_some() {
                        return Err(field("status", "a hop receipt has no status"));
                    }
                    Ok(ReceiptKind::Hop)
                }
                "status" => {
                    let code = u64::try_from(int("status")?).map_err(|_| field("status", "negative"))?;
                    Ok(ReceiptKind::Status(StatusCode::from_code(code).ok_or_else(|| field("status", "unknown code"))?))
                }
                other => Err(field("kind", format!("unknown kind {other:?}"))),
            }
        };
        if int("v")? != LEAF_VERSION as i64 {
            return Err(field("v", "unsupported version"));
        }
        let envelope = hash("env")?;
        let at = OffsetDateTime::from_unix_timestamp(int("at")?).map_err(|_| field("at", "out of range"))?;
        let entry = match text("t")? {
            "document" => {
                allowed(&["v", "t", "env", "at", "doc", "via"])?;
                let doc = text("doc")?;
                let document = doc.parse::<DocumentId>().map_err(|e| field("doc", e))?;
                let via = match text("via")? {
                    "clerk" => Via::Clerk,
                    code => Via::Node(agency("via", code)?),
                };
                LogEntry::Document { envelope, document, via, at }
            }
            "signed" => {
                allowed(&["v", "t", "env", "at", "rcpt", "kind", "status"])?;
                LogEntry::Signed { receipt: hash("rcpt")?, kind: kind()?, envelope, at }
            }
            "recorded" => {
                allowed(&["v", "t", "env", "at", "rcpt", "kind", "status", "by"])?;
                LogEntry::Recorded {
                    receipt: hash("rcpt")?,
                    kind: kind()?,
                    by: agency("by", text("by")?)?,
                    envelope,
                    at,
                }
            }
            other => return Err(field("t", format!("unknown entry type {other:?}"))),
        };
        // One entry, one encoding: anything that decodes to this entry must be its bytes
        // (a document id written in another form, say, is refused).
        if entry.to_bytes() != bytes {
            return Err(field("(top level)", "not the entry's one encoding"));
        }
        Ok(entry)
    }
}
