//! A certificate authority held in memory: a certificate, a key, a serial counter, its
//! revocations and CRL numbers. What `lienthong demo` builds a whole hierarchy with, and what
//! the tests build theirs with. Operators' CAs live in CA directories instead (see the
//! `lienthong pki` commands), where serials survive crashes.

use time::OffsetDateTime;

use crate::agency::AgencyCode;
use crate::cert::{Certificate, Profile, Serial};
use crate::crl::{Crl, Revocation, RevocationReason};
use crate::issue::{self, CaSigner, CertificateRequest, IssueError};
use crate::keys::{KeyAlgorithm, PrivateKey};

/// A certificate and its key.
#[derive(Debug)]
pub struct Issued {
    /// The certificate.
    pub cert: Certificate,
    /// Its key.
    pub key: PrivateKey,
}

/// A CA in memory.
#[derive(Debug)]
pub struct MemoryCa {
    /// Its certificate.
    pub cert: Certificate,
    /// Its key.
    pub key: PrivateKey,
    /// Start of validity given to what it issues.
    pub not_before: OffsetDateTime,
    /// End of validity given to what it issues (never beyond its own).
    pub not_after: OffsetDateTime,
    next_serial: u64,
    revoked: Vec<(Serial, Revocation)>,
    crl_number: u64,
}

impl MemoryCa {
    /// A self-signed national root valid from `not_before` to `not_after`.
    pub fn root(
        name: &str,
        key: PrivateKey,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<MemoryCa, IssueError> {
        let cert = issue::self_signed_root(name, &key, &Serial::from_bytes(&[1]), not_before, not_after)?;
        Ok(MemoryCa::from_parts(cert, key))
    }

    /// A CA from an existing certificate and key; it issues within the certificate's validity.
    pub fn from_parts(cert: Certificate, key: PrivateKey) -> MemoryCa {
        MemoryCa {
            not_before: cert.not_before,
            not_after: cert.not_after,
            cert,
            key,
            next_serial: 1,
            revoked: Vec::new(),
            crl_number: 0,
        }
    }

    /// How this CA signs.
    pub fn signer(&self) -> CaSigner<'_> {
        CaSigner { cert: &self.cert, key: &self.key }
    }

    /// The next serial number.
    pub fn next_serial(&mut self) -> Serial {
        self.next_serial += 1;
        Serial::from_bytes(&self.next_serial.to_be_bytes())
    }

    /// A request for `profile` and `code` over this CA's issuing window.
    pub fn request(&mut self, profile: Profile, code: AgencyCode, name: &str, key: &PrivateKey) -> CertificateRequest {
        CertificateRequest {
            profile,
            agency: code,
            common_name: name.to_owned(),
            organization: Some(name.to_owned()),
            title: None,
            public_key_spki: key.public_key().spki_der.clone(),
            serial: self.next_serial(),
            not_before: self.not_before,
            not_after: self.not_after,
            path_len: None,
        }
    }

    /// A sub-CA for `code`, with a new P-256 key.
    pub fn sub_ca(&mut self, code: AgencyCode, name: &str) -> Result<MemoryCa, IssueError> {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
        let request = self.request(Profile::Ca, code, name, &key);
        let cert = issue::issue(&request, &self.signer())?;
        Ok(MemoryCa::from_parts(cert, key))
    }

    /// An end-entity certificate with a new P-256 key.
    pub fn issue(&mut self, profile: Profile, code: AgencyCode, name: &str) -> Result<Issued, IssueError> {
        self.issue_key(profile, code, name, PrivateKey::generate(KeyAlgorithm::EcdsaP256)?)
    }

    /// An end-entity certificate for a given key.
    pub fn issue_key(
        &mut self,
        profile: Profile,
        code: AgencyCode,
        name: &str,
        key: PrivateKey,
    ) -> Result<Issued, IssueError> {
        let request = self.request(profile, code, name, &key);
        Ok(Issued { cert: issue::issue(&request, &self.signer())?, key })
    }

    /// A person certificate naming the official and position.
    pub fn issue_person(
        &mut self,
        code: AgencyCode,
        person: &str,
        position: &str,
        organization: &str,
    ) -> Result<Issued, IssueError> {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
        let mut request = self.request(Profile::Person, code, person, &key);
        request.title = Some(position.to_owned());
        request.organization = Some(organization.to_owned());
        Ok(Issued { cert: issue::issue(&request, &self.signer())?, key })
    }

    /// Records a revocation for the next CRL.
    pub fn revoke(&mut self, serial: &Serial, at: OffsetDateTime, reason: RevocationReason) {
        self.revoked.push((serial.clone(), Revocation { at, reason }));
    }

    /// Signs a CRL of everything revoked so far.
    pub fn crl(&mut self, this_update: OffsetDateTime, next_update: OffsetDateTime) -> Result<Crl, IssueError> {
        self.crl_number += 1;
        issue::issue_crl(&self.signer(), this_update, next_update, self.crl_number, &self.revoked)
    }
}
