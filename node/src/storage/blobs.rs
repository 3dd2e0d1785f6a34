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
//! **Resuming.** A large transfer ([`lienthong_protocol::wire::RESUME_MIN_BYTES`]) is received
//! into a *partial file* under `partial/`, named by the envelope's digest and the attachment's
//! index ([`PartialKey`]), instead of a temporary file: when the transfer breaks off (the
//! connection lost, the sender gone, the node stopped or killed), the bytes written stay
//! there, and the next attempt of the same document continues after them. Nothing in a partial
//! file is trusted: the next attempt hashes the kept prefix again before appending, so the
//! SHA-256 checked at the end covers every byte; a mismatch after resuming discards the file
//! ([`ReceiveError::Discarded`]) and the attempt after that starts over. Partial files are
//! bounded ([`PartialLimits`]: their total bytes and their age, both configured under
//! `limits`): older ones are evicted to make room, stale ones removed when a transfer claims
//! one and at start ([`BlobStore::sweep_partials`]). A partial file is claimed by one transfer
//! at a time, with an exclusive file lock (so across the processes of a scaled-out node too);
//! a newer attempt of the same document asks an older one still stuck on its stream in this
//! process to stop and hand the file over.
//!
//! Every write error reaches the caller. Files are written with `std::fs` on the blocking
//! pool, not through tokio's `File`: tokio's `File` keeps a failed write's error for the next
//! operation, and `sync_all` does not report it (the error is lost and the file is short);
//! it also keeps only the error's kind, not the operating system's message.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

use super::StoreError;

/// Bytes handed to the blocking pool per write: large enough that the hand-off costs little
/// per byte, small enough that many concurrent documents stay cheap in memory. A transfer
/// holds two such buffers: one filled from the stream while the other is hashed and written.
const WRITE_CHUNK: usize = 256 * 1024;

/// Bytes written between the syncs started beside a transfer's writes (see [`pump`]).
const SYNC_EVERY: u64 = 32 << 20;

/// Bytes read at a time when hashing the kept prefix of a partial file again.
const REHASH_CHUNK: usize = 1 << 20;

/// How long a newer attempt waits for an older one (asked to stop) to let go of a partial
/// file before receiving without resuming.
const HANDOVER_WAIT: Duration = Duration::from_secs(2);

/// How often the lock of a partial file is tried while waiting for its handover.
const HANDOVER_POLL: Duration = Duration::from_millis(20);

/// Bounds on the partial files kept from interrupted transfers (`limits.max_partial_bytes`
/// and `limits.max_partial_age`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialLimits {
    /// Most bytes all partial files may hold together, counting those being received at
    /// their full size; an attachment larger than this is received without resuming. 0 turns
    /// resuming off.
    pub max_bytes: u64,
    /// A partial file not written for this long is removed rather than resumed.
    pub max_age: Duration,
    /// Most partial files at once, counting those being received: a file's length alone
    /// bounds bytes, not files, and a peer that opens resumable transfers and sends a byte of
    /// each would otherwise leave a file per document for `max_age`. Oldest evicted first.
    pub max_files: usize,
}

/// Which attachment of which document a partial file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialKey {
    /// The envelope's SHA-256.
    pub envelope: [u8; 32],
    /// The attachment's index in the manifest.
    pub index: usize,
}

impl PartialKey {
    fn file_name(&self) -> String {
        format!("{}{}", self.document_prefix(), self.index)
    }

    /// What the file names of every attachment of this document start with.
    fn document_prefix(&self) -> String {
        format!("{}-", hex::encode(self.envelope))
    }
}

/// Why a resumable receive failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The store failed, or the bytes do not match the manifest (as for a plain receive).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transfer broke off; what arrived is kept for the next attempt.
    #[error(
        "attachment {name:?}: the transfer broke off after {kept} of {size} bytes ({reason}); they are kept, and the next attempt continues after them"
    )]
    Interrupted {
        /// The attachment's name.
        name: String,
        /// Bytes kept in its partial file.
        kept: u64,
        /// Its declared size.
        size: u64,
        /// What broke.
        reason: String,
    },
    /// The sender's stream broke (a connection reset or lost) before all the bytes of an
    /// attachment sent without resuming arrived: nothing is kept, the sender sends it again.
    /// Not a storage failure: the disk and the database are fine.
    #[error("attachment {name:?}: the transfer broke off before its {size} bytes arrived ({reason}); send it again")]
    Broken {
        /// The attachment's name.
        name: String,
        /// Its declared size.
        size: u64,
        /// What the stream said.
        reason: String,
    },
    /// The bytes kept from an earlier attempt and the bytes sent now do not hash to the
    /// manifest's SHA-256: the kept bytes may be the damaged ones, so they are thrown away and
    /// the next attempt sends everything (not a refusal of the document).
    #[error(
        "attachment {name:?}: the {kept} bytes kept from an interrupted attempt and the rest sent now do not match its SHA-256; the kept bytes were discarded, send it again in full"
    )]
    Discarded {
        /// The attachment's name.
        name: String,
        /// Bytes that had been kept.
        kept: u64,
    },
}

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
    /// Partial files claimed by transfers of this process: how to ask each to stop, and the
    /// size it is reserved at in the partial files' bound.
    claims: Mutex<HashMap<PathBuf, (Arc<Notify>, u64)>>,
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

    /// Syncs a partial file's bytes before their length is trusted or reported (its `path`
    /// names it to the test hook).
    fn sync_file(&self, file: &std::fs::File, path: &Path) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(hook) = &self.hook {
            hook(path)?;
        }
        #[cfg(not(test))]
        let _ = path;
        file.sync_data()
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
        let partial = root.join("partial");
        durable.create_dir_all(&partial).map_err(|source| StoreError::Dir { path: partial.clone(), source })?;
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
    ) -> Result<PendingBlob, ReceiveError> {
        let tmp = self.root.join("tmp").join(format!("{}-{}", hex::encode(&sha256[..8]), unique_suffix()));
        // From here on, the temporary file goes away with `pending` unless committed.
        let pending = PendingBlob {
            tmp: Some(tmp.clone()),
            target: self.path(sha256),
            size,
            durable: Arc::clone(&self.durable),
            claim: None,
        };
        if let Ok(small) = usize::try_from(size)
            && small <= WRITE_CHUNK
        {
            // One chunk (most attachments): read whole and checked first, then created,
            // written and synced in one task on the blocking pool instead of three, and an
            // attachment refused for its bytes never creates a file.
            let bytes = read_checked(name, reader, small, sha256).await?;
            let path = tmp.clone();
            let on_disk = blocking(move || {
                let mut file = std::fs::File::create(path)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                Ok(file.metadata()?.len())
            })
            .await
            .map_err(StoreError::Io)?;
            check_size(name, &tmp, size, on_disk)?;
            return Ok(pending);
        }
        let create = tmp.clone();
        let file = blocking(move || std::fs::File::create(create)).await.map_err(StoreError::Io)?;
        let sink = Sink::new(file, ring::digest::Context::new(&ring::digest::SHA256), 0);
        let (sink, pumped) = pump(reader, sink, size, None).await;
        if let Err(broke) = pumped {
            return Err(received_error(name, size, broke));
        }
        let Some(Sink { file, ctx, .. }) = sink else {
            return Err(StoreError::Io(std::io::Error::other("the attachment's writer was lost")).into());
        };
        if ctx.finish().as_ref() != sha256 {
            return Err(
                attachment_error(name, "bytes do not match the SHA-256 in the manifest (altered in transit)").into()
            );
        }
        make_durable(name, file, &tmp, size).await?;
        Ok(pending)
    }

    /// Removes partial files not written for longer than `limits.max_age` (before `now`), and
    /// all of them when resuming is off: what a node does at start.
    pub fn sweep_partials(&self, limits: &PartialLimits, now: SystemTime) {
        let dir = self.root.join("partial");
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let claimed = self.durable.claims.lock().map(|c| c.keys().cloned().collect::<HashSet<_>>()).unwrap_or_default();
        for entry in entries.flatten() {
            let path = entry.path();
            if claimed.contains(&path) {
                continue;
            }
            let stale = entry.metadata().and_then(|m| m.modified()).map_or(true, |t| expired(t, limits, now));
            if (stale || limits.max_bytes == 0) && unlocked(&path) {
                tracing::info!(partial = %path.display(), "removing the partial file of an interrupted transfer: too old to resume");
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Claims the partial file of one attachment (of `size` bytes) for a transfer that may
    /// resume: `None` when it may not (resuming off, the attachment larger than the bound, or
    /// another transfer holding the file past [`HANDOVER_WAIT`]); then receive with
    /// [`BlobStore::receive`]. A file too old, longer than the attachment or not fitting the
    /// bound any more starts over empty; other partial files are removed when stale and, oldest
    /// first, when this one needs their room.
    pub async fn claim_partial(
        &self,
        key: PartialKey,
        size: u64,
        limits: &PartialLimits,
        now: SystemTime,
    ) -> Result<Option<Partial>, StoreError> {
        if limits.max_bytes == 0 || size > limits.max_bytes {
            return Ok(None);
        }
        let path = self.root.join("partial").join(key.file_name());
        // An older attempt of this document still receiving here is stale: the sender has
        // given up on it. Ask it to stop, and wait for it to let go of the file.
        let older = self.durable.claims.lock().ok().and_then(|c| c.get(&path).map(|(stop, _)| Arc::clone(stop)));
        if let Some(stop) = older {
            stop.notify_one();
        }
        let waited_since = tokio::time::Instant::now();
        let file = loop {
            let open = path.clone();
            if let Some(file) = blocking(move || lock_partial(&open)).await? {
                break file;
            }
            if waited_since.elapsed() >= HANDOVER_WAIT {
                tracing::warn!(partial = %path.display(), "another transfer holds this partial file; receiving without resuming");
                return Ok(None);
            }
            tokio::time::sleep(HANDOVER_POLL).await;
        };
        let stop = Arc::new(Notify::new());
        // Registered before anything else can fail, so the claim's guard always unregisters it.
        if let Ok(mut claims) = self.durable.claims.lock() {
            claims.insert(path.clone(), (Arc::clone(&stop), size));
        }
        let claim =
            Claim { file: Some(file), path: path.clone(), durable: Arc::clone(&self.durable), stop: Arc::clone(&stop) };
        let (limits, durable, dir) = (*limits, Arc::clone(&self.durable), self.root.join("partial"));
        blocking(move || {
            let mut claim = claim;
            let file = claim.file.as_mut().ok_or_else(|| std::io::Error::other("claim without its file"))?;
            let meta = file.metadata()?;
            let kept = meta.len();
            if kept > size || meta.modified().map_or(true, |t| expired(t, &limits, now)) {
                file.set_len(0)?;
            }
            if !make_room(&dir, key, size, &limits, now, &durable)? {
                tracing::warn!(partial = %path.display(), "no room in limits.max_partial_bytes and max_partial_files for this transfer; receiving without resuming");
                if let Some(file) = &claim.file {
                    remove_own(file, &path);
                }
                return Ok(None);
            }
            let file = claim.file.as_ref().ok_or_else(|| std::io::Error::other("claim without its file"))?;
            let kept = file.metadata()?.len();
            // The length is the sender's offset: synced first, so that what it counts cannot
            // be lost to a crash after the sender skipped it (an attempt killed or timed out
            // mid-write left it unsynced). A file whose sync fails cannot be trusted at all:
            // removed, while still locked.
            if kept > 0
                && let Err(e) = durable.sync_file(file, &path)
            {
                remove_own(file, &path);
                return Err(e);
            }
            Ok(Some(Partial { claim, kept, stop }))
        })
        .await
        .map_err(StoreError::Io)
    }

    /// Receives the rest of an attachment into its claimed partial file: the kept prefix is
    /// hashed again from disk, the stream (which starts at [`Partial::kept`]) appended, and
    /// the whole checked against `sha256` and made durable as [`BlobStore::receive`] does.
    /// When the stream breaks off, the bytes that arrived are synced and kept
    /// ([`ReceiveError::Interrupted`]); a mismatch discards the file.
    pub async fn receive_resumed<R: AsyncRead + Unpin>(
        &self,
        name: &str,
        reader: &mut R,
        size: u64,
        sha256: &[u8; 32],
        partial: Partial,
    ) -> Result<PendingBlob, ReceiveError> {
        let Partial { mut claim, kept, stop } = partial;
        let path = claim.path.clone();
        let Some(mut file) = claim.file.take() else {
            return Err(StoreError::Io(std::io::Error::other("claim without its file")).into());
        };
        // Nothing is trusted that was not hashed: the kept prefix is read back and hashed.
        let at = path.clone();
        let rehashed = blocking(move || {
            let read_back = |file: &mut std::fs::File| {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                file.seek(std::io::SeekFrom::Start(0))?;
                let mut buf = vec![0u8; REHASH_CHUNK.min(usize::try_from(kept).unwrap_or(REHASH_CHUNK)).max(1)];
                let mut left = kept;
                while left > 0 {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the partial file shrank"));
                    }
                    ctx.update(&buf[..n]);
                    left -= n as u64;
                }
                file.seek(std::io::SeekFrom::Start(kept))?;
                Ok(ctx)
            };
            match read_back(&mut file) {
                Ok(ctx) => Ok((file, ctx)),
                Err(e) => {
                    remove_own(&file, &at);
                    Err(e)
                }
            }
        })
        .await;
        let (file, ctx) = match rehashed {
            Ok(found) => found,
            Err(e) => return Err(StoreError::Io(e).into()),
        };
        let sink = Sink::new(file, ctx, kept).removing_on_failure(path.clone());
        let (sink, pumped) = pump(reader, sink, size - kept, Some(&stop)).await;
        let Some(Sink { file, ctx, .. }) = sink else {
            // A blocking task was lost with the file: nothing of this attempt can be trusted,
            // but the file is not ours to tell apart from a newer attempt's any more; the next
            // attempt hashes whatever it finds.
            return Err(StoreError::Io(std::io::Error::other("the attachment's writer was lost")).into());
        };
        let reason = match pumped {
            Ok(()) => None,
            Err(Broke::Disk(e)) => {
                // Full or failing disk: the partial file is given up to free its room.
                remove_own(&file, &path);
                return Err(StoreError::Io(e).into());
            }
            Err(Broke::Short(missing)) => Some(format!("the stream ended {missing} bytes short")),
            Err(Broke::Stream(e)) => Some(e.to_string()),
            Err(Broke::Stopped) => Some("a newer attempt of the same document took over".to_owned()),
        };
        if let Some(reason) = reason {
            // The last durable offset: what arrived is synced before the file is let go. A
            // failed sync leaves nothing to trust (the kernel may report a lost write once
            // only, and then serve the lost bytes from its cache as if written), and an empty
            // file nothing to resume: either is removed while its lock is still held.
            let (durable, at) = (Arc::clone(&self.durable), path.clone());
            let kept = blocking(move || {
                let kept = match durable.sync_file(&file, &at).and_then(|()| file.metadata()) {
                    Ok(meta) => meta.len(),
                    Err(e) => {
                        tracing::warn!(partial = %at.display(), error = %e, "cannot make the bytes of a broken-off transfer durable; its partial file is removed");
                        0
                    }
                };
                if kept == 0 {
                    remove_own(&file, &at);
                }
                Ok(kept)
            })
            .await
            .unwrap_or(0);
            tracing::info!(attachment = %name, kept, size, reason = %reason, "transfer broke off; its bytes are kept to resume");
            return Err(ReceiveError::Interrupted { name: name.to_owned(), kept, size, reason });
        }
        if ctx.finish().as_ref() != sha256 {
            remove_own(&file, &path);
            if kept > 0 {
                tracing::warn!(attachment = %name, kept, "the kept prefix of a resumed transfer did not match; discarded");
                return Err(ReceiveError::Discarded { name: name.to_owned(), kept });
            }
            return Err(
                attachment_error(name, "bytes do not match the SHA-256 in the manifest (altered in transit)").into()
            );
        }
        let (at, name) = (path.clone(), name.to_owned());
        let on_disk = blocking(move || {
            let len = file.sync_all().and_then(|()| file.metadata()).map(|m| m.len());
            match len {
                Ok(len) if len == size => Ok(file),
                Ok(len) => {
                    remove_own(&file, &at);
                    Err(std::io::Error::other(format!(
                        "attachment {name:?}: wrote {size} bytes but {} holds {len}",
                        at.display()
                    )))
                }
                Err(e) => {
                    remove_own(&file, &at);
                    Err(e)
                }
            }
        })
        .await;
        let file = on_disk.map_err(StoreError::Io)?;
        // The lock is held until the file is moved into the store (or let go).
        claim.file = Some(file);
        Ok(PendingBlob {
            tmp: Some(path),
            target: self.path(sha256),
            size,
            durable: Arc::clone(&self.durable),
            claim: Some(claim),
        })
    }

    /// Opens a stored blob for reading.
    pub async fn open_blob(&self, sha256: &[u8; 32]) -> Result<tokio::fs::File, StoreError> {
        Ok(tokio::fs::File::open(self.path(sha256)).await?)
    }
}

/// A verified attachment waiting, durable, in a temporary file (or its partial file).
#[derive(Debug)]
pub struct PendingBlob {
    tmp: Option<PathBuf>,
    target: PathBuf,
    size: u64,
    durable: Arc<Durable>,
    /// For a partial file: its claim. Dropped uncommitted, the complete, checked file stays
    /// as a partial file (another attachment of the document may have broken off), and the
    /// next attempt finds nothing to send for it.
    claim: Option<Claim>,
}

/// A partial file claimed by one transfer (see [`BlobStore::claim_partial`]).
#[derive(Debug)]
pub struct Partial {
    claim: Claim,
    kept: u64,
    stop: Arc<Notify>,
}

impl Partial {
    /// Bytes kept from earlier attempts: where the sender is to continue.
    pub fn kept(&self) -> u64 {
        self.kept
    }
}

/// Holds a partial file: its open, exclusively locked file (the lock goes with it) and its
/// place among this process's claims.
#[derive(Debug)]
struct Claim {
    file: Option<std::fs::File>,
    path: PathBuf,
    durable: Arc<Durable>,
    /// Tells this claim's entry among the claims from a newer one's on the same path.
    stop: Arc<Notify>,
}

impl Drop for Claim {
    /// Unregisters this claim (not a newer one that took the path over once this one let go
    /// of the file), and removes its file if it is still held and empty: a transfer that
    /// stopped before its first byte leaves nothing behind.
    fn drop(&mut self) {
        if let Some(file) = self.file.take()
            && file.metadata().is_ok_and(|m| m.len() == 0)
        {
            remove_own(&file, &self.path);
        }
        if let Ok(mut claims) = self.durable.claims.lock()
            && claims.get(&self.path).is_some_and(|(stop, _)| Arc::ptr_eq(stop, &self.stop))
        {
            claims.remove(&self.path);
        }
    }
}

/// Where a stream's bytes go: the file, and the hash of every byte written to it.
///
/// Whole aligned chunks are written with `O_DIRECT` (set on the handle with `fcntl`), from the
/// chunk to the disk, past the page cache; the rest (a tail, a chunk after a resumed
/// transfer's unaligned prefix) through the page cache as before. A file written once and then
/// only synced and renamed gains nothing from being cached, and filling the cache costs: on
/// the 2-vCPU benchmark VM, a copy into never-touched pages takes 2–2.8 s of CPU a GiB against
/// 0.2 s written direct (`dd`, files kept), over half of a receiving node's CPU in a 1 GiB
/// transfer. Durability does not change: the syncs stay (they also flush the disk's cache and
/// the file's length). A filesystem that refuses `O_DIRECT` (tmpfs) is written through the
/// cache.
struct Sink {
    file: std::fs::File,
    ctx: ring::digest::Context,
    /// Where the next byte goes in the file.
    offset: u64,
    /// `O_DIRECT` is set on the handle.
    direct: bool,
    /// `O_DIRECT` may be tried (not refused by the filesystem).
    may_direct: bool,
    /// The partial file this sink writes, removed when a write or a sync of it fails: its
    /// bytes can no longer be trusted, and no later attempt may resume after them, even when
    /// the failure happens in a task no one waits for any more (a transfer dropped on its
    /// time limit).
    partial: Option<PathBuf>,
}

/// The alignment `O_DIRECT` needs of buffers, lengths and offsets (the largest logical block
/// size in use; 512-byte devices take it too).
const DIRECT_ALIGN: usize = 4096;

impl Sink {
    /// A sink writing from `offset` on, the handle's position.
    fn new(file: std::fs::File, ctx: ring::digest::Context, offset: u64) -> Sink {
        Sink { file, ctx, offset, direct: false, may_direct: true, partial: None }
    }

    /// The sink of the partial file at `path` (see [`Sink::partial`]).
    fn removing_on_failure(self, path: PathBuf) -> Sink {
        Sink { partial: Some(path), ..self }
    }

    /// Removes the partial file `file` after a failed write or sync (see [`Sink::partial`]).
    fn failed(file: &std::fs::File, partial: Option<&Path>, e: std::io::Error) -> std::io::Error {
        if let Some(path) = partial {
            tracing::warn!(partial = %path.display(), error = %e, "a write to a partial file failed; the file is removed");
            remove_own(file, path);
        }
        e
    }

    /// Hashes and writes `data` at the handle's position, direct when it can be.
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.ctx.update(data);
        let aligned = self.may_direct
            && self.offset.is_multiple_of(DIRECT_ALIGN as u64)
            && data.len().is_multiple_of(DIRECT_ALIGN)
            && data.as_ptr().align_offset(DIRECT_ALIGN) == 0;
        let written = if aligned != self.direct { self.set_direct(aligned) } else { Ok(()) };
        written.and_then(|()| self.put(data)).map_err(|e| Sink::failed(&self.file, self.partial.as_deref(), e))
    }

    /// Writes all of `data` at the handle's position. A direct write the device refuses for
    /// its alignment (`EINVAL`: a filesystem that took the flag but has blocks larger than
    /// [`DIRECT_ALIGN`]) is done again through the cache, and so is every later one.
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            match self.file.write(&data[done..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    done += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    self.end_direct()?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sets or clears `O_DIRECT`; a refusal to set it means never again for this file, a
    /// refusal to clear it is an error (an unaligned write would fail).
    fn set_direct(&mut self, on: bool) -> std::io::Result<()> {
        use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
        let set = fcntl_getfl(&self.file).and_then(|flags| {
            fcntl_setfl(&self.file, if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT })
        });
        match set {
            Ok(()) => self.direct = on,
            Err(_) if on => self.may_direct = false,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Back to writes through the cache: what the file's later users expect of its handle.
    fn end_direct(&mut self) -> std::io::Result<()> {
        self.may_direct = false;
        if self.direct { self.set_direct(false) } else { Ok(()) }
    }
}

/// A buffer whose usable part starts on a [`DIRECT_ALIGN`] boundary (allocated that much
/// larger), so that whole chunks can be written with `O_DIRECT`.
struct Chunk {
    bytes: Vec<u8>,
    start: usize,
}

impl Chunk {
    fn new(len: usize) -> Chunk {
        let bytes = vec![0u8; len + DIRECT_ALIGN];
        // Moving the `Vec` does not move its heap buffer: the offset stays right.
        let start = bytes.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        Chunk { bytes, start }
    }

    /// The usable length.
    fn len(&self) -> usize {
        self.bytes.len() - DIRECT_ALIGN
    }

    fn as_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        &mut self.bytes[self.start..self.start + len]
    }

    fn filled(&self, n: usize) -> &[u8] {
        &self.bytes[self.start..self.start + n]
    }
}

/// Why [`pump`] stopped short.
enum Broke {
    /// The stream ended early; this many bytes are missing.
    Short(u64),
    /// Reading the stream failed.
    Stream(std::io::Error),
    /// Writing the file failed.
    Disk(std::io::Error),
    /// Asked to stop (a newer attempt took over).
    Stopped,
}

/// Fills `buf[..want]` from `reader`: the bytes read, and why it stopped early if it did.
/// The stop signal is waited on by one future for the whole buffer, not one per read (a
/// stream gives a packet's worth of bytes per read: hundreds of reads per buffer).
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    want: usize,
    stop: Option<&Notify>,
) -> (usize, Option<Broke>) {
    let stopped = async {
        match stop {
            Some(stop) => stop.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopped);
    let mut filled = 0;
    while filled < want {
        let n = tokio::select! {
            biased;
            n = reader.read(&mut buf[filled..want]) => n,
            () = &mut stopped => return (filled, Some(Broke::Stopped)),
        };
        match n {
            Ok(0) => return (filled, Some(Broke::Short((want - filled) as u64))),
            Ok(n) => filled += n,
            Err(e) => return (filled, Some(Broke::Stream(e))),
        }
    }
    (filled, None)
}

/// Streams `len` bytes from `reader` into the sink, two buffers at a time: while one is
/// filled from the stream, the other is hashed and written on the blocking pool. Every
/// [`SYNC_EVERY`] bytes written, a sync of what was written so far starts beside the writes
/// (on a second handle of the file), so the final sync has only the tail left to do and a
/// broken-off transfer has most of its bytes durable. Whatever was read before a failure is
/// written too (it is what a resumed transfer keeps). The sink comes back unless a blocking
/// task was lost.
async fn pump<R: AsyncRead + Unpin>(
    reader: &mut R,
    sink: Sink,
    len: u64,
    stop: Option<&Notify>,
) -> (Option<Sink>, Result<(), Broke>) {
    type Written = (Sink, Chunk, std::io::Result<()>);
    let chunk = WRITE_CHUNK.min(usize::try_from(len).unwrap_or(WRITE_CHUNK)).max(1);
    let mut sink = Some(sink);
    let mut spare: Option<Chunk> = Some(Chunk::new(chunk));
    let mut writing: Option<tokio::task::JoinHandle<Written>> = None;
    let mut syncing: Option<tokio::task::JoinHandle<std::io::Result<()>>> = None;
    let mut unsynced = 0u64;
    let mut left = len;
    let mut outcome = Ok(());
    // Takes back the sink and the buffer of the write in progress, if any.
    async fn settle(
        writing: &mut Option<tokio::task::JoinHandle<Written>>,
        sink: &mut Option<Sink>,
        spare: &mut Option<Chunk>,
    ) -> Result<(), Broke> {
        let Some(task) = writing.take() else { return Ok(()) };
        match task.await {
            Ok((s, buf, written)) => {
                *sink = Some(s);
                *spare = Some(buf);
                written.map_err(Broke::Disk)
            }
            Err(e) => Err(Broke::Disk(std::io::Error::other(e))),
        }
    }
    // Waits for the background sync, if any.
    async fn synced(syncing: &mut Option<tokio::task::JoinHandle<std::io::Result<()>>>) -> Result<(), Broke> {
        match syncing.take() {
            None => Ok(()),
            Some(task) => task.await.map_err(std::io::Error::other).and_then(|r| r).map_err(Broke::Disk),
        }
    }
    while left > 0 {
        let mut buf = spare.take().unwrap_or_else(|| Chunk::new(chunk));
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let (filled, broke) = match fill(reader, buf.as_mut(), want, stop).await {
            // Missing: the rest of the whole transfer, not of this chunk only.
            (filled, Some(Broke::Short(_))) => (filled, Some(Broke::Short(left - filled as u64))),
            other => other,
        };
        if let Err(e) = settle(&mut writing, &mut sink, &mut spare).await {
            return (sink, Err(e));
        }
        if unsynced >= SYNC_EVERY && syncing.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
            if let Err(e) = synced(&mut syncing).await {
                return (sink, Err(e));
            }
            if let Some((handle, partial)) =
                sink.as_ref().and_then(|s| Some((s.file.try_clone().ok()?, s.partial.clone())))
            {
                syncing = Some(tokio::task::spawn_blocking(move || {
                    handle.sync_data().map_err(|e| Sink::failed(&handle, partial.as_deref(), e))
                }));
                unsynced = 0;
            }
        }
        if filled > 0 {
            let Some(mut s) = sink.take() else { return (None, Err(Broke::Disk(std::io::Error::other("no sink")))) };
            writing = Some(tokio::task::spawn_blocking(move || {
                let written = s.write(buf.filled(filled));
                (s, buf, written)
            }));
            left -= filled as u64;
            unsynced += filled as u64;
        }
        if let Some(broke) = broke {
            outcome = Err(broke);
            break;
        }
    }
    if let Err(e) = settle(&mut writing, &mut sink, &mut spare).await {
        return (sink, Err(e));
    }
    if let Err(e) = synced(&mut syncing).await {
        return (sink, Err(e));
    }
    if let Some(Err(e)) = sink.as_mut().map(Sink::end_direct) {
        return (sink, Err(Broke::Disk(e)));
    }
    (sink, outcome)
}

/// Reads exactly `size` bytes from `reader` into memory and checks them against `sha256`:
/// an attachment of one buffer, checked before anything is written anywhere.
pub(crate) async fn read_checked<R: AsyncRead + Unpin>(
    name: &str,
    reader: &mut R,
    size: usize,
    sha256: &[u8; 32],
) -> Result<Vec<u8>, ReceiveError> {
    let mut bytes = vec![0u8; size];
    if let (_, Some(broke)) = fill(reader, &mut bytes, size, None).await {
        return Err(received_error(name, size as u64, broke));
    }
    if ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref() != sha256 {
        return Err(
            attachment_error(name, "bytes do not match the SHA-256 in the manifest (altered in transit)").into()
        );
    }
    Ok(bytes)
}

/// Flushes and syncs a received file, then checks it holds exactly `size` bytes on disk: a
/// write the kernel took only in part shows here at the latest.
async fn make_durable(name: &str, mut file: std::fs::File, path: &Path, size: u64) -> Result<(), StoreError> {
    let on_disk = blocking(move || {
        file.flush()?;
        file.sync_all()?;
        Ok(file.metadata()?.len())
    })
    .await?;
    check_size(name, path, size, on_disk)
}

/// A write the kernel took only in part shows in the file's length on disk.
fn check_size(name: &str, path: &Path, size: u64, on_disk: u64) -> Result<(), StoreError> {
    if on_disk != size {
        return Err(StoreError::Io(std::io::Error::other(format!(
            "attachment {name:?}: wrote {size} bytes but {} holds {on_disk}",
            path.display()
        ))));
    }
    Ok(())
}

/// The error of an attachment whose bytes could not all be received and written: a stream
/// that ended early is the sender's fault, one that broke is the connection's (not a storage
/// failure: the sender sends again), and only a failed write is the store's.
fn received_error(name: &str, size: u64, broke: Broke) -> ReceiveError {
    match broke {
        Broke::Short(missing) => {
            attachment_error(name, format!("stream ended {missing} bytes short of the declared {size}")).into()
        }
        Broke::Stream(e) => ReceiveError::Broken { name: name.to_owned(), size, reason: e.to_string() },
        Broke::Disk(e) => StoreError::Io(e).into(),
        Broke::Stopped => StoreError::Io(std::io::Error::other("stopped")).into(),
    }
}

/// Opens (creating) the partial file at `path` and takes its exclusive lock: `None` when
/// another transfer holds it. The file locked is the one at `path` (not one renamed away
/// into the store by its previous holder meanwhile).
fn lock_partial(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(at) if at.ino() == held.ino() && at.dev() == held.dev() => Ok(Some(file)),
        // Moved or removed between the open and the lock: try again.
        _ => Ok(None),
    }
}

/// Removes the partial file at `path` if the path still names `file` (the same inode): a
/// partial is removed by whichever task of its transfer finds it untrustworthy, sometimes
/// after another task of the same transfer removed it already, and a newer attempt may have
/// created and locked a new file at the path by then, which must stay.
fn remove_own(file: &std::fs::File, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(held), Ok(at)) = (file.metadata(), std::fs::metadata(path))
        && (held.ino(), held.dev()) == (at.ino(), at.dev())
    {
        let _ = std::fs::remove_file(path);
    }
}

/// No transfer (of any process) holds the partial file at `path`.
fn unlocked(path: &Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| f.try_lock().is_ok())
}

/// A partial file last written at `modified` is past `limits.max_age` at `now`.
fn expired(modified: SystemTime, limits: &PartialLimits, now: SystemTime) -> bool {
    now.duration_since(modified).is_ok_and(|age| age > limits.max_age)
}

/// Keeps the partial files within `limits.max_bytes` and `limits.max_files` with `key`'s
/// (claimed, reserved at `size`) among them: stale files not claimed here are removed, then
/// the oldest others until `size` and `own` fit. False when they cannot (other claims of
/// this process hold the room, or other processes' transfers the files).
fn make_room(
    dir: &Path,
    key: PartialKey,
    size: u64,
    limits: &PartialLimits,
    now: SystemTime,
    durable: &Durable,
) -> std::io::Result<bool> {
    let own_path = dir.join(key.file_name());
    let own = own_path.as_path();
    let claims: HashMap<PathBuf, u64> = durable
        .claims
        .lock()
        .map(|c| c.iter().filter(|(p, _)| p.as_path() != own).map(|(p, (_, size))| (p.clone(), *size)).collect())
        .unwrap_or_default();
    let mut total: u64 = size.saturating_add(claims.values().sum());
    let mut files = 1 + claims.len();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path == own || claims.contains_key(&path) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if expired(modified, limits, now) {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        total = total.saturating_add(meta.len());
        files += 1;
        others.push((modified, meta.len(), path));
    }
    others.sort();
    // The same document's other attachments are not evicted for it: its attachments are
    // claimed one after another, and one evicted here would be claimed again next, empty.
    let document = key.document_prefix();
    let same_document =
        |path: &Path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&document));
    for (_, len, path) in others {
        if total <= limits.max_bytes && files <= limits.max_files {
            break;
        }
        if same_document(&path) {
            continue;
        }
        // One another process of a scaled-out node is receiving into stays.
        if !unlocked(&path) {
            continue;
        }
        tracing::info!(partial = %path.display(), "evicting the partial file of an interrupted transfer to keep within limits.max_partial_bytes and max_partial_files");
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            files -= 1;
        }
    }
    Ok(total <= limits.max_bytes && files <= limits.max_files)
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
        if let Some(tmp) = self.tmp.take()
            && self.claim.is_none()
        {
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

    /// A sink on a new file `f` in `dir`, and the file's path.
    fn sink_in(dir: &tempfile::TempDir) -> (PathBuf, Sink) {
        let path = dir.path().join("f");
        let file = std::fs::File::create(&path).unwrap();
        (path, Sink::new(file, ring::digest::Context::new(&ring::digest::SHA256), 0))
    }

    #[test]
    fn whole_aligned_chunks_go_direct_and_the_rest_through_the_cache_with_every_byte_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut sink) = sink_in(&dir);
        let mut chunk = Chunk::new(4 * DIRECT_ALIGN);
        let mut expected = Vec::new();
        for (round, n) in [4 * DIRECT_ALIGN, 2 * DIRECT_ALIGN, 100, 4 * DIRECT_ALIGN].into_iter().enumerate() {
            for (i, b) in chunk.as_mut().iter_mut().enumerate() {
                *b = (i * 7 + round) as u8;
            }
            expected.extend_from_slice(chunk.filled(n));
            sink.write(chunk.filled(n)).unwrap();
            match round {
                // Aligned offset, length and buffer: direct, where the filesystem takes it
                // (this machine's ext4 does; tmpfs does not).
                0 | 1 => assert!(sink.direct || !sink.may_direct, "round {round}"),
                // An unaligned tail, then a chunk at the unaligned offset it left: the cache.
                _ => assert!(!sink.direct, "round {round}"),
            }
        }
        assert_eq!(sink.offset, expected.len() as u64);
        sink.end_direct().unwrap();
        assert!(!sink.direct);
        let Sink { mut file, ctx, .. } = sink;
        // The handle writes through the cache again (a write at an unaligned offset works).
        file.write_all(b"tail").unwrap();
        expected.extend_from_slice(b"tail");
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert_eq!(ctx.finish().as_ref(), sha(&expected[..expected.len() - 4]));
    }

    #[test]
    fn a_direct_write_the_device_refuses_is_written_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut sink) = sink_in(&dir);
        sink.set_direct(true).unwrap();
        if !sink.direct {
            return; // this filesystem takes no O_DIRECT: nothing to refuse
        }
        // An unaligned length under O_DIRECT: refused as a device with larger blocks would.
        let data: Vec<u8> = (0..DIRECT_ALIGN + 3).map(|i| (i % 199) as u8).collect();
        sink.put(&data).unwrap();
        assert!(!sink.direct && !sink.may_direct, "the rest through the cache");
        let chunk = Chunk::new(DIRECT_ALIGN);
        sink.write(chunk.filled(DIRECT_ALIGN)).unwrap();
        assert!(!sink.direct);
        drop(sink);
        let mut expected = data;
        expected.extend_from_slice(&[0u8; DIRECT_ALIGN]);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn a_blob_of_many_chunks_with_an_unaligned_tail_is_stored_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body: Vec<u8> = (0..5 * WRITE_CHUNK + 4_097).map(|i| (i % 253) as u8).collect();
        let hash = sha(&body);
        // Through a reader that gives odd-sized pieces, as a stream does.
        let mut reader = tokio::io::BufReader::with_capacity(1_337, body.as_slice());
        let pending = store.receive("a.pdf", &mut reader, body.len() as u64, &hash).await.unwrap();
        pending.commit().await.unwrap();
        assert_eq!(std::fs::read(store.path(&hash)).unwrap(), body);
    }

    #[tokio::test]
    async fn a_short_stream_or_wrong_bytes_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        // Read whole in one chunk, and streamed through several.
        for size in [14, 3 * WRITE_CHUNK + 5] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let hash = sha(&body);
            let short = store.receive("a.pdf", &mut &body[..size - 3], size as u64, &hash).await;
            assert!(matches!(short, Err(ReceiveError::Store(StoreError::Attachment { .. }))), "{size}: {short:?}");
            let mut altered = body.clone();
            altered[size - 1] ^= 1;
            let altered = store.receive("a.pdf", &mut altered.as_slice(), size as u64, &hash).await;
            assert!(matches!(altered, Err(ReceiveError::Store(StoreError::Attachment { .. }))), "{size}: {altered:?}");
            assert!(!store.path(&hash).exists());
            assert_eq!(
                std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
                0,
                "{size}: temporary files removed"
            );
            let pending = store.receive("a.pdf", &mut body.as_slice(), size as u64, &hash).await.unwrap();
            pending.commit().await.unwrap();
            assert_eq!(std::fs::read(store.path(&hash)).unwrap(), body, "{size}");
        }
    }

    /// A connection that breaks mid-attachment is the connection's failure, not the store's
    /// (it used to come back as a storage I/O error, which intake counts as a storage failure
    /// and the node's health reports); nothing is left behind, and the sender sends again.
    #[tokio::test]
    async fn a_broken_stream_is_not_a_storage_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        for size in [2_000usize, 3 * WRITE_CHUNK] {
            let body: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
            let mut stream = Breaks { data: body[..size / 2].to_vec(), at: 0, hang: false };
            let received = store.receive("a.pdf", &mut stream, size as u64, &sha(&body)).await;
            match received {
                Err(ReceiveError::Broken { size: declared, .. }) => assert_eq!(declared, size as u64),
                other => panic!("{size} bytes: {other:?}"),
            }
            assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "{size}: temporary file left");
        }
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
    /// parent: the data directory's, the root's, `tmp/`'s and `partial/`'s.
    #[test]
    fn a_new_store_syncs_every_directory_it_creates_into_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (_, syncs) = observed(&data.join("blobs"));
        let blobs = data.join("blobs");
        assert_eq!(syncs.take(), vec![dir.path().to_owned(), data.clone(), blobs.clone(), blobs]);
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

    /// A reader that gives `data`, then fails (as a lost connection does) or, with `hang`,
    /// never answers again (a stream stuck on a dead path).
    struct Breaks {
        data: Vec<u8>,
        at: usize,
        hang: bool,
    }

    impl AsyncRead for Breaks {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let this = &mut *self;
            if this.at == this.data.len() {
                if this.hang {
                    return std::task::Poll::Pending;
                }
                return std::task::Poll::Ready(Err(std::io::Error::other("connection lost")));
            }
            let n = buf.remaining().min(this.data.len() - this.at).min(100_000);
            buf.put_slice(&this.data[this.at..this.at + n]);
            this.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A partial file of `len` bytes for attachment `index`, last written at `modified`.
    fn kept_partial(partial: &Path, key: PartialKey, len: usize, modified: SystemTime) -> PathBuf {
        let path = partial.join(key.file_name());
        std::fs::write(&path, vec![1u8; len]).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
        path
    }

    fn body_of(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    const LIMITS: PartialLimits =
        PartialLimits { max_bytes: 1 << 30, max_age: Duration::from_secs(3600), max_files: 64 };

    fn key(index: usize) -> PartialKey {
        PartialKey { envelope: [9; 32], index }
    }

    /// The first attachment of document `n` (documents 0 to 8; [`key`] is document 9's).
    fn doc(n: usize) -> PartialKey {
        PartialKey { envelope: [n as u8; 32], index: 0 }
    }

    /// A store in a fresh directory, and its directory of partial files.
    fn partial_store() -> (tempfile::TempDir, BlobStore, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let partial = dir.path().join("partial");
        (dir, store, partial)
    }

    /// Claims, expecting a partial file.
    async fn claim(store: &BlobStore, key: PartialKey, size: usize) -> Partial {
        store.claim_partial(key, size as u64, &LIMITS, SystemTime::now()).await.unwrap().expect("resumable")
    }

    /// A transfer that breaks off keeps what arrived (synced); the next attempt is told that
    /// offset, hashes the kept bytes again and takes only the rest.
    #[tokio::test]
    async fn a_broken_transfer_resumes_from_the_kept_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = body_of(3_000_000);
        let hash = sha(&body);
        let first = claim(&store, key(0), body.len()).await;
        assert_eq!(first.kept(), 0);
        let mut reader = Breaks { data: body[..1_234_567].to_vec(), at: 0, hang: false };
        let broke = store.receive_resumed("a.pdf", &mut reader, body.len() as u64, &hash, first).await;
        assert!(matches!(broke, Err(ReceiveError::Interrupted { kept: 1_234_567, .. })), "{broke:?}");
        let second = claim(&store, key(0), body.len()).await;
        assert_eq!(second.kept(), 1_234_567);
        let pending = store.receive_resumed("a.pdf", &mut &body[1_234_567..], body.len() as u64, &hash, second).await;
        pending.unwrap().commit().await.unwrap();
        assert_eq!(std::fs::read(store.path(&hash)).unwrap(), body);
        assert_eq!(
            std::fs::read_dir(dir.path().join("partial")).unwrap().count(),
            0,
            "the partial file moved into place"
        );
        // The next transfer of the same document starts from nothing.
        assert_eq!(claim(&store, key(0), body.len()).await.kept(), 0);
    }

    /// Kept bytes that were damaged meanwhile do not reach the store: the whole is hashed, the
    /// mismatch discards the partial file, and the attempt after it starts over.
    #[tokio::test]
    async fn a_damaged_partial_file_is_discarded_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = body_of(2_000_000);
        let hash = sha(&body);
        let first = claim(&store, key(1), body.len()).await;
        let mut reader = Breaks { data: body[..1_000_000].to_vec(), at: 0, hang: false };
        assert!(store.receive_resumed("a.pdf", &mut reader, body.len() as u64, &hash, first).await.is_err());
        let path = dir.path().join("partial").join(key(1).file_name());
        let mut kept = std::fs::read(&path).unwrap();
        kept[500_000] ^= 0x01;
        std::fs::write(&path, &kept).unwrap();
        let second = claim(&store, key(1), body.len()).await;
        assert_eq!(second.kept(), 1_000_000);
        let resumed = store.receive_resumed("a.pdf", &mut &body[1_000_000..], body.len() as u64, &hash, second).await;
        assert!(matches!(resumed, Err(ReceiveError::Discarded { kept: 1_000_000, .. })), "{resumed:?}");
        assert!(!path.exists(), "the damaged partial file is gone");
        assert!(!store.contains(&hash));
        let third = claim(&store, key(1), body.len()).await;
        assert_eq!(third.kept(), 0);
        store.receive_resumed("a.pdf", &mut body.as_slice(), body.len() as u64, &hash, third).await.unwrap();
    }

    /// A transfer longer than [`SYNC_EVERY`] syncs beside its writes and still stores exactly
    /// its bytes.
    #[tokio::test]
    async fn a_long_transfer_syncs_as_it_goes_and_stores_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = body_of(usize::try_from(SYNC_EVERY).unwrap() * 2 + 12_345);
        let hash = sha(&body);
        store.receive("a.pdf", &mut body.as_slice(), body.len() as u64, &hash).await.unwrap().commit().await.unwrap();
        assert_eq!(std::fs::read(store.path(&hash)).unwrap(), body);
    }

    /// Wrong bytes in a transfer that resumed nothing are refused as in a plain receive.
    #[tokio::test]
    async fn wrong_bytes_from_the_start_are_an_attachment_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = body_of(100_000);
        let first = claim(&store, key(0), body.len()).await;
        let wrong = store.receive_resumed("a.pdf", &mut body.as_slice(), body.len() as u64, &[0; 32], first).await;
        assert!(matches!(wrong, Err(ReceiveError::Store(StoreError::Attachment { .. }))), "{wrong:?}");
        assert_eq!(std::fs::read_dir(dir.path().join("partial")).unwrap().count(), 0);
    }

    /// A newer attempt of the same document takes the partial file over from an older one
    /// stuck on its stream in this process: the older stops and keeps what it wrote.
    #[tokio::test]
    async fn a_newer_attempt_takes_over_from_a_stuck_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = body_of(1_500_000);
        let hash = sha(&body);
        let first = claim(&store, key(0), body.len()).await;
        let stuck = {
            let (store, hash) = (store.clone(), hash);
            let data = body[..700_000].to_vec();
            tokio::spawn(async move {
                let mut reader = Breaks { data, at: 0, hang: true };
                store.receive_resumed("a.pdf", &mut reader, 1_500_000, &hash, first).await
            })
        };
        // The stuck attempt has written its first buffers; the bytes of the buffer it was
        // filling when the stream stalled are written when it stops.
        let path = dir.path().join("partial").join(key(0).file_name());
        while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second = claim(&store, key(0), body.len()).await;
        assert_eq!(second.kept(), 700_000);
        let older = stuck.await.unwrap();
        assert!(
            matches!(&older, Err(ReceiveError::Interrupted { reason, .. }) if reason.contains("newer attempt")),
            "{older:?}"
        );
        let pending = store.receive_resumed("a.pdf", &mut &body[700_000..], body.len() as u64, &hash, second).await;
        pending.unwrap().commit().await.unwrap();
        assert_eq!(std::fs::read(store.path(&hash)).unwrap(), body);
    }

    /// `max_bytes` at its edge: an attachment of exactly the bound is resumable, one byte more
    /// is not; 0 turns resuming off.
    #[tokio::test]
    async fn the_partial_bytes_bound_at_its_edge() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let limits = PartialLimits { max_bytes: 1000, max_age: Duration::from_secs(60), max_files: 64 };
        let now = SystemTime::now();
        assert!(store.claim_partial(key(0), 1000, &limits, now).await.unwrap().is_some());
        assert!(store.claim_partial(key(1), 1001, &limits, now).await.unwrap().is_none());
        let off = PartialLimits { max_bytes: 0, ..limits };
        assert!(store.claim_partial(key(2), 1, &off, now).await.unwrap().is_none());
    }

    /// The bound counts every partial file: a new transfer evicts the oldest kept ones to make
    /// room, and is not resumable while other transfers of this process reserve the room.
    #[tokio::test]
    async fn older_partial_files_are_evicted_to_keep_the_bound() {
        let (_dir, store, partial) = partial_store();
        let limits = PartialLimits { max_bytes: 1000, ..LIMITS };
        let now = SystemTime::now();
        for (i, age) in [(0usize, 30u64), (1, 20)] {
            kept_partial(&partial, doc(i), 400, now - Duration::from_secs(age));
        }
        // 400 + 400 kept, 300 wanted: the oldest (index 0) goes, the other stays.
        let held = store.claim_partial(key(2), 300, &limits, now).await.unwrap().expect("room made");
        assert!(!partial.join(doc(0).file_name()).exists());
        assert!(partial.join(doc(1).file_name()).exists());
        // 400 kept + 300 reserved + 700 wanted: index 1 is evicted; exactly 1000 fits.
        let fits = store.claim_partial(key(3), 700, &limits, now).await.unwrap();
        assert!(fits.is_some());
        assert!(!partial.join(doc(1).file_name()).exists());
        // Both claims reserve their full size: nothing more fits.
        assert!(store.claim_partial(key(4), 1, &limits, now).await.unwrap().is_none());
        drop((held, fits));
        assert!(store.claim_partial(key(4), 1, &limits, now).await.unwrap().is_some());
    }

    /// `max_age` at its edge: kept bytes exactly that old are resumed, a second older are not;
    /// at start, partial files older than it are removed and younger ones kept.
    #[tokio::test]
    async fn the_partial_age_bound_at_its_edge() {
        let (_dir, store, partial) = partial_store();
        let limits = PartialLimits { max_age: Duration::from_secs(600), ..LIMITS };
        let now = SystemTime::now();
        let age = |i: usize, secs: u64| kept_partial(&partial, key(i), 100, now - Duration::from_secs(secs));
        age(0, 600);
        age(1, 601);
        assert_eq!(store.claim_partial(key(0), 1000, &limits, now).await.unwrap().unwrap().kept(), 100);
        assert_eq!(store.claim_partial(key(1), 1000, &limits, now).await.unwrap().unwrap().kept(), 0);
        let (young, old) = (age(2, 600), age(3, 601));
        store.sweep_partials(&limits, now);
        assert!(young.exists() && !old.exists());
    }

    /// `max_files` at its edge: with two files kept and a bound of two, a new transfer evicts
    /// the older kept one; two transfers holding their files leave no room for a third.
    #[tokio::test]
    async fn the_partial_files_bound_at_its_edge() {
        let (_dir, store, partial) = partial_store();
        let limits = PartialLimits { max_files: 2, ..LIMITS };
        let now = SystemTime::now();
        let (older, newer) =
            (kept_partial(&partial, doc(0), 1, now - Duration::from_secs(20)), kept_partial(&partial, doc(1), 1, now));
        let first = store.claim_partial(key(2), 100, &limits, now).await.unwrap().expect("room made");
        assert!(!older.exists() && newer.exists(), "the older kept file evicted, the newer kept");
        let second = store.claim_partial(key(3), 100, &limits, now).await.unwrap().expect("room made");
        assert!(!newer.exists());
        assert!(store.claim_partial(key(4), 100, &limits, now).await.unwrap().is_none(), "both places held");
        drop((first, second));
        assert!(store.claim_partial(key(4), 100, &limits, now).await.unwrap().is_some());
    }

    /// The bounds never evict the same document's other kept attachments for it (they would
    /// be claimed again next, empty): another document's go first, and when only the same
    /// document's are left, the transfer is received without resuming.
    #[tokio::test]
    async fn a_documents_own_kept_files_are_not_evicted_for_it() {
        let (_dir, store, partial) = partial_store();
        let limits = PartialLimits { max_files: 2, ..LIMITS };
        let now = SystemTime::now();
        let other = PartialKey { envelope: [7; 32], index: 0 };
        let (sibling, older) =
            (kept_partial(&partial, key(1), 10, now - Duration::from_secs(30)), kept_partial(&partial, other, 10, now));
        let held = store.claim_partial(key(0), 100, &limits, now).await.unwrap().expect("room made");
        assert!(sibling.exists() && !older.exists(), "the other document's file goes, not the sibling");
        drop(held);
        kept_partial(&partial, key(2), 10, now);
        assert!(store.claim_partial(key(3), 100, &limits, now).await.unwrap().is_none());
        assert!(sibling.exists() && partial.join(key(2).file_name()).exists());
    }

    /// A transfer that stopped before its first byte leaves no file behind: not when its
    /// claim is let go unused (another attachment of the document broke off first), not when
    /// its stream broke off at once.
    #[tokio::test]
    async fn a_transfer_stopped_before_its_first_byte_leaves_no_file() {
        let (_dir, store, partial) = partial_store();
        drop(claim(&store, key(0), 1000).await);
        assert_eq!(std::fs::read_dir(&partial).unwrap().count(), 0);
        let first = claim(&store, key(1), 1000).await;
        let mut reader = Breaks { data: Vec::new(), at: 0, hang: false };
        let broke = store.receive_resumed("a.pdf", &mut reader, 1000, &[0; 32], first).await;
        assert!(matches!(broke, Err(ReceiveError::Interrupted { kept: 0, .. })), "{broke:?}");
        assert_eq!(std::fs::read_dir(&partial).unwrap().count(), 0);
    }

    /// The bytes of a broken-off transfer are kept only once synced: when the sync fails they
    /// are not offered to the next attempt (the kernel may report a lost write once only, and
    /// serve the bytes from its cache as if they were on disk), and the file is removed.
    #[tokio::test]
    async fn a_broken_off_transfer_whose_sync_fails_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, syncs) = observed(dir.path());
        let body = body_of(300_000);
        let hash = sha(&body);
        let path = dir.path().join("partial").join(key(0).file_name());
        syncs.fail(Some(&path));
        let first = claim(&store, key(0), body.len()).await;
        let mut reader = Breaks { data: body[..100_000].to_vec(), at: 0, hang: false };
        let broke = store.receive_resumed("a.pdf", &mut reader, body.len() as u64, &hash, first).await;
        assert!(matches!(broke, Err(ReceiveError::Interrupted { kept: 0, .. })), "{broke:?}");
        assert!(!path.exists(), "the unsynced bytes are not kept");
        syncs.fail(None);
        assert_eq!(claim(&store, key(0), body.len()).await.kept(), 0);
    }

    /// Kept bytes are synced before their length is offered to the sender as where to
    /// continue (an attempt that timed out or was killed mid-write left them unsynced); a
    /// file whose sync fails is removed and the claim fails, so nothing unsynced is skipped.
    #[tokio::test]
    async fn kept_bytes_are_synced_before_they_are_offered() {
        let dir = tempfile::tempdir().unwrap();
        let (store, syncs) = observed(dir.path());
        let partial = dir.path().join("partial");
        let now = SystemTime::now();
        let path = kept_partial(&partial, key(0), 100, now);
        syncs.take();
        assert_eq!(claim(&store, key(0), 1000).await.kept(), 100);
        assert_eq!(syncs.take(), vec![path.clone()], "synced before offered");
        syncs.fail(Some(&path));
        assert!(store.claim_partial(key(0), 1000, &LIMITS, now).await.is_err());
        assert!(!path.exists(), "a file whose sync failed is not resumed");
        syncs.fail(None);
        assert_eq!(claim(&store, key(0), 1000).await.kept(), 0);
    }

    /// A task that finds its partial file untrustworthy removes it only while the path still
    /// names it: once another task of its transfer removed it and a newer attempt created a
    /// new file at the path, that file stays.
    #[test]
    fn a_partial_is_removed_only_while_the_path_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, b"old").unwrap();
        let old = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"newer attempt").unwrap();
        remove_own(&old, &path);
        assert_eq!(std::fs::read(&path).unwrap(), b"newer attempt");
        let newer = std::fs::File::open(&path).unwrap();
        remove_own(&newer, &path);
        assert!(!path.exists());
    }

    /// An older claim let go after a newer one took its path over leaves the newer one
    /// registered: still asked to stop by the next attempt, still counted in the bound.
    #[test]
    fn an_older_claim_let_go_leaves_a_newer_one_registered() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let path = dir.path().join("partial").join(key(0).file_name());
        let newer = Arc::new(Notify::new());
        store.durable.claims.lock().unwrap().insert(path.clone(), (Arc::clone(&newer), 1000));
        let older = Claim {
            file: None,
            path: path.clone(),
            durable: Arc::clone(&store.durable),
            stop: Arc::new(Notify::new()),
        };
        drop(older);
        assert!(store.durable.claims.lock().unwrap().get(&path).is_some_and(|(s, _)| Arc::ptr_eq(s, &newer)));
        drop(Claim { file: None, path: path.clone(), durable: Arc::clone(&store.durable), stop: newer });
        assert!(store.durable.claims.lock().unwrap().is_empty());
    }
}
