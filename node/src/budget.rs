//! The memory a node spends on request frames, budgeted per connection, per certificate and
//! for the whole node.
//!
//! A request frame is read into memory (it holds the envelope, CRLs or a receipt), so a peer
//! that declares large frames and never finishes them could otherwise make the node hold
//! `max_frame_bytes` × streams × connections. Here every byte of buffer a frame grows by is
//! first acquired from three budgets in turn — its connection's
//! (`limits.frame_budget_per_connection`), its certificate's across all that certificate's
//! connections (`limits.frame_budget_per_certificate`) and the node's
//! (`limits.frame_budget_total`) — and given back when the request is done or dropped.
//!
//! A frame that cannot get its bytes waits, without reading: QUIC flow control then holds the
//! sender back, so waiting costs no memory. The wait is bounded by the frame's deadline; a
//! peer stalling its own frames uses up its own budgets and no one else's, since one
//! certificate holds at most its certificate budget of the node's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Which budget was exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The connection's.
    Connection,
    /// The certificate's, over all its connections.
    Certificate,
    /// The node's.
    Node,
}

/// A frame could not get memory before its deadline.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the node is busy: no room for {wanted} more bytes of this frame in the {} frame budget before the frame's deadline; try again",
    match .budget { Budget::Connection => "connection's", Budget::Certificate => "certificate's", Budget::Node => "node's" }
)]
pub struct BudgetError {
    /// Which budget.
    pub budget: Budget,
    /// Bytes asked for.
    pub wanted: usize,
}

/// The node's frame budgets.
#[derive(Debug)]
pub struct FrameBudgets {
    capacity: usize,
    total: Arc<Semaphore>,
    per_certificate: usize,
    per_connection: usize,
    certificates: Mutex<HashMap<[u8; 32], Weak<Semaphore>>>,
}

impl FrameBudgets {
    /// Budgets of `total` bytes for the node, `per_certificate` and `per_connection`.
    pub fn new(total: usize, per_certificate: usize, per_connection: usize) -> Self {
        let capacity = total.min(Semaphore::MAX_PERMITS);
        FrameBudgets {
            capacity,
            total: Arc::new(Semaphore::new(capacity)),
            per_certificate: per_certificate.min(Semaphore::MAX_PERMITS),
            per_connection: per_connection.min(Semaphore::MAX_PERMITS),
            certificates: Mutex::new(HashMap::new()),
        }
    }

    /// The budgets a new connection of the peer with `certificate` (its SHA-256) draws on.
    pub fn for_connection(&self, certificate: [u8; 32]) -> ConnectionBudget {
        let mut certificates = self.certificates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let shared = match certificates.get(&certificate).and_then(Weak::upgrade) {
            Some(s) => s,
            None => {
                // Forget certificates with no connection left before adding one.
                certificates.retain(|_, w| w.strong_count() > 0);
                let s = Arc::new(Semaphore::new(self.per_certificate));
                certificates.insert(certificate, Arc::downgrade(&s));
                s
            }
        };
        ConnectionBudget {
            connection: Arc::new(Semaphore::new(self.per_connection)),
            certificate: shared,
            total: self.total.clone(),
        }
    }

    /// Bytes of the node's budget in use now.
    pub fn in_use(&self) -> usize {
        self.capacity.saturating_sub(self.total.available_permits())
    }
}

/// One connection's view of the budgets.
#[derive(Debug, Clone)]
pub struct ConnectionBudget {
    connection: Arc<Semaphore>,
    certificate: Arc<Semaphore>,
    total: Arc<Semaphore>,
}

impl ConnectionBudget {
    /// An empty lease for one frame.
    pub fn lease(&self) -> Lease {
        Lease { budget: self.clone(), held: Vec::new(), bytes: 0 }
    }
}

/// Memory held for one frame (and the request decoded from it) until dropped.
#[derive(Debug)]
pub struct Lease {
    budget: ConnectionBudget,
    held: Vec<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Lease {
    /// Takes `bytes` more from the connection's, the certificate's and the node's budgets, in
    /// that order, waiting for each until `deadline`.
    pub async fn grow(&mut self, bytes: usize, deadline: Instant) -> Result<(), BudgetError> {
        if bytes == 0 {
            return Ok(());
        }
        let n = u32::try_from(bytes).map_err(|_| BudgetError { budget: Budget::Connection, wanted: bytes })?;
        for (semaphore, budget) in [
            (&self.budget.connection, Budget::Connection),
            (&self.budget.certificate, Budget::Certificate),
            (&self.budget.total, Budget::Node),
        ] {
            let permit = match semaphore.clone().try_acquire_many_owned(n) {
                Ok(p) => p,
                Err(_) => tokio::time::timeout_at(deadline, semaphore.clone().acquire_many_owned(n))
                    .await
                    .map_err(|_| BudgetError { budget, wanted: bytes })?
                    .map_err(|_| BudgetError { budget, wanted: bytes })?,
            };
            self.held.push(permit);
        }
        self.bytes += bytes;
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn budgets_hold_per_connection_per_certificate_and_in_all() {
        let budgets = FrameBudgets::new(300, 200, 120);
        let soon = || Instant::now() + Duration::from_millis(20);
        let a1 = budgets.for_connection([1; 32]);
        let a2 = budgets.for_connection([1; 32]);
        let b = budgets.for_connection([2; 32]);

        let mut x = a1.lease();
        x.grow(100, soon()).await.unwrap();
        // The connection's 120 bytes are nearly gone.
        let mut y = a1.lease();
        assert_eq!(y.grow(30, soon()).await.unwrap_err().budget, Budget::Connection);
        // Another connection of the same certificate: the certificate's 200 bound it.
        let mut z = a2.lease();
        z.grow(100, soon()).await.unwrap();
        let mut w = a2.lease();
        assert_eq!(w.grow(10, soon()).await.unwrap_err().budget, Budget::Certificate);
        // Another certificate: the node's 300 are what is left.
        let mut v = b.lease();
        v.grow(100, soon()).await.unwrap();
        let mut u = b.lease();
        assert_eq!(u.grow(10, soon()).await.unwrap_err().budget, Budget::Node);
        assert_eq!(budgets.in_use(), 300);

        // Dropping a lease gives everything back; a waiting frame then gets its bytes.
        let waiting = tokio::spawn(async move {
            let mut w = a1.lease();
            w.grow(90, Instant::now() + Duration::from_secs(5)).await.map(|_| w.bytes())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(x);
        assert_eq!(waiting.await.unwrap().unwrap(), 90);
        drop((z, v, y, w, u));
        assert_eq!(budgets.in_use(), 0);
    }

    #[tokio::test]
    async fn a_failed_grow_keeps_nothing_once_dropped() {
        let budgets = FrameBudgets::new(100, 100, 100);
        let c = budgets.for_connection([3; 32]);
        let mut big = c.lease();
        big.grow(60, Instant::now()).await.unwrap();
        let mut other = c.lease();
        assert!(other.grow(50, Instant::now() + Duration::from_millis(10)).await.is_err());
        drop(other);
        drop(big);
        assert_eq!(budgets.in_use(), 0);
        // Certificates without connections are forgotten.
        drop(c);
        let _d = budgets.for_connection([4; 32]);
        assert_eq!(budgets.certificates.lock().unwrap().len(), 1);
    }
}
