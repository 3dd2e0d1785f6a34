//! Signed receipts and status messages: what a node hands back when it takes responsibility
//! for a document (a hop receipt), what the recipient's agency signs when a document arrives
//! (status 01) and when its clerks act on it (03 accepted … 16 refused), and the recall
//! messages (13, 15).
//!
//! Each is a COSE_Sign1 (RFC 9052) over a deterministic CBOR map, signed with the agency's
//! seal, its chain in `x5chain` and its time in the CWT `iat`, so the same offline verifier
//! that checks documents checks receipts, years later, inside the bundle.

use ciborium::Value;
use coset::{CoseSign1, CoseSign1Builder, HeaderBuilder, Label, TaggedCborSerializable};
use time::OffsetDateTime;
use unicode_normalization::{UnicodeNormalization, is_nfc};

use super::cbor::{self, CborError, CborLimits};
use super::envelope::{CLAIM_IAT, LABEL_CWT_CLAIMS, LABEL_X5CHAIN};
use super::manifest::DocumentId;
use crate::agency::AgencyCode;
use crate::cert::{Certificate, Profile};
use crate::keys::{CoseAlgorithm, KeyError, PrivateKey};
use crate::validate::{ChainError, Validator, VerifiedChain};

/// Receipt format version.
const RECEIPT_VERSION: u64 = 1;
/// Longest note or reason, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// The status codes of the national exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StatusCode {
    /// 01: the document arrived at the recipient (the delivery receipt).
    Arrived,
    /// 02: refused by the system (unknown recipient, failed verification, undeliverable).
    Refused,
    /// 03: accepted by the recipient's clerk.
    Accepted,
    /// 04: assigned to an officer.
    Assigned,
    /// 05: being processed.
    Processing,
    /// 06: completed.
    Completed,
    /// 13: the sender asks to recall the document.
    RecallRequested,
    /// 15: the recipient accepts the recall or update.
    RecallAccepted,
    /// 16: the recipient refuses (the document, or a recall).
    RefusedByRecipient,
}

impl StatusCode {
    /// Every status.
    pub const ALL: [StatusCode; 9] = [
        StatusCode::Arrived,
        StatusCode::Refused,
        StatusCode::Accepted,
        StatusCode::Assigned,
        StatusCode::Processing,
        StatusCode::Completed,
        StatusCode::RecallRequested,
        StatusCode::RecallAccepted,
        StatusCode::RefusedByRecipient,
    ];

    /// The two-digit code.
    pub fn code(self) -> u8 {
        match self {
            StatusCode::Arrived => 1,
            StatusCode::Refused => 2,
            StatusCode::Accepted => 3,
            StatusCode::Assigned => 4,
            StatusCode::Processing => 5,
            StatusCode::Completed => 6,
            StatusCode::RecallRequested => 13,
            StatusCode::RecallAccepted => 15,
            StatusCode::RefusedByRecipient => 16,
        }
    }

    /// From the code.
    pub fn from_code(code: u64) -> Option<Self> {
        StatusCode::ALL.into_iter().find(|s| u64::from(s.code()) == code)
    }

    /// A short English name.
    pub fn name(self) -> &'static str {
        match self {
            StatusCode::Arrived => "arrived",
            StatusCode::Refused => "refused",
            StatusCode::Accepted => "accepted",
            StatusCode::Assigned => "assigned",
            StatusCode::Processing => "processing",
            StatusCode::Completed => "completed",
            StatusCode::RecallRequested => "recall requested",
            StatusCode::RecallAccepted => "recall accepted",
            StatusCode::RefusedByRecipient => "refused by recipient",
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02} {}", self.code(), self.name())
    }
}

/// Hop receipt or status message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// A node took responsibility for the document (verified and stored it).
    Hop,
    /// A status of the document at an agency.
    Status(StatusCode),
}

impl std::fmt::Display for ReceiptKind {
    /// `hop`, or the status as `01 arrived`: how logs and reports name it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReceiptKind::Hop => f.write_str("hop"),
            ReceiptKind::Status(status) => status.fmt(f),
        }
    }
}

/// The signed content of a receipt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// Hop receipt or status.
    pub kind: ReceiptKind,
    /// The document concerned.
    pub document: DocumentId,
    /// SHA-256 of the document's envelope.
    #[serde(serialize_with = "hex32")]
    pub envelope: [u8; 32],
    /// The agency that signs (its seal).
    pub by: AgencyCode,
    /// The agency it is addressed to: the previous hop for a hop receipt, the document's
    /// sender for a status, the recipient for a recall request.
    pub to: AgencyCode,
    /// When it was signed.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The recipients concerned: those a hop carries the document for, or the recipient whose
    /// status this is.
    pub recipients: Vec<AgencyCode>,
    /// A reason or note, NFC, at most 500 characters.
    pub note: Option<String>,
}

fn hex32<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&hex::encode(bytes))
}

/// Why a receipt cannot be made, read or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// CBOR refused.
    #[error("receipt: {0}")]
    Cbor(#[from] CborError),
    /// Not a COSE_Sign1 of ours.
    #[error("receipt is not a signed COSE_Sign1 receipt: {0}")]
    Format(String),
    /// A field is wrong.
    #[error("receipt field {field}: {problem}")]
    Field {
        /// Which.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The signer's chain does not validate.
    #[error("receipt signer: {0}")]
    Chain(#[from] ChainError),
    /// The signature does not verify.
    #[error("receipt signature does not verify (altered)")]
    BadSignature,
    /// The seal is of another agency than the receipt claims.
    #[error("receipt claims to be by {claimed} but is sealed by {sealed}")]
    WrongSigner {
        /// The `by` field.
        claimed: AgencyCode,
        /// The seal's agency.
        sealed: AgencyCode,
    },
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

fn field(field: &'static str, problem: impl Into<String>) -> ReceiptError {
    ReceiptError::Field { field, problem: problem.into() }
}

impl Receipt {
    fn to_cbor(&self) -> Result<Vec<u8>, ReceiptError> {
        let text = |s: &str| Value::Text(s.to_owned());
        let mut map = vec![
            (text("v"), Value::Integer(RECEIPT_VERSION.into())),
            (text("doc"), text(&self.document.to_string())),
            (text("env"), Value::Bytes(self.envelope.to_vec())),
            (text("by"), text(&self.by.to_string())),
            (text("to"), text(&self.to.to_string())),
            (text("at"), Value::Integer(self.at.unix_timestamp().into())),
            (text("rcpt"), Value::Array(self.recipients.iter().map(|c| text(&c.to_string())).collect())),
        ];
        match self.kind {
            ReceiptKind::Hop => map.push((text("kind"), text("hop"))),
            ReceiptKind::Status(code) => {
                map.push((text("kind"), text("status")));
                map.push((text("status"), Value::Integer(code.code().into())));
            }
        }
        if let Some(note) = &self.note {
            let note: String = note.trim().nfc().collect();
            if note.chars().count() > MAX_NOTE_CHARS {
                return Err(field("note", format!("longer than {MAX_NOTE_CHARS} characters")));
            }
            map.push((text("note"), Value::Text(note)));
        }
        Ok(cbor::encode(&Value::Map(map)))
    }

    fn from_cbor(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let Value::Map(entries) = cbor::decode(bytes, CborLimits::RECEIPT, true)? else {
            return Err(field("(top level)", "not a map"));
        };
        let get = |k: &str| entries.iter().find(|(key, _)| matches!(key, Value::Text(t) if t == k)).map(|(_, v)| v);
        let text = |k: &'static str| match get(k) {
            Some(Value::Text(t)) if is_nfc(t) => Ok(t.clone()),
            Some(Value::Text(_)) => Err(field(k, "not NFC")),
            Some(_) => Err(field(k, "not text")),
            None => Err(field(k, "missing")),
        };
        let int = |k: &'static str| match get(k) {
            Some(Value::Integer(i)) => i64::try_from(*i).map_err(|_| field(k, "out of range")),
            _ => Err(field(k, "missing or not an integer")),
        };
        let code = |k: &'static str, t: &str| t.parse::<AgencyCode>().map_err(|e| field(k, e.to_string()));
        for (key, _) in &entries {
            let known = matches!(key, Value::Text(t) if ["v", "doc", "env", "by", "to", "at", "rcpt", "kind", "status", "note"].contains(&t.as_str()));
            if !known {
                return Err(field("(top level)", format!("unknown field {key:?}")));
            }
        }
        if int("v")? != RECEIPT_VERSION as i64 {
            return Err(field("v", "unsupported version"));
        }
        let kind = match text("kind")?.as_str() {
            "hop" => ReceiptKind::Hop,
            "status" => ReceiptKind::Status(
                StatusCode::from_code(u64::try_from(int("status")?).unwrap_or(0))
                    .ok_or_else(|| field("status", "unknown status code"))?,
            ),
            other => return Err(field("kind", format!("unknown kind {other:?}"))),
        };
        let envelope = match get("env") {
            Some(Value::Bytes(b)) => <[u8; 32]>::try_from(b.as_slice()).map_err(|_| field("env", "not 32 bytes"))?,
            _ => return Err(field("env", "missing or not bytes")),
        };
        let recipients = match get("rcpt") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Text(t) => code("rcpt", t),
                    _ => Err(field("rcpt", "not text")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(field("rcpt", "missing or not an array")),
        };
        let note = match get("note") {
            None => None,
            Some(_) => Some(text("note")?),
        };
        Ok(Receipt {
            kind,
            document: text("doc")?.parse().map_err(|e: String| field("doc", e))?,
            envelope,
            by: code("by", &text("by")?)?,
            to: code("to", &text("to")?)?,
            at: OffsetDateTime::from_unix_timestamp(int("at")?).map_err(|_| field("at", "out of range"))?,
            recipients,
            note,
        })
    }

    /// Signs the receipt with an agency seal. The CWT `iat` is the receipt's own time.
    pub fn sign(&self, key: &PrivateKey, chain: &[Certificate]) -> Result<SignedReceipt, ReceiptError> {
        let payload = self.to_cbor()?;
        let x5chain = Value::Array(chain.iter().map(|c| Value::Bytes(c.der().to_vec())).collect());
        let header = HeaderBuilder::new()
            .algorithm(key.cose_algorithm().iana())
            .value(
                LABEL_CWT_CLAIMS,
                Value::Map(vec![(Value::Integer(CLAIM_IAT.into()), Value::Integer(self.at.unix_timestamp().into()))]),
            )
            .value(LABEL_X5CHAIN, x5chain)
            .build();
        let sign1 = CoseSign1Builder::new()
            .protected(header)
            .payload(payload)
            .try_create_signature(b"", |tbs| key.sign(tbs))?
            .build();
        let bytes = sign1.to_tagged_vec().map_err(|e| ReceiptError::Format(e.to_string()))?;
        SignedReceipt::from_bytes(&bytes)
    }
}

/// A receipt with its exact signed bytes. Reading does not verify; call
/// [`SignedReceipt::verify`].
#[derive(Clone, Debug)]
pub struct SignedReceipt {
    /// The content.
    pub receipt: Receipt,
    bytes: Vec<u8>,
    sign1: CoseSign1,
    algorithm: CoseAlgorithm,
    chain: Vec<Vec<u8>>,
}

impl SignedReceipt {
    /// Reads a receipt from untrusted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReceiptError> {
        cbor::scan(bytes, CborLimits::SIGNED_RECEIPT, false)?;
        let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|e| ReceiptError::Format(e.to_string()))?;
        let receipt =
            Receipt::from_cbor(sign1.payload.as_deref().ok_or_else(|| ReceiptError::Format("no payload".into()))?)?;
        let h = &sign1.protected.header;
        let algorithm = CoseAlgorithm::from_header(h.alg.as_ref())
            .ok_or_else(|| ReceiptError::Format("algorithm missing or not accepted (ES256, EdDSA, PS256)".into()))?;
        let chain =
            super::envelope::x5chain(h.rest.iter().find(|(l, _)| *l == Label::Int(LABEL_X5CHAIN)).map(|(_, v)| v))
                .map_err(|p| ReceiptError::Format(p.into()))?;
        Ok(SignedReceipt { receipt, bytes: bytes.to_vec(), sign1, algorithm, chain })
    }

    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signer's certificate chain as carried (DER, leaf first).
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// SHA-256 of the bytes: a receipt's identity for deduplication.
    pub fn digest(&self) -> [u8; 32] {
        crate::sha256(&self.bytes)
    }

    /// Whether the signature verifies with `key` (the seal's, from a chain the caller has
    /// judged): how the offline verifier checks a receipt it judges with its own time rules.
    pub fn signature_verifies(&self, key: &crate::algorithm::PublicKey) -> bool {
        self.algorithm.verify(key, &self.sign1.tbs_data(b""), &self.sign1.signature)
    }

    /// Verifies the seal's chain at the receipt's time, the signature, and that the seal is of
    /// the agency named in `by`.
    pub fn verify(&self, validator: &Validator) -> Result<VerifiedChain, ReceiptError> {
        let chain = validator.validate(&self.chain, self.receipt.at, Profile::Seal)?;
        let key = chain
            .leaf
            .public_key
            .as_ref()
            .map_err(|p| ChainError::WeakKey { cert: chain.leaf.id(), problem: p.clone() })?;
        let tbs = self.sign1.tbs_data(b"");
        if !self.algorithm.verify(key, &tbs, &self.sign1.signature) {
            return Err(ReceiptError::BadSignature);
        }
        if chain.agency != self.receipt.by {
            return Err(ReceiptError::WrongSigner { claimed: self.receipt.by, sealed: chain.agency });
        }
        Ok(chain)
    }
}
