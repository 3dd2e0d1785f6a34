//! Targets for the decoders in `pki`: what arrives inside documents, receipts, bundles and
//! certificate files. Each returns true when the input was accepted.

use std::io::Cursor;

use pki::document::cbor::{self, CborLimits};
use pki::document::verify::verify_envelope;
use pki::document::{Bundle, BundleLimits, Envelope, Manifest, SignedReceipt};
use pki::{AgencyCode, Certificate, Crl, CrlSet, PrivateKey, RevocationMode, Validator};

use super::fixtures;

/// An agency code from text: whatever parses prints back to the same text and parses again to
/// the same code, and its ancestors are codes it lies within.
pub fn agency_code(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(code) = text.parse::<AgencyCode>() else { return false };
    assert_eq!(code.to_string(), text, "an agency code prints as it was written");
    assert_eq!(code.to_string().parse::<AgencyCode>().ok(), Some(code));
    for ancestor in code.ancestors() {
        assert!(code.is_within(&ancestor) && code.is_under(&ancestor), "{code} lies within its ancestor {ancestor}");
        assert!(ancestor.level() < code.level(), "{ancestor} is above {code}");
        let step = ancestor.child_towards(&code);
        assert!(
            step.is_some_and(|s| s.parent() == Some(ancestor) && code.is_within(&s)),
            "routing down from {ancestor} to {code}"
        );
    }
    true
}

/// A DER certificate, as carried in an `x5chain` or a TLS handshake.
pub fn certificate(data: &[u8]) -> bool {
    let Ok(cert) = Certificate::from_der(data) else { return false };
    assert_eq!(cert.der(), data, "a certificate keeps its exact bytes");
    let _ = cert.profile();
    let _ = cert.id().to_string();
    true
}

/// A DER CRL, as pushed by a parent or carried with a document; an accepted one is looked up
/// the way validation does, and checked against the fixture root.
pub fn crl(data: &[u8]) -> bool {
    let Ok(crl) = Crl::from_der(data) else { return false };
    assert_eq!(crl.der(), data, "a CRL keeps its exact bytes");
    let validator = Validator::new(vec![fixtures::root().clone()]);
    let _ = validator.crl_signed_by(&crl, fixtures::root());
    let mut set = CrlSet::new();
    set.add(crl);
    for held in set.iter() {
        for serial in held.revoked.keys() {
            assert!(held.lookup(serial).is_some(), "every revoked serial is found by lookup");
        }
    }
    true
}

/// A manifest (the signed payload): one that decodes has exactly this encoding.
pub fn manifest(data: &[u8]) -> bool {
    let Ok(manifest) = Manifest::from_cbor(data) else { return false };
    assert_eq!(manifest.to_cbor().ok().as_deref(), Some(data), "a manifest has exactly one encoding");
    let _ = manifest.id().to_string();
    true
}

/// A COSE envelope, then its verification against the fixture PKI at the fixed time, with
/// revocation required, as `lienthong verify` and a node's intake do. Accepted means verified.
pub fn envelope(data: &[u8]) -> bool {
    let Ok(envelope) = Envelope::from_bytes(data) else { return false };
    assert_eq!(envelope.as_bytes(), data, "an envelope keeps its exact bytes");
    assert_eq!(envelope.digest(), pki::sha256(data));
    let _ = envelope.headers();
    let validator = Validator::new(vec![fixtures::root().clone()])
        .with_crls(fixtures::crls().iter().cloned().collect())
        .with_mode(RevocationMode::Required);
    let Ok(verified) = verify_envelope(&envelope, &validator, fixtures::NOW) else { return false };
    assert_eq!(verified.manifest().to_cbor().ok().as_deref(), Some(envelope.payload()));
    assert_eq!(verified.signers().len(), 2, "a verified document has the official's signature and the seal");
    true
}

/// A bundle (the ZIP container a verifier is sent): opened with the default limits, every
/// attachment streamed and checked.
pub fn bundle(data: &[u8]) -> bool {
    let Ok(mut bundle) = Bundle::open(Cursor::new(data), BundleLimits::default()) else { return false };
    bundle.check_attachments().is_ok()
}

/// A signed receipt or status, then its verification against the fixture PKI at the
/// receipt's own time, as a bundle verifier does. Accepted means verified.
pub fn receipt(data: &[u8]) -> bool {
    let Ok(receipt) = SignedReceipt::from_bytes(data) else { return false };
    assert_eq!(receipt.as_bytes(), data, "a receipt keeps its exact bytes");
    assert_eq!(receipt.digest(), pki::sha256(data));
    let validator = Validator::new(vec![fixtures::root().clone()])
        .with_crls(fixtures::crls().iter().cloned().collect())
        .with_mode(RevocationMode::Required);
    let Ok(chain) = receipt.verify(&validator) else { return false };
    assert_eq!(chain.agency, receipt.receipt.by, "a verified receipt is sealed by the agency it names");
    true
}

/// The bounded CBOR pre-scan every untrusted CBOR input goes through. The first byte picks
/// the limits (tight or generous), the rest is the input. Properties: deterministic input is
/// well formed; what passes tight limits passes generous ones; what passes the scan decodes
/// without the decoder misbehaving; deterministic input that decodes re-encodes to itself.
pub fn cbor_scan(data: &[u8]) -> bool {
    let Some((&selector, input)) = data.split_first() else { return false };
    let tight = CborLimits { max_bytes: 4096, max_depth: 4, max_items: 64 };
    let generous = CborLimits { max_bytes: 1 << 20, max_depth: 16, max_items: 200_000 };
    let limits = if selector & 1 == 0 { tight } else { generous };
    let canonical = cbor::scan(input, limits, true).is_ok();
    let plain = cbor::scan(input, limits, false).is_ok();
    assert!(!canonical || plain, "deterministic CBOR is well-formed CBOR");
    if plain {
        assert!(cbor::scan(input, generous, false).is_ok(), "what passes tight limits passes generous ones");
    }
    if canonical && let Ok(value) = cbor::decode(input, limits, true) {
        assert_eq!(cbor::encode(&value), input, "deterministic CBOR re-encodes to the same bytes");
    }
    plain
}

/// PEM files as read by the node's configuration and the CLI (certificate chains, CRL files,
/// unencrypted keys). Encrypted keys are read only up to the point where a passphrase is
/// needed: their decryption parameters come from the operator's own file.
pub fn pem(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let certs = Certificate::from_pem_all(text);
    if let Ok(certs) = &certs {
        for cert in certs {
            assert_eq!(Certificate::from_der(cert.der()).ok().map(|c| c.fingerprint()), Some(cert.fingerprint()));
        }
    }
    let crls = Crl::from_pem_all(text);
    let key = PrivateKey::from_pem(text, None);
    if let Ok(key) = &key {
        // A key read from PEM writes back to PEM that reads to the same key.
        let again = PrivateKey::from_pem(&key.to_pem(), None).ok();
        assert_eq!(again.map(|k| k.public_key().spki_der.clone()), Some(key.public_key().spki_der.clone()));
    }
    let _ = pki::pem::blocks(text, "CERTIFICATE");
    certs.is_ok() || crls.is_ok() || key.is_ok()
}
