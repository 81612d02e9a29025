//! Running a reconciler: feed its queue from the store's change feed, run workers,
//! requeue on request and back off on errors.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::queue::WorkQueue;
use crate::resources::ResourceType;
use crate::store::{ObjectKey, SharedStore, WatchEvent};

/// What to do after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes.
    Await,
    /// Look again after this long, even if nothing changes.
    RequeueAfter(Duration),
}

pub type ReconcileError = Box<dyn std::error::Error + Send + Sync>;

/// An idempotent controller of one resource type.
pub trait Reconciler: Send + Sync + 'static {
    /// The resource it reconciles.
    fn resource(&self) -> &'static ResourceType;

    /// The primary objects a change concerns. By default: the changed object itself
    /// when it is one of ours.
    fn keys_for(&self, event: &WatchEvent) -> Vec<ObjectKey> {
        if &*event.key.resource == self.resource().key { vec![event.key.clone()] } else { Vec::new() }
    }

    fn reconcile(&self, key: &ObjectKey) -> impl Future<Output = Result<Action, ReconcileError>> + Send;
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Start `reconciler` with `workers` workers until `shutdown`.
pub fn spawn<R: Reconciler>(
    store: SharedStore,
    reconciler: Arc<R>,
    workers: usize,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let queue = Arc::new(WorkQueue::default());
    let resource = reconciler.resource();
    let mut tasks = Vec::with_capacity(workers + 1);
    let span = tracing::info_span!("controller", resource = resource.plural);

    let feed = {
        let (store, queue, reconciler, shutdown) =
            (store.clone(), queue.clone(), reconciler.clone(), shutdown.clone());
        async move {
            let mut events = store.subscribe();
            let resync = |queue: &WorkQueue| {
                for object in store.list(resource.key, None).0 {
                    let metadata = &object["metadata"];
                    let namespace = metadata["namespace"].as_str().unwrap_or("");
                    queue.add(ObjectKey::new(
                        resource.key,
                        namespace,
                        metadata["name"].as_str().unwrap_or(""),
                    ));
                }
            };
            resync(&queue);
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.recv() => event,
                };
                match event {
                    Ok(event) => reconciler.keys_for(&event).into_iter().for_each(|key| queue.add(key)),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "change feed lagged; resyncing every object");
                        resync(&queue);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    };
    tasks.push(tokio::spawn(feed.instrument(span.clone())));

    let failures: Arc<Mutex<HashMap<ObjectKey, u32>>> = Arc::default();
    for _ in 0..workers {
        let (queue, reconciler, shutdown, failures) =
            (queue.clone(), reconciler.clone(), shutdown.clone(), failures.clone());
        let worker = async move {
            loop {
                let key = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    key = queue.next() => key,
                };
                let span = tracing::debug_span!("reconcile", object = %key);
                let outcome = reconciler.reconcile(&key).instrument(span).await;
                queue.done(&key);
                let retry = match outcome {
                    Ok(Action::Await) => {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                        None
                    }
                    Ok(Action::RequeueAfter(after)) => {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                        Some(after)
                    }
                    Err(err) => {
                        let mut failures = failures.lock().unwrap_or_else(|p| p.into_inner());
                        let count = failures.entry(key.clone()).or_insert(0);
                        *count += 1;
                        let backoff = Duration::from_millis(5u64 << (*count).min(14)).min(MAX_BACKOFF);
                        tracing::warn!(object = %key, error = %err, retry_in = ?backoff, "reconcile failed");
                        Some(backoff)
                    }
                };
                if let Some(after) = retry {
                    let (queue, shutdown) = (queue.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = tokio::time::sleep(after) => queue.add(key),
                        }
                    });
                }
            }
        };
        tasks.push(tokio::spawn(worker.instrument(span.clone())));
    }
    tasks
}
