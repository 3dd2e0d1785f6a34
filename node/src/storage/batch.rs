//! Group commit on SQLite: one writer connection, one sync for many writes.
//!
//! SQLite takes one writer at a time, and with `synchronous = FULL` every `COMMIT` is a sync
//! of the write-ahead log: a node taking documents spent a sync per event (the intake, the
//! sender's record, each notice on both sides). Here every write transaction of the process
//! joins the one database transaction that is open (a *batch*) as a savepoint, on the writer's
//! own connection (see [`super::sqlite`]). A write's [`Unit::commit`] releases its savepoint,
//! and the batch commits, with one sync, when no other write is waiting to join it (or it
//! holds [`MAX_UNITS`] writes, or is [`MAX_AGE`] old). A write that leaves the batch open to
//! the writes behind it waits for the batch's `COMMIT`: `commit` returns `Ok` only once the
//! `COMMIT` that contains the write returned, so "a commit is on disk when it returns" stays
//! true, and with it the promise of a hop receipt.
//!
//! Nothing outside a synced batch reads it before its sync: the pool's connections see a
//! transaction only when it commits (WAL), and a synced `COMMIT` syncs the log first. (A batch
//! of unsynced writes, see [`Writer::join`], is read as soon as it commits, before its sync,
//! which comes within [`UNSYNCED_FOR_AT_MOST`].) Writes inside one batch see each other's
//! uncommitted rows, but none acts on them outside the database before its own `commit`
//! returns, and if the batch fails every write in it fails together.
//!
//! A write that fails halfway rolls back to its savepoint and the others go on; a failure that
//! ends the database transaction itself (SQLite rolls back on its own after `SQLITE_FULL` and
//! I/O errors) fails the whole batch: every write in it gets [`StoreError::Batch`] and nothing
//! of it is kept (but see below for a failed `COMMIT`). The connection of a failed batch is
//! closed, never reused (kept only while the log is to be emptied, see below); the next batch
//! opens a fresh one.
//!
//! A `COMMIT` that fails is not always undone on disk. SQLite commits a batch by writing its
//! frames to the log, the commit mark last, then syncing the log; when that sync fails (the
//! disk reports an I/O error), SQLite answers the `COMMIT` with the error and forgets the
//! batch in the process, but the frames stay in the log file, or at least in the kernel's
//! cache of it, which after a failed write-back may serve bytes that never reached the disk.
//! A process that crashed before its next commit overwrote them would come back with the
//! batch committed: a document whose sender was told "not stored, send again" would be in
//! the store and sent on. So after a `COMMIT` fails for any reason but a full disk (where the
//! frames' write itself failed, before any commit mark), and after a sync of the log fails,
//! the writer empties the log (see [`Batch::empty_log`]): a checkpoint moves what did commit
//! into the database file and syncs it, the log is cut to nothing and the cut synced, on the
//! connection whose `COMMIT` failed, which stays open until then. Until that succeeds, no
//! batch opens and every write fails. (The checkpoint needs every other connection's read of
//! the log to end: a long read, such as a backup's `VACUUM INTO`, holds the writes up until
//! it ends.) If it fails right after the failed `COMMIT` (the disk still failing), the
//! batch's writes get [`StoreError::CommitInDoubt`] instead of a plain failure: a crash
//! before the log is emptied would bring the batch back, so nobody is told that nothing of it
//! was kept.
//!
//! For the same reason the writer runs SQLite's automatic checkpoint itself
//! ([`Batch::checkpoint_if_due`]): SQLite ignores the outcome of its own, so a sync failing
//! there went unseen (Linux reports a failed write-back once per open file, and no later
//! sync would have told).
//!
//! A write's statements run in the task holding the writer, in microseconds, and cannot be
//! left halfway by a cancelled caller. The `COMMIT` (a sync, up to milliseconds) runs on a
//! blocking thread that holds the batch until it is done, so a caller that stops waiting (a
//! request timing out) cannot leave the connection halfway through a `COMMIT` either.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::sqlite::Conn;
use super::{InDoubt, LogCheckpointError, StoreError};

/// At most this many writes in one batch: a batch that writes keep joining commits anyway, so
/// that the first write in it does not wait without bound.
pub(crate) const MAX_UNITS: usize = 256;

/// A batch this old commits at the next write's end even when others wait to join (a bound on
/// the wait the batch adds to its first write).
pub(crate) const MAX_AGE: Duration = Duration::from_millis(20);

/// How long after a batch committed without a sync (see [`Writer::join`]) its log is synced
/// at the latest, when no synced commit did it first: the most a crash of the machine can take
/// back of what such batches hold. (A synced `COMMIT` syncs the log only if it wrote to it,
/// so the writer does not count on one coming.)
pub(crate) const UNSYNCED_FOR_AT_MOST: Duration = Duration::from_millis(200);

/// Frames in the log from which the writer runs a checkpoint after each batch (see
/// [`Batch::checkpoint_if_due`]): SQLite's own default for its automatic one.
const CHECKPOINT_FRAMES: i64 = 1000;

/// How long a write that left its batch open waits before closing the batch itself: the
/// write that was to close it may have been cancelled before it joined.
const ORPHANED_AFTER: Duration = Duration::from_millis(50);

/// A statement binding more values than this runs as blocking work (see [`Unit::run`]).
const BLOCKING_ARGS: usize = 64;

/// Runs `work`, which blocks the thread for a while: on a multi-thread runtime the thread's
/// other tasks move to another while it runs.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// What a batch came to: unset while open.
type Outcome = Option<Result<(), Arc<StoreError>>>;

/// The process's SQLite writer.
#[derive(Debug)]
pub(crate) struct Writer {
    batch: Arc<Mutex<Batch>>,
    shared: Arc<Shared>,
}

/// What the writer and the tasks ending its batches share.
#[derive(Debug)]
struct Shared {
    /// Writes waiting to join the batch: while there are any, a write ending leaves the batch
    /// open for them.
    waiting: AtomicUsize,
    batches: AtomicU64,
    writes: AtomicU64,
    /// A sync of the log is due (see [`UNSYNCED_FOR_AT_MOST`]): set by the first batch
    /// committed without a sync since the last such sync began.
    log_sync_due: AtomicBool,
    /// Syncs of the log made for batches committed without one.
    log_syncs: AtomicU64,
    /// The log may hold frames of a `COMMIT` that failed, or frames whose sync failed: set
    /// then, cleared once [`Batch::empty_log`] emptied it. No batch opens while it is set.
    log_to_empty: AtomicBool,
    /// Tests: the syncs the writer makes itself fail: of the log for batches committed
    /// without one, and in its checkpoints.
    #[cfg(test)]
    fail_own_syncs: AtomicBool,
    /// The log's file: the database file's name as SQLite resolved it, `-wal` added.
    wal: PathBuf,
}

/// The writer's connection and its open batch (if any), behind the writer's lock: holding the
/// lock is being the one write that runs statements now.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The database file, to open a fresh connection after a failed batch closed one.
    path: PathBuf,
    /// The connection; `None` once a failure closed it, until the next batch opens one.
    conn: Option<Conn>,
    /// Whether a batch is open: the connection is inside `BEGIN IMMEDIATE`.
    open: bool,
    /// Whether the open batch's `COMMIT` syncs: false only while every write in it is
    /// unsynced (see [`Writer::join`]).
    synced: bool,
    /// Whether the connection is at `synchronous = FULL` (else `NORMAL`): SQLite fixes the
    /// level outside a transaction only, so it is set before each `BEGIN` that needs another.
    conn_synced: bool,
    /// Counts batches, so that a write knows whether its batch is still the open one.
    id: u64,
    /// Writes released into this batch (their work is in it).
    units: usize,
    opened: Instant,
    /// Where the open batch's outcome is told.
    done: watch::Sender<Outcome>,
    shared: Arc<Shared>,
}

/// Counts a write waiting for the writer, also when the wait is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writer {
    /// The writer of the database file at `path`, its connection opened now: a database the
    /// writer cannot open fails the store's opening, not its first write.
    pub(crate) fn open(path: PathBuf) -> Result<Writer, StoreError> {
        let conn = Conn::open_writer(&path)?;
        let mut wal = conn.file_name().map_or_else(|| path.clone().into_os_string(), Into::into);
        wal.push("-wal");
        let shared = Arc::new(Shared {
            waiting: AtomicUsize::new(0),
            batches: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            log_sync_due: AtomicBool::new(false),
            log_syncs: AtomicU64::new(0),
            log_to_empty: AtomicBool::new(false),
            #[cfg(test)]
            fail_own_syncs: AtomicBool::new(false),
            wal: wal.into(),
        });
        let batch = Batch {
            path,
            conn: Some(conn),
            open: false,
            synced: true,
            conn_synced: true,
            id: 0,
            units: 0,
            opened: Instant::now(),
            done: watch::channel(None).0,
            shared: Arc::clone(&shared),
        };
        Ok(Writer { batch: Arc::new(Mutex::new(batch)), shared })
    }

    /// Commits the open batch, if one is left open (by writes that were all cancelled), and
    /// closes the connection: before the store closes.
    pub(crate) async fn flush(&self) {
        let batch = Arc::clone(&self.batch).lock_owned().await;
        let _ = run_blocking(batch, |mut b| {
            let committed = b.commit();
            // Its log synced now, not left to a timer that may not run again.
            sync_log(&b.shared);
            b.conn = None;
            committed
        })
        .await;
    }

    /// Batches committed and the writes they held, since the store was opened.
    pub(crate) fn committed(&self) -> (u64, u64) {
        (self.shared.batches.load(Ordering::Relaxed), self.shared.writes.load(Ordering::Relaxed))
    }

    /// Syncs of the log made for batches committed without one.
    #[cfg(test)]
    fn log_syncs(&self) -> u64 {
        self.shared.log_syncs.load(Ordering::SeqCst)
    }

    /// Joins the open batch (opening one if none is) as a savepoint: the write runs its
    /// statements with [`Unit::run`] while it holds the writer.
    ///
    /// An unsynced write (`synced` false, see `Store::begin_unsynced`) joins whatever batch
    /// is open, and a batch opened for one commits without a sync (`synchronous = NORMAL`:
    /// the log is written, not synced; the next synced `COMMIT` that writes syncs it, with
    /// everything before it, as does a checkpoint, and the writer syncs it within
    /// [`UNSYNCED_FOR_AT_MOST`] if neither came). A synced write never goes into an unsynced batch:
    /// SQLite cannot change the level inside a transaction, so the unsynced batch commits
    /// first (no sync, no wait on the disk) and the write opens a synced one.
    pub(crate) async fn join(&self, synced: bool) -> Result<Unit, StoreError> {
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(&self.shared.waiting);
        let mut batch = Arc::clone(&self.batch).lock_owned().await;
        drop(waiting);
        if batch.open && synced && !batch.synced {
            // Its writes learn the outcome from the batch; this write only needs it ended.
            batch = run_blocking(batch, |mut b| {
                let _ = b.commit();
                b
            })
            .await
            .ok_or_else(lost)?;
        }
        if !batch.open {
            batch = begin(batch, synced).await?;
        }
        if let Err(e) = batch.exec(SAVEPOINT) {
            return Err(failed(batch, e));
        }
        let (id, outcome) = (batch.id, batch.done.subscribe());
        Ok(Unit { writer: Arc::clone(&self.batch), batch: Some(batch), id, outcome })
    }
}

/// A write's first statement. Every write's savepoint has this one name: the writer lets one
/// write at a time run statements, and each write ends its savepoint before the next begins
/// (`RELEASE`, after `ROLLBACK TO` when undone) or the whole batch fails and its connection is
/// closed, so at most one savepoint exists in a batch at any moment. (One name also keeps the
/// statements' text, by which they are prepared once, the same for every write.)
const SAVEPOINT: &str = "SAVEPOINT w";

/// What a statement does to a write's savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `RELEASE`: its work stays in the batch.
    Release,
    /// `ROLLBACK TO` then `RELEASE`: its work is undone, the batch goes on.
    RollBack,
}

impl Step {
    /// The statement that ends a write's savepoint this way.
    fn statement(self) -> &'static str {
        match self {
            Step::Release => "RELEASE w",
            Step::RollBack => "ROLLBACK TO w; RELEASE w",
        }
    }
}

/// Opens a batch: `BEGIN IMMEDIATE`, here when the connection is there and nobody else holds
/// SQLite's write lock (the usual case: this process writes through the writer alone);
/// otherwise on a blocking thread, which waits for the lock, opens a fresh connection if a
/// failure closed the last one, and first empties the log if a failure left it to empty. A
/// connection on which `BEGIN` fails (one somehow still inside a transaction) is closed and
/// one fresh connection tried.
async fn begin(mut batch: OwnedMutexGuard<Batch>, synced: bool) -> Result<OwnedMutexGuard<Batch>, StoreError> {
    let b = &mut *batch;
    if !b.shared.log_to_empty.load(Ordering::SeqCst)
        && let Some(conn) = b.conn.as_ref()
        && level(conn, &mut b.conn_synced, synced).is_ok()
        && let Ok(true) = conn.begin_now()
    {
        batch.opened_now(synced);
        return Ok(batch);
    }
    let (mut opened, began) = run_blocking(batch, move |mut b| {
        let began = b.begin(synced);
        (Opened(Some(b)), began)
    })
    .await
    .ok_or_else(lost)?;
    let batch = opened.0.take().ok_or_else(lost)?;
    began.map(|()| batch)
}

/// Sets the writer's connection to sync its commits or not (`conn_synced` says what it is at
/// now), outside a transaction, before a batch begins.
fn level(conn: &Conn, conn_synced: &mut bool, synced: bool) -> Result<(), rusqlite::Error> {
    if *conn_synced != synced {
        conn.batch(if synced { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" })?;
        *conn_synced = synced;
    }
    Ok(())
}

/// A batch just opened on a blocking thread, on its way to the write that asked for it. If
/// that write was cancelled meanwhile (a request timing out while another process held
/// SQLite's write lock), nobody takes it: dropped unclaimed, an empty open batch is ended here,
/// instead of holding the write lock (and keeping every other process from writing) until this
/// process's next write, which on a quiet node may be hours away.
struct Opened(Option<OwnedMutexGuard<Batch>>);

impl Drop for Opened {
    fn drop(&mut self) {
        if let Some(mut batch) = self.0.take()
            && batch.open
        {
            // Just opened, so no write in it: this is a `ROLLBACK`, nothing to sync, nobody
            // to tell.
            debug_assert_eq!(batch.units, 0);
            let _ = batch.commit();
        }
    }
}

impl Batch {
    /// Opens a batch (see [`begin`]); runs on a blocking thread.
    fn begin(&mut self, synced: bool) -> Result<(), StoreError> {
        if self.shared.log_to_empty.load(Ordering::SeqCst) {
            self.empty_log().map_err(|cause| StoreError::LogNotEmptied { log: self.shared.wal.clone(), cause })?;
        }
        let mut retried = false;
        loop {
            let conn = match self.conn.take() {
                Some(c) => c,
                None => {
                    let fresh = Conn::open_writer(&self.path)?;
                    self.conn_synced = true;
                    fresh
                }
            };
            match level(&conn, &mut self.conn_synced, synced).and_then(|()| conn.batch("BEGIN IMMEDIATE")) {
                Ok(()) => {
                    self.conn = Some(conn);
                    self.opened_now(synced);
                    return Ok(());
                }
                Err(e) => {
                    drop(conn);
                    if retried {
                        return Err(e.into());
                    }
                    tracing::warn!(error = %e, "BEGIN failed; that database connection is closed, trying a fresh one");
                    retried = true;
                }
            }
        }
    }

    /// Records that a batch was just opened (`BEGIN IMMEDIATE` succeeded), synced or not.
    fn opened_now(&mut self, synced: bool) {
        self.synced = synced;
        self.open = true;
        self.id += 1;
        self.units = 0;
        self.opened = Instant::now();
        self.done = watch::channel(None).0;
    }

    fn conn(&self) -> Result<&Conn, StoreError> {
        self.conn.as_ref().ok_or_else(|| StoreError::Corrupt("the SQLite writer's connection was lost".into()))
    }

    /// Runs statements without parameters (`SAVEPOINT`, `RELEASE`, `COMMIT`) on the connection.
    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.conn()?.batch(sql)?)
    }

    /// Whether the write ending now should commit the batch rather than leave it open.
    fn should_commit(&self) -> bool {
        self.shared.waiting.load(Ordering::SeqCst) == 0 || self.units >= MAX_UNITS || self.opened.elapsed() >= MAX_AGE
    }

    /// Commits the open batch and tells its writes; runs on a blocking thread (the `COMMIT`
    /// syncs). A connection whose `COMMIT` failed is closed, unless the log could not be
    /// emptied right away (see the module's doc): then it stays the writer's connection, the
    /// one that empties the log before the next batch and then goes on (SQLite ended its
    /// transaction; nothing of the failure stays with it).
    fn commit(&mut self) -> Result<(), Arc<StoreError>> {
        if !self.open {
            return Ok(());
        }
        // No write released into it (all rolled back): nothing to sync, nobody to tell.
        let statement = if self.units == 0 { "ROLLBACK" } else { "COMMIT" };
        let ended = self.exec(statement);
        // Closed only now: had the statement panicked, the batch would still be open, and a
        // write waiting for it would end it itself (see `Unit::wait`).
        self.open = false;
        let result = match ended {
            Ok(()) => {
                if self.units > 0 {
                    self.shared.batches.fetch_add(1, Ordering::Relaxed);
                    self.shared.writes.fetch_add(self.units as u64, Ordering::Relaxed);
                    if !self.synced {
                        self.sync_log_soon();
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = self.units, "a batch of writes did not commit");
                // SQLite ends the transaction of a failed `COMMIT` itself; one it left open is
                // ended here, and a connection that cannot end it is closed.
                if self.conn.as_ref().is_some_and(|c| c.in_transaction() && c.batch("ROLLBACK").is_err()) {
                    self.conn = None;
                }
                let mut error = e;
                if self.units > 0 && !error.is_disk_full() {
                    // Its frames may be in the log, commit mark and all (see the module's doc).
                    if let Err(cause) = self.empty_log() {
                        error =
                            StoreError::CommitInDoubt { commit: Box::new(error), why: InDoubt::LogNotEmptied(cause) };
                        tracing::error!(error = %error, "no write is taken until the database's log is emptied");
                    }
                }
                // Closed, as after any failure, unless the log is still to be emptied: then the
                // connection may be the database's last one, whose closing drops the log's
                // shared index, and the fresh connection that empties the log would rebuild
                // the index from the log file, failed commit included, and take it as
                // committed.
                if !self.shared.log_to_empty.load(Ordering::SeqCst) {
                    self.conn = None;
                }
                Err(Arc::new(error))
            }
        };
        self.done.send_replace(Some(result.clone()));
        if result.is_ok() && self.units > 0 {
            self.checkpoint_if_due();
        }
        result
    }

    /// SQLite's automatic checkpoint, run here instead, after the batch's writes were told
    /// (the writer's connection has it off, see `Conn::open_writer`): while the log holds
    /// [`CHECKPOINT_FRAMES`] frames or more, a passive checkpoint after each batch moves what
    /// it can (nothing, without a sync, when every frame is in the database file already), as
    /// SQLite's does. Counting only the frames not yet moved would let the log grow without
    /// bound: it starts over from its beginning only after a checkpoint that moved every frame,
    /// and a reader cutting that one short would cost another thousand frames. SQLite ignores
    /// the outcome of its own; here a checkpoint that fails (its
    /// sync of the log or of the database file) marks the log to be emptied, as a failed sync
    /// of the log does: Linux reports a failed write-back once per open file, so no later sync
    /// through this connection would tell, and frames committed without a sync may be lost on
    /// disk with later commits after them in the log (see the module's doc).
    fn checkpoint_if_due(&mut self) {
        let Some(conn) = self.conn.as_ref() else { return };
        if !conn.log_frames().is_ok_and(|frames| frames >= CHECKPOINT_FRAMES) {
            return;
        }
        let checkpointed = if self.shared.own_syncs_fail() {
            Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC), None))
        } else {
            conn.checkpoint()
        };
        if let Err(e) = checkpointed {
            tracing::warn!(log = %self.shared.wal.display(), error = %e, "a checkpoint of the database's log failed; the log is emptied before the next write");
            self.shared.log_to_empty.store(true, Ordering::SeqCst);
        }
    }

    /// Empties the log after a `COMMIT` or a sync of the log failed (see the module's doc):
    /// `PRAGMA wal_checkpoint(TRUNCATE)` moves every frame that did commit into the database
    /// file and syncs it, then cuts the log to nothing, a cut synced here. The frames of the
    /// failed `COMMIT` (past the last commit SQLite knows of) are not moved, only cut away;
    /// those that committed unsynced are in the database file once its sync succeeded. Runs on
    /// a blocking thread (the checkpoint waits for readers in the busy handler), on the
    /// writer's connection, opened fresh when a failure closed it.
    fn empty_log(&mut self) -> Result<(), LogCheckpointError> {
        // Cleared first: a sync of the log failing meanwhile (see `sync_log`) sets it again.
        self.shared.log_to_empty.store(false, Ordering::SeqCst);
        let emptied = self.checkpoint_and_cut();
        match &emptied {
            Ok(()) => {
                tracing::info!(log = %self.shared.wal.display(), "the database's log was emptied after a failed commit or sync")
            }
            Err(_) => self.shared.log_to_empty.store(true, Ordering::SeqCst),
        }
        emptied
    }

    /// The steps of [`Batch::empty_log`].
    fn checkpoint_and_cut(&mut self) -> Result<(), LogCheckpointError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                self.conn_synced = true;
                Conn::open_writer(&self.path).map_err(LogCheckpointError::Checkpoint)?
            }
        };
        let left = conn.truncate_log();
        self.conn = Some(conn);
        match left.map_err(LogCheckpointError::Checkpoint)? {
            0 => self.shared.sync_log_file().map_err(LogCheckpointError::Sync),
            frames => Err(LogCheckpointError::Busy(frames)),
        }
    }

    /// Syncs the log about [`UNSYNCED_FOR_AT_MOST`] after this batch's commit without a sync
    /// (once for every such batch committed meanwhile): `fsync` of the `-wal` file, which
    /// makes its frames durable whoever wrote them.
    fn sync_log_soon(&self) {
        if self.shared.log_sync_due.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let due = Due(Some(shared));
                runtime.spawn(async move {
                    let mut due = due;
                    tokio::time::sleep(UNSYNCED_FOR_AT_MOST).await;
                    if let Some(shared) = due.0.take() {
                        let _ = tokio::task::spawn_blocking(move || sync_log(&shared)).await;
                    }
                });
            }
            Err(_) => sync_log(&shared),
        }
    }

    /// Ends the open batch as failed with `error`: nothing of it is kept (closing the
    /// connection rolls it back), and every write in it is told.
    fn fail(&mut self, error: Arc<StoreError>) {
        if self.conn.take().is_some() {
            tracing::warn!(error = %error, writes = self.units, "a batch of writes failed; closing its database connection");
        }
        self.open = false;
        self.done.send_replace(Some(Err(error)));
    }
}

/// Syncs the log if a sync is due (see [`Batch::sync_log_soon`]). The flag is cleared before
/// the sync begins, so a batch committed during the sync gets one of its own.
fn sync_log(shared: &Shared) {
    if !shared.log_sync_due.swap(false, Ordering::SeqCst) {
        return;
    }
    match shared.sync_log_file() {
        Ok(()) => {
            shared.log_syncs.fetch_add(1, Ordering::SeqCst);
        }
        Err(e) => {
            // Its frames may never reach the disk now, while later commits go after them in
            // the log (see the module's doc).
            shared.log_to_empty.store(true, Ordering::SeqCst);
            tracing::warn!(log = %shared.wal.display(), error = %e, "cannot sync the database's log after writes committed without a sync; it is emptied before the next write")
        }
    }
}

impl Shared {
    /// Syncs the log's file (`fdatasync`, which syncs a changed length with the bytes): its
    /// frames durable whoever wrote them. No file is no log to sync (the last connection's
    /// close removed it after a checkpoint).
    fn sync_log_file(&self) -> std::io::Result<()> {
        if self.own_syncs_fail() {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        match std::fs::File::open(&self.wal).and_then(|f| f.sync_data()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            synced => synced,
        }
    }

    /// Tests: whether the syncs the writer makes itself are to fail (see `fail_own_syncs`).
    fn own_syncs_fail(&self) -> bool {
        #[cfg(test)]
        return self.fail_own_syncs.load(Ordering::SeqCst);
        #[cfg(not(test))]
        false
    }
}

/// A sync of the log that a task will make: if the task is dropped first (the runtime shutting
/// down), the sync is no longer due there, so that the next batch committed without a sync
/// arms one again.
struct Due(Option<Arc<Shared>>);

impl Drop for Due {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.log_sync_due.store(false, Ordering::SeqCst);
        }
    }
}

/// Fails the batch with `error` and returns the error for the write that saw it.
fn failed(mut batch: OwnedMutexGuard<Batch>, error: StoreError) -> StoreError {
    let error = Arc::new(error);
    batch.fail(Arc::clone(&error));
    StoreError::Batch(error)
}

/// Commits the batch on a blocking thread and waits for it: if the caller is cancelled, the
/// `COMMIT` still runs to its end while the batch stays locked.
async fn commit(batch: OwnedMutexGuard<Batch>) -> Result<(), StoreError> {
    match run_blocking(batch, |mut b| b.commit()).await {
        Some(result) => result.map_err(StoreError::Batch),
        None => Err(lost()),
    }
}

/// Runs `work` on the batch on a blocking thread and waits for it: if the caller is cancelled,
/// the work still runs to its end while the batch stays locked. `None` if it panicked.
async fn run_blocking<F, T>(batch: OwnedMutexGuard<Batch>, work: F) -> Option<T>
where
    F: FnOnce(OwnedMutexGuard<Batch>) -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || work(batch)).await.ok()
}

/// One write: a savepoint inside the open batch, holding the writer until it ends.
#[derive(Debug)]
pub(crate) struct Unit {
    /// The writer's lock, to close the batch if nobody else does (see [`Unit::wait`]).
    writer: Arc<Mutex<Batch>>,
    /// The writer, held from `join` until the write ends.
    batch: Option<OwnedMutexGuard<Batch>>,
    id: u64,
    outcome: watch::Receiver<Outcome>,
}

impl Unit {
    /// Runs a statement of the write (`statement` on the writer's connection, inside this
    /// write's savepoint), binding `args` values.
    ///
    /// A statement with many values (the log's integration, a document with many recipients)
    /// may take milliseconds: it runs with the runtime told that this thread blocks, so the
    /// thread's other tasks move to another. If SQLite rolled the whole batch back on its own
    /// (`SQLITE_FULL`, an I/O error), the batch fails here with that error, so every write in
    /// it learns the cause (a full disk), and nothing more runs on the connection, which
    /// would now commit each statement by itself.
    pub(crate) fn run<T>(
        &mut self,
        args: usize,
        statement: impl FnOnce(&Conn) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let Some(batch) = self.batch.as_mut() else { unreachable!("a write is used after it ended") };
        let conn = batch.conn()?;
        let ran = if args > BLOCKING_ARGS { blocking(|| statement(conn)) } else { statement(conn) };
        match ran {
            Ok(v) => Ok(v),
            Err(e) if !conn.in_transaction() => {
                let error = Arc::new(StoreError::from(e));
                batch.fail(Arc::clone(&error));
                Err(StoreError::Batch(error))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Puts the write into its batch and returns once the batch is committed: `Ok` means the
    /// database said the `COMMIT` that holds this write succeeded.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.end(Step::Release).await
    }

    /// Rolls the write back to its savepoint; the batch goes on without it. Returns once the
    /// batch it was part of has ended, `Err` if that batch failed: what the write read in it
    /// (another write's row, not yet committed) held only if the batch did.
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        self.end(Step::RollBack).await
    }

    /// Ends the write with `step` on its savepoint (`RELEASE` puts its work in the batch),
    /// then commits the batch or leaves it to the writes waiting and waits for it.
    async fn end(mut self, step: Step) -> Result<(), StoreError> {
        let Some(mut batch) = self.batch.take() else { return Ok(()) };
        let ran = batch.exec(step.statement());
        if let Err(e) = ran {
            // The savepoint is still there: the write fails alone and the batch goes on.
            if step == Step::Release && batch.exec(Step::RollBack.statement()).is_ok() {
                if batch.should_commit() {
                    let _ = commit(batch).await;
                }
                return Err(e);
            }
            return Err(failed(batch, e));
        }
        if step == Step::Release {
            batch.units += 1;
        }
        if batch.should_commit() {
            return commit(batch).await;
        }
        drop(batch);
        self.wait().await
    }

    /// Waits for the batch this write was part of; closes it itself if it stays open with
    /// nobody left to close it.
    async fn wait(&mut self) -> Result<(), StoreError> {
        loop {
            match tokio::time::timeout(ORPHANED_AFTER, self.outcome.wait_for(Option::is_some)).await {
                Ok(Ok(outcome)) => {
                    return match outcome.as_ref() {
                        Some(Ok(())) => Ok(()),
                        Some(Err(e)) => Err(StoreError::Batch(Arc::clone(e))),
                        None => Err(lost()),
                    };
                }
                Ok(Err(_)) => return Err(lost()),
                Err(_) => {}
            }
            let batch = Arc::clone(&self.writer).lock_owned().await;
            if batch.id == self.id && batch.open {
                return commit(batch).await;
            }
        }
    }
}

impl Drop for Unit {
    /// A write dropped before its end (a statement failed and `?` returned, or the caller was
    /// cancelled between statements): it is rolled back to its savepoint and the batch goes
    /// on; if that fails, the batch fails. A batch left with nobody waiting to join it is
    /// committed on a blocking thread.
    fn drop(&mut self) {
        let Some(mut batch) = self.batch.take() else { return };
        if !batch.open {
            return;
        }
        if let Err(e) = batch.exec(Step::RollBack.statement()) {
            batch.fail(Arc::new(e));
            return;
        }
        if !batch.should_commit() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || {
                    let _ = batch.commit();
                });
            }
            // No runtime left (the process is ending): commit here.
            Err(_) => {
                let _ = batch.commit();
            }
        }
    }
}

fn lost() -> StoreError {
    StoreError::Corrupt("the outcome of a batch of writes was lost (a thread ending it failed)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Arg;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x TEXT NOT NULL)").unwrap();
        let writer = Writer::open(path).unwrap();
        (dir, writer)
    }

    /// What the table holds, in the order written, read on a connection of its own.
    fn rows(dir: &tempfile::TempDir) -> Vec<String> {
        rusqlite::Connection::open(dir.path().join("w.db"))
            .unwrap()
            .prepare("SELECT x FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// When SQLite rolls the whole batch back by itself (as on `SQLITE_FULL`; simulated here
    /// by a `ROLLBACK` in front of the failing statement), every write of the batch fails with
    /// the statement's own error, and the writer goes on with a fresh batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_sqlite_rolled_back_fails_every_write_with_its_cause() {
        let (dir, writer) = writer();
        let writer = Arc::new(writer);
        let mut first = writer.join(true).await.unwrap();
        first.run(1, |c| c.execute("INSERT INTO t (x) VALUES ($1)", &[Arg::from("first")])).unwrap();
        let second = {
            let writer = Arc::clone(&writer);
            tokio::spawn(async move {
                let mut second = writer.join(true).await.unwrap();
                second
                    .run(1, |c| {
                        c.batch("ROLLBACK")?;
                        c.execute("INSERT INTO t (x) VALUES ($1)", &[Arg::Text(None)])
                    })
                    .unwrap_err()
            })
        };
        while writer.shared.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Left open for the write waiting to join, then failed by it.
        let first = first.commit().await.unwrap_err();
        let second = second.await.unwrap();
        for e in [&first, &second] {
            assert!(matches!(e, StoreError::Batch(cause) if cause.to_string().contains("NOT NULL")), "{e}");
        }
        let mut next = writer.join(true).await.unwrap();
        next.run(1, |c| c.execute("INSERT INTO t (x) VALUES ($1)", &[Arg::from("next")])).unwrap();
        next.commit().await.unwrap();
        writer.flush().await;
        assert_eq!(rows(&dir), ["next"]);
    }

    /// A write cancelled while its batch was being opened on a blocking thread (another
    /// connection held the write lock) leaves no open transaction behind: another process
    /// can write as soon as the lock is free, without waiting for this writer's next write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_cancelled_while_its_batch_opens_leaves_no_lock_behind() {
        let (dir, writer) = writer();
        let other = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Waits in SQLite's busy handler on a blocking thread; given up after 100 ms.
        let joined = tokio::time::timeout(Duration::from_millis(100), writer.join(true)).await;
        assert!(joined.is_err(), "the join returned while another connection held the write lock");
        other.execute_batch("COMMIT").unwrap();
        // The blocking thread holds the writer until its `BEGIN` got the lock and it returned.
        let batch = tokio::time::timeout(Duration::from_secs(30), writer.batch.lock()).await.unwrap();
        assert!(!batch.open, "an empty batch was left open");
        drop(batch);
        other.busy_timeout(Duration::ZERO).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        other.execute_batch("ROLLBACK").unwrap();
        // And the writer goes on.
        let mut next = writer.join(true).await.unwrap();
        next.run(1, |c| c.execute("INSERT INTO t (x) VALUES ($1)", &[Arg::from("next")])).unwrap();
        next.commit().await.unwrap();
    }

    /// Joins the writer, synced or not, and inserts `x`; returns the write with SQLite's sync
    /// level as its own connection sees it inside the batch (2 is `FULL`, 1 `NORMAL`).
    async fn joined(writer: &Writer, synced: bool, x: &str) -> (Unit, i64) {
        let mut unit = writer.join(synced).await.unwrap();
        let level = unit.run(0, |c| c.fetch_all("PRAGMA synchronous", &[])).unwrap()[0]
            .try_get::<i64, _>("synchronous")
            .unwrap();
        unit.run(1, |c| c.execute("INSERT INTO t (x) VALUES ($1)", &[Arg::from(x)])).unwrap();
        (unit, level)
    }

    /// Waits until a write waits to join the batch.
    async fn until_waiting(writer: &Writer) {
        while writer.shared.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    }

    /// An unsynced write opens a batch that commits without a sync; a synced write never goes
    /// into it (the unsynced batch commits first, and the synced write opens a batch at
    /// `FULL`), while an unsynced write joins a synced batch as it is. Every write is kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_synced_write_never_goes_into_a_batch_that_commits_without_a_sync() {
        let (dir, writer) = writer();
        let writer = Arc::new(writer);
        let (unsynced, at) = joined(&writer, false, "unsynced").await;
        assert_eq!(at, 1, "an unsynced batch is at synchronous = NORMAL");
        let synced = {
            let writer = Arc::clone(&writer);
            tokio::spawn(async move {
                let (synced, at) = joined(&writer, true, "synced").await;
                // An unsynced write waiting now joins this batch, which stays synced.
                let after = {
                    let writer = Arc::clone(&writer);
                    tokio::spawn(async move {
                        let (after, at) = joined(&writer, false, "after").await;
                        after.commit().await.unwrap();
                        at
                    })
                };
                until_waiting(&writer).await;
                synced.commit().await.unwrap();
                (at, after.await.unwrap())
            })
        };
        until_waiting(&writer).await;
        // Left open for the synced write waiting, which commits it before opening its own.
        unsynced.commit().await.unwrap();
        assert_eq!(synced.await.unwrap(), (2, 2), "the synced write's batch, and the unsynced write in it, at FULL");
        assert_eq!(writer.committed(), (2, 3), "two batches: the unsynced write's, then the synced one with the last");
        writer.flush().await;
        assert_eq!(rows(&dir), ["unsynced", "synced", "after"]);
    }

    /// A batch committed without a sync has its log synced soon after, though no synced write
    /// follows; unsynced batches committed meanwhile share that sync, and one committed after
    /// it gets its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_of_a_batch_committed_without_a_sync_is_synced_soon_after() {
        let (_dir, writer) = writer();
        let synced_once = async |writer: &Writer, at_least: u64| {
            let start = Instant::now();
            while writer.log_syncs() < at_least {
                assert!(start.elapsed() < Duration::from_secs(10), "the log was not synced");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let (synced, _) = joined(&writer, true, "synced").await;
        synced.commit().await.unwrap();
        for name in ["first", "second"] {
            let (unsynced, at) = joined(&writer, false, name).await;
            assert_eq!(at, 1);
            unsynced.commit().await.unwrap();
        }
        synced_once(&writer, 1).await;
        tokio::time::sleep(UNSYNCED_FOR_AT_MOST * 2).await;
        // One for the two batches; two if the second committed after the first sync began.
        let after_two = writer.log_syncs();
        assert!(after_two <= 2, "at most one sync per batch, none for the synced one: {after_two}");
        let (unsynced, _) = joined(&writer, false, "third").await;
        unsynced.commit().await.unwrap();
        synced_once(&writer, after_two + 1).await;
        // A batch committed without a sync just before the store closes is synced as it closes.
        let (unsynced, _) = joined(&writer, false, "last").await;
        unsynced.commit().await.unwrap();
        writer.flush().await;
        assert_eq!(writer.log_syncs(), after_two + 2);
    }

    /// A sync of the log that fails after batches committed without one (their frames may
    /// never reach the disk, and later commits would go after them in the log): the log is
    /// emptied before the next write, which puts those writes in the database file itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_of_the_log_empties_it_before_the_next_write() {
        let (dir, writer) = writer();
        writer.shared.fail_own_syncs.store(true, Ordering::SeqCst);
        let (unsynced, _) = joined(&writer, false, "unsynced").await;
        unsynced.commit().await.unwrap();
        let start = Instant::now();
        while !writer.shared.log_to_empty.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "a failed sync of the log did not mark it to be emptied"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writer.shared.fail_own_syncs.store(false, Ordering::SeqCst);
        let (next, _) = joined(&writer, true, "next").await;
        next.commit().await.unwrap();
        assert!(!writer.shared.log_to_empty.load(Ordering::SeqCst));
        // The database file without its log: the unsynced write is in it, the next one (in the
        // log the checkpoint emptied) not yet.
        let alone = tempfile::tempdir().unwrap();
        std::fs::copy(dir.path().join("w.db"), alone.path().join("w.db")).unwrap();
        assert_eq!(rows(&alone), ["unsynced"]);
        writer.flush().await;
        assert_eq!(rows(&dir), ["unsynced", "next"]);
    }

    /// The writer checkpoints the log itself (SQLite's automatic checkpoint is off on its
    /// connection): many batches, with another connection holding a read of the log across
    /// six of every seven of them (so that most checkpoints are cut short), leave the log no
    /// longer than about [`CHECKPOINT_FRAMES`] frames. A checkpoint whose sync fails marks the
    /// log to be emptied, and the next write empties it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_checkpoints_the_log_and_a_failed_checkpoint_empties_it() {
        let (dir, writer) = writer();
        let reader = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
        let probe = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
        let frames = || probe.query_row("PRAGMA wal_checkpoint(NOOP)", [], |r| r.get::<_, i64>(1)).unwrap();
        let mut most = 0;
        for n in 0..3000 {
            if n % 7 == 1 {
                reader.execute_batch("BEGIN").unwrap();
                reader.query_row("SELECT count(*) FROM t", [], |_| Ok(())).unwrap();
            } else if n % 7 == 0 && !reader.is_autocommit() {
                reader.execute_batch("COMMIT").unwrap();
            }
            let (unit, _) = joined(&writer, false, &format!("{n:04}{}", "x".repeat(2000))).await;
            unit.commit().await.unwrap();
            most = most.max(frames());
        }
        if !reader.is_autocommit() {
            reader.execute_batch("COMMIT").unwrap();
        }
        assert!((CHECKPOINT_FRAMES - 10..CHECKPOINT_FRAMES + 200).contains(&most), "the log grew to {most} frames");

        // The sync of the log those unsynced batches armed has run (with the syncs still
        // working), so that only a checkpoint can fail below.
        tokio::time::sleep(UNSYNCED_FOR_AT_MOST * 3).await;
        assert!(!writer.shared.log_sync_due.load(Ordering::SeqCst));
        writer.shared.fail_own_syncs.store(true, Ordering::SeqCst);
        let start = Instant::now();
        let mut n = 0;
        while !writer.shared.log_to_empty.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(30), "no failed checkpoint marked the log to be emptied");
            let (unit, _) = joined(&writer, true, &format!("failing {n}")).await;
            unit.commit().await.unwrap();
            n += 1;
        }
        writer.shared.fail_own_syncs.store(false, Ordering::SeqCst);
        let (next, _) = joined(&writer, true, "next").await;
        next.commit().await.unwrap();
        assert!(!writer.shared.log_to_empty.load(Ordering::SeqCst));
        assert!(frames() <= 2, "the log was not emptied: {} frames", frames());
        writer.flush().await;
    }
}
