//! The attachment store: files named by their SHA-256, written once, never changed.
//!
//! An attachment is streamed into a temporary file while its size and hash are checked, then
//! flushed, synced and checked again on disk (the file holds exactly the declared size), and
//! renamed into place (once every attachment of the document checked out) before the
//! database transaction that references it commits; the directory is synced after the rename,
//! and the store's root too when the shard directory was new. So a committed document always
//! has its bytes, a crash in between leaves only an unreferenced file, and no partial file is
//! ever stored under a hash. The same attachment sent twice (or to two recipients) is stored
//! once.
//!
//! Every write error reaches the caller. Files are written with `std::fs` on the blocking
//! pool, not through tokio's `File`: tokio's `File` keeps a failed write's error for the next
//! operation, and `sync_all` does not report it (the error is lost and the file is short);
//! it also keeps only the error's kind, not the operating system's message.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::StoreError;

/// Bytes handed to the blocking pool per write: large enough that the hand-off costs little
/// per byte, small enough that many concurrent documents stay cheap in memory.
const WRITE_CHUNK: usize = 256 * 1024;

/// Content-addressed files under one directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

fn attachment_error(name: &str, problem: impl Into<String>) -> StoreError {
    StoreError::Attachment { name: name.to_owned(), problem: problem.into() }
}

/// Runs blocking file work on tokio's blocking pool; a panicked or cancelled task is an error.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}

/// Syncs a directory, so that a rename or a new entry in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
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

    /// True when a file is stored under the hash (of any size; see [`BlobStore::holds`]).
    pub fn contains(&self, sha256: &[u8; 32]) -> bool {
        self.path(sha256).exists()
    }

    /// True when the blob is stored with `size` bytes (a file of another size under the
    /// hash is a damaged leftover, not the blob).
    pub fn holds(&self, sha256: &[u8; 32], size: u64) -> bool {
        std::fs::metadata(self.path(sha256)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Streams exactly `size` bytes from `reader` into a temporary file, checking them against
    /// `sha256`, and makes them durable there (flushed, synced, size checked on disk). Nothing
    /// is in the store until [`PendingBlob::commit`]; dropping the pending blob removes the
    /// temporary file, so a refused document leaves nothing behind.
    pub async fn receive<R: AsyncRead + Unpin>(
        &self,
        name: &str,
        reader: &mut R,
        size: u64,
        sha256: &[u8; 32],
    ) -> Result<PendingBlob, StoreError> {
        let tmp = self.root.join("tmp").join(format!("{}-{}", hex::encode(&sha256[..8]), unique_suffix()));
        // From here on, the temporary file goes away with `pending` unless committed.
        let pending = PendingBlob { tmp: Some(tmp.clone()), target: self.path(sha256), size };
        let create = tmp.clone();
        let mut file = blocking(move || std::fs::File::create(create)).await?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut remaining = size;
        let mut buf = vec![0u8; WRITE_CHUNK.min(usize::try_from(size).unwrap_or(WRITE_CHUNK)).max(1)];
        while remaining > 0 {
            // Fill the buffer (or take what remains), then write it in one blocking call.
            let mut filled = 0;
            while filled < buf.len() && (filled as u64) < remaining {
                let want = (buf.len() - filled).min(usize::try_from(remaining - filled as u64).unwrap_or(usize::MAX));
                let n = reader.read(&mut buf[filled..filled + want]).await?;
                if n == 0 {
                    return Err(attachment_error(
                        name,
                        format!("stream ended {} bytes short of the declared {size}", remaining - filled as u64),
                    ));
                }
                filled += n;
            }
            ctx.update(&buf[..filled]);
            let (f, b) = blocking(move || {
                file.write_all(&buf[..filled])?;
                Ok((file, buf))
            })
            .await?;
            (file, buf) = (f, b);
            remaining -= filled as u64;
        }
        if ctx.finish().as_ref() != sha256 {
            return Err(attachment_error(name, "bytes do not match the SHA-256 in the manifest (altered in transit)"));
        }
        // Durable before it can be renamed into place, and exactly as long as declared: a
        // write the kernel took only in part shows here at the latest.
        let on_disk = blocking(move || {
            file.flush()?;
            file.sync_all()?;
            Ok(file.metadata()?.len())
        })
        .await?;
        if on_disk != size {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "attachment {name:?}: wrote {size} bytes but {} holds {on_disk}",
                tmp.display()
            ))));
        }
        Ok(pending)
    }

    /// Opens a stored blob for reading.
    pub async fn open_blob(&self, sha256: &[u8; 32]) -> Result<tokio::fs::File, StoreError> {
        Ok(tokio::fs::File::open(self.path(sha256)).await?)
    }
}

/// A verified attachment waiting, durable, in a temporary file.
#[derive(Debug)]
pub struct PendingBlob {
    tmp: Option<PathBuf>,
    target: PathBuf,
    size: u64,
}

impl PendingBlob {
    /// Moves the bytes into the store and syncs the directory (and the store's root when the
    /// shard directory is new), so they survive a crash once the database commits. A file
    /// already under the hash is kept only if it has the right size: one of another size
    /// (a short or empty file left by an older version's swallowed write error) is replaced.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(tmp) = self.tmp.take() else { return Ok(()) };
        let (target, size) = (self.target.clone(), self.size);
        let result = blocking(move || commit_file(&tmp, &target, size)).await;
        result.map_err(StoreError::Io)
    }
}

fn commit_file(tmp: &Path, target: &Path, size: u64) -> std::io::Result<()> {
    let dir = target.parent().ok_or_else(|| std::io::Error::other("a blob path has no directory"))?;
    if !dir.is_dir() {
        match std::fs::create_dir(dir) {
            // New: its entry in the store's root must be durable too.
            Ok(()) => sync_dir(dir.parent().ok_or_else(|| std::io::Error::other("a shard has no parent"))?)?,
            // Another process (scale-out) made it meanwhile; it synced the root.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    match std::fs::metadata(target) {
        Ok(m) if m.is_file() && m.len() == size => {
            std::fs::remove_file(tmp)?;
            return Ok(());
        }
        Ok(m) => tracing::warn!(
            blob = %target.display(),
            found = m.len(),
            expected = size,
            "replacing a damaged attachment file (wrong size) with the bytes just received"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Rename replaces a damaged file atomically: readers see the old or the new, never half.
    std::fs::rename(tmp, target)?;
    sync_dir(dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    #[tokio::test]
    async fn a_blob_is_stored_once_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = vec![7u8; 600_000];
        let hash = sha(&body);
        let pending = store.receive("a.pdf", &mut body.as_slice(), body.len() as u64, &hash).await.unwrap();
        assert!(!store.holds(&hash, body.len() as u64), "nothing is stored before commit");
        pending.commit().await.unwrap();
        assert_eq!(std::fs::read(store.path(&hash)).unwrap(), body);
        assert!(store.holds(&hash, body.len() as u64));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no temporary file left");
    }

    #[tokio::test]
    async fn a_short_stream_or_wrong_bytes_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = b"%PDF-1.4 short".to_vec();
        let hash = sha(&body);
        let short = store.receive("a.pdf", &mut &body[..5], body.len() as u64, &hash).await;
        assert!(matches!(short, Err(StoreError::Attachment { .. })), "{short:?}");
        let altered = store.receive("a.pdf", &mut &b"%PDF-1.4 shorT"[..], body.len() as u64, &hash).await;
        assert!(matches!(altered, Err(StoreError::Attachment { .. })), "{altered:?}");
        assert!(!store.path(&hash).exists());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temporary files removed");
    }

    /// A file of the wrong size under a hash (what the old tokio write path left on a full
    /// disk) is replaced by the next commit of the same bytes instead of being trusted.
    #[tokio::test]
    async fn a_damaged_blob_is_replaced_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = b"%PDF-1.4 the real bytes".to_vec();
        let hash = sha(&body);
        let path = store.path(&hash);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
        assert!(!store.holds(&hash, body.len() as u64));
        let pending = store.receive("a.pdf", &mut body.as_slice(), body.len() as u64, &hash).await.unwrap();
        pending.commit().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), body);
    }
}
