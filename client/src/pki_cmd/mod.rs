//! `lienthong pki …`: the operator's certificate authority commands.

mod ca_dir;
mod show;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pki::issue::{self, CaSigner, CertificateRequest};
use pki::validate::Validator;
use pki::{
    AgencyCode, Certificate, Crl, CrlSet, KeyAlgorithm, PrivateKey, Profile, RevocationMode, RevocationReason, Serial,
};
use time::OffsetDateTime;

use self::ca_dir::{CaDir, IndexEvent};
use crate::files;
use crate::outln;
use crate::secret::PassphraseSource;
use crate::timefmt::{add_period, human, now, parse_duration, parse_time};

/// Certificate authority and certificate commands.
#[derive(Subcommand, Debug)]
pub(crate) enum PkiCommand {
    /// Create the national root CA in a new directory.
    InitRoot(InitRootArgs),
    /// Issue a sub-CA for an agency that administers the level below (province, district).
    IssueCa(IssueCaArgs),
    /// Issue an end-entity certificate: node, seal, person or clerk.
    Issue(IssueArgs),
    /// Record a revocation in a CA's index (publish it with `crl`).
    Revoke(RevokeArgs),
    /// Sign and publish the CA's CRL.
    Crl(CrlArgs),
    /// Show certificates or CRLs in a file.
    Show(ShowArgs),
    /// Validate a certificate chain against the national root.
    VerifyChain(VerifyChainArgs),
}

/// Where the CA's key passphrase comes from.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CaPassphrase {
    /// Environment variable holding the CA key's passphrase.
    #[arg(long, value_name = "VAR")]
    ca_passphrase_env: Option<String>,
    /// File holding the CA key's passphrase.
    #[arg(long, value_name = "FILE", conflicts_with = "ca_passphrase_env")]
    ca_passphrase_file: Option<PathBuf>,
}

impl CaPassphrase {
    fn source(&self) -> PassphraseSource {
        PassphraseSource { env: self.ca_passphrase_env.clone(), file: self.ca_passphrase_file.clone() }
    }
}

/// Where the passphrase for a new encrypted key comes from.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct KeyPassphrase {
    /// Environment variable holding the passphrase for the new key.
    #[arg(long, value_name = "VAR")]
    key_passphrase_env: Option<String>,
    /// File holding the passphrase for the new key.
    #[arg(long, value_name = "FILE", conflicts_with = "key_passphrase_env")]
    key_passphrase_file: Option<PathBuf>,
}

impl KeyPassphrase {
    fn source(&self) -> PassphraseSource {
        PassphraseSource { env: self.key_passphrase_env.clone(), file: self.key_passphrase_file.clone() }
    }
}

/// Validity options shared by every issuing command.
#[derive(Args, Debug, Clone)]
pub(crate) struct Validity {
    /// Start of validity (default: now).
    #[arg(long, value_name = "TIME")]
    not_before: Option<String>,
    /// How long the certificate is valid, e.g. 2y, 180d (default depends on the command).
    #[arg(long, value_name = "DURATION")]
    validity: Option<String>,
    /// Key algorithm for the new key.
    #[arg(long, value_name = "ALG", default_value = "p256", value_parser = ["p256", "ed25519"])]
    key_alg: String,
}

impl Validity {
    fn resolve(&self, default: &str, now: OffsetDateTime) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
        let start = match &self.not_before {
            Some(t) => parse_time(t)?,
            None => now,
        };
        Ok((start, add_period(start, self.validity.as_deref().unwrap_or(default))?))
    }

    fn key_algorithm(&self) -> anyhow::Result<KeyAlgorithm> {
        self.key_alg.parse().map_err(anyhow::Error::msg)
    }
}

/// Arguments of `pki init-root`.
#[derive(Args, Debug)]
pub(crate) struct InitRootArgs {
    /// Directory to create for the root CA.
    #[arg(long)]
    dir: PathBuf,
    /// The root's name.
    #[arg(long, default_value = "Root CA Quốc gia lienthong")]
    name: String,
    #[command(flatten)]
    validity: Validity,
    #[command(flatten)]
    passphrase: KeyPassphrase,
}

/// Arguments of `pki issue-ca`.
#[derive(Args, Debug)]
pub(crate) struct IssueCaArgs {
    /// Directory of the issuing CA.
    #[arg(long)]
    ca: PathBuf,
    /// Directory to create for the new CA.
    #[arg(long)]
    dir: PathBuf,
    /// Agency code of the new CA, e.g. 000.00.00.H49.
    #[arg(long)]
    agency: AgencyCode,
    /// Agency name, e.g. "Ủy ban nhân dân tỉnh Quảng Ninh".
    #[arg(long)]
    name: String,
    /// pathLenConstraint (default: the levels left below the agency).
    #[arg(long)]
    path_len: Option<u8>,
    #[command(flatten)]
    validity: Validity,
    #[command(flatten)]
    ca_passphrase: CaPassphrase,
    #[command(flatten)]
    passphrase: KeyPassphrase,
}

/// Arguments of `pki issue`.
#[derive(Args, Debug)]
pub(crate) struct IssueArgs {
    /// Directory of the issuing CA.
    #[arg(long)]
    ca: PathBuf,
    /// Certificate profile: node, seal, person or clerk. (Named --cert-profile so it is not
    /// mistaken for the global --profile, which picks a clerk profile.)
    #[arg(long = "cert-profile", value_name = "KIND", value_parser = ["node", "seal", "person", "clerk"], required_unless_present = "profile")]
    cert_profile: Option<String>,
    /// The old spelling of --cert-profile; still read, with a note. (Its id is the global
    /// option's, so here it takes the global's place instead of clashing with it.)
    #[arg(id = "profile", long = "profile", hide = true, value_parser = ["node", "seal", "person", "clerk"], conflicts_with = "cert_profile")]
    old_profile: Option<String>,
    /// Agency code of the subject.
    #[arg(long)]
    agency: AgencyCode,
    /// Subject name: the agency's name, or the person's full name for a person certificate.
    #[arg(long)]
    name: String,
    /// The person's position (required for --cert-profile person), e.g. "Chủ tịch".
    #[arg(long)]
    position: Option<String>,
    /// The organization (default: the name; for a person, give the agency's name).
    #[arg(long)]
    organization: Option<String>,
    /// Output prefix: writes PREFIX.cert.pem, PREFIX.chain.pem and PREFIX.key.pem.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Certify an existing public key (PEM "PUBLIC KEY") instead of generating a key.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Encrypt the new key with a passphrase (always done for person keys).
    #[arg(long)]
    encrypt_key: bool,
    #[command(flatten)]
    validity: Validity,
    #[command(flatten)]
    ca_passphrase: CaPassphrase,
    #[command(flatten)]
    passphrase: KeyPassphrase,
}

/// Arguments of `pki revoke`.
#[derive(Args, Debug)]
pub(crate) struct RevokeArgs {
    /// Directory of the CA that issued the certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Serial number (hex, as `show` prints it).
    #[arg(long, required_unless_present = "cert", conflicts_with = "cert")]
    serial: Option<String>,
    /// The certificate file to revoke.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// RFC 5280 reason: keyCompromise, affiliationChanged, superseded, cessationOfOperation, ...
    #[arg(long, default_value = "unspecified")]
    reason: RevocationReason,
    /// When the revocation takes effect (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// Arguments of `pki crl`.
#[derive(Args, Debug)]
pub(crate) struct CrlArgs {
    /// Directory of the CA.
    #[arg(long)]
    ca: PathBuf,
    /// How long until the next CRL is due.
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    next_update: String,
    /// Also write the CRL here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Issue time (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    #[command(flatten)]
    ca_passphrase: CaPassphrase,
}

/// Arguments of `pki show`.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// A PEM or DER file with certificates or CRLs.
    file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `pki verify-chain`.
#[derive(Args, Debug)]
pub(crate) struct VerifyChainArgs {
    /// The chain, leaf first (PEM).
    chain: PathBuf,
    /// Trust anchor: the national root certificate.
    #[arg(long)]
    anchor: PathBuf,
    /// CRL files; with any given, every CA on the path must have a current one.
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// Validate at this time (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Use the chain must be valid for (default: the leaf's own profile).
    #[arg(long, value_parser = ["node", "seal", "person", "clerk", "ca"])]
    usage: Option<String>,
    /// Trust a CA certificate that is not a self-signed root as the top of a partial chain
    /// (as `verify --danger-partial-chain`).
    #[arg(long)]
    danger_partial_chain: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `pki` subcommand.
pub(crate) fn run(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::InitRoot(a) => init_root(a),
        PkiCommand::IssueCa(a) => issue_ca(a),
        PkiCommand::Issue(a) => issue_end_entity(a),
        PkiCommand::Revoke(a) => revoke(a),
        PkiCommand::Crl(a) => crl(a),
        PkiCommand::Show(a) => show::show(&a.file, a.json),
        PkiCommand::VerifyChain(a) => verify_chain(a),
    }
}

/// 16-byte serial for a root, made before its directory (and counter) exists.
fn root_serial() -> anyhow::Result<Serial> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes[8..])
        .map_err(|_| anyhow::anyhow!("no randomness from the operating system"))?;
    Ok(Serial::from_bytes(&bytes))
}

fn init_root(a: InitRootArgs) -> anyhow::Result<()> {
    let now = now();
    let (not_before, not_after) = a.validity.resolve("20y", now)?;
    let passphrase = a.passphrase.source().read_new("the new root CA key", "--key-passphrase")?;
    let key = PrivateKey::generate(a.validity.key_algorithm()?)?;
    let cert = issue::self_signed_root(&a.name, &key, &root_serial()?, not_before, not_after)?;
    CaDir::create(&a.dir, &cert, &key.to_encrypted_pem(&passphrase)?, &[], &cert)?;
    outln!("Created the national root CA in {}", a.dir.display())?;
    outln!("  subject:  {}", cert.subject)?;
    outln!("  valid:    {} to {}", human(cert.not_before), human(cert.not_after))?;
    outln!("  sha256:   {}", hex_colon(&cert.fingerprint()))?;
    outln!("Give {} to every node and verifier as the trust anchor.", a.dir.join("ca.cert.pem").display())?;
    Ok(())
}

/// Clips a requested end of validity to the issuing CA's, saying so.
fn clip_to_issuer(not_after: OffsetDateTime, ca: &Certificate) -> OffsetDateTime {
    if not_after > ca.not_after {
        eprintln!("note: validity shortened to end with the issuing CA's, {}", human(ca.not_after));
        ca.not_after
    } else {
        not_after
    }
}

fn issue_ca(a: IssueCaArgs) -> anyhow::Result<()> {
    let parent = CaDir::open(&a.ca)?;
    if a.dir.join("ca.cert.pem").exists() {
        bail!("{} already holds a CA; refusing to overwrite it", a.dir.display());
    }
    let (not_before, not_after) = a.validity.resolve("10y", now())?;
    let not_after = clip_to_issuer(not_after, &parent.cert);
    let ca_passphrase = a.ca_passphrase.source().read("the issuing CA key", "--ca-passphrase")?;
    let parent_key = parent.key(&ca_passphrase)?;
    let passphrase = a.passphrase.source().read_new(&format!("the new CA key of {}", a.agency), "--key-passphrase")?;
    let key = PrivateKey::generate(a.validity.key_algorithm()?)?;

    let lock = parent.lock()?;
    let request = CertificateRequest {
        profile: Profile::Ca,
        agency: a.agency,
        common_name: a.name.clone(),
        organization: Some(a.name.clone()),
        title: None,
        public_key_spki: key.public_key().spki_der.clone(),
        serial: parent.reserve_serial(&lock)?,
        not_before,
        not_after,
        path_len: a.path_len,
    };
    let cert = issue::issue(&request, &CaSigner { cert: &parent.cert, key: &parent_key })?;
    parent.record_issued(&lock, &cert, Profile::Ca)?;
    drop(lock);

    CaDir::create(&a.dir, &cert, &key.to_encrypted_pem(&passphrase)?, &parent.chain()?, &parent.root()?)?;
    outln!("Created the CA of {} ({}) in {}", a.agency, a.name, a.dir.display())?;
    outln!("  serial:   {}", cert.serial)?;
    outln!("  pathLen:  {}", cert.ca.and_then(|c| c.path_len).map_or("none".to_owned(), |p| p.to_string()))?;
    outln!("  valid:    {} to {}", human(cert.not_before), human(cert.not_after))?;
    Ok(())
}

fn issue_end_entity(a: IssueArgs) -> anyhow::Result<()> {
    let chosen = match (&a.cert_profile, &a.old_profile) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => {
            eprintln!(
                "note: `pki issue --profile {p}` is now `--cert-profile {p}` (--profile alone picks a clerk profile); the old spelling will go"
            );
            p.clone()
        }
        (None, None) => bail!("give the certificate profile with --cert-profile node|seal|person|clerk"),
    };
    let profile: Profile = chosen.parse().map_err(anyhow::Error::msg)?;
    if profile == Profile::Person && a.position.is_none() {
        bail!("a person certificate needs --position (e.g. --position \"Chủ tịch\")");
    }
    if profile != Profile::Person && a.position.is_some() {
        bail!("--position is only for --cert-profile person");
    }
    let paths = OutputPaths::new(&a.out);
    paths.refuse_existing(a.public_key.is_none())?;
    let ca = CaDir::open(&a.ca)?;
    let (not_before, not_after) = a.validity.resolve("2y", now())?;
    let not_after = clip_to_issuer(not_after, &ca.cert);
    let ca_passphrase = a.ca_passphrase.source().read("the issuing CA key", "--ca-passphrase")?;
    let ca_key = ca.key(&ca_passphrase)?;

    // The subject key: given, or generated here and written out (encrypted for people).
    let (spki, new_key) = match &a.public_key {
        Some(path) => {
            let der = pem_public_key(&files::read_text(path)?).with_context(|| format!("{}", path.display()))?;
            (der, None)
        }
        None => {
            let key = PrivateKey::generate(a.validity.key_algorithm()?)?;
            let pem = if profile == Profile::Person || a.encrypt_key {
                let what = format!("the new {profile} key of {}", a.name);
                let passphrase = a.passphrase.source().read_new(&what, "--key-passphrase")?;
                key.to_encrypted_pem(&passphrase)?
            } else {
                key.to_pem().to_string()
            };
            (key.public_key().spki_der.clone(), Some(pem))
        }
    };

    let lock = ca.lock()?;
    let request = CertificateRequest {
        profile,
        agency: a.agency,
        common_name: a.name.clone(),
        organization: Some(a.organization.clone().unwrap_or_else(|| a.name.clone())),
        title: a.position.clone(),
        public_key_spki: spki,
        serial: ca.reserve_serial(&lock)?,
        not_before,
        not_after,
        path_len: None,
    };
    let cert = issue::issue(&request, &CaSigner { cert: &ca.cert, key: &ca_key })?;
    ca.record_issued(&lock, &cert, profile)?;
    drop(lock);

    if let Some(pem) = new_key {
        files::create_new(&paths.key, pem.as_bytes(), true)?;
    }
    files::create_new(&paths.cert, cert.to_pem().as_bytes(), false)?;
    let mut chain = cert.to_pem();
    for c in ca.chain()? {
        chain.push_str(&c.to_pem());
    }
    files::create_new(&paths.chain, chain.as_bytes(), false)?;
    outln!("Issued a {profile} certificate for {} ({})", a.agency, a.name)?;
    outln!("  serial:   {}", cert.serial)?;
    outln!("  valid:    {} to {}", human(cert.not_before), human(cert.not_after))?;
    outln!(
        "  files:    {}, {}{}",
        paths.cert.display(),
        paths.chain.display(),
        if a.public_key.is_none() { format!(", {} (mode 600)", paths.key.display()) } else { String::new() }
    )?;
    Ok(())
}

struct OutputPaths {
    cert: PathBuf,
    chain: PathBuf,
    key: PathBuf,
}

impl OutputPaths {
    fn new(prefix: &Path) -> Self {
        let with = |suffix: &str| {
            let mut s = prefix.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        OutputPaths { cert: with(".cert.pem"), chain: with(".chain.pem"), key: with(".key.pem") }
    }

    /// Checked before anything is signed, so a name clash costs no serial.
    fn refuse_existing(&self, with_key: bool) -> anyhow::Result<()> {
        for p in [&self.cert, &self.chain].into_iter().chain(with_key.then_some(&self.key)) {
            if p.exists() {
                bail!("{} already exists; choose another --out or remove it", p.display());
            }
        }
        Ok(())
    }
}

fn pem_public_key(text: &str) -> anyhow::Result<Vec<u8>> {
    pki::pem::decode_one(text, "PUBLIC KEY")
        .context("expected a PEM PUBLIC KEY (make one with `openssl pkey -in KEY -pubout`)")
}

fn revoke(a: RevokeArgs) -> anyhow::Result<()> {
    let ca = CaDir::open(&a.ca)?;
    let serial = match (&a.serial, &a.cert) {
        (Some(s), _) => Serial::from_hex(s).with_context(|| format!("{s:?} is not a hex serial number"))?,
        (None, Some(path)) => {
            let cert = read_certificates(path)?.into_iter().next().context("no certificate in the file")?;
            if cert.issuer_raw != ca.cert.subject_raw {
                bail!("{} was issued by {}, not by this CA ({})", path.display(), cert.issuer, ca.cert.subject);
            }
            cert.serial
        }
        (None, None) => bail!("give --serial or --cert"),
    };
    let at = match &a.at {
        Some(t) => parse_time(t)?,
        None => now(),
    };
    let lock = ca.lock()?;
    let Some(cert) = ca.issued(&serial)? else {
        bail!("this CA has not issued a certificate with serial {serial} (see {}/index.jsonl)", a.ca.display());
    };
    let already =
        ca.events()?.into_iter().any(|e| matches!(e, IndexEvent::Revoked { serial: s, .. } if s == serial.to_string()));
    if already {
        bail!("serial {serial} is already revoked");
    }
    ca.record_revoked(&lock, &serial, at, a.reason)?;
    drop(lock);
    outln!("Revoked {} (serial {serial}) at {} for {}", cert.id().name, human(at), a.reason)?;
    outln!("Publish it: lienthong pki crl --ca {}", a.ca.display())?;
    Ok(())
}

fn crl(a: CrlArgs) -> anyhow::Result<()> {
    let ca = CaDir::open(&a.ca)?;
    let this_update = match &a.at {
        Some(t) => parse_time(t)?,
        None => now(),
    };
    let next_update = this_update + parse_duration(&a.next_update)?;
    let passphrase = a.ca_passphrase.source().read("the CA key", "--ca-passphrase")?;
    let key = ca.key(&passphrase)?;
    let lock = ca.lock()?;
    let revoked: Vec<(Serial, pki::crl::Revocation)> = ca
        .events()?
        .into_iter()
        .filter_map(|e| match e {
            IndexEvent::Revoked { serial, at, reason } => {
                Serial::from_hex(&serial).map(|s| (s, pki::crl::Revocation { at, reason }))
            }
            IndexEvent::Issued { .. } => None,
        })
        .collect();
    let number = ca.reserve_crl_number(&lock)?;
    let crl = issue::issue_crl(&CaSigner { cert: &ca.cert, key: &key }, this_update, next_update, number, &revoked)?;
    let path = ca.write_crl(&lock, &crl)?;
    drop(lock);
    if let Some(out) = &a.out {
        files::replace(out, crl.to_pem().as_bytes())?;
    }
    outln!("Published CRL #{number} of {} with {} revoked certificate(s)", ca.cert.id().name, revoked.len())?;
    outln!("  this update: {}", human(this_update))?;
    outln!("  next update: {}", human(next_update))?;
    outln!("  file:        {}", a.out.as_deref().unwrap_or(&path).display())?;
    Ok(())
}

/// The bytes of a certificate or CRL file, and whether they are PEM text (anything that
/// starts ASCII; DER starts with a binary SEQUENCE tag).
pub(crate) fn read_pem_or_der(path: &Path) -> anyhow::Result<(Vec<u8>, bool)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let pem = bytes.iter().take(64).all(u8::is_ascii);
    Ok((bytes, pem))
}

/// The certificates in the bytes of `path` (see [`read_pem_or_der`]).
pub(crate) fn certificates_from(path: &Path, bytes: &[u8], pem: bool) -> anyhow::Result<Vec<Certificate>> {
    if pem {
        let text = std::str::from_utf8(bytes).with_context(|| format!("{} is not text PEM", path.display()))?;
        Certificate::from_pem_all(text).with_context(|| format!("{}", path.display()))
    } else {
        Ok(vec![Certificate::from_der(bytes).with_context(|| format!("{}", path.display()))?])
    }
}

/// The CRLs in the bytes of `path` (see [`read_pem_or_der`]).
pub(crate) fn crls_from(path: &Path, bytes: &[u8], pem: bool) -> anyhow::Result<Vec<Crl>> {
    if pem {
        let text = std::str::from_utf8(bytes).with_context(|| format!("{} is not text PEM", path.display()))?;
        Crl::from_pem_all(text).with_context(|| format!("{}", path.display()))
    } else {
        Ok(vec![Crl::from_der(bytes).with_context(|| format!("{}", path.display()))?])
    }
}

/// Reads certificates from a PEM or DER file.
pub(crate) fn read_certificates(path: &Path) -> anyhow::Result<Vec<Certificate>> {
    let (bytes, pem) = read_pem_or_der(path)?;
    certificates_from(path, &bytes, pem)
}

/// Reads CRLs from a PEM or DER file.
pub(crate) fn read_crls(path: &Path) -> anyhow::Result<Vec<Crl>> {
    let (bytes, pem) = read_pem_or_der(path)?;
    crls_from(path, &bytes, pem)
}

fn verify_chain(a: VerifyChainArgs) -> anyhow::Result<()> {
    let chain = read_certificates(&a.chain)?;
    let anchors = crate::document_cmd::read_anchors(&a.anchor, a.danger_partial_chain)?;
    let mut crls = CrlSet::new();
    for path in &a.crl {
        for c in read_crls(path)? {
            crls.add(c);
        }
    }
    let at = match &a.at {
        Some(t) => parse_time(t)?,
        None => now(),
    };
    let leaf = chain.first().context("the chain file holds no certificate")?;
    let usage = match &a.usage {
        Some(u) => u.parse().map_err(anyhow::Error::msg)?,
        None => leaf
            .profile()
            .map_err(|p| anyhow::anyhow!("{}: cannot tell the leaf's profile: {p}; give --usage", leaf.id()))?,
    };
    let mode = if crls.is_empty() { RevocationMode::BestEffort } else { RevocationMode::Required };
    let validator = Validator::new(anchors).with_crls(crls).with_mode(mode);
    match validator.validate_parsed(&chain, at, usage) {
        Ok(ok) => show::print_verified(&ok, at, a.json),
        Err(e) => {
            if a.json {
                outln!("{}", serde_json::json!({ "valid": false, "rule": e.rule(), "reason": e.to_string() }))?;
            }
            Err(anyhow::Error::new(e).context("invalid"))
        }
    }
}

/// A fingerprint as colon-separated upper-case hex, as `openssl x509 -fingerprint` prints.
pub(crate) fn hex_colon(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}
