//! Every kind of identity a node can meet at its door, made with the demo PKI: genuine ones
//! come straight from [`DemoPki::identity`]; this module makes the others — a certificate out
//! of its validity window, a revoked one, one from another hierarchy — each otherwise exactly
//! like a genuine certificate of the same agency and profile, so that a test refusing it
//! proves the one rule it breaks.
//!
//! Revocations are recorded in the issuing [`pki::MemoryCa`]; the caller publishes them
//! (`TestNet::publish_crls`) before the node that must know them starts.

use pki::memory_ca::{Issued, MemoryCa};
use pki::{AgencyCode, KeyAlgorithm, PrivateKey, Profile, RevocationReason};
use time::{Duration, OffsetDateTime};

use demo::DemoPki;
use node::config::Identity;

/// How a certificate falls outside its validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// It ended a minute before `now`.
    Expired,
    /// It starts a day after `now`.
    NotYetValid,
}

/// The code of the CA that issues `code`'s certificates in the demo PKI: `code`'s own CA when
/// it runs one, else the nearest above it (what `DemoPki::build` does).
pub fn issuer_of(pki: &DemoPki, code: &AgencyCode) -> AgencyCode {
    std::iter::once(*code)
        .chain(code.ancestors())
        .find(|c| pki.cas.contains_key(c))
        .unwrap_or_else(|| panic!("no CA issues for {code} in the demo PKI"))
}

/// The chain and key of a certificate just issued for `code`: the leaf, then `code`'s CAs.
fn identity(pki: &DemoPki, code: &AgencyCode, issued: Issued) -> Identity {
    let above = &pki.agencies[code].above;
    Identity { chain: std::iter::once(issued.cert).chain(above.iter().cloned()).collect(), key: issued.key }
}

/// Issues one more certificate of `profile` for `code` from `ca` (a person certificate names
/// the chairman, like the demo's).
fn issue(ca: &mut MemoryCa, profile: Profile, code: &AgencyCode, name: &str) -> Issued {
    match profile {
        Profile::Person => ca.issue_person(*code, "Nguyễn Văn An", "Chủ tịch", name).unwrap(),
        _ => ca.issue(profile, *code, name).unwrap(),
    }
}

/// A second certificate of `profile` for `code`, from its genuine CA, valid only outside
/// `now` as `window` says.
pub fn out_of_window(
    pki: &mut DemoPki,
    code: &AgencyCode,
    profile: Profile,
    window: Window,
    now: OffsetDateTime,
) -> Identity {
    let issuer = issuer_of(pki, code);
    let ca = pki.cas.get_mut(&issuer).unwrap();
    let (before, after) = (ca.not_before, ca.not_after);
    match window {
        Window::Expired => {
            ca.not_before = ca.cert.not_before;
            ca.not_after = now - Duration::minutes(1);
        }
        Window::NotYetValid => {
            ca.not_before = now + Duration::days(1);
            ca.not_after = ca.cert.not_after;
        }
    }
    let issued = issue(ca, profile, code, &format!("{code} ({window:?})"));
    (ca.not_before, ca.not_after) = (before, after);
    identity(pki, code, issued)
}

/// A second certificate of `profile` for `code`, from its genuine CA, revoked for key
/// compromise a minute before `now`. The revocation is in the next CRL the CA signs.
pub fn revoked(pki: &mut DemoPki, code: &AgencyCode, profile: Profile, now: OffsetDateTime) -> Identity {
    let issuer = issuer_of(pki, code);
    let ca = pki.cas.get_mut(&issuer).unwrap();
    let issued = issue(ca, profile, code, &format!("{code} (revoked)"));
    ca.revoke(&issued.cert.serial, now - Duration::minutes(1), RevocationReason::KeyCompromise);
    identity(pki, code, issued)
}

/// Another hierarchy: a root of its own that nobody in the demo network trusts.
pub struct ForeignPki {
    /// The foreign root.
    pub root: MemoryCa,
    cas: Vec<MemoryCa>,
}

impl ForeignPki {
    /// A root valid from an hour before `now` for a year.
    pub fn new(now: OffsetDateTime) -> ForeignPki {
        let start = now - Duration::hours(1);
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let root = MemoryCa::root("Root CA Quốc gia (giả)", key, start, start + Duration::days(365)).unwrap();
        ForeignPki { root, cas: Vec::new() }
    }

    /// A certificate of `profile` for `code` as the foreign hierarchy would issue it: a CA
    /// for `code`'s level-1 agency under the foreign root, and the certificate under it, with
    /// the same code, names and profile as a genuine one.
    pub fn issue(&mut self, code: &AgencyCode, profile: Profile) -> Identity {
        let top = std::iter::once(*code).chain(code.ancestors()).find(|c| c.level() == 1).unwrap_or(*code);
        let mut ca = self.root.sub_ca(top, &format!("CA {top} (giả)")).unwrap();
        let issued = issue(&mut ca, profile, code, &format!("{code} (giả)"));
        let chain = vec![issued.cert, ca.cert.clone()];
        self.cas.push(ca);
        Identity { chain, key: issued.key }
    }
}
