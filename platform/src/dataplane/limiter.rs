//! `containerConcurrency`: at most N requests in a revision's pods at once, a bounded queue
//! behind them (10 x N, as Knative's queue-proxy), and a clear 503 when it is full.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The queue is full: the caller answers 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    pub limit: usize,
    pub queue: usize,
}

pub struct Limiter {
    slots: std::sync::Arc<Semaphore>,
    waiting: AtomicUsize,
    limit: usize,
    queue: usize,
}

impl Limiter {
    /// `limit` concurrent requests, `queue` more waiting.
    pub fn new(limit: usize, queue: usize) -> Self {
        Self { slots: std::sync::Arc::new(Semaphore::new(limit)), waiting: AtomicUsize::new(0), limit, queue }
    }

    /// Knative's sizing for `containerConcurrency` N across `pods` pods.
    pub fn for_concurrency(container_concurrency: u32, pods: usize) -> Option<Self> {
        let limit = container_concurrency as usize * pods.max(1);
        (container_concurrency > 0).then(|| Self::new(limit, 10 * limit))
    }

    /// A slot, waiting in the queue if need be; `Overloaded` when the queue is full.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Overloaded> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let overloaded = Overloaded { limit: self.limit, queue: self.queue };
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        if waiting >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(overloaded);
        }
        // Only a request that actually waits gets the span: the fast path stays free.
        let span = tracing::info_span!(
            "queue wait",
            otel.kind = "internal",
            skiff.queue.limit = self.limit,
            skiff.queue.waiting = waiting + 1,
        );
        let permit = tracing::Instrument::instrument(self.slots.clone().acquire_owned(), span).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| overloaded)
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_and_slots_come_back() {
        let limiter = std::sync::Arc::new(Limiter::new(1, 1));
        let first = limiter.acquire().await.unwrap();
        let queued = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire().await.map(|_| ()) })
        };
        while limiter.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(limiter.acquire().await.unwrap_err(), Overloaded { limit: 1, queue: 1 });
        drop(first);
        queued.await.unwrap().unwrap();
        assert!(limiter.acquire().await.is_ok());
        assert!(Limiter::for_concurrency(0, 1).is_none());
        assert_eq!(Limiter::for_concurrency(2, 3).unwrap().queue, 60);
    }
}
