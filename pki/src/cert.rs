//! A certificate read once from DER into owned fields, and the profiles lienthong issues.
//!
//! Parsing happens here and only here; the rest of the crate works on [`Certificate`], whose
//! fields are what validation needs (names as raw DER for chaining, the agency code from the
//! subjectAltName URI, key usages, the classified public key) plus readable forms for messages.

use std::fmt;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry as oids;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::agency::{AgencyCode, AgencyCodeError};
use crate::algorithm::{KeyProblem, PublicKey, SignatureAlgorithm};

/// id-kp-documentSigning (RFC 9336): the EKU of seal and person certificates.
pub const OID_DOCUMENT_SIGNING: &str = "1.3.6.1.5.5.7.3.36";

/// Largest certificate we parse, in bytes. Ours are under 1 KiB; RSA-8192 chains with long
/// names stay far below this. Bounds the work a peer can make us do per certificate.
pub const MAX_CERT_LEN: usize = 16 * 1024;

/// What a certificate is for. Detected from standard fields only (basicConstraints, extended
/// key usage, and the subject's `title` attribute for a person), so other tools read the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A certificate authority: the national root or an agency's sub-CA.
    Ca,
    /// A node's QUIC identity: serverAuth and clientAuth.
    Node,
    /// An agency's document-signing seal: documentSigning, no person named.
    Seal,
    /// An official's personal signing certificate: documentSigning, names the person (CN) and
    /// position (title).
    Person,
    /// A clerk's client certificate for the CLI talking to its own node: clientAuth only.
    Clerk,
}

impl Profile {
    /// The lower-case name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Ca => "ca",
            Profile::Node => "node",
            Profile::Seal => "seal",
            Profile::Person => "person",
            Profile::Clerk => "clerk",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ca" => Profile::Ca,
            "node" => Profile::Node,
            "seal" => Profile::Seal,
            "person" => Profile::Person,
            "clerk" => Profile::Clerk,
            other => return Err(format!("unknown profile {other:?}; expected node, seal, person, clerk or ca")),
        })
    }
}

/// A certificate serial number, as unsigned big-endian bytes without leading zeros.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// Builds a serial from big-endian bytes, dropping leading zero bytes so that the same
    /// number always compares equal however it was encoded.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Serial(bytes[start..].to_vec())
    }

    /// The big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses the upper- or lower-case hex form printed by `Display` (and by `openssl x509
    /// -serial`), colons allowed.
    pub fn from_hex(text: &str) -> Option<Self> {
        let clean: String = text.chars().filter(|c| *c != ':').collect();
        let clean = if clean.len() % 2 == 1 { format!("0{clean}") } else { clean };
        hex::decode(clean).ok().filter(|b| !b.is_empty()).map(|b| Serial::from_bytes(&b))
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("00");
        }
        f.write_str(&hex::encode_upper(&self.0))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Names a certificate in messages: its subject's common name (or whole subject) and serial.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertId {
    /// Common name, or the whole subject when there is none.
    pub name: String,
    /// Serial number.
    pub serial: Serial,
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" (serial {})", self.name, self.serial)
    }
}

/// basicConstraints of a CA certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaConstraints {
    /// pathLenConstraint: how many CA certificates may follow this one below it.
    pub path_len: Option<u32>,
}

/// keyUsage bits we look at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// digitalSignature.
    pub digital_signature: bool,
    /// nonRepudiation (contentCommitment).
    pub non_repudiation: bool,
    /// keyCertSign.
    pub key_cert_sign: bool,
    /// cRLSign.
    pub crl_sign: bool,
}

/// extendedKeyUsage purposes we look at; `present` distinguishes "no extension" (any
/// purpose) from "extension without these".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendedKeyUsage {
    /// The extension is present.
    pub present: bool,
    /// id-kp-serverAuth.
    pub server_auth: bool,
    /// id-kp-clientAuth.
    pub client_auth: bool,
    /// id-kp-documentSigning (RFC 9336).
    pub document_signing: bool,
    /// anyExtendedKeyUsage.
    pub any: bool,
}

/// Why DER is not a certificate we can read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Larger than [`MAX_CERT_LEN`].
    #[error("certificate is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not DER X.509.
    #[error("not a DER X.509 certificate: {0}")]
    Der(String),
    /// Bytes after the certificate.
    #[error("{0} bytes of trailing data after the certificate")]
    TrailingData(usize),
    /// Not an X.509 v3 certificate.
    #[error("not an X.509 v3 certificate")]
    NotV3,
    /// An extension we rely on does not parse or appears twice.
    #[error("extension {oid} is malformed or duplicated")]
    BadExtension {
        /// Its OID.
        oid: String,
    },
    /// The subjectAltName carries an agency URI whose code is malformed.
    #[error("agency code in subjectAltName: {0}")]
    AgencyCode(#[from] AgencyCodeError),
    /// More than one agency URI.
    #[error("more than one agency code in subjectAltName")]
    SeveralAgencyCodes,
}

/// A certificate read into owned fields. Built only by [`Certificate::from_der`].
#[derive(Clone, Debug)]
pub struct Certificate {
    der: Vec<u8>,
    /// Subject as readable text (RFC 4514 style).
    pub subject: String,
    /// The subject's common name, NFC as issued.
    pub common_name: Option<String>,
    /// The subject's organization.
    pub organization: Option<String>,
    /// The subject's title attribute: a person certificate's position.
    pub title: Option<String>,
    /// Raw DER of the subject name, compared byte for byte when chaining.
    pub subject_raw: Vec<u8>,
    /// Issuer as readable text.
    pub issuer: String,
    /// Raw DER of the issuer name.
    pub issuer_raw: Vec<u8>,
    /// Serial number.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The agency code from the `urn:lienthong:agency:` subjectAltName URI.
    pub agency: Option<AgencyCode>,
    /// basicConstraints when cA is true.
    pub ca: Option<CaConstraints>,
    /// keyUsage (all false when the extension is absent).
    pub key_usage: KeyUsage,
    /// Whether the keyUsage extension is present.
    pub key_usage_present: bool,
    /// extendedKeyUsage.
    pub eku: ExtendedKeyUsage,
    /// The subject key, or why it is outside policy.
    pub public_key: Result<PublicKey, KeyProblem>,
    /// The signature algorithm, or the readable name of a refused one.
    pub signature_algorithm: Result<SignatureAlgorithm, String>,
    /// Critical extensions we do not understand, by OID; validation refuses such a certificate.
    pub unknown_critical: Vec<String>,
    tbs: std::ops::Range<usize>,
    signature: Vec<u8>,
    fingerprint: [u8; 32],
}

fn name_attr(name: &X509Name<'_>, oid: &x509_parser::der_parser::Oid<'_>) -> Option<String> {
    name.iter_by_oid(oid).next().and_then(|a| a.as_str().ok()).map(str::to_owned)
}

impl Certificate {
    /// Reads one DER certificate; trailing bytes, v1/v2 certificates and malformed extensions
    /// are refused.
    pub fn from_der(der: &[u8]) -> Result<Self, ParseError> {
        if der.len() > MAX_CERT_LEN {
            return Err(ParseError::TooLarge { len: der.len(), max: MAX_CERT_LEN });
        }
        let (rest, x509) = X509Certificate::from_der(der).map_err(|e| ParseError::Der(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ParseError::TrailingData(rest.len()));
        }
        Self::from_parsed(der, &x509)
    }

    fn from_parsed(der: &[u8], x509: &X509Certificate<'_>) -> Result<Self, ParseError> {
        if x509.version() != x509_parser::x509::X509Version::V3 {
            return Err(ParseError::NotV3);
        }
        let tbs_bytes: &[u8] = x509.tbs_certificate.as_ref();
        // The TBS is a sub-slice of `der`; keep its range rather than a copy.
        let tbs_start = tbs_bytes.as_ptr() as usize - der.as_ptr() as usize;
        let tbs = tbs_start..tbs_start + tbs_bytes.len();

        let mut agency = None;
        let mut ca = None;
        let mut key_usage = KeyUsage::default();
        let mut key_usage_present = false;
        let mut eku = ExtendedKeyUsage::default();
        let mut unknown_critical = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for ext in x509.extensions() {
            let oid = ext.oid.to_id_string();
            if !seen.insert(oid.clone()) {
                return Err(ParseError::BadExtension { oid });
            }
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        if let GeneralName::URI(uri) = name
                            && let Some(code) = AgencyCode::from_uri(uri)
                            && agency.replace(code?).is_some()
                        {
                            return Err(ParseError::SeveralAgencyCodes);
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) => {
                    if bc.ca {
                        ca = Some(CaConstraints { path_len: bc.path_len_constraint });
                    }
                }
                ParsedExtension::KeyUsage(ku) => {
                    key_usage_present = true;
                    key_usage = KeyUsage {
                        digital_signature: ku.digital_signature(),
                        non_repudiation: ku.non_repudiation(),
                        key_cert_sign: ku.key_cert_sign(),
                        crl_sign: ku.crl_sign(),
                    };
                }
                ParsedExtension::ExtendedKeyUsage(e) => {
                    eku = ExtendedKeyUsage {
                        present: true,
                        server_auth: e.server_auth,
                        client_auth: e.client_auth,
                        any: e.any,
                        document_signing: e.other.iter().any(|o| o.to_id_string() == OID_DOCUMENT_SIGNING),
                    };
                }
                ParsedExtension::SubjectKeyIdentifier(_)
                | ParsedExtension::AuthorityKeyIdentifier(_)
                | ParsedExtension::CRLDistributionPoints(_) => {}
                ParsedExtension::ParseError { .. } => return Err(ParseError::BadExtension { oid }),
                _ => {
                    if ext.critical {
                        unknown_critical.push(oid);
                    }
                }
            }
        }

        let subject = x509.subject();
        Ok(Certificate {
            der: der.to_vec(),
            subject: subject.to_string(),
            common_name: name_attr(subject, &oids::OID_X509_COMMON_NAME),
            organization: name_attr(subject, &oids::OID_X509_ORGANIZATION_NAME),
            title: name_attr(subject, &oids::OID_X509_TITLE),
            subject_raw: subject.as_raw().to_vec(),
            issuer: x509.issuer().to_string(),
            issuer_raw: x509.issuer().as_raw().to_vec(),
            serial: Serial::from_bytes(x509.raw_serial()),
            not_before: x509.validity().not_before.to_datetime(),
            not_after: x509.validity().not_after.to_datetime(),
            agency,
            ca,
            key_usage,
            key_usage_present,
            eku,
            public_key: PublicKey::from_spki(x509.public_key()),
            signature_algorithm: SignatureAlgorithm::from_x509(&x509.signature_algorithm),
            unknown_critical,
            tbs,
            signature: x509.signature_value.data.to_vec(),
            fingerprint: crate::sha256(der),
        })
    }

    /// Reads every certificate in a PEM text, in order.
    pub fn from_pem_all(pem_text: &str) -> Result<Vec<Certificate>, PemError> {
        crate::pem::blocks(pem_text, "CERTIFICATE")?
            .iter()
            .enumerate()
            .map(|(index, der)| Certificate::from_der(der).map_err(|error| PemError::Certificate { index, error }))
            .collect()
    }

    /// The DER encoding, as issued.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The PEM encoding.
    pub fn to_pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.der)
    }

    /// The signed part, for signature checks.
    pub(crate) fn tbs(&self) -> &[u8] {
        &self.der[self.tbs.clone()]
    }

    /// The signature bits.
    pub(crate) fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// SHA-256 over the DER: the fingerprint shown to operators and the cache key.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The readable name of this certificate for messages.
    pub fn id(&self) -> CertId {
        CertId { name: self.common_name.clone().unwrap_or_else(|| self.subject.clone()), serial: self.serial.clone() }
    }

    /// True when subject and issuer names are the same (a root).
    pub fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// The profile this certificate was issued under, read from its fields; `Err` says why it
    /// fits none (e.g. TLS and document-signing purposes mixed, which lienthong never issues).
    pub fn profile(&self) -> Result<Profile, UsageProblem> {
        if self.ca.is_some() {
            return Ok(Profile::Ca);
        }
        let e = &self.eku;
        if !e.present {
            return Err(UsageProblem::NoExtendedKeyUsage);
        }
        if e.document_signing && (e.server_auth || e.client_auth) {
            return Err(UsageProblem::MixedPurposes);
        }
        if e.document_signing {
            return Ok(if self.title.is_some() { Profile::Person } else { Profile::Seal });
        }
        match (e.server_auth, e.client_auth) {
            (true, true) => Ok(Profile::Node),
            (false, true) => Ok(Profile::Clerk),
            _ => Err(UsageProblem::NoKnownPurpose),
        }
    }

    /// Checks that this certificate may be used as `wanted`: profile, key usage bits and, for
    /// people, the name and position. The first problem found is returned.
    pub fn check_usage(&self, wanted: Profile) -> Result<(), UsageProblem> {
        let ku = &self.key_usage;
        if wanted == Profile::Ca {
            if self.ca.is_none() {
                return Err(UsageProblem::NotCa);
            }
            if !ku.key_cert_sign {
                return Err(UsageProblem::MissingKeyUsage("keyCertSign"));
            }
            return Ok(());
        }
        let actual = self.profile()?;
        if actual != wanted {
            return Err(UsageProblem::WrongProfile { actual });
        }
        if !ku.digital_signature {
            return Err(UsageProblem::MissingKeyUsage("digitalSignature"));
        }
        if matches!(wanted, Profile::Seal | Profile::Person) && !ku.non_repudiation {
            return Err(UsageProblem::MissingKeyUsage("nonRepudiation"));
        }
        if wanted == Profile::Person && self.common_name.is_none() {
            return Err(UsageProblem::PersonUnnamed);
        }
        Ok(())
    }
}

/// Why a certificate cannot serve the use asked of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageProblem {
    /// A CA was needed.
    #[error("it is not a CA certificate")]
    NotCa,
    /// A required keyUsage bit is missing.
    #[error("its keyUsage lacks {0}")]
    MissingKeyUsage(&'static str),
    /// The end-entity has no extendedKeyUsage, so its purpose is unknown.
    #[error("it has no extendedKeyUsage, so its purpose is unknown")]
    NoExtendedKeyUsage,
    /// TLS and document-signing purposes in one certificate.
    #[error("it mixes TLS and document-signing purposes")]
    MixedPurposes,
    /// No purpose lienthong issues.
    #[error("its extendedKeyUsage names no lienthong purpose")]
    NoKnownPurpose,
    /// It was issued for another profile.
    #[error("it is a {actual} certificate")]
    WrongProfile {
        /// What it is.
        actual: Profile,
    },
    /// A person certificate without the person's name.
    #[error("it does not name the person")]
    PersonUnnamed,
}

/// Why a PEM text does not give the certificates or CRLs expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// The text is not PEM.
    #[error("not PEM: {0}")]
    Syntax(String),
    /// No block with the expected label.
    #[error("no {0} block found")]
    Missing(&'static str),
    /// A certificate block does not parse.
    #[error("certificate #{} in the file: {error}", index + 1)]
    Certificate {
        /// 0-based position in the file.
        index: usize,
        /// What is wrong.
        error: ParseError,
    },
}

impl From<crate::pem::PemBlockError> for PemError {
    fn from(e: crate::pem::PemBlockError) -> Self {
        match e {
            crate::pem::PemBlockError::Syntax(s) => PemError::Syntax(s),
            crate::pem::PemBlockError::Missing(l) => PemError::Missing(l),
        }
    }
}
