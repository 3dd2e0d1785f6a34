//! `lienthong sign` and `lienthong verify`: the official signs, the clerk seals, anyone
//! verifies.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use pki::document::Envelope;
use pki::document::bundle::{Bundle, BundleError, BundleLimits, write_bundle};
use pki::document::validation::{Indication, SubIndication, VerifyOptions, judge_signer, judge_signers, verify_bundle};
use pki::document::verify::Role;
use pki::{Certificate, Crl, PrivateKey, Profile, Validator};

use crate::form::{SignerDefaults, read_form};
use crate::output::outln;
use crate::pki_cmd::{read_certificates, read_crls};
use crate::report;
use crate::secret::PassphraseSource;
use crate::timefmt::{now, parse_time};

/// Arguments of `lienthong sign`.
#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    /// The document form (TOML or JSON) with the manifest fields.
    #[arg(long, required_unless_present = "seal")]
    form: Option<PathBuf>,
    /// An attachment file (repeat for several).
    #[arg(long = "attach", value_name = "FILE")]
    attachments: Vec<PathBuf>,
    /// The official's private key.
    #[arg(long, requires = "cert", required_unless_present = "seal")]
    key: Option<PathBuf>,
    /// The official's certificate chain (leaf first, as `pki issue` writes PREFIX.chain.pem).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Environment variable holding the official's key passphrase.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// File holding the official's key passphrase.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Seal an official-signed bundle instead of starting from a form.
    #[arg(long, value_name = "BUNDLE", conflicts_with_all = ["form", "key", "attachments"])]
    seal: Option<PathBuf>,
    /// The agency seal's private key (seals now, together with --key, or with --seal).
    #[arg(long, requires = "seal_cert")]
    seal_key: Option<PathBuf>,
    /// The agency seal's certificate chain.
    #[arg(long)]
    seal_cert: Option<PathBuf>,
    /// Environment variable holding the seal key's passphrase, if it is encrypted.
    #[arg(long, value_name = "VAR")]
    seal_passphrase_env: Option<String>,
    /// File holding the seal key's passphrase, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    seal_passphrase_file: Option<PathBuf>,
    /// CRL files to check the signers against and to carry in the bundle (repeat).
    #[arg(long, value_name = "FILE")]
    crl: Vec<PathBuf>,
    /// The national root the signers' chains must lead to (default: the profile's anchor).
    #[arg(long, env = "LIENTHONG_ANCHOR")]
    anchor: Option<PathBuf>,
    /// Trust an anchor that is not a self-signed root (a CA certificate topping a partial
    /// chain). Everything above that CA goes unchecked: for testing a sub-hierarchy only.
    #[arg(long)]
    danger_partial_chain: bool,
    /// Where to write the bundle (.ltd).
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `lienthong verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The bundle to verify, or a directory of bundles (every *.ltd in it).
    #[arg(value_name = "PATH")]
    file: PathBuf,
    /// More bundles or directories: verified in one process with a shared cache, one line
    /// each, then a summary.
    #[arg(value_name = "PATH")]
    more: Vec<PathBuf>,
    /// The most bundles one run takes, in all paths together.
    #[arg(long, value_name = "N", default_value_t = crate::verify_many::DEFAULT_MAX_FILES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_files: usize,
    /// The national root certificate (trust anchor).
    #[arg(long, env = "LIENTHONG_ANCHOR")]
    anchor: PathBuf,
    /// Extra CRL files besides those in the bundle.
    #[arg(long, value_name = "FILE")]
    crl: Vec<PathBuf>,
    /// A transparency-log proof of the document's envelope (as `lienthong log prove --out`
    /// writes it); co-signed by another agency, it proves the document existed at that time.
    #[arg(long = "log-proof", value_name = "FILE")]
    log_proof: Vec<PathBuf>,
    /// Validate as of this time (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Trust an anchor that is not a self-signed root (a CA certificate topping a partial
    /// chain). Everything above that CA goes unchecked: for testing a sub-hierarchy only.
    #[arg(long)]
    danger_partial_chain: bool,
    /// Print the validation report as JSON.
    #[arg(long)]
    json: bool,
}

/// Exit status of `lienthong verify` when the document is FAILED.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit status of `lienthong verify` when the document is INDETERMINATE (2 is a usage error).
pub(crate) const EXIT_INDETERMINATE: u8 = 3;
/// Exit status of `lienthong verify` when it could not validate at all (a file unreadable).
pub(crate) const EXIT_CANNOT_VERIFY: u8 = 4;

/// Reads trust anchors, refusing any that is not a self-signed root unless `partial_chain`
/// (the user's explicit `--danger-partial-chain`).
pub(crate) fn read_anchors(path: &Path, partial_chain: bool) -> anyhow::Result<Vec<Certificate>> {
    let anchors = read_certificates(path)?;
    if !partial_chain {
        for anchor in &anchors {
            if let Some(problem) = pki::validate::root_anchor_problem(anchor) {
                bail!(
                    "{}: {} is not a self-signed root CA ({problem}); the trust anchor must be the national root, or give --danger-partial-chain to trust a CA certificate as the top of a partial chain",
                    path.display(),
                    anchor.id()
                );
            }
        }
    }
    Ok(anchors)
}

/// Refuses to sign with `chain` when `lienthong verify` would refuse the signature for any
/// reason but CRLs being older than it (TRY_LATER, which a newer CRL settles): the same
/// reasons, in the same words.
fn check_signer(
    validator: &Validator,
    chain: &[Certificate],
    role: Role,
    claimed: time::OffsetDateTime,
    now: time::OffsetDateTime,
    source: &Path,
) -> anyhow::Result<()> {
    let conclusion = judge_signer(validator, chain, role, claimed, now);
    if let Some(r) = conclusion.reasons.iter().find(|r| r.sub_indication != SubIndication::TryLater) {
        bail!(
            "cannot sign with {} ({role}): {} (`lienthong verify` would report {} {})",
            source.display(),
            crate::timefmt::localize(&r.message),
            r.indication,
            r.sub_indication
        );
    }
    Ok(())
}

/// A signing key with its certificate chain, checked to belong together and to fit the role.
pub(crate) struct SigningIdentity {
    pub key: PrivateKey,
    pub chain: Vec<Certificate>,
}

/// Reads a certificate chain that is to sign as `profile` now: the leaf must be of that
/// profile and within its validity. Checked before any passphrase is asked for.
pub(crate) fn signing_chain(chain_path: &Path, profile: Profile) -> anyhow::Result<Vec<Certificate>> {
    let chain = read_certificates(chain_path)?;
    let leaf = chain.first().with_context(|| format!("{} holds no certificate", chain_path.display()))?;
    leaf.check_usage(profile).map_err(|p| anyhow::anyhow!("{} cannot sign as {profile}: {p}", chain_path.display()))?;
    let t = now();
    if t < leaf.not_before || t > leaf.not_after {
        bail!(
            "the certificate in {} is valid from {} to {}; it cannot sign now",
            chain_path.display(),
            pki::format_utc(leaf.not_before),
            pki::format_utc(leaf.not_after)
        );
    }
    Ok(chain)
}

impl SigningIdentity {
    /// Reads a key and chain for `profile`, refusing a key that is not the certificate's,
    /// a certificate of another profile, or one outside its validity now.
    pub(crate) fn load(
        key_path: &Path,
        chain_path: &Path,
        passphrase: &PassphraseSource,
        profile: Profile,
        flag: &str,
    ) -> anyhow::Result<Self> {
        Self::with_key(signing_chain(chain_path, profile)?, key_path, chain_path, passphrase, flag)
    }

    /// The identity of a chain already read with [`signing_chain`] and its key, asking for the
    /// key's passphrase only now.
    pub(crate) fn with_key(
        chain: Vec<Certificate>,
        key_path: &Path,
        chain_path: &Path,
        passphrase: &PassphraseSource,
        flag: &str,
    ) -> anyhow::Result<Self> {
        let leaf = chain.first().with_context(|| format!("{} holds no certificate", chain_path.display()))?;
        let key = crate::files::read_private_key(key_path, || {
            passphrase.read(&format!("{} ({})", leaf.id().name, key_path.display()), flag)
        })?;
        let matches = leaf.public_key.as_ref().is_ok_and(|k| k.spki_der == key.public_key().spki_der);
        if !matches {
            bail!("the key {} does not belong to the certificate in {}", key_path.display(), chain_path.display());
        }
        Ok(SigningIdentity { key, chain })
    }

    pub(crate) fn agency(&self) -> Option<pki::AgencyCode> {
        self.chain.first().and_then(|c| c.agency)
    }
}

/// What `lienthong verify` validates against, one bundle or many: the anchors, the time
/// (`--at`, else now) and the CRL files given.
pub(crate) fn verify_options(
    anchor: &Path,
    partial_chain: bool,
    at: Option<&str>,
    crls: &[PathBuf],
) -> anyhow::Result<VerifyOptions> {
    let at = match at {
        Some(t) => parse_time(t)?,
        None => now(),
    };
    let mut options = VerifyOptions::new(read_anchors(anchor, partial_chain)?, at);
    options.crls = read_crl_files(crls)?;
    Ok(options)
}

fn read_crl_files(paths: &[PathBuf]) -> anyhow::Result<Vec<Crl>> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(read_crls(p)?);
    }
    Ok(out)
}

/// The anchors `sign` checks the signers against: `--anchor`, else the profile's.
fn signing_anchors(profile: Option<&str>, a: &SignArgs) -> anyhow::Result<Vec<Certificate>> {
    if let Some(path) = &a.anchor {
        return read_anchors(path, a.danger_partial_chain);
    }
    let selected = crate::profile::Profiles::load()?.select(profile).map(|(_, p)| p);
    match selected {
        Ok(p) => read_anchors(&p.anchor, a.danger_partial_chain),
        Err(_) => bail!(
            "lienthong sign checks the signers' certificate chains before signing: give --anchor ROOT.pem (the national root), or use a profile that has one"
        ),
    }
}

/// Writes the bundle to a temporary file next to `out`, then renames it into place.
fn write_out(
    out: &Path,
    write: impl FnOnce(BufWriter<File>) -> Result<BufWriter<File>, BundleError>,
) -> anyhow::Result<()> {
    if out.exists() {
        bail!("{} already exists; choose another --out", out.display());
    }
    let tmp = out.with_extension("ltd.partial");
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = write(BufWriter::new(file)).map_err(anyhow::Error::from).and_then(|w| {
        let f = w.into_inner().map_err(|e| anyhow::anyhow!("cannot write {}: {}", tmp.display(), e.error()))?;
        f.sync_all().with_context(|| format!("cannot sync {}", tmp.display()))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))
}

/// `lienthong sign`.
pub(crate) fn sign(profile: Option<&str>, a: SignArgs) -> anyhow::Result<()> {
    let anchors = signing_anchors(profile, &a)?;
    let crls = read_crl_files(&a.crl)?;
    let validator = Validator::new(anchors).with_crls(crls.iter().cloned().collect());
    let mut crl_ders: Vec<Vec<u8>> = crls.iter().map(|c| c.der().to_vec()).collect();
    let t = now();
    // Every certificate check comes before any passphrase is asked for.
    let seal_chain = match (&a.seal_key, &a.seal_cert) {
        (Some(_), Some(c)) => {
            let chain = signing_chain(c, Profile::Seal)?;
            check_signer(&validator, &chain, Role::Seal, t, t, c)?;
            Some(chain)
        }
        (None, None) => None,
        _ => bail!("give both --seal-key and --seal-cert"),
    };
    let seal_pass = PassphraseSource { env: a.seal_passphrase_env.clone(), file: a.seal_passphrase_file.clone() };
    let load_seal = |chain: Vec<Certificate>| -> anyhow::Result<SigningIdentity> {
        let (Some(key), Some(cert)) = (&a.seal_key, &a.seal_cert) else {
            bail!("give both --seal-key and --seal-cert");
        };
        SigningIdentity::with_key(chain, key, cert, &seal_pass, "--seal-passphrase")
    };

    if let Some(input) = &a.seal {
        // Seal an official-signed bundle.
        let seal_chain = seal_chain.context("--seal needs --seal-key and --seal-cert")?;
        let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
        let mut bundle = Bundle::open(BufReader::new(file), BundleLimits::default())
            .with_context(|| format!("{}", input.display()))?;
        // The official's signature in the draft, judged as verify will judge it.
        let headers = bundle.envelope.headers()?;
        let person_header = headers.first().with_context(|| format!("{} holds no signature", input.display()))?;
        let person_chain = person_header
            .chain
            .iter()
            .map(|der| Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("the official's certificate chain in {}", input.display()))?;
        check_signer(&validator, &person_chain, Role::Person, person_header.signing_time, t, input)?;
        if let Some(problem) = judge_signers(&bundle.manifest, person_chain.first(), seal_chain.first()).first() {
            bail!("cannot seal {}: {}", input.display(), crate::timefmt::localize(&problem.message));
        }
        let seal = load_seal(seal_chain)?;
        let sealed = bundle.envelope.add_seal(&seal.key, &seal.chain, t)?;
        let mut carried = bundle.crls.clone();
        carried.append(&mut crl_ders);
        write_out(&a.out, |w| {
            write_bundle(w, &sealed, &carried, &bundle.receipts.clone(), |att, out| {
                bundle.copy_attachment(&att.name, out).map(|_| ())
            })
        })?;
        outln!("Sealed {} as {}", bundle.manifest.id(), seal.chain[0].id().name)?;
        outln!("  written: {}", a.out.display())?;
        return Ok(());
    }

    let (Some(form_path), Some(key), Some(cert)) = (&a.form, &a.key, &a.cert) else {
        bail!("give --form, --key and --cert (or --seal BUNDLE with --seal-key and --seal-cert)");
    };
    let person_pass = PassphraseSource { env: a.passphrase_env.clone(), file: a.passphrase_file.clone() };
    let form = read_form(form_path)?;
    let person_chain = signing_chain(cert, Profile::Person)?;
    check_signer(&validator, &person_chain, Role::Person, t, t, cert)?;
    let person_leaf = &person_chain[0];
    let from = match &seal_chain {
        Some(s) => s[0].agency.context("the seal certificate has no agency code")?,
        None => person_leaf.agency.context("the official's certificate has no agency code")?,
    };
    let defaults = SignerDefaults { from, name: person_leaf.common_name.clone(), position: person_leaf.title.clone() };
    let manifest = form.to_manifest(&a.attachments, &defaults)?;
    let seal_leaf = seal_chain.as_ref().map(|c| &c[0]);
    if let Some(problem) = judge_signers(&manifest, Some(person_leaf), seal_leaf).first() {
        bail!("cannot sign: {}", crate::timefmt::localize(&problem.message));
    }
    let person = SigningIdentity::with_key(person_chain, key, cert, &person_pass, "--passphrase")?;
    let seal = seal_chain.map(load_seal).transpose()?;
    let mut envelope = Envelope::sign_person(&manifest.to_cbor()?, &person.key, &person.chain, t)?;
    if let Some(seal) = &seal {
        envelope = envelope.add_seal(&seal.key, &seal.chain, t)?;
    }
    let paths = a.attachments.clone();
    write_out(&a.out, |w| {
        write_bundle(w, &envelope, &crl_ders, &[], |att, out| {
            let path = crate::form::attachment_path(&paths, &att.name)
                .ok_or_else(|| BundleError::MissingAttachment(att.name.clone()))?;
            let mut f = File::open(path)?;
            std::io::copy(&mut f, out)?;
            Ok(())
        })
    })?;
    outln!("Signed {}", manifest.id())?;
    outln!("  official: {} ({})", manifest.signer_name, manifest.signer_position)?;
    match &seal {
        Some(s) => outln!("  sealed:   {}", s.chain[0].id().name)?,
        None => outln!(
            "  not sealed yet: the clerk seals with `lienthong sign --seal {} --seal-key … --seal-cert … --out …`",
            a.out.display()
        )?,
    }
    outln!("  written:  {}", a.out.display())?;
    Ok(())
}

/// `lienthong verify`: prints the whole report (also when it is not PASSED) and returns the
/// exit status: 0 PASSED, 1 FAILED, 3 INDETERMINATE. An input that cannot be read is an error
/// (exit 4, see `main`).
pub(crate) fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    if crate::verify_many::is_many(&a.file, &a.more) {
        return crate::verify_many::verify(many_request(a));
    }
    let mut options = verify_options(&a.anchor, a.danger_partial_chain, a.at.as_deref(), &a.crl)?;
    for path in &a.log_proof {
        let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
        if len > pki::tlog::evidence::MAX_LOG_PROOF_BYTES as u64 {
            bail!("{} is {len} bytes, more than a log proof can be", path.display());
        }
        options.log_proofs.push(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    let file = File::open(&a.file).with_context(|| format!("cannot open {}", a.file.display()))?;
    let report = verify_bundle(BufReader::new(file), &options).with_context(|| format!("{}", a.file.display()))?;
    let printed = if a.json { outln!("{}", serde_json::to_string_pretty(&report)?) } else { report::print(&report) };
    // A reader that closed the pipe (`| head -1`) took what it wanted: the verdict still
    // decides the exit status.
    match printed {
        Err(e) if crate::output::is_closed(&e) => {}
        other => other?,
    }
    let code = match report.indication() {
        Indication::Passed => return Ok(ExitCode::SUCCESS),
        Indication::Failed => EXIT_FAILED,
        Indication::Indeterminate => EXIT_INDETERMINATE,
    };
    let why = report.total.leading().map(|r| crate::timefmt::localize(&r.message)).unwrap_or_default();
    let remedy = report::remedy(&report.total).map(|r| format!(" — what to do: {r}")).unwrap_or_default();
    eprintln!("error: {} is {}: {why}{remedy}", a.file.display(), report::verdict(&report.total));
    Ok(ExitCode::from(code))
}

/// The many-bundles request of `lienthong verify PATH PATH…` or `lienthong verify DIR`.
fn many_request(a: VerifyArgs) -> crate::verify_many::Request {
    crate::verify_many::Request {
        paths: std::iter::once(a.file).chain(a.more).collect(),
        anchor: a.anchor,
        crls: a.crl,
        at: a.at,
        danger_partial_chain: a.danger_partial_chain,
        json: a.json,
        max_files: a.max_files,
        log_proofs: a.log_proof.len(),
    }
}
