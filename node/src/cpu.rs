//! The verification pool: CPU-bound work (signatures, chains, CRL checks) on blocking threads,
//! at most `limits.verify_threads` at once, so that the async workers that drive every
//! connection never wait behind a burst of documents being verified.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// A bounded pool of blocking threads for CPU-bound work.
#[derive(Debug)]
pub struct CpuPool {
    permits: Arc<Semaphore>,
    size: usize,
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
        CpuPool { permits: Arc::new(Semaphore::new(size)), size }
    }

    /// How many jobs may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `work` on a blocking thread once a slot is free. The slot is held until the work
    /// ends, even if the caller stops waiting, so the bound holds.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, CpuError> {
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
}
