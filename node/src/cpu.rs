//! The verification pool: CPU-bound work (signatures, chains, CRL checks) on blocking threads,
//! at most `limits.verify_threads` at once, so that the async workers that drive every
//! connection never wait behind a burst of documents being verified.
//!
//! One exception, for the document that arrives alone: when no job is running, the job runs
//! on the async worker that asked for it, if the runtime has another worker to drive the
//! connections meanwhile. A hand-off to a blocking thread costs two thread wake-ups (the
//! blocking thread's, then the waiting task's), and on an idle machine each is a core woken
//! from sleep: measured at about 0.1 ms each on the 2-vCPU benchmark machine, against about
//! 0.2 ms for the verification itself. At most one job runs this way at a time, so a burst
//! blocks at most one worker for one job; the rest of the burst goes to the pool. (The bound
//! is per pool: a process running several nodes, as the test harness does, may have one such
//! job per node.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Semaphore;

/// A bounded pool of blocking threads for CPU-bound work.
#[derive(Debug)]
pub struct CpuPool {
    permits: Arc<Semaphore>,
    size: usize,
    /// A job is running on an async worker (see the module's doc).
    inline: AtomicBool,
}

/// Why work did not run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CpuError {
    /// The work panicked (a bug): the document is treated as not taken, and can be sent again.
    #[error("the verification thread failed: {0}")]
    Panicked(String),
}

impl CpuPool {
    /// A pool running at most `size` jobs at once (at least one).
    pub fn new(size: usize) -> CpuPool {
        let size = size.max(1);
        CpuPool { permits: Arc::new(Semaphore::new(size)), size, inline: AtomicBool::new(false) }
    }

    /// How many jobs may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `work` on a blocking thread once a slot is free, or right here when the pool is
    /// idle (see the module's doc). The slot is held until the work ends, even if the caller
    /// stops waiting, so the bound holds.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, CpuError> {
        if self.may_run_here() {
            // What the caller's last await woke (the connection's driver, after a read of
            // its stream) waits in this worker's next-task slot, which no other worker takes
            // from: let it run first, no thread woken for that.
            tokio::task::yield_now().await;
        }
        let work = match self.run_here(work) {
            Ok(done) => return done,
            Err(work) => work,
        };
        let permit = match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed; were it, run without a slot rather than never.
            Err(_) => return tokio::task::spawn_blocking(work).await.map_err(|e| CpuError::Panicked(e.to_string())),
        };
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| CpuError::Panicked(e.to_string()))
    }

    /// Whether a job asked now could run on this thread: the pool idle, none running on a
    /// worker, and the runtime has another worker.
    fn may_run_here(&self) -> bool {
        let other_workers = tokio::runtime::Handle::try_current().is_ok_and(|h| {
            h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread && h.metrics().num_workers() >= 2
        });
        other_workers && self.permits.available_permits() == self.size && !self.inline.load(Ordering::Acquire)
    }

    /// Runs `work` on this thread if the pool is idle, no other job runs on an async worker,
    /// and the runtime has another worker; otherwise gives it back.
    fn run_here<T, F: FnOnce() -> T>(&self, work: F) -> Result<Result<T, CpuError>, F> {
        if !self.may_run_here() || self.inline.swap(true, Ordering::AcqRel) {
            return Err(work);
        }
        let Ok(permit) = self.permits.try_acquire() else {
            self.inline.store(false, Ordering::Release);
            return Err(work);
        };
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
            let message = panic.downcast_ref::<&str>().map(|s| (*s).to_owned());
            CpuError::Panicked(message.or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default())
        });
        drop(permit);
        self.inline.store(false, Ordering::Release);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_pool_size_runs_at_once_and_panics_are_errors() {
        let pool = Arc::new(CpuPool::new(3));
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut jobs = Vec::new();
        for _ in 0..24 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            jobs.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for j in jobs {
            j.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3, "the pool filled, and no further");
        let err = pool.run(|| panic!("a bug")).await.unwrap_err();
        assert!(matches!(err, CpuError::Panicked(_)));
        // The slot of the panicked job came back.
        pool.run(|| ()).await.unwrap();
        assert_eq!(pool.permits.available_permits(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_pool_runs_a_job_where_it_is_asked_and_a_busy_one_on_its_threads() {
        let pool = Arc::new(CpuPool::new(2));
        let here = std::thread::current().id();
        assert_eq!(pool.run(|| std::thread::current().id()).await.unwrap(), here, "idle: no hand-off");

        // A long job takes the pool's only job-on-a-worker place (it runs on a worker, the
        // pool being idle when it asked); a job asked meanwhile goes to a blocking thread,
        // and runs while the first still does.
        let started = Arc::new(std::sync::Barrier::new(2));
        let release = Arc::new(std::sync::Barrier::new(2));
        let long = tokio::spawn({
            let (pool, started, release) = (pool.clone(), started.clone(), release.clone());
            async move {
                pool.run(move || {
                    started.wait();
                    release.wait();
                    std::thread::current().id()
                })
                .await
            }
        });
        tokio::task::spawn_blocking({
            let started = started.clone();
            move || started.wait()
        })
        .await
        .unwrap();
        let second = pool.run(|| std::thread::current().id()).await.unwrap();
        assert_ne!(second, here, "busy: the second job went to a blocking thread");
        release.wait();
        let first = long.await.unwrap().unwrap();
        assert_ne!(first, second);

        // A panic on a worker is an error like one on the pool's threads, and gives its
        // place back.
        let err = pool.run(|| panic!("a bug")).await.unwrap_err();
        assert!(matches!(&err, CpuError::Panicked(m) if m == "a bug"), "{err}");
        assert_eq!(pool.run(|| std::thread::current().id()).await.unwrap(), here);
        assert_eq!(pool.permits.available_permits(), 2);
    }

    #[tokio::test]
    async fn a_runtime_with_one_thread_always_hands_the_job_off() {
        let pool = CpuPool::new(2);
        let here = std::thread::current().id();
        assert_ne!(pool.run(|| std::thread::current().id()).await.unwrap(), here);
    }
}
