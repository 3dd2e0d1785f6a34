//! Profiles: which node, which clerk certificate, which seal and official's keys a clerk uses.
//! Kept in `profiles.toml` in the user's configuration directory (or `$LIENTHONG_CONFIG_DIR`);
//! a clerk may keep several and pick one with `--profile` or `lienthong profile use`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use lienthong_protocol::Identity;
use lienthong_protocol::clerk_client::ClerkClient;
use pki::{AgencyCode, Certificate, PrivateKey, Profile as CertProfile};

use crate::files;
use crate::outln;
use crate::pki_cmd::read_certificates;

/// One profile.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    /// The agency.
    pub agency: String,
    /// The node's address.
    pub node: String,
    /// The national root certificate.
    pub anchor: PathBuf,
    /// The clerk certificate chain and key.
    pub clerk_cert: PathBuf,
    pub clerk_key: PathBuf,
    /// The agency seal, if this clerk seals.
    pub seal_cert: Option<PathBuf>,
    pub seal_key: Option<PathBuf>,
    /// The official's certificate and key, if the official signs on this machine.
    pub person_cert: Option<PathBuf>,
    pub person_key: Option<PathBuf>,
}

/// The profiles file.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profiles {
    /// The profile used without `--profile`.
    pub default: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// Where profiles live.
pub(crate) fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LIENTHONG_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("vn", "lienthong", "lienthong")
        .map(|d| d.config_dir().to_owned())
        .context("cannot find a configuration directory; set LIENTHONG_CONFIG_DIR")
}

fn profiles_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("profiles.toml"))
}

impl Profiles {
    pub(crate) fn load() -> anyhow::Result<Profiles> {
        let path = profiles_path()?;
        if !path.exists() {
            return Ok(Profiles::default());
        }
        let text = files::read_text(&path)?;
        toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    fn save(&self) -> anyhow::Result<()> {
        let path = profiles_path()?;
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("cannot create {}", path.display()))?;
        files::replace(&path, toml::to_string_pretty(self)?.as_bytes())
    }

    /// The profile to use: the one named, else the default, else the only one.
    pub(crate) fn select(&self, name: Option<&str>) -> anyhow::Result<(String, Profile)> {
        let name = match (name, &self.default) {
            (Some(n), _) => n.to_owned(),
            (None, Some(d)) => d.clone(),
            (None, None) if self.profiles.len() == 1 => self.profiles.keys().next().cloned().unwrap_or_default(),
            (None, None) if self.profiles.is_empty() => {
                bail!(
                    "no profile yet: add one with `lienthong profile add NAME --agency … --node … --anchor … --clerk-cert … --clerk-key …`"
                )
            }
            (None, None) => {
                bail!("several profiles and no default: give --profile NAME or run `lienthong profile use NAME`")
            }
        };
        let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
        let profile = self
            .profiles
            .get(&name)
            .with_context(|| format!("no profile named {name:?} (profiles: {})", known.join(", ")))?;
        Ok((name, profile.clone()))
    }
}

/// Reads the clerk's key, asking for its passphrase at the terminal if it is encrypted.
fn read_clerk_key(path: &Path) -> anyhow::Result<PrivateKey> {
    files::read_private_key(path, || {
        let hint = format!(
            "run the command in a terminal, or keep the clerk key {} unencrypted (readable by this user only): it only identifies this clerk to the node",
            path.display()
        );
        crate::secret::PassphraseSource::default().read_or("the clerk key", &hint)
    })
}

impl Profile {
    pub(crate) fn agency(&self) -> anyhow::Result<AgencyCode> {
        self.agency.parse().context("the profile's agency code")
    }

    pub(crate) fn address(&self) -> anyhow::Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        self.node
            .to_socket_addrs()
            .with_context(|| format!("the profile's node address {:?}", self.node))?
            .next()
            .with_context(|| format!("the node address {:?} resolves to nothing", self.node))
    }

    pub(crate) fn anchors(&self) -> anyhow::Result<Vec<Certificate>> {
        read_certificates(&self.anchor)
    }

    /// Connects to the node as this profile's clerk.
    pub(crate) async fn connect(&self) -> anyhow::Result<ClerkClient> {
        let chain = read_certificates(&self.clerk_cert)?;
        let key = read_clerk_key(&self.clerk_key)?;
        let identity = Identity { chain, key };
        Ok(ClerkClient::connect(self.address()?, self.agency()?, &identity, self.anchors()?).await?)
    }

    /// The seal's identity, if the profile has one.
    pub(crate) fn seal(
        &self,
        source: &crate::secret::PassphraseSource,
    ) -> anyhow::Result<Option<crate::document_cmd::SigningIdentity>> {
        match (&self.seal_key, &self.seal_cert) {
            (Some(k), Some(c)) => Ok(Some(crate::document_cmd::SigningIdentity::load(
                k,
                c,
                source,
                CertProfile::Seal,
                "--seal-passphrase",
            )?)),
            _ => Ok(None),
        }
    }
}

/// `lienthong profile …`.
#[derive(Subcommand, Debug)]
pub(crate) enum ProfileCommand {
    /// Add (or replace) a profile.
    Add(AddArgs),
    /// List profiles.
    List {
        /// Print JSON: one object per profile, with its name and whether it is the default.
        #[arg(long)]
        json: bool,
    },
    /// Make a profile the default.
    Use {
        /// The profile.
        name: String,
    },
    /// Show a profile.
    Show {
        /// The profile (default: the default one).
        name: Option<String>,
    },
    /// Remove a profile.
    Remove {
        /// The profile.
        name: String,
    },
}

/// Arguments of `profile add`.
#[derive(Args, Debug)]
pub(crate) struct AddArgs {
    /// A short name, e.g. phong-du.
    name: String,
    /// The agency code.
    #[arg(long)]
    agency: AgencyCode,
    /// The node's address, e.g. 10.0.0.5:7400.
    #[arg(long)]
    node: String,
    /// The national root certificate.
    #[arg(long)]
    anchor: PathBuf,
    /// The clerk certificate chain (profile clerk).
    #[arg(long)]
    clerk_cert: PathBuf,
    /// The clerk key.
    #[arg(long)]
    clerk_key: PathBuf,
    /// The agency seal certificate chain, to seal documents.
    #[arg(long, requires = "seal_key")]
    seal_cert: Option<PathBuf>,
    /// The seal key.
    #[arg(long, requires = "seal_cert")]
    seal_key: Option<PathBuf>,
    /// The official's certificate chain, if the official signs on this machine.
    #[arg(long, requires = "person_key")]
    person_cert: Option<PathBuf>,
    /// The official's key.
    #[arg(long, requires = "person_cert")]
    person_key: Option<PathBuf>,
    /// Make it the default profile.
    #[arg(long)]
    default: bool,
}

fn absolute(path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(path).with_context(|| format!("{what} {} does not exist", path.display()))
}

fn check_cert(path: &Path, profile: CertProfile, agency: &AgencyCode, what: &str) -> anyhow::Result<()> {
    let chain = read_certificates(path)?;
    let leaf = chain.first().with_context(|| format!("{} holds no certificate", path.display()))?;
    leaf.check_usage(profile)
        .map_err(|p| anyhow::anyhow!("{what} {} cannot be used as a {profile} certificate: {p}", path.display()))?;
    if leaf.agency.as_ref().is_none_or(|a| !a.is_within(agency)) {
        bail!(
            "{what} {} is for {}, not for {agency}",
            path.display(),
            leaf.agency.map_or("no agency".into(), |a| a.to_string())
        );
    }
    Ok(())
}

/// Runs a profile subcommand.
pub(crate) fn run(command: ProfileCommand) -> anyhow::Result<()> {
    let mut profiles = Profiles::load()?;
    match command {
        ProfileCommand::Add(a) => {
            check_cert(&a.clerk_cert, CertProfile::Clerk, &a.agency, "the clerk certificate")?;
            if let Some(c) = &a.seal_cert {
                check_cert(c, CertProfile::Seal, &a.agency, "the seal certificate")?;
            }
            if let Some(c) = &a.person_cert {
                check_cert(c, CertProfile::Person, &a.agency, "the official's certificate")?;
            }
            read_certificates(&a.anchor).context("the trust anchor")?;
            let profile = Profile {
                agency: a.agency.to_string(),
                node: a.node.clone(),
                anchor: absolute(&a.anchor, "the trust anchor")?,
                clerk_cert: absolute(&a.clerk_cert, "the clerk certificate")?,
                clerk_key: absolute(&a.clerk_key, "the clerk key")?,
                seal_cert: a.seal_cert.as_deref().map(|p| absolute(p, "the seal certificate")).transpose()?,
                seal_key: a.seal_key.as_deref().map(|p| absolute(p, "the seal key")).transpose()?,
                person_cert: a.person_cert.as_deref().map(|p| absolute(p, "the official's certificate")).transpose()?,
                person_key: a.person_key.as_deref().map(|p| absolute(p, "the official's key")).transpose()?,
            };
            profile.address()?;
            profiles.profiles.insert(a.name.clone(), profile);
            if a.default || profiles.default.is_none() {
                profiles.default = Some(a.name.clone());
            }
            profiles.save()?;
            outln!(
                "Profile {} saved for {} at {}{}",
                a.name,
                a.agency,
                a.node,
                if profiles.default.as_deref() == Some(&a.name) { " (default)" } else { "" }
            )?;
        }
        ProfileCommand::List { json: true } => {
            let list: Vec<serde_json::Value> = profiles
                .profiles
                .iter()
                .map(|(name, p)| {
                    let mut v = serde_json::to_value(p).unwrap_or_default();
                    if let Some(map) = v.as_object_mut() {
                        map.insert("name".into(), name.clone().into());
                        map.insert("default".into(), (profiles.default.as_deref() == Some(name)).into());
                    }
                    v
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&list)?)?;
        }
        ProfileCommand::List { json: false } => {
            if profiles.profiles.is_empty() {
                outln!("No profiles yet; add one with `lienthong profile add`.")?;
            }
            let width = profiles.profiles.keys().map(|n| n.chars().count()).max().unwrap_or(0);
            for (name, p) in &profiles.profiles {
                let mark = if profiles.default.as_deref() == Some(name) { "*" } else { " " };
                let can = [p.seal_key.as_ref().map(|_| "seal"), p.person_key.as_ref().map(|_| "official")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                outln!(
                    "{mark} {name:<width$} {} at {}{}",
                    p.agency,
                    p.node,
                    if can.is_empty() { String::new() } else { format!(" ({can})") }
                )?;
            }
        }
        ProfileCommand::Use { name } => {
            if !profiles.profiles.contains_key(&name) {
                bail!("no profile named {name:?}");
            }
            profiles.default = Some(name.clone());
            profiles.save()?;
            outln!("{name} is now the default profile")?;
        }
        ProfileCommand::Show { name } => {
            let (name, p) = profiles.select(name.as_deref())?;
            outln!("{name}\n{}", toml::to_string_pretty(&p)?)?;
        }
        ProfileCommand::Remove { name } => {
            if profiles.profiles.remove(&name).is_none() {
                bail!("no profile named {name:?}");
            }
            if profiles.default.as_deref() == Some(&name) {
                profiles.default = None;
            }
            profiles.save()?;
            outln!("Profile {name} removed (its files are untouched)")?;
        }
    }
    Ok(())
}
