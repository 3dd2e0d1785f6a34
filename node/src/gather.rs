//! Work that waits to be written together: a queue that at most a few writer tasks empty, a
//! batch at a time, each waiter told how its part went.
//!
//! On PostgreSQL every statement is a round trip and a transaction at least three, and the
//! server's CPU a round trip bounds a node there; several pieces of work of the same kind
//! written in one transaction, in statements that carry them all, cost the round trips of
//! one. The next hops' answers (`outbound::answers`), the documents taken and their
//! duplicate checks (`intake::together`) and the claims of hand-offs (`outbound::handoff`) go
//! this way: a piece of work that comes while a writer is busy waits
//! for the writer's next batch, so that batches grow with the load and a lone piece is
//! written at once.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::oneshot;

use crate::Node;
use crate::storage::StoreError;

/// A queue of work of type `T` whose writing answers `R` to each waiter.
#[derive(Debug)]
pub(crate) struct Gather<T, R> {
    queue: StdMutex<Queue<T, R>>,
    /// Most pieces in one batch: a bound on what one failure has to do again one by one, and
    /// on the wait of the first piece in it.
    most: usize,
    /// Most writers at once: one may wait for its `COMMIT` (a sync) while the next runs its
    /// statements.
    writers: usize,
}

#[derive(Debug)]
struct Queue<T, R> {
    waiting: Vec<Waiting<T, R>>,
    writers: usize,
}

/// A piece of work and where to say how its writing went.
#[derive(Debug)]
pub(crate) struct Waiting<T, R> {
    /// The work.
    pub(crate) item: T,
    done: oneshot::Sender<Result<R, StoreError>>,
}

impl<T, R> Waiting<T, R> {
    /// Tells the waiter (who may have stopped waiting: nothing to do then).
    pub(crate) fn tell(self, outcome: Result<R, StoreError>) {
        let _ = self.done.send(outcome);
    }
}

impl<T: Send + 'static, R: Send + 'static> Gather<T, R> {
    /// An empty queue: batches of at most `most`, at most `writers` at once.
    pub(crate) fn new(most: usize, writers: usize) -> Gather<T, R> {
        Gather { queue: StdMutex::new(Queue { waiting: Vec::new(), writers: 0 }), most: most.max(1), writers }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<T, R>> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a piece; true when a writer is to be started for it (counted as started).
    fn push(&self, waiting: Waiting<T, R>) -> bool {
        let mut q = self.lock();
        q.waiting.push(waiting);
        let start = q.writers < self.writers;
        q.writers += usize::from(start);
        start
    }

    /// The next pieces for a writer, oldest first; `None` ends it (counted as ended), with
    /// nothing waiting.
    fn next_batch(&self) -> Option<Vec<Waiting<T, R>>> {
        let mut q = self.lock();
        if q.waiting.is_empty() {
            q.writers = q.writers.saturating_sub(1);
            return None;
        }
        let n = q.waiting.len().min(self.most);
        Some(q.waiting.drain(..n).collect())
    }

    /// How many writers run now (for tests).
    #[cfg(test)]
    fn writers(&self) -> usize {
        self.lock().writers
    }
}

/// A writer's place, given back if it panics (when it ends normally,
/// [`Gather::next_batch`] gave it back); the pieces of the batch it held are told
/// [`StoreError::Abandoned`] (their senders dropped), and so are those waiting if no writer
/// is left to take them (none may come: the next piece starts one).
struct Place<'a, T: Send + 'static, R: Send + 'static>(&'a Gather<T, R>);

impl<T: Send + 'static, R: Send + 'static> Drop for Place<'_, T, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut q = self.0.lock();
            q.writers = q.writers.saturating_sub(1);
            if q.writers == 0 {
                q.waiting.clear();
            }
        }
    }
}

/// Queues `item` on the node's queue `gather` and waits for its outcome; a writer, started if
/// fewer than the queue's bound run, writes what waits with `write` (a batch at a time) and
/// tells every waiter of the batch. The writer is a task of its own under the node's task
/// tracker, not this caller's: nothing that stops waiting for one piece cuts short the
/// writing of the others.
pub(crate) async fn submit<T, R, F, Fut>(
    node: &Arc<Node>,
    gather: fn(&Node) -> &Gather<T, R>,
    item: T,
    write: F,
) -> Result<R, StoreError>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Arc<Node>, Vec<Waiting<T, R>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (done, outcome) = oneshot::channel();
    if gather(node).push(Waiting { item, done }) {
        let task_node = Arc::clone(node);
        node.tasks.spawn(async move {
            let node = task_node;
            let _place = Place(gather(&node));
            while let Some(batch) = gather(&node).next_batch() {
                write(Arc::clone(&node), batch).await;
            }
        });
    }
    outcome.await.unwrap_or(Err(StoreError::Abandoned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(item: u32) -> (Waiting<u32, ()>, oneshot::Receiver<Result<(), StoreError>>) {
        let (done, outcome) = oneshot::channel();
        (Waiting { item, done }, outcome)
    }

    #[test]
    fn at_most_the_bound_of_writers_start_and_batches_are_bounded() {
        let g: Gather<u32, ()> = Gather::new(3, 2);
        let starts: Vec<bool> = (0..5).map(|i| g.push(waiting(i).0)).collect();
        assert_eq!(starts, [true, true, false, false, false]);
        let first: Vec<u32> = g.next_batch().map(|b| b.into_iter().map(|w| w.item).collect()).unwrap_or_default();
        assert_eq!(first, [0, 1, 2]);
        let second: Vec<u32> = g.next_batch().map(|b| b.into_iter().map(|w| w.item).collect()).unwrap_or_default();
        assert_eq!(second, [3, 4]);
        assert!(g.next_batch().is_none());
        assert_eq!(g.writers(), 1);
        assert!(g.next_batch().is_none());
        assert_eq!(g.writers(), 0);
        assert!(g.push(waiting(9).0), "a piece after the writers ended starts one");
    }

    #[test]
    fn a_writer_that_panics_leaves_no_piece_waiting_for_nobody() {
        let g: Gather<u32, ()> = Gather::new(8, 1);
        let (w, mut outcome) = waiting(1);
        assert!(g.push(w));
        let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _place = Place(&g);
            panic!("a writer's bug");
        }));
        assert!(held.is_err());
        assert_eq!(g.writers(), 0);
        assert!(matches!(outcome.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
    }
}
