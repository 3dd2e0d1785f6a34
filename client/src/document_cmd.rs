//! `lienthong sign` and `lienthong verify`: the official signs, the clerk seals, anyone
//! verifies.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use pki::document::Envelope;
use pki::document::bundle::{Bundle, BundleError, BundleLimits, write_bundle};
use pki::document::verify::{VerifyOptions, verify_bundle};
use pki::{Certificate, PrivateKey, Profile, RevocationMode};

use crate::form::{SignerDefaults, read_form};
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
    /// CRL files to carry in the bundle, so it verifies offline later (repeat).
    #[arg(long, value_name = "FILE")]
    crl: Vec<PathBuf>,
    /// Where to write the bundle (.ltd).
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `lienthong verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The bundle to verify.
    file: PathBuf,
    /// The national root certificate (trust anchor).
    #[arg(long, env = "LIENTHONG_ANCHOR")]
    anchor: PathBuf,
    /// Extra CRL files besides those in the bundle.
    #[arg(long, value_name = "FILE")]
    crl: Vec<PathBuf>,
    /// Verify as of this time (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Accept signers whose revocation cannot be checked (no CRL), and say so in the report.
    #[arg(long)]
    allow_unchecked_revocation: bool,
    /// Print the provenance report as JSON.
    #[arg(long)]
    json: bool,
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

fn read_crl_ders(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(read_crls(p)?.into_iter().map(|c| c.der().to_vec()));
    }
    Ok(out)
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
pub(crate) fn sign(a: SignArgs) -> anyhow::Result<()> {
    let seal_pass = PassphraseSource { env: a.seal_passphrase_env.clone(), file: a.seal_passphrase_file.clone() };
    let seal = match (&a.seal_key, &a.seal_cert) {
        (Some(k), Some(c)) => Some(SigningIdentity::load(k, c, &seal_pass, Profile::Seal, "--seal-passphrase")?),
        (None, None) => None,
        _ => bail!("give both --seal-key and --seal-cert"),
    };
    let mut crls = read_crl_ders(&a.crl)?;
    let t = now();

    if let Some(input) = &a.seal {
        // Seal an official-signed bundle.
        let seal = seal.context("--seal needs --seal-key and --seal-cert")?;
        let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
        let mut bundle = Bundle::open(BufReader::new(file), BundleLimits::default())
            .with_context(|| format!("{}", input.display()))?;
        if seal.agency() != Some(bundle.manifest.from) {
            bail!(
                "the seal is of {}, but the document is from {}",
                seal.agency().map_or("no agency".into(), |c| c.to_string()),
                bundle.manifest.from
            );
        }
        let sealed = bundle.envelope.add_seal(&seal.key, &seal.chain, t)?;
        let mut carried = bundle.crls.clone();
        carried.append(&mut crls);
        write_out(&a.out, |w| {
            write_bundle(w, &sealed, &carried, &bundle.receipts.clone(), |att, out| {
                bundle.copy_attachment(&att.name, out).map(|_| ())
            })
        })?;
        println!("Sealed {} as {}", bundle.manifest.id(), seal.chain[0].id().name);
        println!("  written: {}", a.out.display());
        return Ok(());
    }

    let (Some(form_path), Some(key), Some(cert)) = (&a.form, &a.key, &a.cert) else {
        bail!("give --form, --key and --cert (or --seal BUNDLE with --seal-key and --seal-cert)");
    };
    let person_pass = PassphraseSource { env: a.passphrase_env.clone(), file: a.passphrase_file.clone() };
    let form = read_form(form_path)?;
    // Check what can be checked before any passphrase is asked for.
    let person_chain = signing_chain(cert, Profile::Person)?;
    let person_leaf = &person_chain[0];
    let from = match &seal {
        Some(s) => s.agency().context("the seal certificate has no agency code")?,
        None => person_leaf.agency.context("the official's certificate has no agency code")?,
    };
    let defaults = SignerDefaults { from, name: person_leaf.common_name.clone(), position: person_leaf.title.clone() };
    let manifest = form.to_manifest(&a.attachments, &defaults)?;
    let person = SigningIdentity::with_key(person_chain, key, cert, &person_pass, "--passphrase")?;
    if let Some(code) = person.agency()
        && !code.is_within(&manifest.from)
    {
        bail!("the official's certificate is of {code}, outside the sender {}", manifest.from);
    }
    let mut envelope = Envelope::sign_person(&manifest.to_cbor()?, &person.key, &person.chain, t)?;
    if let Some(seal) = &seal {
        envelope = envelope.add_seal(&seal.key, &seal.chain, t)?;
    }
    let paths = a.attachments.clone();
    write_out(&a.out, |w| {
        write_bundle(w, &envelope, &crls, &[], |att, out| {
            let path = crate::form::attachment_path(&paths, &att.name)
                .ok_or_else(|| BundleError::MissingAttachment(att.name.clone()))?;
            let mut f = File::open(path)?;
            std::io::copy(&mut f, out)?;
            Ok(())
        })
    })?;
    println!("Signed {}", manifest.id());
    println!("  official: {} ({})", person.chain[0].id().name, person.chain[0].title.as_deref().unwrap_or(""));
    match &seal {
        Some(s) => println!("  sealed:   {}", s.chain[0].id().name),
        None => println!(
            "  not sealed yet: the clerk seals with `lienthong sign --seal {} --seal-key … --seal-cert … --out …`",
            a.out.display()
        ),
    }
    println!("  written:  {}", a.out.display());
    Ok(())
}

/// `lienthong verify`.
pub(crate) fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let anchors = read_certificates(&a.anchor)?;
    let mut options = VerifyOptions::new(
        anchors,
        match &a.at {
            Some(t) => parse_time(t)?,
            None => now(),
        },
    );
    for p in &a.crl {
        options.crls.extend(read_crls(p)?);
    }
    if a.allow_unchecked_revocation {
        options.revocation = RevocationMode::BestEffort;
    }
    let file = File::open(&a.file).with_context(|| format!("cannot open {}", a.file.display()))?;
    match verify_bundle(BufReader::new(file), &options) {
        Ok(report) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "verified": true, "report": report }))?
                );
            } else {
                report::print(&report);
            }
            Ok(())
        }
        Err(e) => {
            if a.json {
                println!("{}", serde_json::json!({ "verified": false, "kind": e.kind(), "reason": e.to_string() }));
            }
            Err(anyhow::Error::new(e).context(format!("{} does not verify", a.file.display())))
        }
    }
}
