//! A certificate authority's state on disk.
//!
//! ```text
//! DIR/
//!   ca.cert.pem     this CA's certificate
//!   ca.key.pem      its private key, PKCS#8 encrypted with the CA passphrase, mode 0600
//!   chain.pem       this CA's certificate and the CAs above it, without the root
//!   root.pem        the national root (the trust anchor everyone configures)
//!   serial          the next serial counter, advanced durably *before* each issuance
//!   crlnumber       the next CRL number
//!   index.jsonl     one JSON line per event: issued, revoked
//!   certs/SERIAL.pem every certificate issued, by serial
//!   crl.pem         the latest CRL
//!   lock            held (flock) for the duration of any change
//! ```
//!
//! A serial is the 8-byte counter followed by 8 random bytes. The counter is written and
//! synced before the certificate is signed, so a crash can skip a number but never reuse one;
//! the random half keeps serials unique even if the directory is restored from an old backup.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pki::{Certificate, Crl, PrivateKey, Profile, RevocationReason, Serial};
use time::OffsetDateTime;

use crate::files;

/// One line of `index.jsonl`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum IndexEvent {
    /// A certificate was issued.
    Issued {
        serial: String,
        profile: Profile,
        agency: Option<String>,
        subject: String,
        #[serde(with = "time::serde::rfc3339")]
        not_after: OffsetDateTime,
    },
    /// A certificate was revoked.
    Revoked {
        serial: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        reason: RevocationReason,
    },
}

/// An open CA directory.
pub(crate) struct CaDir {
    dir: PathBuf,
    /// The CA certificate.
    pub cert: Certificate,
}

/// Holds the directory's lock until dropped.
pub(crate) struct Locked {
    _file: File,
}

impl CaDir {
    /// Creates a new CA directory holding `cert`, its encrypted key, the chain above it and
    /// the root. Refuses a directory that already holds a CA.
    pub(crate) fn create(
        dir: &Path,
        cert: &Certificate,
        encrypted_key_pem: &str,
        above: &[Certificate],
        root: &Certificate,
    ) -> anyhow::Result<CaDir> {
        if dir.join("ca.cert.pem").exists() || dir.join("ca.key.pem").exists() {
            bail!("{} already holds a CA; refusing to overwrite it", dir.display());
        }
        fs::create_dir_all(dir.join("certs")).with_context(|| format!("cannot create {}", dir.display()))?;
        files::create_new(&dir.join("ca.key.pem"), encrypted_key_pem.as_bytes(), true)?;
        let mut chain = if cert.is_self_issued() { String::new() } else { cert.to_pem() };
        for c in above {
            chain.push_str(&c.to_pem());
        }
        files::replace(&dir.join("chain.pem"), chain.as_bytes())?;
        files::replace(&dir.join("root.pem"), root.to_pem().as_bytes())?;
        files::replace(&dir.join("serial"), b"1\n")?;
        files::replace(&dir.join("crlnumber"), b"1\n")?;
        files::replace(&dir.join("index.jsonl"), b"")?;
        // The CA certificate goes last: its presence is what marks the directory as a CA.
        files::create_new(&dir.join("ca.cert.pem"), cert.to_pem().as_bytes(), false)?;
        Ok(CaDir { dir: dir.to_owned(), cert: cert.clone() })
    }

    /// Opens an existing CA directory.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<CaDir> {
        let path = dir.join("ca.cert.pem");
        if !path.exists() {
            bail!(
                "{} is not a CA directory (no ca.cert.pem); create one with `lienthong pki init-root` or `issue-ca`",
                dir.display()
            );
        }
        let cert = Certificate::from_pem_all(&files::read_text(&path)?)
            .with_context(|| format!("{} is damaged", path.display()))?
            .into_iter()
            .next()
            .with_context(|| format!("{} holds no certificate", path.display()))?;
        Ok(CaDir { dir: dir.to_owned(), cert })
    }

    /// Takes the directory's exclusive lock, waiting for another process to finish.
    pub(crate) fn lock(&self) -> anyhow::Result<Locked> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Locked { _file: file })
    }

    /// Reads the CA key with `passphrase`.
    pub(crate) fn key(&self, passphrase: &[u8]) -> anyhow::Result<PrivateKey> {
        let path = self.dir.join("ca.key.pem");
        let text = zeroize::Zeroizing::new(files::read_text(&path)?);
        PrivateKey::from_pem(&text, Some(passphrase)).with_context(|| format!("CA key {}", path.display()))
    }

    /// This CA's certificate and those above it, without the root (empty for the root): what
    /// follows a leaf it issues in a chain file.
    pub(crate) fn chain(&self) -> anyhow::Result<Vec<Certificate>> {
        let text = files::read_text(&self.dir.join("chain.pem"))?;
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        Certificate::from_pem_all(&text).with_context(|| format!("{}/chain.pem is damaged", self.dir.display()))
    }

    /// The national root.
    pub(crate) fn root(&self) -> anyhow::Result<Certificate> {
        let path = self.dir.join("root.pem");
        Certificate::from_pem_all(&files::read_text(&path)?)
            .with_context(|| format!("{} is damaged", path.display()))?
            .into_iter()
            .next()
            .with_context(|| format!("{} holds no certificate", path.display()))
    }

    fn read_counter(&self, name: &str) -> anyhow::Result<u64> {
        let path = self.dir.join(name);
        let text = files::read_text(&path)?;
        text.trim().parse().with_context(|| format!("{} does not hold a number", path.display()))
    }

    /// Takes the next serial. The counter is advanced on disk before the serial is returned,
    /// so the caller may crash at any point after and the serial is never handed out again.
    pub(crate) fn reserve_serial(&self, _lock: &Locked) -> anyhow::Result<Serial> {
        let counter = self.read_counter("serial")?;
        files::replace(&self.dir.join("serial"), format!("{}\n", counter + 1).as_bytes())?;
        let mut random = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .map_err(|_| anyhow::anyhow!("no randomness from the operating system"))?;
        let mut bytes = counter.to_be_bytes().to_vec();
        bytes.extend_from_slice(&random);
        Ok(Serial::from_bytes(&bytes))
    }

    /// Takes the next CRL number, durably, like [`CaDir::reserve_serial`].
    pub(crate) fn reserve_crl_number(&self, _lock: &Locked) -> anyhow::Result<u64> {
        let number = self.read_counter("crlnumber")?;
        files::replace(&self.dir.join("crlnumber"), format!("{}\n", number + 1).as_bytes())?;
        Ok(number)
    }

    /// Records an issued certificate: its file, then its index line.
    pub(crate) fn record_issued(&self, _lock: &Locked, cert: &Certificate, profile: Profile) -> anyhow::Result<()> {
        files::create_new(
            &self.dir.join("certs").join(format!("{}.pem", cert.serial)),
            cert.to_pem().as_bytes(),
            false,
        )?;
        let event = IndexEvent::Issued {
            serial: cert.serial.to_string(),
            profile,
            agency: cert.agency.map(|a| a.to_string()),
            subject: cert.subject.clone(),
            not_after: cert.not_after,
        };
        files::append_line(&self.dir.join("index.jsonl"), &serde_json::to_string(&event)?)
    }

    /// Records a revocation.
    pub(crate) fn record_revoked(
        &self,
        _lock: &Locked,
        serial: &Serial,
        at: OffsetDateTime,
        reason: RevocationReason,
    ) -> anyhow::Result<()> {
        let event = IndexEvent::Revoked { serial: serial.to_string(), at, reason };
        files::append_line(&self.dir.join("index.jsonl"), &serde_json::to_string(&event)?)
    }

    /// Every event, in order. A torn last line (a crash mid-append) is skipped with a warning.
    pub(crate) fn events(&self) -> anyhow::Result<Vec<IndexEvent>> {
        let path = self.dir.join("index.jsonl");
        let text = files::read_text(&path)?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut events = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(e) => events.push(e),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                    eprintln!("warning: ignoring an incomplete last line in {}", path.display());
                }
                Err(e) => bail!("{} line {} is damaged: {e}", path.display(), i + 1),
            }
        }
        Ok(events)
    }

    /// A certificate this CA issued, by serial.
    pub(crate) fn issued(&self, serial: &Serial) -> anyhow::Result<Option<Certificate>> {
        let path = self.dir.join("certs").join(format!("{serial}.pem"));
        if !path.exists() {
            return Ok(None);
        }
        Ok(Certificate::from_pem_all(&files::read_text(&path)?)?.into_iter().next())
    }

    /// Writes the latest CRL.
    pub(crate) fn write_crl(&self, _lock: &Locked, crl: &Crl) -> anyhow::Result<PathBuf> {
        let path = self.dir.join("crl.pem");
        files::replace(&path, crl.to_pem().as_bytes())?;
        Ok(path)
    }
}
