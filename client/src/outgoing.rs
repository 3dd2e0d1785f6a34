//! The clerk's outgoing spool: every signed document is kept here, on the clerk's machine,
//! from the moment it is signed until the node confirms it took it.
//!
//! Why: when a submission's answer is lost (a connection drops after the last byte, the
//! node restarts), the clerk cannot know whether the node took the document. Signing again
//! makes a *different* envelope with the same document id, which the node rightly refuses.
//! Resubmitting the exact bytes kept here is always safe: a node that already has the
//! document answers from storage, one that does not takes it now.
//!
//! An entry is a directory `outgoing/<envelope SHA-256>/` in the configuration directory:
//! `envelope.cose` (the exact signed bytes) and `entry.json` (the document id, the agency,
//! when it was signed, the CRLs sent along and where each attachment's bytes are: a file, or
//! an entry of the draft bundle the official signed). Entries are written to a temporary
//! directory and renamed into place, so a crash leaves a whole entry or none. Attachment
//! bytes are not copied (they may be large); they are checked against the signed manifest's
//! size and SHA-256 before a resubmission.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pki::document::Envelope;
use pki::document::bundle::{Bundle, BundleLimits};
use pki::document::manifest::Attachment;
use serde::{Deserialize, Serialize};

use crate::files;

/// The format version of `entry.json`.
const ENTRY_VERSION: u32 = 1;

/// Where an attachment's bytes are kept until the document is confirmed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    /// A file given with `--attach`.
    File(PathBuf),
    /// An entry of the draft bundle given with `--draft`.
    Draft(PathBuf),
}

/// What `entry.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EntryFile {
    version: u32,
    document: String,
    agency: String,
    subject: String,
    to: Vec<String>,
    /// RFC 3339.
    signed_at: String,
    /// DER CRLs, hex, sent along with the document.
    crls: Vec<String>,
    /// One per attachment of the manifest, in manifest order.
    attachments: Vec<(String, Source)>,
}

/// A signed document waiting for the node's confirmation.
#[derive(Debug)]
pub(crate) struct Pending {
    dir: PathBuf,
    /// The document id.
    pub(crate) document: String,
    /// The sending agency.
    pub(crate) agency: String,
    /// The subject, for listings.
    pub(crate) subject: String,
    /// The recipients, for listings.
    pub(crate) to: Vec<String>,
    /// When it was signed (RFC 3339).
    pub(crate) signed_at: String,
    /// The envelope's SHA-256, hex.
    pub(crate) digest: String,
    /// The envelope's exact bytes.
    pub(crate) envelope: Vec<u8>,
    /// CRLs to send along.
    pub(crate) crls: Vec<Vec<u8>>,
    sources: Vec<(String, Source)>,
}

/// The spool directory.
pub(crate) fn dir() -> anyhow::Result<PathBuf> {
    Ok(crate::profile::config_dir()?.join("outgoing"))
}

impl Pending {
    /// Keeps a freshly signed document before anything is sent.
    pub(crate) fn keep(
        envelope: &Envelope,
        crls: &[Vec<u8>],
        sources: Vec<(String, Source)>,
        signed_at: time::OffsetDateTime,
    ) -> anyhow::Result<Pending> {
        let manifest = envelope.manifest()?;
        let digest = hex::encode(envelope.digest());
        let root = dir()?;
        std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
        set_private(&root)?;
        let entry = EntryFile {
            version: ENTRY_VERSION,
            document: manifest.id().to_string(),
            agency: manifest.from.to_string(),
            subject: manifest.subject.clone(),
            to: manifest.to.iter().map(ToString::to_string).collect(),
            signed_at: signed_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            crls: crls.iter().map(hex::encode).collect(),
            attachments: sources,
        };
        let json = serde_json::to_vec_pretty(&entry).context("cannot encode the outgoing entry")?;
        let target = root.join(&digest);
        if !target.exists() {
            let tmp = root.join(format!(".{digest}.tmp"));
            // A leftover from a crash while keeping this very envelope.
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            files::create_new(&tmp.join("envelope.cose"), envelope.as_bytes(), true)?;
            files::create_new(&tmp.join("entry.json"), &json, true)?;
            std::fs::rename(&tmp, &target)
                .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))?;
            files::sync_dir(&root)?;
        }
        Pending::read(&target)
    }

    fn read(dir: &Path) -> anyhow::Result<Pending> {
        let envelope =
            std::fs::read(dir.join("envelope.cose")).with_context(|| format!("cannot read {}", dir.display()))?;
        let entry: EntryFile = serde_json::from_slice(&std::fs::read(dir.join("entry.json"))?)
            .with_context(|| format!("{} is damaged", dir.join("entry.json").display()))?;
        if entry.version != ENTRY_VERSION {
            bail!("{} was written by another version of lienthong (format {})", dir.display(), entry.version);
        }
        let digest = hex::encode(pki::sha256(&envelope));
        if dir.file_name().and_then(|n| n.to_str()) != Some(digest.as_str()) {
            bail!("{} does not hold the envelope its name says (damaged; remove it)", dir.display());
        }
        let crls = entry
            .crls
            .iter()
            .map(hex::decode)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is damaged", dir.join("entry.json").display()))?;
        Ok(Pending {
            dir: dir.to_owned(),
            document: entry.document,
            agency: entry.agency,
            subject: entry.subject,
            to: entry.to,
            signed_at: entry.signed_at,
            digest,
            envelope,
            crls,
            sources: entry.attachments,
        })
    }

    /// Every waiting document, oldest first.
    pub(crate) fn list() -> anyhow::Result<Vec<Pending>> {
        let root = dir()?;
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", root.display())),
        };
        let mut found = Vec::new();
        for entry in entries {
            let path = entry.with_context(|| format!("cannot read {}", root.display()))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with('.') || !path.is_dir() {
                continue;
            }
            found.push(Pending::read(&path)?);
        }
        found.sort_by(|a, b| a.signed_at.cmp(&b.signed_at).then_with(|| a.document.cmp(&b.document)));
        Ok(found)
    }

    /// The waiting document named by its id or by a prefix (8 hex digits or more) of its
    /// envelope's SHA-256.
    pub(crate) fn find(what: &str) -> anyhow::Result<Pending> {
        let all = Pending::list()?;
        let by_digest = what.len() >= 8 && what.bytes().all(|b| b.is_ascii_hexdigit());
        let mut matching: Vec<Pending> = all
            .into_iter()
            .filter(|p| p.document == what || (by_digest && p.digest.starts_with(&what.to_ascii_lowercase())))
            .collect();
        match matching.len() {
            0 => bail!("no signed document {what:?} is waiting to be sent (`lienthong send --pending` lists them)"),
            1 => Ok(matching.remove(0)),
            n => bail!(
                "{n} signed documents match {what:?} (the same id signed more than once): name one by its SHA-256 from `lienthong send --pending`"
            ),
        }
    }

    /// The waiting document with this id, if any (one signed earlier whose fate is unknown).
    pub(crate) fn with_id(document: &str) -> anyhow::Result<Option<Pending>> {
        Ok(Pending::list()?.into_iter().find(|p| p.document == document))
    }

    /// The node confirmed, or refused for good: nothing to resend.
    pub(crate) fn done(self) -> anyhow::Result<()> {
        std::fs::remove_dir_all(&self.dir).with_context(|| format!("cannot remove {}", self.dir.display()))?;
        if let Some(parent) = self.dir.parent() {
            files::sync_dir(parent)?;
        }
        Ok(())
    }

    /// Where each attachment's bytes are, in manifest order, after checking each against the
    /// signed manifest (size and SHA-256): a file changed since signing is named, not sent.
    /// Draft entries are unpacked into `scratch`.
    pub(crate) fn attachment_files(
        &self,
        manifest_attachments: &[Attachment],
        scratch: &Path,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let mut paths = Vec::with_capacity(manifest_attachments.len());
        for a in manifest_attachments {
            let source = self
                .sources
                .iter()
                .find(|(name, _)| *name == a.name)
                .map(|(_, s)| s)
                .with_context(|| format!("{} does not say where attachment {:?} is", self.dir.display(), a.name))?;
            let path = match source {
                Source::File(path) => {
                    check_file(path, a)?;
                    path.clone()
                }
                Source::Draft(draft) => {
                    let file = File::open(draft).with_context(|| {
                        format!("cannot open the draft {} that attachment {:?} comes from", draft.display(), a.name)
                    })?;
                    let mut bundle = Bundle::open(BufReader::new(file), BundleLimits::default())
                        .with_context(|| format!("{}", draft.display()))?;
                    let path = scratch.join(&a.name);
                    let mut out = File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
                    bundle.copy_attachment(&a.name, &mut out).with_context(|| format!("{}", draft.display()))?;
                    path
                }
            };
            paths.push(path);
        }
        Ok(paths)
    }
}

/// Checks that `path` still holds the bytes the manifest signed.
fn check_file(path: &Path, a: &Attachment) -> anyhow::Result<()> {
    let changed = || {
        format!(
            "attachment {} changed since the document was signed; put the signed version back, or sign a new document",
            path.display()
        )
    };
    let mut file = File::open(path).with_context(|| format!("cannot open attachment {}", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("cannot read attachment {}", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    if size != a.size || ctx.finish().as_ref() != a.sha256 {
        bail!(changed());
    }
    Ok(())
}

fn set_private(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    Ok(())
}
