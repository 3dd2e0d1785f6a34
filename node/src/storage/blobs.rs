//! The attachment store: files named by their SHA-256, written once, never changed.
//!
//! An attachment is streamed into a temporary file while its size and hash are checked, synced,
//! and renamed into place (once every attachment of the document checked out) before the
//! database transaction that references it commits, so a committed document always has its
//! bytes. A crash in between leaves only an unreferenced file. The same attachment sent twice
//! (or to two recipients) is stored once.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::StoreError;

/// Content-addressed files under one directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

fn attachment_error(name: &str, problem: impl Into<String>) -> StoreError {
    StoreError::Attachment { name: name.to_owned(), problem: problem.into() }
}

impl BlobStore {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let tmp = root.join("tmp");
        let dir_error = |source| StoreError::Dir { path: tmp.clone(), source };
        std::fs::create_dir_all(&tmp).map_err(dir_error)?;
        // Temporary files left by a crash belong to no committed document. Only old ones go:
        // node processes sharing this store (scale-out) may be writing fresh ones.
        let stale = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for entry in std::fs::read_dir(&tmp).map_err(dir_error)?.flatten() {
            if entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < stale) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(BlobStore { root: root.to_owned() })
    }

    /// Where the blob with this hash lives.
    pub fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(sha256);
        self.root.join(&hex[..2]).join(&hex)
    }

    /// True when the blob is already stored.
    pub fn contains(&self, sha256: &[u8; 32]) -> bool {
        self.path(sha256).exists()
    }

    /// Streams exactly `size` bytes from `reader` into a temporary file, checking them against
    /// `sha256`. Nothing is in the store until [`PendingBlob::commit`]; dropping the pending
    /// blob removes the temporary file, so a refused document leaves nothing behind.
    pub async fn receive<R: AsyncRead + Unpin>(
        &self,
        name: &str,
        reader: &mut R,
        size: u64,
        sha256: &[u8; 32],
    ) -> Result<PendingBlob, StoreError> {
        let tmp = self.root.join("tmp").join(format!("{}-{}", hex::encode(&sha256[..8]), unique_suffix()));
        let pending = PendingBlob { tmp: Some(tmp.clone()), target: self.path(sha256) };
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut remaining = size;
        let mut buf = vec![0u8; 64 * 1024];
        while remaining > 0 {
            let want = buf.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let n = reader.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(attachment_error(
                    name,
                    format!("stream ended {remaining} bytes short of the declared {size}"),
                ));
            }
            ctx.update(&buf[..n]);
            file.write_all(&buf[..n]).await?;
            remaining -= n as u64;
        }
        if ctx.finish().as_ref() != sha256 {
            return Err(attachment_error(name, "bytes do not match the SHA-256 in the manifest (altered in transit)"));
        }
        file.sync_all().await?;
        Ok(pending)
    }

    /// Opens a stored blob for reading.
    pub async fn open_blob(&self, sha256: &[u8; 32]) -> Result<tokio::fs::File, StoreError> {
        Ok(tokio::fs::File::open(self.path(sha256)).await?)
    }
}

/// A verified attachment waiting in a temporary file.
#[derive(Debug)]
pub struct PendingBlob {
    tmp: Option<PathBuf>,
    target: PathBuf,
}

impl PendingBlob {
    /// Moves the bytes into the store (a no-op if the same content is already there) and
    /// syncs the directory, so they survive a crash once the database commits.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(tmp) = self.tmp.take() else { return Ok(()) };
        if let Some(dir) = self.target.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        if tokio::fs::try_exists(&self.target).await? {
            tokio::fs::remove_file(&tmp).await?;
            return Ok(());
        }
        tokio::fs::rename(&tmp, &self.target).await?;
        if let Some(dir) = self.target.parent() {
            tokio::fs::File::open(dir).await?.sync_all().await?;
        }
        Ok(())
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

fn unique_suffix() -> String {
    let mut bytes = [0u8; 8];
    // Randomness only names a temporary file; failure falls back to the process id and time.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        return format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    }
    hex::encode(bytes)
}
