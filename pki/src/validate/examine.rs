//! Examining a chain without a time: what the document validation model needs.
//!
//! [`Validator::validate`] answers "is this chain good at time T?", which is what a TLS
//! handshake or a node at arrival asks. A verifier of a signed document asks something else:
//! *when* did the signature exist, as proven by someone other than the signer, and was every
//! certificate valid and unrevoked then? That needs the chain's time-independent rules checked
//! (names, signatures, keys, algorithms, the hierarchy, profiles, path lengths) and the facts
//! laid out — each certificate's validity interval and everything its issuer's CRLs say about
//! it — so the caller can apply its proof-of-existence rules (`document::validation`).

use std::borrow::Borrow;

use time::OffsetDateTime;

use super::{CertSummary, ChainError, Validator};
use crate::agency::AgencyCode;
use crate::cert::{CertId, Certificate, Profile, Serial};
use crate::crl::Revocation;

/// One CRL of a certificate's issuer whose signature verified, and what it says about the
/// certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlFacts {
    /// When the CRL was issued (thisUpdate).
    pub this_update: OffsetDateTime,
    /// When the next one is due (nextUpdate).
    pub next_update: OffsetDateTime,
    /// Its cRLNumber, when present.
    pub number: Option<Serial>,
    /// The certificate's entry, when the CRL lists it as revoked.
    pub entry: Option<Revocation>,
    /// SHA-256 of the CRL's DER, hex: which CRL a report relied on.
    pub sha256: String,
}

/// A CRL that names the issuer but whose signature is not the issuer's (or uses a refused
/// algorithm): never used, and reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedCrl {
    /// When it claims to be issued.
    pub this_update: OffsetDateTime,
    /// Why it is refused.
    pub reason: String,
}

/// Everything the available CRLs say about one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationEvidence {
    /// The certificate.
    pub cert: CertId,
    /// Its issuer, whose CRLs these are.
    pub issuer: CertId,
    /// The issuer's validly signed CRLs, newest first.
    pub crls: Vec<CrlFacts>,
    /// CRLs claiming to be the issuer's that failed their signature check.
    pub refused: Vec<RefusedCrl>,
}

impl RevocationEvidence {
    /// The newest validly signed CRL, if any.
    pub fn newest(&self) -> Option<&CrlFacts> {
        self.crls.first()
    }

    /// The earliest revocation any validly signed CRL records, with the CRL that says so.
    /// The earliest is the cautious choice: it can only make a signature look later than
    /// the revocation, never earlier.
    pub fn revocation(&self) -> Option<(&Revocation, &CrlFacts)> {
        self.crls.iter().filter_map(|c| c.entry.as_ref().map(|e| (e, c))).min_by_key(|(e, _)| e.at)
    }
}

/// A chain whose time-independent rules all hold, with the facts its time rules need.
#[derive(Clone, Debug)]
pub struct ExaminedChain {
    /// The agency the leaf speaks for.
    pub agency: AgencyCode,
    /// The leaf's profile.
    pub profile: Profile,
    /// The leaf, for its public key and names.
    pub leaf: Certificate,
    /// The path from the leaf up to and including the anchor, each with its validity.
    pub path: Vec<CertSummary>,
    /// For each certificate below the anchor, leaf first: what its issuer's CRLs say.
    pub revocation: Vec<RevocationEvidence>,
}

impl Validator {
    /// Checks every rule of [`Validator::validate`] that does not depend on time — issuer
    /// names, signatures, keys and algorithms, critical extensions, agency codes within their
    /// issuer's subtree, CA-ness, path lengths, the leaf's profile — and gathers, without
    /// judging, each certificate's validity interval and what every CRL of its issuer says.
    pub fn examine<D: AsRef<[u8]>>(&self, chain: &[D], usage: Profile) -> Result<ExaminedChain, ChainError> {
        let certs = self.parse_chain(chain)?;
        self.examine_parsed(&certs, usage)
    }

    /// [`Validator::examine`] for an already parsed chain, leaf first (owned certificates, or
    /// shared ones as the cache gives them).
    pub fn examine_parsed<C: Borrow<Certificate>>(
        &self,
        chain: &[C],
        usage: Profile,
    ) -> Result<ExaminedChain, ChainError> {
        let walked = self.walk(chain, usage, None)?;
        let body = walked.body;
        let revocation = body
            .iter()
            .enumerate()
            .map(|(i, cert)| self.evidence(cert.borrow(), body.get(i + 1).map_or(walked.anchor, Borrow::borrow)))
            .collect();
        let leaf: &Certificate = body[0].borrow();
        let mut path: Vec<CertSummary> = body.iter().map(|c| CertSummary::of(c.borrow())).collect();
        path.push(CertSummary::of(walked.anchor));
        Ok(ExaminedChain {
            // Checked in the walk: every certificate below the anchor has a code.
            agency: leaf.agency.ok_or_else(|| ChainError::MissingAgencyCode { cert: leaf.id() })?,
            profile: usage,
            leaf: leaf.clone(),
            path,
            revocation,
        })
    }

    fn evidence(&self, cert: &Certificate, issuer: &Certificate) -> RevocationEvidence {
        let mut crls = Vec::new();
        let mut refused = Vec::new();
        for crl in self.crls.by_issuer(&issuer.subject_raw) {
            match self.crl_signed_by(crl, issuer) {
                Ok(()) => crls.push(CrlFacts {
                    this_update: crl.this_update,
                    next_update: crl.next_update,
                    number: crl.number.clone(),
                    entry: crl.lookup(&cert.serial).copied(),
                    sha256: hex::encode(crl.fingerprint()),
                }),
                Err(reason) => refused.push(RefusedCrl { this_update: crl.this_update, reason }),
            }
        }
        RevocationEvidence { cert: cert.id(), issuer: issuer.id(), crls, refused }
    }
}
