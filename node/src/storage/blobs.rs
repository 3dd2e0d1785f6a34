//! The attachment store: files named by their SHA-256, written once, never changed.
//!
//! An attachment is streamed into a temporary file while its size and hash are checked, then
//! flushed, synced and checked again on disk (the file holds exactly the declared size), and
//! renamed into place (once every attachment of the document checked out) before the
//! database transaction that references it commits. A document's attachments are committed
//! as one batch ([`PendingBlob::commit_all`]): every file renamed, then each distinct shard
//! directory synced once, and the store's root synced once for all the shard directories
//! whose own entry this process has not yet seen durable. So a committed document always has
//! its bytes, a crash in between leaves only an unreferenced file, and no partial file is
//! ever stored under a hash. The same attachment sent twice (or to two recipients) is stored
//! once.
//!
//! Every directory the store creates has its entry made durable in its parent (the root and
//! `tmp/` at open, a shard directory in the root). A shard directory found already there may
//! have been made an instant ago by another task or process that has not synced the root yet,
//! so this process syncs the root itself the first time it uses each shard directory (at most
//! 256 times over its life), and syncs a shard directory holding a file it found already
//! stored (another document's rename may not be synced yet).
//!
//! Every write error reaches the caller. Files are written with `std::fs` on the blocking
//! pool, not through tokio's `File`: tokio's `File` keeps a failed write's error for the next
//! operation, and `sync_all` does not report it (the error is lost and the file is short);
//! it also keeps only the error's kind, not the operating system's message.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::StoreError;

/// Bytes handed to the blocking pool per write: large enough that the hand-off costs little
/// per byte, small enough that many concurrent documents stay cheap in memory.
const WRITE_CHUNK: usize = 256 * 1024;

/// Content-addressed files under one directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    durable: Arc<Durable>,
}

/// What the store's commits share: the shard directories whose entry in the root this
/// process has synced, and how directories are synced.
#[derive(Default)]
struct Durable {
    shards: Mutex<HashSet<PathBuf>>,
    /// Unit tests observe (and fail) directory syncs here; see [`sync_dir`].
    #[cfg(test)]
    hook: Option<SyncHook>,
}

#[cfg(test)]
type SyncHook = Arc<dyn Fn(&Path) -> std::io::Result<()> + Send + Sync>;

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").field("shards", &self.shards.lock().map(|s| s.len()).unwrap_or(0)).finish()
    }
}

impl Durable {
    /// Syncs a directory, so that a rename or a new entry in it survives a crash.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(hook) = &self.hook {
            hook(dir)?;
        }
        std::fs::File::open(dir)?.sync_all()
    }

    fn is_durable(&self, shard: &Path) -> bool {
        self.shards.lock().is_ok_and(|s| s.contains(shard))
    }

    fn mark_durable(&self, shards: Vec<PathBuf>) {
        if let Ok(mut s) = self.shards.lock() {
            s.extend(shards);
        }
    }

    /// Creates `dir` and any missing ancestors, syncing the parent of each directory created
    /// (topmost first) so that the new entries survive a crash.
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.is_dir() {
            missing.push(at.to_owned());
            match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => break,
            }
        }
        std::fs::create_dir_all(dir)?;
        for created in missing.iter().rev() {
            let parent = created.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            self.sync_dir(parent)?;
        }
        Ok(())
    }
}

fn attachment_error(name: &str, problem: impl Into<String>) -> StoreError {
    StoreError::Attachment { name: name.to_owned(), problem: problem.into() }
}

/// Runs blocking file work on tokio's blocking pool; a panicked or cancelled task is an error.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}

/// Creates `dir` and its missing ancestors, each new entry synced into its parent: for the
/// node's data directory, whose entry the attachment store's own entries depend on.
pub(crate) fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    Durable::default().create_dir_all(dir)
}

impl BlobStore {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Self::open_with(root, Durable::default())
    }

    fn open_with(root: &Path, durable: Durable) -> Result<Self, StoreError> {
        let tmp = root.join("tmp");
        let dir_error = |source| StoreError::Dir { path: tmp.clone(), source };
        durable.create_dir_all(&tmp).map_err(dir_error)?;
        // Temporary files left by a crash belong to no committed document. Only old ones go:
        // node processes sharing this store (scale-out) may be writing fresh ones.
        let stale = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for entry in std::fs::read_dir(&tmp).map_err(dir_error)?.flatten() {
            if entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < stale) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(BlobStore { root: root.to_owned(), durable: Arc::new(durable) })
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
        let pending =
            PendingBlob { tmp: Some(tmp.clone()), target: self.path(sha256), size, durable: Arc::clone(&self.durable) };
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
    durable: Arc<Durable>,
}

impl PendingBlob {
    /// Moves the bytes into the store and makes their directory entries durable (see
    /// [`PendingBlob::commit_all`], which does this for a document's attachments at once).
    pub async fn commit(self) -> Result<(), StoreError> {
        Self::commit_all(vec![self]).await
    }

    /// Moves a document's attachments into the store, then syncs each distinct shard
    /// directory once and (once, when one of them is new to this process) the store's root:
    /// when this returns `Ok`, every file and every directory entry they depend on is
    /// durable, so the database may commit the document. A file already under the hash is
    /// kept only if it has the right size: one of another size (a short or empty file left by
    /// an older version's swallowed write error) is replaced. On an error the attachments not
    /// yet moved are removed; those moved stay as unreferenced files (as after a crash).
    pub async fn commit_all(blobs: Vec<PendingBlob>) -> Result<(), StoreError> {
        if blobs.iter().all(|b| b.tmp.is_none()) {
            return Ok(());
        }
        blocking(move || commit_batch(blobs)).await.map_err(StoreError::Io)
    }
}

fn commit_batch(mut blobs: Vec<PendingBlob>) -> std::io::Result<()> {
    let Some(durable) = blobs.first().map(|b| Arc::clone(&b.durable)) else { return Ok(()) };
    // Distinct, in the order first met: directories to sync, and shard directories whose
    // entry in the root this process has not synced yet.
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut new_shards: Vec<PathBuf> = Vec::new();
    for blob in &mut blobs {
        let Some(tmp) = blob.tmp.clone() else { continue };
        let dir = blob.target.parent().ok_or_else(|| std::io::Error::other("a blob path has no directory"))?.to_owned();
        place_file(&tmp, &blob.target, &dir, blob.size)?;
        // Moved (or already there): no longer a temporary file to remove.
        blob.tmp = None;
        if !durable.is_durable(&dir) && !new_shards.contains(&dir) {
            new_shards.push(dir.clone());
        }
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    if let Some(root) = new_shards.first().and_then(|d| d.parent()) {
        durable.sync_dir(root)?;
    }
    for dir in &dirs {
        durable.sync_dir(dir)?;
    }
    durable.mark_durable(new_shards);
    Ok(())
}

/// Puts the temporary file `tmp` under `target` in the shard directory `dir` (created if
/// missing), unless a file of the right size is already there. Syncs nothing.
fn place_file(tmp: &Path, target: &Path, dir: &Path, size: u64) -> std::io::Result<()> {
    if !dir.is_dir() {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            // Another task or process made it meanwhile; its entry is synced by the caller.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    match std::fs::metadata(target) {
        Ok(m) if m.is_file() && m.len() == size => return std::fs::remove_file(tmp),
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
    std::fs::rename(tmp, target)
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

    /// Directory syncs seen through the store's hook, and a directory whose sync fails.
    #[derive(Default)]
    struct Syncs {
        seen: Mutex<Vec<PathBuf>>,
        failing: Mutex<Option<PathBuf>>,
    }

    impl Syncs {
        fn take(&self) -> Vec<PathBuf> {
            std::mem::take(&mut *self.seen.lock().unwrap())
        }
        fn fail(&self, dir: Option<&Path>) {
            *self.failing.lock().unwrap() = dir.map(Path::to_owned);
        }
    }

    fn observed(root: &Path) -> (BlobStore, Arc<Syncs>) {
        let syncs = Arc::new(Syncs::default());
        let seen = Arc::clone(&syncs);
        let hook: SyncHook = Arc::new(move |dir: &Path| {
            seen.seen.lock().unwrap().push(dir.to_owned());
            match seen.failing.lock().unwrap().as_deref() {
                Some(f) if f == dir => Err(std::io::Error::other(format!("injected: cannot sync {}", dir.display()))),
                _ => Ok(()),
            }
        });
        let store = BlobStore::open_with(root, Durable { hook: Some(hook), ..Durable::default() }).unwrap();
        (store, syncs)
    }

    async fn pending(store: &BlobStore, body: &[u8]) -> PendingBlob {
        store.receive("a.pdf", &mut &body[..], body.len() as u64, &sha(body)).await.unwrap()
    }

    /// Bodies whose hashes fall in one shard (`same` of them) and in other shards (`other`).
    fn bodies(same: usize, other: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut shard = None;
        for i in 0.. {
            let body = format!("%PDF-1.4 attachment {i}").into_bytes();
            let first = sha(&body)[0];
            if *shard.get_or_insert(first) == first {
                if a.len() < same {
                    a.push(body);
                }
            } else if b.len() < other && b.iter().all(|o: &Vec<u8>| sha(o)[0] != first) {
                b.push(body);
            }
            if a.len() == same && b.len() == other {
                break;
            }
        }
        (a, b)
    }

    /// Opening a store where nothing exists yet syncs each new directory's entry into its
    /// parent: the data directory's, the root's and `tmp/`'s.
    #[test]
    fn a_new_store_syncs_every_directory_it_creates_into_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (_, syncs) = observed(&data.join("blobs"));
        assert_eq!(syncs.take(), vec![dir.path().to_owned(), data.clone(), data.join("blobs")]);
        // Opened again, nothing is created and nothing synced.
        let (_, again) = observed(&data.join("blobs"));
        assert_eq!(again.take(), Vec::<PathBuf>::new());
    }

    /// A shard directory found already there may have been made an instant ago by another
    /// task or process that has not synced the root yet: the first commit into it from this
    /// process syncs the root itself (before the fix only the creator did, so a concurrent
    /// document could be acknowledged with its shard's entry not yet durable).
    #[tokio::test]
    async fn a_shard_directory_made_by_another_writer_is_synced_into_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let (store, syncs) = observed(dir.path());
        let (same, _) = bodies(2, 0);
        let shard = store.path(&sha(&same[0])).parent().unwrap().to_owned();
        std::fs::create_dir(&shard).unwrap();
        syncs.take();
        pending(&store, &same[0]).await.commit().await.unwrap();
        assert_eq!(syncs.take(), vec![dir.path().to_owned(), shard.clone()], "the root, then the shard");
        // Known durable now: the next file there syncs only its directory.
        pending(&store, &same[1]).await.commit().await.unwrap();
        assert_eq!(syncs.take(), vec![shard]);
    }

    /// A failed sync of the root (the parent of a new shard directory) fails the commit, as a
    /// failed file sync does, so the document is refused before its transaction; the root is
    /// synced again by the next commit into that shard.
    #[tokio::test]
    async fn a_failed_sync_of_a_new_shards_parent_fails_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, syncs) = observed(dir.path());
        let (same, _) = bodies(2, 0);
        syncs.fail(Some(dir.path()));
        let failed = pending(&store, &same[0]).await.commit().await;
        assert!(matches!(&failed, Err(StoreError::Io(e)) if e.to_string().contains("injected")), "{failed:?}");
        syncs.fail(None);
        syncs.take();
        pending(&store, &same[1]).await.commit().await.unwrap();
        let shard = store.path(&sha(&same[1])).parent().unwrap().to_owned();
        assert_eq!(syncs.take(), vec![dir.path().to_owned(), shard]);
    }

    /// A document's attachments are committed as one batch: each distinct directory synced
    /// once, the root once for all its new shards; a file already stored has its directory
    /// synced too (another document's rename into it may not be synced yet).
    #[tokio::test]
    async fn a_documents_attachments_sync_each_directory_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, syncs) = observed(dir.path());
        let (same, other) = bodies(2, 1);
        let shard = |b: &[u8]| store.path(&sha(b)).parent().unwrap().to_owned();
        let mut batch = Vec::new();
        for body in [&same[0], &other[0], &same[1]] {
            batch.push(pending(&store, body).await);
        }
        syncs.take();
        PendingBlob::commit_all(batch).await.unwrap();
        assert_eq!(syncs.take(), vec![dir.path().to_owned(), shard(&same[0]), shard(&other[0])]);
        for body in [&same[0], &other[0], &same[1]] {
            assert_eq!(std::fs::read(store.path(&sha(body))).unwrap(), *body);
        }
        // The same attachment again: nothing moved, its directory synced.
        pending(&store, &other[0]).await.commit().await.unwrap();
        assert_eq!(syncs.take(), vec![shard(&other[0])]);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no temporary file left");
    }

    /// A batch failing at a directory sync leaves no temporary file behind.
    #[tokio::test]
    async fn a_failed_batch_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let (store, syncs) = observed(dir.path());
        let (_, other) = bodies(0, 3);
        let mut batch = Vec::new();
        for body in &other {
            batch.push(pending(&store, body).await);
        }
        syncs.fail(Some(store.path(&sha(&other[1])).parent().unwrap()));
        assert!(PendingBlob::commit_all(batch).await.is_err());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temporary files left");
    }
}
