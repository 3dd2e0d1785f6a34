//! Writing files the way keys and CA state need: private files 0600, never overwriting a key,
//! and replacing state atomically (temporary file, fsync, rename, fsync of the directory) so a
//! crash leaves either the old or the new content.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Creates `path` with `contents`, failing if it exists; mode 0600 when `private`.
pub(crate) fn create_new(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() {
            format!("{} already exists; refusing to overwrite it", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    file.write_all(contents).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
    sync_parent(path)
}

/// Replaces `path` with `contents` atomically and durably.
pub(crate) fn replace(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(contents).with_context(|| format!("cannot write {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("cannot sync {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    sync_parent(path)
}

/// Appends one line and syncs it before returning.
pub(crate) fn append_line(path: &Path, line: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(format!("{line}\n").as_bytes()).with_context(|| format!("cannot append to {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot sync {}", path.display()))
}

fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent)
}

/// Syncs a directory, so the names created or removed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Reads a text file with the path in the error.
pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads a PEM private key, calling `passphrase` only when the key is encrypted.
pub(crate) fn read_private_key(
    path: &Path,
    passphrase: impl FnOnce() -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>>,
) -> anyhow::Result<pki::PrivateKey> {
    let text = zeroize::Zeroizing::new(read_text(path)?);
    let key = if pki::PrivateKey::pem_is_encrypted(&text) {
        pki::PrivateKey::from_pem(&text, Some(&passphrase()?))
    } else {
        pki::PrivateKey::from_pem(&text, None)
    };
    key.with_context(|| format!("key {}", path.display()))
}
