//! The workers a router may call, taken in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::WorkerHandle;

/// A non-empty set of workers, each serving every provider, used round-robin.
pub struct WorkerPool {
    workers: Vec<WorkerHandle>,
    next: AtomicUsize,
}

impl WorkerPool {
    pub fn new(workers: Vec<WorkerHandle>) -> Self {
        Self {
            workers,
            next: AtomicUsize::new(0),
        }
    }

    /// The next worker in turn.
    pub fn pick(&self) -> Result<&WorkerHandle, GatewayError> {
        if self.workers.is_empty() {
            return Err(GatewayError::new(
                ErrorKind::Unavailable,
                "no worker is configured",
            ));
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        Ok(&self.workers[index])
    }

    pub fn all(&self) -> &[WorkerHandle] {
        &self.workers
    }
}
