//! Private keys: generation, PKCS#8 PEM in and out (passphrase-encrypted for CA and personal
//! keys), and signing.
//!
//! Keys stay as PKCS#8 DER in zeroized memory; ring key pairs are built from it when a
//! signature is needed. Encryption is PBES2 (scrypt, AES-256-CBC) through the RustCrypto
//! `pkcs8` crate, a format OpenSSL reads (`openssl pkey -in key.pem`).

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use zeroize::Zeroizing;

use crate::algorithm::{KeyKind, PublicKey};

/// The key types lienthong generates. RSA is accepted from existing files but not generated
/// (ring cannot generate RSA keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256: the default, fast to verify, supported everywhere.
    #[default]
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "p256" | "ecdsa-p256" | "P-256" => Ok(KeyAlgorithm::EcdsaP256),
            "ed25519" | "Ed25519" => Ok(KeyAlgorithm::Ed25519),
            other => Err(format!("unknown key algorithm {other:?}; expected p256 or ed25519")),
        }
    }
}

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Generation failed in ring.
    #[error("could not generate a key")]
    Generate,
    /// The PEM has no private key block.
    #[error("no PRIVATE KEY or ENCRYPTED PRIVATE KEY block in the file")]
    NoKey,
    /// The PEM is malformed.
    #[error("not a PEM key file: {0}")]
    Pem(String),
    /// The key is encrypted and no passphrase was given.
    #[error("the key is encrypted; a passphrase is needed")]
    PassphraseNeeded,
    /// Decryption failed: almost always a wrong passphrase.
    #[error("could not decrypt the key: wrong passphrase or damaged file")]
    Decrypt,
    /// Encryption failed.
    #[error("could not encrypt the key: {0}")]
    Encrypt(String),
    /// The PKCS#8 content is not a key type we use.
    #[error("unsupported or malformed private key (accepted: ECDSA P-256, Ed25519, RSA 2048-8192)")]
    Unsupported,
    /// Signing failed in ring.
    #[error("signing failed")]
    Sign,
}

/// A private key with its public half. Never printed: `Debug` shows only the key kind.
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicKey,
    signer: Signer,
}

enum Signer {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.public.kind)
    }
}

/// A COSE signature algorithm (RFC 9053 / RFC 8230 identifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoseAlgorithm {
    /// ECDSA P-256 with SHA-256, fixed-size r||s signature (-7).
    Es256,
    /// EdDSA with Ed25519 (-8).
    EdDsa,
    /// RSASSA-PSS with SHA-256 (-37).
    Ps256,
}

impl CoseAlgorithm {
    /// Its COSE identifier, for a protected header.
    pub fn iana(self) -> coset::iana::Algorithm {
        match self {
            CoseAlgorithm::Es256 => coset::iana::Algorithm::ES256,
            CoseAlgorithm::EdDsa => coset::iana::Algorithm::EdDSA,
            CoseAlgorithm::Ps256 => coset::iana::Algorithm::PS256,
        }
    }

    /// The algorithm a protected header names, if it is one lienthong accepts.
    pub fn from_header(alg: Option<&coset::Algorithm>) -> Option<Self> {
        match alg? {
            coset::Algorithm::Assigned(coset::iana::Algorithm::ES256) => Some(CoseAlgorithm::Es256),
            coset::Algorithm::Assigned(coset::iana::Algorithm::EdDSA) => Some(CoseAlgorithm::EdDsa),
            coset::Algorithm::Assigned(coset::iana::Algorithm::PS256) => Some(CoseAlgorithm::Ps256),
            _ => None,
        }
    }

    /// Its COSE name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            CoseAlgorithm::Es256 => "ES256",
            CoseAlgorithm::EdDsa => "EdDSA",
            CoseAlgorithm::Ps256 => "PS256",
        }
    }
}

impl PrivateKey {
    /// Generates a new key.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let doc = match alg {
            KeyAlgorithm::EcdsaP256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
            KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| KeyError::Generate)?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// Reads an unencrypted PKCS#8 DER key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let (signer, public_raw) =
            if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
                let raw = kp.public_key().as_ref().to_vec();
                (Signer::P256(kp), raw)
            } else if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                let raw = kp.public_key().as_ref().to_vec();
                (Signer::Ed25519(kp), raw)
            } else if let Ok(kp) = RsaKeyPair::from_pkcs8(der) {
                let raw = kp.public_key().as_ref().to_vec();
                (Signer::Rsa(kp), raw)
            } else {
                return Err(KeyError::Unsupported);
            };
        let spki = spki_der(&signer, &public_raw);
        let public = PublicKey::from_spki_der(&spki).map_err(|_| KeyError::Unsupported)?;
        Ok(PrivateKey { pkcs8: Zeroizing::new(der.to_vec()), public, signer })
    }

    /// Reads a PEM key; `passphrase` is used when the key is encrypted.
    pub fn from_pem(text: &str, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let blocks = pem::parse_many(text).map_err(|e| KeyError::Pem(e.to_string()))?;
        for block in blocks {
            match block.tag() {
                "PRIVATE KEY" => {
                    let der = Zeroizing::new(block.into_contents());
                    return Self::from_pkcs8_der(&der);
                }
                "ENCRYPTED PRIVATE KEY" => {
                    let passphrase = passphrase.ok_or(KeyError::PassphraseNeeded)?;
                    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(block.contents())
                        .map_err(|e| KeyError::Pem(e.to_string()))?;
                    let plain = info.decrypt(passphrase).map_err(|_| KeyError::Decrypt)?;
                    return Self::from_pkcs8_der(plain.as_bytes());
                }
                _ => {}
            }
        }
        Err(KeyError::NoKey)
    }

    /// True when the PEM text holds an encrypted key, so a caller knows to ask for a
    /// passphrase before reading it.
    pub fn pem_is_encrypted(text: &str) -> bool {
        text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    }

    /// The unencrypted PKCS#8 PEM, for node and seal keys that a daemon reads unattended.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(crate::pem::encode("PRIVATE KEY", &self.pkcs8))
    }

    /// The PKCS#8 PEM encrypted under `passphrase` (scrypt N=2^15, r=8, p=1; AES-256-CBC).
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<String, KeyError> {
        let info =
            pkcs8::PrivateKeyInfoRef::try_from(self.pkcs8.as_slice()).map_err(|e| KeyError::Encrypt(e.to_string()))?;
        let doc = info.encrypt(passphrase).map_err(|e| KeyError::Encrypt(e.to_string()))?;
        Ok(crate::pem::encode("ENCRYPTED PRIVATE KEY", doc.as_bytes()))
    }

    /// The unencrypted PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The COSE algorithm this key signs with: ES256, EdDSA or PS256.
    pub fn cose_algorithm(&self) -> CoseAlgorithm {
        match self.signer {
            Signer::P256(_) => CoseAlgorithm::Es256,
            Signer::Ed25519(_) => CoseAlgorithm::EdDsa,
            Signer::Rsa(_) => CoseAlgorithm::Ps256,
        }
    }

    /// Signs `message` with the key's COSE algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::P256(kp) => kp.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| KeyError::Sign),
            Signer::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Signer::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PSS_SHA256, &rng, message, &mut sig).map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }

    /// The key as rcgen needs it to sign certificates and CRLs.
    pub(crate) fn rcgen_key(&self) -> Result<rcgen::KeyPair, KeyError> {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        match self.signer {
            Signer::P256(_) => rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ECDSA_P256_SHA256),
            Signer::Ed25519(_) => rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519),
            Signer::Rsa(_) => rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256),
        }
        .map_err(|_| KeyError::Unsupported)
    }
}

impl CoseAlgorithm {
    /// Verifies a COSE signature by `key`; false on mismatch or when the key does not fit the
    /// algorithm.
    pub fn verify(self, key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match (self, &key.kind) {
            (CoseAlgorithm::Es256, KeyKind::EcP256) => &signature::ECDSA_P256_SHA256_FIXED,
            (CoseAlgorithm::EdDsa, KeyKind::Ed25519) => &signature::ED25519,
            (CoseAlgorithm::Ps256, KeyKind::Rsa { .. }) => &signature::RSA_PSS_2048_8192_SHA256,
            _ => return false,
        };
        signature::UnparsedPublicKey::new(alg, &key.raw).verify(message, sig).is_ok()
    }
}

/// Wraps a raw public key in a SubjectPublicKeyInfo. ring hands out the raw form only; the
/// SPKI is what certificates carry and what rcgen signs over.
fn spki_der(signer: &Signer, raw: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier DER for each kind.
    const EC_P256: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x03, 0x01, 0x07,
    ];
    const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    const RSA: &[u8] = &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let alg = match signer {
        Signer::P256(_) => EC_P256,
        Signer::Ed25519(_) => ED25519,
        Signer::Rsa(_) => RSA,
    };
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(raw);
    let mut body = alg.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

/// One DER TLV with a definite length.
fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem_and_sign() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(alg).unwrap();
            let again = PrivateKey::from_pem(&key.to_pem(), None).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            let sig = key.sign(b"hello").unwrap();
            assert!(key.cose_algorithm().verify(key.public_key(), b"hello", &sig));
            assert!(!key.cose_algorithm().verify(key.public_key(), b"hellO", &sig));
            // rcgen agrees on the public key we computed.
            let rk = key.rcgen_key().unwrap();
            use rcgen::PublicKeyData;
            assert_eq!(rk.subject_public_key_info(), key.public_key().spki_der);
        }
    }

    #[test]
    fn encrypted_pem_needs_the_right_passphrase() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = key.to_encrypted_pem(b"m\xe1t kh\xe1u").unwrap();
        assert!(PrivateKey::pem_is_encrypted(&pem));
        assert!(matches!(PrivateKey::from_pem(&pem, None), Err(KeyError::PassphraseNeeded)));
        assert!(matches!(PrivateKey::from_pem(&pem, Some(b"wrong")), Err(KeyError::Decrypt)));
        let back = PrivateKey::from_pem(&pem, Some(b"m\xe1t kh\xe1u")).unwrap();
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn garbage_is_refused_clearly() {
        assert!(matches!(PrivateKey::from_pem("nothing here", None), Err(KeyError::NoKey | KeyError::Pem(_))));
        let bogus = crate::pem::encode("PRIVATE KEY", b"\x30\x03\x02\x01\x00");
        assert!(matches!(PrivateKey::from_pem(&bogus, None), Err(KeyError::Unsupported)));
    }
}
