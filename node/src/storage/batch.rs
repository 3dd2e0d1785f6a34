//! Group commit on SQLite: one writer connection, one sync for many writes.
//!
//! SQLite takes one writer at a time, and with `synchronous = FULL` every `COMMIT` is a sync
//! of the write-ahead log: a node taking documents spent a sync per event (the intake, the
//! sender's record, each notice on both sides). Here every write transaction of the process
//! joins the one database transaction that is open (a *batch*) as a savepoint. A write's
//! [`Unit::commit`] releases its savepoint, and the batch commits, with one sync, when no other
//! write is waiting to join it (or it holds [`MAX_UNITS`] writes, or is [`MAX_AGE`] old). A
//! write that leaves the batch open to the writes behind it waits for the batch's `COMMIT`:
//! `commit` returns `Ok` only once the `COMMIT` that contains the write returned, so "a
//! commit is on disk when it returns" stays true, and with it the promise of a hop receipt.
//!
//! Nothing outside the batch reads it before its sync: the other connections of the pool see
//! a transaction only when it commits (WAL). Writes inside one batch see each other's
//! uncommitted rows, but none acts on them outside the database before its own `commit`
//! returns, and if the batch fails every write in it fails together.
//!
//! A write that fails halfway rolls back to its savepoint and the others go on; a failure that
//! ends the database transaction itself (SQLite rolls back on its own after `SQLITE_FULL` and
//! I/O errors) fails the whole batch: every write in it gets [`StoreError::Batch`] and nothing
//! of it is kept. The connection of a failed batch is closed, never reused.
//!
//! Ending a batch (its `COMMIT`, the cleanup of an abandoned write) runs in a task of its own
//! holding the batch, so a caller that stops waiting (a request timing out) cannot leave the
//! connection halfway through a `COMMIT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::deferred::{self, Kept};
use super::{StoreError, discard};

/// At most this many writes in one batch: a batch that writes keep joining commits anyway, so
/// that the first write in it does not wait without bound.
pub(crate) const MAX_UNITS: usize = 256;

/// A batch this old commits at the next write's end even when others wait to join (a bound on
/// the wait the batch adds to its first write).
pub(crate) const MAX_AGE: Duration = Duration::from_millis(20);

/// How long a write that left its batch open waits before closing the batch itself: the
/// write that was to close it may have been cancelled before it joined.
const ORPHANED_AFTER: Duration = Duration::from_millis(50);

/// A write's first statement. Every write's savepoint has this one name, `w` (as in
/// [`Step::statement`]). One name serves: the writer lets one write at a time
/// run statements, and each write ends its savepoint before the next begins (`RELEASE`, after
/// `ROLLBACK TO` when undone) or the whole batch fails and its connection is closed, so at most
/// one savepoint exists in a batch at any moment. And one name must serve: a write's
/// `SAVEPOINT` and its `RELEASE` travel in one query with its other statements (see
/// [`super::deferred`]), and sqlx caches prepared statements by the query's whole text, so a
/// name of each write's own would make every write's queries new text, prepared again.
pub(crate) const OPEN: &str = "SAVEPOINT w";

/// What a batch came to: unset while open.
type Outcome = Option<Result<(), Arc<StoreError>>>;

/// The process's SQLite writer.
#[derive(Debug)]
pub(crate) struct Writer {
    batch: Arc<Mutex<Batch>>,
    shared: Arc<Shared>,
}

/// What the writer and the tasks ending its batches share.
#[derive(Debug, Default)]
struct Shared {
    /// Writes waiting to join the batch: while there are any, a write ending leaves the batch
    /// open for them.
    waiting: AtomicUsize,
    batches: AtomicU64,
    writes: AtomicU64,
}

/// The open batch (if any), behind the writer's lock: holding the lock is being the one write
/// that runs statements now.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The connection, inside `BEGIN IMMEDIATE`, while a batch is open.
    conn: Option<PoolConnection<Any>>,
    /// Counts batches, so that a write knows whether its batch is still the open one.
    id: u64,
    /// Writes released into this batch (their work is in it).
    units: usize,
    opened: Instant,
    /// Where the open batch's outcome is told.
    done: watch::Sender<Outcome>,
    shared: Arc<Shared>,
}

/// A connection closed when dropped, unless taken out: one whose state is uncertain.
struct Closing(Option<PoolConnection<Any>>);

impl Drop for Closing {
    fn drop(&mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.close_on_drop();
        }
    }
}

/// Counts a write waiting for the writer, also when the wait is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writer {
    pub(crate) fn new() -> Writer {
        let shared = Arc::new(Shared::default());
        let batch = Batch {
            conn: None,
            id: 0,
            units: 0,
            opened: Instant::now(),
            done: watch::channel(None).0,
            shared: Arc::clone(&shared),
        };
        Writer { batch: Arc::new(Mutex::new(batch)), shared }
    }

    /// Commits the open batch, if one is left open (by writes that were all cancelled): before
    /// the store closes, so that the pool gets its connection back.
    pub(crate) async fn flush(&self) {
        let batch = Arc::clone(&self.batch).lock_owned().await;
        if batch.conn.is_some() {
            run_detached(batch, |mut b| async move { b.commit().await }).await;
        }
    }

    /// Batches committed and the writes they held, since the store was opened.
    pub(crate) fn committed(&self) -> (u64, u64) {
        (self.shared.batches.load(Ordering::Relaxed), self.shared.writes.load(Ordering::Relaxed))
    }

    /// Joins the open batch (opening one if none is), as a savepoint: the write runs its
    /// statements on [`Unit::conn`] while it holds the writer. The `SAVEPOINT` itself is not
    /// sent here: it is [`OPEN`], the first statement the write sends (see
    /// [`super::deferred`]), so a write costs no round trip to join.
    pub(crate) async fn join(&self, pool: &AnyPool) -> Result<Unit, StoreError> {
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(&self.shared.waiting);
        let mut batch = Arc::clone(&self.batch).lock_owned().await;
        drop(waiting);
        if batch.conn.is_none() {
            // In a task of its own: if the caller is cancelled while `BEGIN` runs, the batch
            // still knows where it stands.
            let pool = pool.clone();
            let opened = run_detached(batch, move |mut batch| async move {
                let opened = batch.open(&pool).await;
                (batch, opened)
            })
            .await;
            let (opened_batch, result) = opened.ok_or_else(lost)?;
            result?;
            batch = opened_batch;
        }
        let (id, outcome) = (batch.id, batch.done.subscribe());
        Ok(Unit { writer: Arc::clone(&self.batch), batch: Some(batch), sent: false, id, outcome })
    }
}

/// What a statement does to a write's savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `RELEASE`: its work stays in the batch.
    Release,
    /// `ROLLBACK TO` then `RELEASE`: its work is undone, the batch goes on.
    RollBack,
}

/// Runs `step` on the write's savepoint (see [`OPEN`]).
async fn savepoint_statement(step: Step, batch: &mut Batch) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(step.statement()).execute(batch.conn()).await.map(|_| ())
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

impl Batch {
    /// `BEGIN IMMEDIATE` on a pooled connection. A connection on which `BEGIN` fails (one
    /// somehow still inside a transaction) is closed and one fresh connection tried.
    async fn open(&mut self, pool: &AnyPool) -> Result<(), StoreError> {
        let mut retried = false;
        loop {
            // Closed if this is cancelled while `BEGIN` runs (its state is then unknown), and
            // kept by the batch once `BEGIN` succeeded.
            let mut conn = Closing(Some(pool.acquire().await?));
            let began = match conn.0.as_mut() {
                Some(c) => sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut **c).await,
                None => unreachable!("the connection was just acquired"),
            };
            match began {
                Ok(_) => {
                    self.conn = conn.0.take();
                    self.id += 1;
                    self.units = 0;
                    self.opened = Instant::now();
                    self.done = watch::channel(None).0;
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

    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match self.conn.as_mut() {
            Some(c) => c,
            None => unreachable!("a batch is used while none is open"),
        }
    }

    /// Whether the write ending now should commit the batch rather than leave it open.
    fn should_commit(&self) -> bool {
        self.shared.waiting.load(Ordering::SeqCst) == 0 || self.units >= MAX_UNITS || self.opened.elapsed() >= MAX_AGE
    }

    /// Commits the open batch and tells its writes.
    async fn commit(&mut self) -> Result<(), Arc<StoreError>> {
        let Some(mut conn) = self.conn.take() else { return Ok(()) };
        // No write released into it (all rolled back): nothing to sync, nobody to tell.
        let statement = if self.units == 0 { "ROLLBACK" } else { "COMMIT" };
        let result = match sqlx::raw_sql(statement).execute(&mut *conn).await {
            Ok(_) => {
                if self.units > 0 {
                    self.shared.batches.fetch_add(1, Ordering::Relaxed);
                    self.shared.writes.fetch_add(self.units as u64, Ordering::Relaxed);
                }
                drop(conn);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = self.units, "a batch of writes did not commit; closing its database connection");
                discard(conn).await;
                Err(Arc::new(StoreError::from(e)))
            }
        };
        self.done.send_replace(Some(result.clone()));
        result
    }

    /// Ends the open batch as failed with `error`: nothing of it is kept (closing the
    /// connection rolls it back), and every write in it is told.
    async fn fail(&mut self, error: Arc<StoreError>) {
        if let Some(conn) = self.conn.take() {
            tracing::warn!(error = %error, writes = self.units, "a batch of writes failed; closing its database connection");
            discard(conn).await;
        }
        self.done.send_replace(Some(Err(error)));
    }
}

/// Fails the batch with `error` in a task of its own, and returns the error for the write
/// that saw it.
async fn end_failed(batch: OwnedMutexGuard<Batch>, error: StoreError) -> StoreError {
    let error = Arc::new(error);
    let told = Arc::clone(&error);
    run_detached(batch, move |mut b| async move { b.fail(told).await }).await;
    StoreError::Batch(error)
}

/// Runs `work` on the batch in a task of its own and waits for it: if the caller is cancelled,
/// the work still runs to its end while the batch stays locked.
async fn run_detached<F, Fut, T>(batch: OwnedMutexGuard<Batch>, work: F) -> Option<T>
where
    F: FnOnce(OwnedMutexGuard<Batch>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(work(batch)).await.ok()
}

/// One write: a savepoint inside the open batch, holding the writer until it ends.
#[derive(Debug)]
pub(crate) struct Unit {
    /// The writer's lock, to close the batch if nobody else does (see [`Unit::wait`]).
    writer: Arc<Mutex<Batch>>,
    /// The writer, held from `join` until the write ends; taken (into a task of its own) by
    /// `commit` and `rollback`.
    batch: Option<OwnedMutexGuard<Batch>>,
    /// Whether its `SAVEPOINT` may have reached the database: until then the write has done
    /// nothing there, and ending it needs no statement.
    sent: bool,
    id: u64,
    outcome: watch::Receiver<Outcome>,
}

impl Unit {
    /// Records that the write's statements (its `SAVEPOINT` first) are about to be sent: from
    /// then on, ending it without `RELEASE` rolls back to its savepoint. Set before sending,
    /// so a send cancelled halfway still counts as sent: sqlx's worker runs the statements of
    /// a query in order, `SAVEPOINT` first, and stops after the first whose result it cannot
    /// hand back, so what ran of a cancelled query is a prefix that `ROLLBACK TO` undoes.
    pub(crate) fn sending(&mut self) {
        self.sent = true;
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match self.batch.as_mut() {
            Some(b) => b.conn(),
            None => unreachable!("a write is used after it ended"),
        }
    }

    /// Puts the write into its batch, its `kept` statements sent with its `RELEASE`, and
    /// returns once the batch is committed: `Ok` means the database said the `COMMIT` that
    /// holds this write succeeded.
    pub(crate) async fn commit(self, kept: Kept) -> Result<(), StoreError> {
        self.end(Step::Release, kept).await
    }

    /// Rolls the write back to its savepoint; the batch goes on without it. Returns once the
    /// batch it was part of has ended, `Err` if that batch failed: what the write read in it
    /// (another write's row, not yet committed) held only if the batch did.
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        self.end(Step::RollBack, Kept::default()).await
    }

    /// Ends the write with `step` on its savepoint (`RELEASE` puts its work in the batch),
    /// then commits the batch or leaves it to the writes waiting and waits for it. The
    /// statement and the decision run in a task of their own: a caller cancelled halfway
    /// cannot leave it unknown where the write stands.
    ///
    /// The write's `kept` statements go in front of its `RELEASE`, in one query. If one of them
    /// fails, the write is rolled back to its savepoint and fails alone, as it would have had
    /// the statement run at once; the batch goes on without it.
    async fn end(mut self, step: Step, mut kept: Kept) -> Result<(), StoreError> {
        let Some(batch) = self.batch.take() else { return Ok(()) };
        let sent = self.sent;
        let ended = run_detached(batch, move |mut batch| async move {
            let ran = match step {
                // Nothing reached the database: nothing to undo.
                Step::RollBack if !sent => Ok(()),
                Step::Release if !kept.is_empty() => {
                    kept.keep(Step::Release.statement(), Vec::new());
                    let (sql, args) = kept.take();
                    deferred::query(sql, args).execute(batch.conn()).await.map(|_| ())
                }
                _ => savepoint_statement(step, &mut batch).await,
            };
            if let Err(e) = ran {
                if step == Step::Release && savepoint_statement(Step::RollBack, &mut batch).await.is_ok() {
                    if batch.should_commit() {
                        let _ = batch.commit().await;
                    }
                    return Some(Err(StoreError::from(e)));
                }
                return Some(Err(end_failed(batch, e.into()).await));
            }
            if step == Step::Release {
                batch.units += 1;
            }
            if batch.should_commit() { Some(batch.commit().await.map_err(StoreError::Batch)) } else { None }
        })
        .await;
        match ended {
            Some(Some(result)) => result,
            Some(None) => self.wait().await,
            None => Err(lost()),
        }
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
            if batch.id == self.id && batch.conn.is_some() {
                let committed = run_detached(batch, |mut b| async move { b.commit().await }).await;
                return match committed {
                    Some(result) => result.map_err(StoreError::Batch),
                    None => Err(lost()),
                };
            }
        }
    }
}

impl Drop for Unit {
    /// A write dropped before its end (a statement failed and `?` returned, or the caller was
    /// cancelled while it ran its statements): if its savepoint was sent, it is rolled back in
    /// a task holding the batch, and the batch goes on; if that fails, the batch fails. A write
    /// that sent nothing has nothing to undo.
    fn drop(&mut self) {
        let Some(mut batch) = self.batch.take() else { return };
        let sent = self.sent;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left (the process is ending): close the connection, which rolls the
            // whole batch back; nobody is left to tell.
            if let Some(mut conn) = batch.conn.take() {
                conn.close_on_drop();
            }
            return;
        };
        runtime.spawn(async move {
            if batch.conn.is_none() {
                return;
            }
            if sent && let Err(e) = savepoint_statement(Step::RollBack, &mut batch).await {
                batch.fail(Arc::new(e.into())).await;
                return;
            }
            if batch.should_commit() {
                let _ = batch.commit().await;
            }
        });
    }
}

fn lost() -> StoreError {
    StoreError::Corrupt("the outcome of a batch of writes was lost (a task ending it failed)".into())
}
