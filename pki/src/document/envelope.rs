//! The signed envelope: a COSE_Sign (RFC 9052) over the manifest, one COSE_Signature per
//! signer, the person's first and the agency seal's second.
//!
//! Each signature's protected header carries the algorithm, the signer's certificate chain
//! (`x5chain`, RFC 9360, leaf first) and the signing time (`iat` in the CWT-claims header,
//! RFC 9597). The seal's protected header also carries [`LABEL_SEALS`]: the SHA-256 of the
//! person's signature bytes. Since the seal signs its protected header, it signs over the
//! person's signature: the order the law requires (the competent official signs, then the
//! agency seals) is bound cryptographically, and any COSE implementation still verifies each
//! signature on its own (an RFC 9338 countersignature would have needed countersignature
//! support in every verifier).

use ciborium::Value;
use coset::{CoseSign, CoseSignature, CoseSignatureBuilder, HeaderBuilder, Label, TaggedCborSerializable};
use time::OffsetDateTime;

use super::cbor::{self, CborError, CborLimits};
use crate::algorithm::PublicKey;
use crate::cert::Certificate;
use crate::keys::{CoseAlgorithm, KeyError, PrivateKey};

/// Private-use header label (RFC 9052 §11.1 reserves labels below -65536) of the seal's
/// reference to the person's signature: SHA-256 over the person's signature bytes.
pub const LABEL_SEALS: i64 = -65537;
/// The CWT-claims header parameter (RFC 9597).
pub(super) const LABEL_CWT_CLAIMS: i64 = 15;
/// The x5chain header parameter (RFC 9360).
pub(super) const LABEL_X5CHAIN: i64 = 33;
/// `iat` in a CWT claims set (RFC 8392).
pub(super) const CLAIM_IAT: i64 = 6;
/// Content type of the payload.
pub const MANIFEST_CONTENT_TYPE: &str = "application/vnd.lienthong.manifest+cbor";

/// Why an envelope cannot be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The CBOR is refused before COSE parsing.
    #[error("envelope: {0}")]
    Cbor(#[from] CborError),
    /// Not a tagged COSE_Sign.
    #[error("envelope is not a COSE_Sign message: {0}")]
    NotCoseSign(String),
    /// No payload (detached payloads are not used).
    #[error("envelope has no payload")]
    NoPayload,
    /// Wrong payload content type.
    #[error("envelope payload has content type {0:?}, expected {MANIFEST_CONTENT_TYPE}")]
    ContentType(String),
    /// A signature's header is unusable.
    #[error("signature #{index}: {problem}")]
    Header {
        /// 1-based position of the signature.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Adding a seal to an envelope that is not exactly one person's signature.
    #[error("a seal is added to an envelope holding exactly one person's signature; this one holds {0}")]
    NotSealable(usize),
}

/// What one signature's protected header says, read but not yet verified.
#[derive(Clone, Debug)]
pub struct SignatureHeader {
    /// 1-based position in the envelope.
    pub index: usize,
    /// The algorithm.
    pub algorithm: CoseAlgorithm,
    /// The signer's chain as carried, leaf first (DER).
    pub chain: Vec<Vec<u8>>,
    /// The claimed signing time.
    pub signing_time: OffsetDateTime,
    /// For a seal: the SHA-256 of the signature it covers.
    pub seals: Option<[u8; 32]>,
}

/// A parsed COSE_Sign envelope and its exact bytes.
#[derive(Clone, Debug)]
pub struct Envelope {
    sign: CoseSign,
    bytes: Vec<u8>,
    /// The manifest, once decoded: a node's intake, the verification and the signature pair
    /// each ask for it, and decoding it (CBOR, then every text NFC-normalised) took 8 % of a
    /// document's verification in a profile, three times over. Shared, so that cloning the
    /// envelope (as a node does to verify it) does not copy it.
    manifest: std::sync::OnceLock<std::sync::Arc<super::manifest::Manifest>>,
}

/// The certificate chain of an `x5chain` header value (one certificate, or an array of them,
/// leaf first), or what is wrong with it.
pub(super) fn x5chain(value: Option<&Value>) -> Result<Vec<Vec<u8>>, &'static str> {
    match value {
        Some(Value::Bytes(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(many)) if !many.is_empty() => many
            .iter()
            .map(|v| match v {
                Value::Bytes(b) => Ok(b.clone()),
                _ => Err("x5chain holds something other than certificates"),
            })
            .collect(),
        Some(_) => Err("x5chain is malformed"),
        None => Err("carries no certificate chain (x5chain)"),
    }
}

fn signature_header(
    key: &PrivateKey,
    chain: &[Certificate],
    time: OffsetDateTime,
    seals: Option<[u8; 32]>,
) -> coset::Header {
    let x5chain = match chain {
        [single] => Value::Bytes(single.der().to_vec()),
        many => Value::Array(many.iter().map(|c| Value::Bytes(c.der().to_vec())).collect()),
    };
    // Labels in ascending order of their encoding (15, 33, then the negative private label),
    // so the protected header is deterministically encoded.
    let mut builder = HeaderBuilder::new()
        .algorithm(key.cose_algorithm().iana())
        .value(
            LABEL_CWT_CLAIMS,
            Value::Map(vec![(Value::Integer(CLAIM_IAT.into()), Value::Integer(time.unix_timestamp().into()))]),
        )
        .value(LABEL_X5CHAIN, x5chain);
    if let Some(hash) = seals {
        builder = builder.value(LABEL_SEALS, Value::Bytes(hash.to_vec()));
    }
    builder.build()
}

impl Envelope {
    /// The first step: the competent official signs the manifest.
    pub fn sign_person(
        manifest_cbor: &[u8],
        key: &PrivateKey,
        chain: &[Certificate],
        time: OffsetDateTime,
    ) -> Result<Envelope, EnvelopeError> {
        let body = HeaderBuilder::new().content_type(MANIFEST_CONTENT_TYPE.to_owned()).build();
        let sig = CoseSignatureBuilder::new().protected(signature_header(key, chain, time, None)).build();
        let sign = coset::CoseSignBuilder::new()
            .protected(body)
            .payload(manifest_cbor.to_vec())
            .try_add_created_signature(sig, b"", |tbs| key.sign(tbs))?
            .build();
        Self::from_sign(sign)
    }

    /// The second step: the agency seal signs over the manifest and the person's signature.
    pub fn add_seal(
        &self,
        key: &PrivateKey,
        chain: &[Certificate],
        time: OffsetDateTime,
    ) -> Result<Envelope, EnvelopeError> {
        let [person] = self.sign.signatures.as_slice() else {
            return Err(EnvelopeError::NotSealable(self.sign.signatures.len()));
        };
        let covers = crate::sha256(&person.signature);
        let mut sig = CoseSignatureBuilder::new().protected(signature_header(key, chain, time, Some(covers))).build();
        let tbs = self.sign.tbs_data(b"", &sig);
        sig.signature = key.sign(&tbs)?;
        let mut sign = self.sign.clone();
        sign.signatures.push(sig);
        Self::from_sign(sign)
    }

    fn from_sign(sign: CoseSign) -> Result<Envelope, EnvelopeError> {
        let bytes = sign.clone().to_tagged_vec().map_err(|e| EnvelopeError::NotCoseSign(e.to_string()))?;
        // Re-read what we wrote, so an envelope value always has its exact bytes' parse.
        Self::from_bytes(&bytes)
    }

    /// Reads an envelope from untrusted bytes: bounded CBOR scan, then COSE parsing.
    pub fn from_bytes(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        cbor::scan(bytes, CborLimits::ENVELOPE, false)?;
        let sign = CoseSign::from_tagged_slice(bytes).map_err(|e| EnvelopeError::NotCoseSign(e.to_string()))?;
        if sign.payload.is_none() {
            return Err(EnvelopeError::NoPayload);
        }
        match &sign.protected.header.content_type {
            Some(coset::ContentType::Text(t)) if t == MANIFEST_CONTENT_TYPE => {}
            Some(other) => return Err(EnvelopeError::ContentType(format!("{other:?}"))),
            None => return Err(EnvelopeError::ContentType(String::new())),
        }
        Ok(Envelope { sign, bytes: bytes.to_vec(), manifest: std::sync::OnceLock::new() })
    }

    /// The exact bytes, as signed and stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the envelope bytes: with the document id, what identifies a transfer.
    pub fn digest(&self) -> [u8; 32] {
        crate::sha256(&self.bytes)
    }

    /// The manifest bytes the signatures cover.
    pub fn payload(&self) -> &[u8] {
        self.sign.payload.as_deref().unwrap_or_default()
    }

    /// The manifest the signatures cover, decoded and checked (nothing verified yet). Decoded
    /// once per envelope (and its clones made after); a manifest that does not decode is
    /// decoded again each time, to give its error.
    pub fn manifest(&self) -> Result<super::manifest::Manifest, super::manifest::ManifestError> {
        if let Some(manifest) = self.manifest.get() {
            return Ok(super::manifest::Manifest::clone(manifest));
        }
        let manifest = super::manifest::Manifest::from_cbor(self.payload())?;
        self.manifest.get_or_init(|| std::sync::Arc::new(manifest.clone()));
        Ok(manifest)
    }

    /// The raw signature bytes of signature `index` (1-based).
    pub fn signature_bytes(&self, index: usize) -> Option<&[u8]> {
        self.sign.signatures.get(index.checked_sub(1)?).map(|s| s.signature.as_slice())
    }

    /// Reads every signature's protected header.
    pub fn headers(&self) -> Result<Vec<SignatureHeader>, EnvelopeError> {
        self.sign.signatures.iter().enumerate().map(|(i, s)| read_header(i + 1, s)).collect()
    }

    /// Verifies signature `index` (1-based) with `key` under the algorithm it names.
    pub fn verify_signature(&self, header: &SignatureHeader, key: &PublicKey) -> bool {
        let Some(sig) = self.sign.signatures.get(header.index - 1) else { return false };
        let tbs = self.sign.tbs_data(b"", sig);
        header.algorithm.verify(key, &tbs, &sig.signature)
    }
}

fn read_header(index: usize, sig: &CoseSignature) -> Result<SignatureHeader, EnvelopeError> {
    let problem = |p: &str| EnvelopeError::Header { index, problem: p.to_owned() };
    if !sig.unprotected.is_empty() {
        return Err(problem("has unprotected header parameters; lienthong protects all of them"));
    }
    let h = &sig.protected.header;
    let algorithm = match (&h.alg, CoseAlgorithm::from_header(h.alg.as_ref())) {
        (_, Some(a)) => a,
        (Some(other), None) => {
            return Err(problem(&format!("algorithm {other:?} is not accepted (ES256, EdDSA, PS256)")));
        }
        (None, None) => return Err(problem("names no algorithm")),
    };
    let value = |label: i64| h.rest.iter().find(|(l, _)| *l == Label::Int(label)).map(|(_, v)| v);
    let chain = x5chain(value(LABEL_X5CHAIN)).map_err(problem)?;
    let iat = match value(LABEL_CWT_CLAIMS) {
        Some(Value::Map(claims)) => claims.iter().find_map(|(k, v)| match (k, v) {
            (Value::Integer(k), Value::Integer(t)) if i128::from(*k) == i128::from(CLAIM_IAT) => i64::try_from(*t).ok(),
            _ => None,
        }),
        _ => None,
    };
    let iat = iat.ok_or_else(|| problem("carries no signing time (CWT claim iat)"))?;
    let signing_time = OffsetDateTime::from_unix_timestamp(iat).map_err(|_| problem("signing time is out of range"))?;
    let seals = match value(LABEL_SEALS) {
        Some(Value::Bytes(b)) => Some(
            <[u8; 32]>::try_from(b.as_slice()).map_err(|_| problem("the covered-signature hash is not 32 bytes"))?,
        ),
        Some(_) => return Err(problem("the covered-signature hash is malformed")),
        None => None,
    };
    Ok(SignatureHeader { index, algorithm, chain, signing_time, seals })
}
