//! The routing table: host -> route entry (its traffic split, or one tagged revision),
//! and (namespace, revision) -> the revision's running pod.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::revision::Revision;
use crate::resources::{ROUTES, meta};
use crate::store::{EventType, SharedStore};

/// Where one host's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub namespace: String,
    pub route: String,
    /// (cumulative percent, revision): a request takes the first whose bound exceeds a
    /// random number below 100.
    pub split: Vec<(u32, String)>,
    /// Why nothing serves, when `split` is empty.
    pub unavailable: String,
}

impl RouteEntry {
    /// The revision for one request.
    pub fn pick(&self) -> Option<&str> {
        match self.split.as_slice() {
            [] => None,
            [(_, only)] => Some(only),
            split => {
                let total = split.last().map_or(0, |(bound, _)| *bound).max(1);
                let roll = fastrand::u32(0..total);
                split.iter().find(|(bound, _)| roll < *bound).map(|(_, revision)| revision.as_str())
            }
        }
    }
}

#[derive(Default)]
struct Routes {
    by_host: HashMap<String, Arc<RouteEntry>>,
    /// The hosts each route owns, to remove them when it changes.
    hosts_of: HashMap<(String, String), Vec<String>>,
    /// The revisions each route sends traffic to.
    targets_of: HashMap<(String, String), Vec<String>>,
}

/// The data plane's view of routes and running revisions.
pub struct Tables {
    domain: String,
    /// Woken whenever a revision enters the data plane.
    started: tokio::sync::Notify,
    routes: RwLock<Routes>,
    revisions: RwLock<HashMap<(String, String), Arc<Revision>>>,
}

impl Tables {
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.to_ascii_lowercase(),
            started: tokio::sync::Notify::new(),
            routes: RwLock::default(),
            revisions: RwLock::default(),
        }
    }

    pub fn route(&self, host: &str) -> Option<Arc<RouteEntry>> {
        self.routes.read().unwrap_or_else(|p| p.into_inner()).by_host.get(host).cloned()
    }

    /// Whether some route sends traffic to the revision (Knative's "reachable").
    pub fn is_routed(&self, namespace: &str, revision: &str) -> bool {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes
            .targets_of
            .iter()
            .any(|((ns, _), targets)| ns == namespace && targets.iter().any(|t| t == revision))
    }

    /// Every revision in the data plane.
    pub fn revisions(&self) -> Vec<Arc<Revision>> {
        let mut all: Vec<_> =
            self.revisions.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all
    }

    pub fn revision(&self, namespace: &str, name: &str) -> Option<Arc<Revision>> {
        self.revisions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Put a revision in the data plane (replacing, and stopping, one of the same name).
    pub fn insert_revision(&self, entry: Arc<Revision>) {
        let key = (entry.namespace.clone(), entry.name.clone());
        let old = self.revisions.write().unwrap_or_else(|p| p.into_inner()).insert(key, entry);
        if let Some(old) = old {
            old.stopped.cancel();
        }
        self.started.notify_waiters();
    }

    /// The revision's entry, waiting up to `patience` for it to start running (a restart, a
    /// new revision whose pod is being prepared).
    pub async fn revision_within(
        &self,
        namespace: &str,
        name: &str,
        patience: Duration,
    ) -> Option<Arc<Revision>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let started = self.started.notified();
            if let Some(entry) = self.revision(namespace, name) {
                return Some(entry);
            }
            if tokio::time::timeout_at(deadline, started).await.is_err() {
                return None;
            }
        }
    }

    /// Take a revision out of the data plane; its autoscaler stops and its pods go.
    pub fn remove_revision(&self, namespace: &str, name: &str) -> Option<Arc<Revision>> {
        let removed = self
            .revisions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_string(), name.to_string()));
        if let Some(removed) = &removed {
            removed.stopped.cancel();
        }
        removed
    }

    /// Rebuild the hosts of `route` from its status.
    pub fn update_route(&self, route: &Value) {
        let (namespace, name) = (meta::namespace(route).to_string(), meta::name(route).to_string());
        let base = format!("{name}.{namespace}.{}", self.domain);
        let unavailable = meta::condition(route, "Ready")
            .filter(|c| c.status != meta::ConditionStatus::True)
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| "its traffic is not assigned yet".into());
        let targets = route.pointer("/status/traffic").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut entries = Vec::new();
        let mut split = Vec::new();
        let mut routed = Vec::new();
        let mut bound = 0;
        for target in &targets {
            let Some(revision) = target["revisionName"].as_str() else { continue };
            let percent = target["percent"].as_u64().unwrap_or(0) as u32;
            routed.push(revision.to_string());
            if percent > 0 {
                bound += percent;
                split.push((bound, revision.to_string()));
            }
            if let Some(tag) = target["tag"].as_str() {
                let entry = RouteEntry {
                    namespace: namespace.clone(),
                    route: name.clone(),
                    split: vec![(100, revision.to_string())],
                    unavailable: unavailable.clone(),
                };
                entries.push((format!("{tag}-{base}"), entry));
            }
        }
        entries.push((
            base,
            RouteEntry { namespace: namespace.clone(), route: name.clone(), split, unavailable },
        ));

        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        for host in routes.hosts_of.remove(&(namespace.clone(), name.clone())).unwrap_or_default() {
            routes.by_host.remove(&host);
        }
        let hosts = entries.iter().map(|(host, _)| host.clone()).collect();
        for (host, entry) in entries {
            routes.by_host.insert(host, Arc::new(entry));
        }
        routes.hosts_of.insert((namespace.clone(), name.clone()), hosts);
        routes.targets_of.insert((namespace, name), routed);
    }

    pub fn remove_route(&self, namespace: &str, name: &str) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.targets_of.remove(&(namespace.to_string(), name.to_string()));
        for host in routes.hosts_of.remove(&(namespace.to_string(), name.to_string())).unwrap_or_default() {
            routes.by_host.remove(&host);
        }
    }

    /// Keep the route table in step with the store until `shutdown`.
    pub async fn follow_routes(self: Arc<Self>, store: SharedStore, shutdown: CancellationToken) {
        let mut events = store.subscribe();
        let resync = |tables: &Tables| {
            for route in store.list(ROUTES.key, None).0 {
                tables.update_route(&route);
            }
        };
        resync(&self);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(event) if &*event.key.resource == ROUTES.key => match event.event_type {
                    EventType::Deleted => self.remove_route(&event.key.namespace, &event.key.name),
                    _ => self.update_route(&event.object),
                },
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => resync(&self),
                Err(RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(traffic: Value) -> Value {
        json!({"metadata": {"name": "hello", "namespace": "default"},
               "status": {"traffic": traffic, "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    #[test]
    fn hosts_map_to_splits_and_tags() {
        let tables = Tables::new("localhost");
        tables.update_route(&route(json!([
            {"revisionName": "hello-00001", "percent": 50},
            {"revisionName": "hello-00002", "percent": 50, "tag": "candidate"},
        ])));
        let main = tables.route("hello.default.localhost").unwrap();
        assert_eq!(main.split, vec![(50, "hello-00001".to_string()), (100, "hello-00002".to_string())]);
        let tagged = tables.route("candidate-hello.default.localhost").unwrap();
        assert_eq!(tagged.pick(), Some("hello-00002"));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(main.pick().unwrap().to_string());
        }
        assert_eq!(seen.len(), 2, "both sides of a 50/50 split get traffic");

        // A change drops hosts that went away.
        tables.update_route(&route(json!([{"revisionName": "hello-00002", "percent": 100}])));
        assert!(tables.route("candidate-hello.default.localhost").is_none());
        assert_eq!(tables.route("hello.default.localhost").unwrap().pick(), Some("hello-00002"));
        assert!(tables.is_routed("default", "hello-00002"));
        assert!(!tables.is_routed("default", "hello-00001"));
        tables.remove_route("default", "hello");
        assert!(!tables.is_routed("default", "hello-00002"));
        assert!(tables.route("hello.default.localhost").is_none());
    }

    #[test]
    fn a_route_without_traffic_says_why() {
        let tables = Tables::new("localhost");
        let mut r = route(json!([]));
        r["status"]["conditions"] = json!([{"type": "Ready", "status": "Unknown", "reason": "RevisionMissing", "message": "waiting"}]);
        tables.update_route(&r);
        let entry = tables.route("hello.default.localhost").unwrap();
        assert_eq!(entry.pick(), None);
        assert_eq!(entry.unavailable, "RevisionMissing: waiting");
    }
}
