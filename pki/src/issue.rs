//! Issuing certificates and CRLs for the hierarchy, with rcgen.
//!
//! Issuance enforces the same rules validation does (hierarchy, path length, profile shape,
//! validity inside the issuer's), so a CA cannot produce a certificate that validation would
//! later refuse. Everything an operator can type is normalised to NFC first.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization;

use crate::agency::{AgencyCode, Scope};
use crate::cert::{Certificate, Profile, Serial};
use crate::crl::{Crl, Revocation};
use crate::keys::{KeyError, PrivateKey};

/// Deepest level of the administrative hierarchy; a CA at this level would have nobody to
/// issue to.
const DEEPEST_LEVEL: u8 = 4;

/// The longest name we put in a certificate subject, in characters (RFC 5280's ub-common-name
/// is 64; Vietnamese agency names fit well within it).
pub const MAX_NAME_CHARS: usize = 64;

/// A certificate authority's certificate and key: what signs.
#[derive(Debug)]
pub struct CaSigner<'a> {
    /// The CA certificate.
    pub cert: &'a Certificate,
    /// Its private key.
    pub key: &'a PrivateKey,
}

impl CaSigner<'_> {
    /// The part of the hierarchy this CA may issue for: national for a root (a self-issued CA
    /// without an agency code), else the subtree of its agency.
    pub fn scope(&self) -> Scope {
        match self.cert.agency {
            Some(code) => Scope::Agency(code),
            None => Scope::National,
        }
    }

    fn rcgen_issuer(&self) -> Result<rcgen::Issuer<'static, rcgen::KeyPair>, IssueError> {
        let der = rustls_pki_types::CertificateDer::from(self.cert.der().to_vec());
        rcgen::Issuer::from_ca_cert_der(&der, self.key.rcgen_key()?).map_err(|e| IssueError::Rcgen(e.to_string()))
    }
}

/// What an operator asks a CA to certify.
#[derive(Clone, Debug)]
pub struct CertificateRequest {
    /// The profile to issue under.
    pub profile: Profile,
    /// The subject agency.
    pub agency: AgencyCode,
    /// Subject common name: the agency's name, or the person's for a person certificate.
    pub common_name: String,
    /// Subject organization: the agency's name.
    pub organization: Option<String>,
    /// The person's position; required for [`Profile::Person`], refused otherwise.
    pub title: Option<String>,
    /// The subject's public key as DER SubjectPublicKeyInfo.
    pub public_key_spki: Vec<u8>,
    /// Serial number, unique for this CA.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// For a CA: how many CA levels may follow below it. `None` picks the default for the
    /// agency's level (a province CA 2, a district CA 1, a commune-level CA 0).
    pub path_len: Option<u8>,
}

/// Why a CA refused to issue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The subject's code is outside the CA's subtree.
    #[error("{scope} may only issue for codes within it, not for {code}")]
    Hierarchy {
        /// The requested code.
        code: AgencyCode,
        /// What the CA may issue for.
        scope: Scope,
    },
    /// The signer is not a CA.
    #[error("the signing certificate is not a CA")]
    NotCa,
    /// Path length exhausted.
    #[error("the CA's pathLenConstraint {issuer_path_len} does not allow a CA below it with pathLen {requested}")]
    PathLength {
        /// The issuer's constraint.
        issuer_path_len: u32,
        /// What was asked (or defaulted).
        requested: u8,
    },
    /// A CA was requested at the bottom level.
    #[error("{0} is at level 4, the lowest; it has no level below to certify")]
    LowestLevel(AgencyCode),
    /// Validity empty or outside the issuer's.
    #[error("validity {} to {} is empty or outside the CA's ({} to {})", crate::format_utc(*not_before), crate::format_utc(*not_after), crate::format_utc(*ca_not_before), crate::format_utc(*ca_not_after))]
    Validity {
        /// Requested start.
        not_before: OffsetDateTime,
        /// Requested end.
        not_after: OffsetDateTime,
        /// CA start.
        ca_not_before: OffsetDateTime,
        /// CA end.
        ca_not_after: OffsetDateTime,
    },
    /// A name is empty or too long.
    #[error("{field} must be 1 to {MAX_NAME_CHARS} characters, got {len}")]
    Name {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// Person without position, or a position on another profile.
    #[error("a person certificate needs the position (title), and only a person certificate may carry one")]
    Title,
    /// The subject key is outside policy.
    #[error("subject key refused: {0}")]
    SubjectKey(crate::algorithm::KeyProblem),
    /// A key problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// rcgen refused.
    #[error("certificate encoding failed: {0}")]
    Rcgen(String),
    /// The freshly issued DER did not read back (a bug, reported rather than hidden).
    #[error("issued certificate does not parse: {0}")]
    Parse(#[from] crate::cert::ParseError),
}

fn nfc(field: &'static str, text: &str) -> Result<String, IssueError> {
    let normalised: String = text.trim().nfc().collect();
    let len = normalised.chars().count();
    if len == 0 || len > MAX_NAME_CHARS {
        return Err(IssueError::Name { field, len });
    }
    Ok(normalised)
}

fn base_params(serial: &Serial, not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(minimal_be(serial.as_bytes())));
    params.not_before = not_before;
    params.not_after = not_after;
    params.distinguished_name = DistinguishedName::new();
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// Big-endian bytes without leading zeros but never empty, as a DER INTEGER wants them.
fn minimal_be(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    &bytes[start..]
}

/// The default pathLenConstraint for a CA of `code`: the number of levels left below it
/// that could run a CA.
pub fn default_path_len(code: &AgencyCode) -> u8 {
    (DEEPEST_LEVEL - 1).saturating_sub(code.level())
}

/// Issues the self-signed national root: a CA with no agency code and no path length limit,
/// since the depth of the hierarchy below it is data.
pub fn self_signed_root(
    name: &str,
    key: &PrivateKey,
    serial: &Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Certificate, IssueError> {
    let name = nfc("root name", name)?;
    let mut params = base_params(serial, not_before, not_after);
    params.use_authority_key_identifier_extension = false;
    params.distinguished_name.push(DnType::CountryName, country_vn()?);
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let rkey = key.rcgen_key()?;
    let cert = params.self_signed(&rkey).map_err(|e| IssueError::Rcgen(e.to_string()))?;
    Ok(Certificate::from_der(cert.der())?)
}

/// Issues a certificate under `ca` after checking the request against the hierarchy rules.
pub fn issue(request: &CertificateRequest, ca: &CaSigner<'_>) -> Result<Certificate, IssueError> {
    let Some(ca_constraints) = ca.cert.ca else { return Err(IssueError::NotCa) };
    let scope = ca.scope();
    if !scope.contains(&request.agency) {
        return Err(IssueError::Hierarchy { code: request.agency, scope });
    }
    if request.not_before >= request.not_after
        || request.not_before < ca.cert.not_before
        || request.not_after > ca.cert.not_after
    {
        return Err(IssueError::Validity {
            not_before: request.not_before,
            not_after: request.not_after,
            ca_not_before: ca.cert.not_before,
            ca_not_after: ca.cert.not_after,
        });
    }
    crate::algorithm::PublicKey::from_spki_der(&request.public_key_spki).map_err(IssueError::SubjectKey)?;
    if request.profile == Profile::Ca {
        if request.agency.level() >= DEEPEST_LEVEL {
            return Err(IssueError::LowestLevel(request.agency));
        }
        let requested = request.path_len.unwrap_or_else(|| default_path_len(&request.agency));
        if let Some(limit) = ca_constraints.path_len
            && (limit == 0 || u32::from(requested) > limit - 1)
        {
            return Err(IssueError::PathLength { issuer_path_len: limit, requested });
        }
    }
    let params = profile_params(request)?;
    sign_params(&params, &request.public_key_spki, ca)
}

/// The rcgen parameters of a request's profile: names, SAN URI, basic constraints, key
/// usages. Checks only what concerns the request alone (names, title), not the issuer.
pub(crate) fn profile_params(request: &CertificateRequest) -> Result<CertificateParams, IssueError> {
    if (request.profile == Profile::Person) != request.title.is_some() {
        return Err(IssueError::Title);
    }
    let mut params = base_params(&request.serial, request.not_before, request.not_after);
    let dn = &mut params.distinguished_name;
    dn.push(DnType::CountryName, country_vn()?);
    if let Some(org) = &request.organization {
        dn.push(DnType::OrganizationName, nfc("organization", org)?);
    }
    if let Some(title) = &request.title {
        // X.520 title, 2.5.4.12: the official's position.
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 12]), nfc("position", title)?);
    }
    dn.push(DnType::CommonName, nfc("name", &request.common_name)?);
    let uri = request.agency.to_uri().try_into().map_err(|e: rcgen::Error| IssueError::Rcgen(e.to_string()))?;
    params.subject_alt_names = vec![SanType::URI(uri)];

    match request.profile {
        Profile::Ca => {
            let path_len = request.path_len.unwrap_or_else(|| default_path_len(&request.agency));
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
        Profile::Node => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        }
        Profile::Clerk => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        Profile::Seal | Profile::Person => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
            // id-kp-documentSigning, RFC 9336.
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 36])];
        }
    }
    Ok(params)
}

fn country_vn() -> Result<rcgen::DnValue, IssueError> {
    let printable = "VN".try_into().map_err(|e: rcgen::Error| IssueError::Rcgen(e.to_string()))?;
    Ok(rcgen::DnValue::PrintableString(printable))
}

/// Signs prepared rcgen parameters for `subject_spki` under `ca`, with no policy checks:
/// the last step of [`issue`], and how tests build certificates that break a rule.
pub(crate) fn sign_params(
    params: &CertificateParams,
    subject_spki: &[u8],
    ca: &CaSigner<'_>,
) -> Result<Certificate, IssueError> {
    let public = rcgen::SubjectPublicKeyInfo::from_der(subject_spki).map_err(|e| IssueError::Rcgen(e.to_string()))?;
    let issuer = ca.rcgen_issuer()?;
    let cert = params.signed_by(&public, &issuer).map_err(|e| IssueError::Rcgen(e.to_string()))?;
    Ok(Certificate::from_der(cert.der())?)
}

/// Signs a CRL listing `revoked`, numbered `number`, valid from `this_update` to
/// `next_update`.
pub fn issue_crl(
    ca: &CaSigner<'_>,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    number: u64,
    revoked: &[(Serial, Revocation)],
) -> Result<Crl, IssueError> {
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(minimal_be(&number.to_be_bytes())),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|(serial, rev)| RevokedCertParams {
                serial_number: SerialNumber::from_slice(minimal_be(serial.as_bytes())),
                revocation_time: rev.at,
                reason_code: Some(rev.reason.to_rcgen()),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&ca.rcgen_issuer()?).map_err(|e| IssueError::Rcgen(e.to_string()))?;
    Crl::from_der(crl.der()).map_err(|e| IssueError::Rcgen(format!("issued CRL does not parse: {e}")))
}
