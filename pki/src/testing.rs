//! A test PKI built in memory: a root, sub-CAs, end-entities, revocations and CRLs, plus
//! the unchecked issuance tests need to make certificates that break one rule at a time.
//!
//! Compiled only for this crate's tests and with the `testing` feature, which the test
//! harness in `tests/` turns on. Nothing here is reachable from the shipped binaries.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use time::{Duration, OffsetDateTime};

use crate::AgencyCode;
use crate::cert::{Certificate, Profile, Serial};
use crate::crl::{Crl, Revocation, RevocationReason};
use crate::issue::{self, CaSigner, CertificateRequest};
use crate::keys::{KeyAlgorithm, PrivateKey};

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

/// A certificate and its key.
#[derive(Debug)]
pub struct Issued {
    pub cert: Certificate,
    pub key: PrivateKey,
}

/// A CA under test, with its own serial counter, revocations and CRL numbers.
#[derive(Debug)]
pub struct TestCa {
    pub cert: Certificate,
    pub key: PrivateKey,
    next_serial: u64,
    revoked: Vec<(Serial, Revocation)>,
    crl_number: u64,
}

impl TestCa {
    /// A national root valid from [`T0`] for 20 years.
    pub fn root() -> TestCa {
        Self::root_with("Root CA Quốc gia (thử nghiệm)", PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap())
    }

    /// A root with a chosen name and key (another hierarchy, an RSA root...).
    pub fn root_with(name: &str, key: PrivateKey) -> TestCa {
        let cert =
            issue::self_signed_root(name, &key, &Serial::from_bytes(&[1]), T0, T0 + Duration::days(365 * 20)).unwrap();
        TestCa { cert, key, next_serial: 2, revoked: Vec::new(), crl_number: 1 }
    }

    /// A CA from an existing certificate and key (which need not really be a CA: tests use
    /// this to have an end-entity sign).
    pub fn from_parts(cert: Certificate, key: PrivateKey) -> TestCa {
        TestCa { cert, key, next_serial: 100, revoked: Vec::new(), crl_number: 1 }
    }

    /// How this CA signs.
    pub fn signer(&self) -> CaSigner<'_> {
        CaSigner { cert: &self.cert, key: &self.key }
    }

    fn serial(&mut self) -> Serial {
        self.next_serial += 1;
        Serial::from_bytes(&self.next_serial.to_be_bytes())
    }

    /// A request for `profile` and `code`, valid from [`T0`] for ten years (within the root's).
    pub fn request(&mut self, profile: Profile, code: &str, name: &str, key: &PrivateKey) -> CertificateRequest {
        CertificateRequest {
            profile,
            agency: code.parse::<AgencyCode>().unwrap(),
            common_name: name.to_owned(),
            organization: Some(name.to_owned()),
            title: None,
            public_key_spki: key.public_key().spki_der.clone(),
            serial: self.serial(),
            not_before: T0,
            not_after: T0 + Duration::days(3650),
            path_len: None,
        }
    }

    /// A sub-CA for `code`, issued with the normal checks.
    pub fn sub_ca(&mut self, code: &str, name: &str) -> TestCa {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let request = self.request(Profile::Ca, code, name, &key);
        let cert = issue::issue(&request, &self.signer()).unwrap();
        TestCa { cert, key, next_serial: 1, revoked: Vec::new(), crl_number: 1 }
    }

    /// An end-entity certificate, issued with the normal checks.
    pub fn issue(&mut self, profile: Profile, code: &str, name: &str) -> Issued {
        self.issue_key(profile, code, name, PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap())
    }

    /// An end-entity certificate for a given key.
    pub fn issue_key(&mut self, profile: Profile, code: &str, name: &str, key: PrivateKey) -> Issued {
        let request = self.request(profile, code, name, &key);
        Issued { cert: issue::issue(&request, &self.signer()).unwrap(), key }
    }

    /// A person certificate naming the official and position.
    pub fn issue_person(&mut self, code: &str, person: &str, position: &str, organization: &str) -> Issued {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let mut request = self.request(Profile::Person, code, person, &key);
        request.title = Some(position.to_owned());
        request.organization = Some(organization.to_owned());
        Issued { cert: issue::issue(&request, &self.signer()).unwrap(), key }
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
        TestCa { cert, key, next_serial: 1, revoked: Vec::new(), crl_number: 1 }
    }

    /// Records a revocation for the next CRL.
    pub fn revoke(&mut self, serial: &Serial, at: OffsetDateTime, reason: RevocationReason) {
        self.revoked.push((serial.clone(), Revocation { at, reason }));
    }

    /// Signs a CRL of everything revoked so far.
    pub fn crl(&mut self, this_update: OffsetDateTime, next_update: OffsetDateTime) -> Crl {
        self.crl_number += 1;
        issue::issue_crl(&self.signer(), this_update, next_update, self.crl_number, &self.revoked).unwrap()
    }
}

/// DER of each certificate, in the order given (leaf first for validation).
pub fn chain(certs: &[&Certificate]) -> Vec<Vec<u8>> {
    certs.iter().map(|c| c.der().to_vec()).collect()
}
