//! A test PKI built in memory: a root, sub-CAs, end-entities, revocations and CRLs, plus
//! the unchecked issuance tests need to make certificates that break one rule at a time.
//!
//! Compiled only for this crate's tests and with the `testing` feature, which the test
//! harness in `tests/` turns on. Nothing here is reachable from the shipped binaries.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use time::{Duration, OffsetDateTime};

use crate::AgencyCode;
use crate::cert::{Certificate, Profile};
use crate::crl::Crl;
use crate::issue::{self, CertificateRequest};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::memory_ca::MemoryCa;

/// Start of every test certificate's validity: 2026-01-01T00:00:00Z.
pub const T0: OffsetDateTime = time::macros::datetime!(2026-01-01 0:00 UTC);

/// A moment `days` after [`T0`], the usual validation time in tests.
pub fn day(days: i64) -> OffsetDateTime {
    T0 + Duration::days(days)
}

/// An RSA-2048 key (PKCS#8 PEM, unencrypted) made once with OpenSSL, since ring cannot
/// generate RSA.
pub const RSA_2048_KEY_PEM: &str = include_str!("../testdata/rsa2048.key.pem");
/// The public half of an RSA-1024 key: too weak, for refusal tests.
pub const RSA_1024_PUBLIC_PEM: &str = include_str!("../testdata/rsa1024.pub.pem");
/// The public half of a P-384 key.
pub const P384_PUBLIC_PEM: &str = include_str!("../testdata/p384.pub.pem");

/// DER SubjectPublicKeyInfo from a `PUBLIC KEY` PEM.
pub fn spki_from_pem(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

/// The RSA-2048 test key.
pub fn rsa_key() -> PrivateKey {
    PrivateKey::from_pem(RSA_2048_KEY_PEM, None).unwrap()
}

pub use crate::memory_ca::Issued;

/// A CA under test: a [`MemoryCa`] issuing from [`T0`] for ten years, with unwrapping
/// methods taking codes as text, and unchecked issuance for certificates that break a rule.
#[derive(Debug)]
pub struct TestCa(pub MemoryCa);

impl std::ops::Deref for TestCa {
    type Target = MemoryCa;

    fn deref(&self) -> &MemoryCa {
        &self.0
    }
}

impl std::ops::DerefMut for TestCa {
    fn deref_mut(&mut self) -> &mut MemoryCa {
        &mut self.0
    }
}

fn window(ca: MemoryCa) -> TestCa {
    let mut ca = ca;
    ca.not_before = T0;
    ca.not_after = (T0 + Duration::days(3650)).min(ca.cert.not_after);
    TestCa(ca)
}

impl TestCa {
    /// A national root valid from [`T0`] for 20 years.
    pub fn root() -> TestCa {
        Self::root_with("Root CA Quốc gia (thử nghiệm)", PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap())
    }

    /// A root with a chosen name and key (another hierarchy, an RSA root...).
    pub fn root_with(name: &str, key: PrivateKey) -> TestCa {
        window(MemoryCa::root(name, key, T0, T0 + Duration::days(365 * 20)).unwrap())
    }

    /// A CA from an existing certificate and key (which need not really be a CA: tests use
    /// this to have an end-entity sign).
    pub fn from_parts(cert: Certificate, key: PrivateKey) -> TestCa {
        TestCa(MemoryCa::from_parts(cert, key))
    }

    /// A request for `profile` and `code`, valid from [`T0`] for ten years.
    pub fn request(&mut self, profile: Profile, code: &str, name: &str, key: &PrivateKey) -> CertificateRequest {
        self.0.request(profile, code.parse::<AgencyCode>().unwrap(), name, key)
    }

    /// A sub-CA for `code`, issued with the normal checks.
    pub fn sub_ca(&mut self, code: &str, name: &str) -> TestCa {
        window(self.0.sub_ca(code.parse().unwrap(), name).unwrap())
    }

    /// An end-entity certificate, issued with the normal checks.
    pub fn issue(&mut self, profile: Profile, code: &str, name: &str) -> Issued {
        self.0.issue(profile, code.parse().unwrap(), name).unwrap()
    }

    /// An end-entity certificate for a given key.
    pub fn issue_key(&mut self, profile: Profile, code: &str, name: &str, key: PrivateKey) -> Issued {
        self.0.issue_key(profile, code.parse().unwrap(), name, key).unwrap()
    }

    /// A person certificate naming the official and position.
    pub fn issue_person(&mut self, code: &str, person: &str, position: &str, organization: &str) -> Issued {
        self.0.issue_person(code.parse().unwrap(), person, position, organization).unwrap()
    }

    /// Signs a CRL of everything revoked so far.
    pub fn crl(&mut self, this_update: OffsetDateTime, next_update: OffsetDateTime) -> Crl {
        self.0.crl(this_update, next_update).unwrap()
    }

    /// Issues with no policy check, after `tweak` has changed the rcgen parameters: how a
    /// test makes a certificate that breaks exactly one rule.
    pub fn issue_unchecked(
        &mut self,
        profile: Profile,
        code: &str,
        name: &str,
        subject_spki: &[u8],
        tweak: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> Certificate {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let mut request = self.request(profile, code, name, &key);
        if profile == Profile::Person {
            request.title = Some("Chủ tịch".to_owned());
        }
        let mut params = issue::profile_params(&request).unwrap();
        tweak(&mut params);
        issue::sign_params(&params, subject_spki, &self.signer()).unwrap()
    }

    /// An unchecked sub-CA (for path length and hierarchy violations).
    pub fn sub_ca_unchecked(
        &mut self,
        code: &str,
        name: &str,
        tweak: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> TestCa {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let cert = self.issue_unchecked(Profile::Ca, code, name, &key.public_key().spki_der.clone(), tweak);
        window(MemoryCa::from_parts(cert, key))
    }
}

/// DER of each certificate, in the order given (leaf first for validation).
pub fn chain(certs: &[&Certificate]) -> Vec<Vec<u8>> {
    certs.iter().map(|c| c.der().to_vec()).collect()
}
