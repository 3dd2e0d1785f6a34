//! Which keys and signature algorithms lienthong accepts, and the one place that turns them into
//! ring verifications.
//!
//! Policy: ECDSA P-256 is the default; P-384, RSA of 2048 to 8192 bits and Ed25519 verify
//! because real government CAs issue RSA. SHA-1 and MD5 signatures, RSA under 2048 bits and
//! anything else are refused by name, so an operator reading the error knows what to replace.

use std::fmt;

use ring::signature::{self, UnparsedPublicKey};
use x509_parser::der_parser::asn1_rs::{FromDer, Oid};
use x509_parser::oid_registry as oids;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// Smallest RSA modulus we verify, in bits (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus we verify, in bits; ring's own upper bound, which also caps the cost a
/// hostile certificate can impose.
pub const MAX_RSA_BITS: usize = 8192;

/// A subject public key, classified.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum KeyKind {
    /// ECDSA on NIST P-256 (the default).
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// RSA with the given modulus size in bits.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::EcP256 => f.write_str("ECDSA P-256"),
            KeyKind::EcP384 => f.write_str("ECDSA P-384"),
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Why a key is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    /// An RSA key outside 2048..=8192 bits.
    RsaSize(usize),
    /// An elliptic curve we do not accept, named by OID.
    Curve(String),
    /// A key algorithm we do not accept, named by OID.
    Algorithm(String),
    /// The key bytes do not parse.
    Malformed,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::RsaSize(bits) => {
                write!(f, "RSA key of {bits} bits (accepted: {MIN_RSA_BITS} to {MAX_RSA_BITS})")
            }
            KeyProblem::Curve(oid) => write!(f, "elliptic curve {oid} (accepted: P-256, P-384)"),
            KeyProblem::Algorithm(oid) => {
                write!(f, "key algorithm {oid} (accepted: ECDSA, RSA, Ed25519)")
            }
            KeyProblem::Malformed => f.write_str("malformed public key"),
        }
    }
}

/// A subject public key we accept: its kind and the bytes ring verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// What kind of key it is.
    pub kind: KeyKind,
    /// The key as ring wants it: the SPKI's BIT STRING contents (an uncompressed EC point, an
    /// RSAPublicKey, or the raw Ed25519 key).
    pub raw: Vec<u8>,
    /// The whole SubjectPublicKeyInfo, for fingerprints and key identifiers.
    pub spki_der: Vec<u8>,
}

impl PublicKey {
    /// Classifies a parsed SubjectPublicKeyInfo, refusing keys outside the policy.
    pub(crate) fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyProblem> {
        let alg = &spki.algorithm.algorithm;
        let raw = spki.subject_public_key.data.to_vec();
        let kind = if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve =
                spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).ok_or(KeyProblem::Malformed)?;
            if curve == oids::OID_EC_P256 {
                KeyKind::EcP256
            } else if curve == oids::OID_NIST_EC_P384 {
                KeyKind::EcP384
            } else {
                return Err(KeyProblem::Curve(curve.to_id_string()));
            }
        } else if *alg == oids::OID_PKCS1_RSAENCRYPTION {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => rsa.key_size(),
                _ => return Err(KeyProblem::Malformed),
            };
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(KeyProblem::RsaSize(bits));
            }
            KeyKind::Rsa { bits }
        } else if *alg == oids::OID_SIG_ED25519 {
            if raw.len() != 32 {
                return Err(KeyProblem::Malformed);
            }
            KeyKind::Ed25519
        } else {
            return Err(KeyProblem::Algorithm(alg.to_id_string()));
        };
        Ok(PublicKey { kind, raw, spki_der: spki.raw.to_vec() })
    }

    /// Parses a DER SubjectPublicKeyInfo and classifies it.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyProblem> {
        match SubjectPublicKeyInfo::from_der(der) {
            Ok(([], spki)) => Self::from_spki(&spki),
            _ => Err(KeyProblem::Malformed),
        }
    }
}

/// A signature algorithm on a certificate or CRL, after the policy check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// ecdsa-with-SHA256.
    EcdsaSha256,
    /// ecdsa-with-SHA384.
    EcdsaSha384,
    /// sha256WithRSAEncryption.
    RsaPkcs1Sha256,
    /// sha384WithRSAEncryption.
    RsaPkcs1Sha384,
    /// sha512WithRSAEncryption.
    RsaPkcs1Sha512,
    /// Ed25519.
    Ed25519,
}

impl SignatureAlgorithm {
    /// Classifies an X.509 AlgorithmIdentifier; `Err` carries a readable name of what was
    /// refused (weak hashes by name, the rest by OID).
    pub(crate) fn from_x509(alg: &AlgorithmIdentifier<'_>) -> Result<Self, String> {
        let oid = &alg.algorithm;
        let known: &[(Oid<'static>, SignatureAlgorithm)] = &[
            (oids::OID_SIG_ECDSA_WITH_SHA256, SignatureAlgorithm::EcdsaSha256),
            (oids::OID_SIG_ECDSA_WITH_SHA384, SignatureAlgorithm::EcdsaSha384),
            (oids::OID_PKCS1_SHA256WITHRSA, SignatureAlgorithm::RsaPkcs1Sha256),
            (oids::OID_PKCS1_SHA384WITHRSA, SignatureAlgorithm::RsaPkcs1Sha384),
            (oids::OID_PKCS1_SHA512WITHRSA, SignatureAlgorithm::RsaPkcs1Sha512),
            (oids::OID_SIG_ED25519, SignatureAlgorithm::Ed25519),
        ];
        if let Some((_, a)) = known.iter().find(|(o, _)| o == oid) {
            return Ok(*a);
        }
        let weak: &[(Oid<'static>, &str)] = &[
            (oids::OID_PKCS1_SHA1WITHRSA, "sha1WithRSAEncryption (SHA-1)"),
            (oids::OID_PKCS1_MD5WITHRSAENC, "md5WithRSAEncryption (MD5)"),
            (oids::OID_PKCS1_MD2WITHRSAENC, "md2WithRSAEncryption (MD2)"),
            (oids::OID_SIG_ECDSA_WITH_SHA224, "ecdsa-with-SHA224"),
            (oids::OID_PKCS1_SHA224WITHRSA, "sha224WithRSAEncryption"),
        ];
        if let Some((_, name)) = weak.iter().find(|(o, _)| o == oid) {
            return Err((*name).to_owned());
        }
        // ecdsa-with-SHA1 is not in the registry under a stable name; match it by OID.
        if oid.to_id_string() == "1.2.840.10045.4.1" {
            return Err("ecdsa-with-SHA1 (SHA-1)".to_owned());
        }
        Err(format!("signature algorithm {}", oid.to_id_string()))
    }

    /// The ring verification algorithm for this signature made by `key`, or `None` when the
    /// pair does not fit (an RSA signature claimed by an EC key, ...).
    fn ring_algorithm(self, key: &KeyKind) -> Option<&'static dyn signature::VerificationAlgorithm> {
        Some(match (self, key) {
            (SignatureAlgorithm::EcdsaSha256, KeyKind::EcP256) => &signature::ECDSA_P256_SHA256_ASN1,
            (SignatureAlgorithm::EcdsaSha384, KeyKind::EcP256) => &signature::ECDSA_P256_SHA384_ASN1,
            (SignatureAlgorithm::EcdsaSha256, KeyKind::EcP384) => &signature::ECDSA_P384_SHA256_ASN1,
            (SignatureAlgorithm::EcdsaSha384, KeyKind::EcP384) => &signature::ECDSA_P384_SHA384_ASN1,
            (SignatureAlgorithm::RsaPkcs1Sha256, KeyKind::Rsa { .. }) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (SignatureAlgorithm::RsaPkcs1Sha384, KeyKind::Rsa { .. }) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (SignatureAlgorithm::RsaPkcs1Sha512, KeyKind::Rsa { .. }) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (SignatureAlgorithm::Ed25519, KeyKind::Ed25519) => &signature::ED25519,
            _ => return None,
        })
    }

    /// Verifies `signature` over `message` with `key`. False on any mismatch, including an
    /// algorithm that does not fit the key.
    pub(crate) fn verify(self, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
        match self.ring_algorithm(&key.kind) {
            Some(alg) => UnparsedPublicKey::new(alg, &key.raw).verify(message, signature).is_ok(),
            None => false,
        }
    }
}
