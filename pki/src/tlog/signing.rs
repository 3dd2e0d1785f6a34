//! The signature schemes of notes and cosignatures, and their key IDs, for the keys agency
//! seals have (ECDSA P-256 by default, Ed25519, RSA).
//!
//! C2SP `signed-note` assigns type `0x01` to Ed25519 and `0x02` to ECDSA (as
//! `transparency-dev/witness` does it: ASN.1 DER signature over SHA-256 of the text, key ID
//! the first four bytes of SHA-256 of the SPKI); `tlog-cosignature` assigns `0x04` to
//! Ed25519 cosignatures. Those are used as they are, so standard tools verify them. For
//! what has no assigned type (RSA note signatures, ECDSA and RSA cosignatures) lienthong uses
//! type `0xff` followed by an identifier, as `signed-note` recommends, in the key ID:
//! `SHA-256(name || 0x0A || 0xff || identifier || SPKI DER)[:4]`, with the identifiers below.
//! ECDSA signatures are ASN.1 DER over SHA-256, RSA signatures RSASSA-PSS with SHA-256 and a
//! 32-byte salt (what the seal's key already makes for COSE PS256).

use ring::signature::{self, UnparsedPublicKey};

use crate::algorithm::{KeyKind, PublicKey};
use crate::keys::{CoseAlgorithm, KeyError, PrivateKey};

/// The `0xff` identifier of RSA note signatures.
pub(crate) const NOTE_RSA_ID: &[u8] = b"lienthong.gov.vn/note/rsa-pss-sha256";
/// The `0xff` identifier of ECDSA cosignatures.
pub(crate) const COSIGNATURE_ECDSA_ID: &[u8] = b"lienthong.gov.vn/cosignature/ecdsa-sha256";
/// The `0xff` identifier of RSA cosignatures.
pub(crate) const COSIGNATURE_RSA_ID: &[u8] = b"lienthong.gov.vn/cosignature/rsa-pss-sha256";

/// What a signature is made with, from the key's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Ed25519,
    Ecdsa,
    RsaPss,
}

impl Scheme {
    /// The scheme of a public key. An `Option` so that a key kind added to the policy later
    /// is refused here until a scheme is chosen for it.
    pub(crate) fn of(key: &PublicKey) -> Option<Scheme> {
        match key.kind {
            KeyKind::Ed25519 => Some(Scheme::Ed25519),
            KeyKind::EcP256 | KeyKind::EcP384 => Some(Scheme::Ecdsa),
            KeyKind::Rsa { .. } => Some(Scheme::RsaPss),
        }
    }
}

/// The first four bytes of SHA-256 over `parts`, big-endian.
fn truncated_hash(parts: &[&[u8]]) -> u32 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let digest = ctx.finish();
    let d = digest.as_ref();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The key ID of a note (checkpoint) signature by `key` under `name`.
pub(crate) fn note_key_id(name: &str, key: &PublicKey) -> Option<u32> {
    Some(match Scheme::of(key)? {
        Scheme::Ed25519 => truncated_hash(&[name.as_bytes(), b"\n", &[0x01], &key.raw]),
        Scheme::Ecdsa => truncated_hash(&[&key.spki_der]),
        Scheme::RsaPss => truncated_hash(&[name.as_bytes(), b"\n", &[0xff], NOTE_RSA_ID, &key.spki_der]),
    })
}

/// The key ID of a cosignature by `key` under `name`.
pub(crate) fn cosignature_key_id(name: &str, key: &PublicKey) -> Option<u32> {
    Some(match Scheme::of(key)? {
        Scheme::Ed25519 => truncated_hash(&[name.as_bytes(), b"\n", &[0x04], &key.raw]),
        Scheme::Ecdsa => truncated_hash(&[name.as_bytes(), b"\n", &[0xff], COSIGNATURE_ECDSA_ID, &key.spki_der]),
        Scheme::RsaPss => truncated_hash(&[name.as_bytes(), b"\n", &[0xff], COSIGNATURE_RSA_ID, &key.spki_der]),
    })
}

/// Signs `message`: Ed25519, ECDSA (DER) or RSA-PSS, by the key's kind.
pub(crate) fn sign(key: &PrivateKey, message: &[u8]) -> Result<Vec<u8>, KeyError> {
    let sig = key.sign(message)?;
    match key.cose_algorithm() {
        // The seal signs ES256 as fixed r || s; notes carry ECDSA in DER.
        CoseAlgorithm::Es256 => Ok(ecdsa_fixed_to_der(&sig)),
        CoseAlgorithm::EdDsa | CoseAlgorithm::Ps256 => Ok(sig),
    }
}

/// Verifies `sig` over `message` by `key`; false on any mismatch.
pub(crate) fn verify(key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
    let alg: &dyn signature::VerificationAlgorithm = match key.kind {
        KeyKind::Ed25519 => &signature::ED25519,
        KeyKind::EcP256 => &signature::ECDSA_P256_SHA256_ASN1,
        KeyKind::EcP384 => &signature::ECDSA_P384_SHA256_ASN1,
        KeyKind::Rsa { .. } => &signature::RSA_PSS_2048_8192_SHA256,
    };
    UnparsedPublicKey::new(alg, &key.raw).verify(message, sig).is_ok()
}

/// Turns a fixed-size ECDSA signature (`r || s`, equal halves) into DER
/// `SEQUENCE { INTEGER r, INTEGER s }`.
pub(crate) fn ecdsa_fixed_to_der(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend(body);
    out
}

/// A DER INTEGER from unsigned big-endian bytes: leading zeros dropped, one zero added when
/// the top bit is set.
fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let skip = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    let digits = &bytes[skip..];
    let mut value = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_some_and(|b| b & 0x80 != 0) {
        value.push(0);
    }
    value.extend_from_slice(digits);
    let mut out = vec![0x02];
    push_len(&mut out, value.len());
    out.extend(value);
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        // P-384 signatures stay under 256 bytes.
        out.push(0x81);
        out.push(len as u8);
    }
}
