//! Eventing in the platform: the brokers' shared durable log, their ingress on the data plane,
//! a dispatcher per trigger and a pinger per PingSource (both from `skiff-eventing`), kept by
//! the Broker, Trigger and PingSource reconcilers, and their figures for `/metrics`.

pub mod ingress;
mod metrics;
pub mod sender;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use skiff_eventing::dispatch::{Dispatcher, Subscription};
use skiff_eventing::log::{EventLog, Retention};
use skiff_eventing::ping::{PingSpec, Pinger};
use tokio_util::sync::CancellationToken;

use crate::resources::eventing::{BROKER_CLASS_ANNOTATION, BROKER_CLASSES};
use crate::resources::{BROKERS, meta};
use crate::store::{ObjectKey, SharedStore};
pub use sender::PlatformSender;

/// How often the log's retention is applied.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

/// A broker's key in the log.
pub fn broker_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

type Key = (String, String);

/// Eventing's running parts.
pub struct Eventing {
    pub log: EventLog,
    pub sender: Arc<PlatformSender>,
    store: SharedStore,
    /// `broker-ingress.{domain}`: the host every broker's URL has.
    pub ingress_host: String,
    dispatchers: Mutex<HashMap<Key, Dispatcher>>,
    pingers: Mutex<HashMap<Key, Pinger>>,
    /// Events accepted per broker (by its log key) since the process started.
    accepted: RwLock<HashMap<String, AtomicU64>>,
}

impl Eventing {
    /// Open the brokers' log in `data_dir` (`events.redb`).
    pub fn open(
        data_dir: &Path,
        domain: &str,
        store: SharedStore,
        retention: Retention,
    ) -> anyhow::Result<Arc<Self>> {
        let path = data_dir.join("events.redb");
        let log = EventLog::open(&path, retention)
            .map_err(|e| anyhow::anyhow!("opening the event log {}: {e}", path.display()))?;
        Ok(Arc::new(Self {
            log,
            sender: PlatformSender::new(domain),
            store,
            ingress_host: format!("broker-ingress.{}", domain.to_ascii_lowercase()),
            dispatchers: Mutex::default(),
            pingers: Mutex::default(),
            accepted: RwLock::default(),
        }))
    }

    /// `http://broker-ingress.{domain}/{namespace}/{name}`
    pub fn broker_url(&self, namespace: &str, name: &str) -> String {
        format!("http://{}/{namespace}/{name}", self.ingress_host)
    }

    /// Whether the ingress takes events for this broker, or why not (a 404's message).
    pub fn broker_accepts(&self, namespace: &str, name: &str) -> Result<(), String> {
        let Some(broker) = self.store.get(&ObjectKey::new(BROKERS.key, namespace, name)) else {
            return Err(format!("broker {name:?} does not exist in namespace {namespace:?}"));
        };
        if let Some(class) = unsupported_class(&broker) {
            return Err(format!("broker {namespace}/{name} is of class {class:?}, which Skiff does not run"));
        }
        Ok(())
    }

    /// Count events accepted by the broker `key`: a shared lookup on every request, a write
    /// only for a broker's first events.
    fn accepted(&self, key: &str, count: usize) {
        let count = count as u64;
        if let Some(counter) = self.accepted.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            counter.fetch_add(count, Ordering::Relaxed);
            return;
        }
        let mut accepted = self.accepted.write().unwrap_or_else(|p| p.into_inner());
        accepted.entry(key.to_string()).or_default().fetch_add(count, Ordering::Relaxed);
    }

    /// Start the trigger's dispatcher, or change the running one.
    pub fn run_trigger(&self, namespace: &str, name: &str, subscription: Subscription) {
        let key = (namespace.to_string(), name.to_string());
        let mut dispatchers = self.dispatchers.lock().unwrap_or_else(|p| p.into_inner());
        match dispatchers.get(&key) {
            Some(running) if running.subscription().id == subscription.id => running.update(subscription),
            _ => {
                let dispatcher = Dispatcher::start(self.log.clone(), self.sender.clone(), subscription);
                if let Some(old) = dispatchers.insert(key, dispatcher) {
                    tokio::spawn(old.stop());
                }
            }
        }
    }

    /// Stop the trigger's dispatcher; with `forget`, also drop its cursor (the trigger is gone).
    pub async fn stop_trigger(&self, namespace: &str, name: &str, forget: bool) {
        let stopped = self
            .dispatchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.into(), name.into()));
        if let Some(dispatcher) = stopped {
            let id = dispatcher.subscription().id;
            dispatcher.stop().await;
            if forget {
                let log = self.log.clone();
                let deleted = tokio::task::spawn_blocking(move || log.delete_cursor(&id)).await;
                if let Ok(Err(err)) = deleted {
                    tracing::warn!(trigger = %format!("{namespace}/{name}"), error = %err, "forgetting a cursor failed");
                }
            }
        }
    }

    /// Drop a deleted broker's events.
    pub async fn delete_broker(&self, namespace: &str, name: &str) {
        let (log, key) = (self.log.clone(), broker_key(namespace, name));
        let deleted = tokio::task::spawn_blocking(move || log.delete_broker(&key)).await;
        if let Ok(Err(err)) = deleted {
            tracing::warn!(broker = %format!("{namespace}/{name}"), error = %err, "dropping a broker's events failed");
        }
        self.accepted.write().unwrap_or_else(|p| p.into_inner()).remove(&broker_key(namespace, name));
    }

    /// Start the PingSource's pinger, or change the running one.
    pub fn run_pinger(&self, namespace: &str, name: &str, spec: PingSpec, sink: String) {
        let key = (namespace.to_string(), name.to_string());
        let mut pingers = self.pingers.lock().unwrap_or_else(|p| p.into_inner());
        match pingers.get(&key) {
            Some(running) => running.update(spec, sink),
            None => {
                pingers.insert(key, Pinger::start(self.sender.clone(), namespace, name, spec, sink));
            }
        }
    }

    pub fn stop_pinger(&self, namespace: &str, name: &str) {
        self.pingers.lock().unwrap_or_else(|p| p.into_inner()).remove(&(namespace.into(), name.into()));
    }

    /// Stop every dispatcher and pinger (shutdown): deliveries under way get `grace` to finish,
    /// and cursors are committed as far as delivered (the rest is redelivered after a restart).
    pub async fn stop_all(&self, grace: Duration) {
        let pingers: Vec<Pinger> =
            self.pingers.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, p)| p).collect();
        let dispatchers: Vec<Dispatcher> =
            self.dispatchers.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, d)| d).collect();
        let pingers = futures::future::join_all(pingers.into_iter().map(|p| p.stop(grace)));
        let dispatchers = futures::future::join_all(dispatchers.into_iter().map(|d| d.drain(grace)));
        futures::future::join(pingers, dispatchers).await;
    }

    /// Apply the log's retention every minute until `shutdown`.
    pub async fn compact_periodically(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(COMPACT_EVERY) => {}
            }
            let cursors: HashMap<String, Vec<String>> = {
                let dispatchers = self.dispatchers.lock().unwrap_or_else(|p| p.into_inner());
                let mut by_broker: HashMap<String, Vec<String>> = HashMap::new();
                for dispatcher in dispatchers.values() {
                    let subscription = dispatcher.subscription();
                    by_broker.entry(subscription.broker).or_default().push(subscription.id);
                }
                by_broker
            };
            let log = self.log.clone();
            let compacted = tokio::task::spawn_blocking(move || {
                log.compact(|broker| cursors.get(broker).cloned().unwrap_or_default())
            })
            .await;
            match compacted {
                Ok(Ok(stats)) if stats.entries_removed > 0 => {
                    tracing::info!(
                        entries = stats.entries_removed,
                        bytes = stats.bytes_removed,
                        "event retention applied"
                    );
                    for (trigger, lost) in stats.overtaken {
                        tracing::warn!(%trigger, lost, "retention dropped events this trigger had not delivered yet");
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "applying the event retention failed"),
                Err(err) => tracing::warn!(error = %err, "the event retention task failed"),
            }
        }
    }

    /// Prometheus text for every broker and trigger.
    pub fn render_metrics(&self) -> String {
        metrics::render(self)
    }
}

/// The class of a broker Skiff does not run, if it is one.
pub fn unsupported_class(broker: &Value) -> Option<String> {
    meta::annotation(broker, BROKER_CLASS_ANNOTATION)
        .filter(|class| !BROKER_CLASSES.contains(class))
        .map(str::to_owned)
}
