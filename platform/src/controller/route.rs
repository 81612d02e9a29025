//! Route -> traffic resolved to ready revisions, URLs for the route and each tag.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::Context;
use super::children;
use super::runner::{Action, ReconcileError, Reconciler};
use crate::resources::meta::{self, Condition, ConditionStatus};
use crate::resources::{CONFIGURATIONS, REVISIONS, ROUTES, ResourceType};
use crate::store::{ObjectKey, WatchEvent};

/// Routes by what they point at: (namespace, resource, name) -> route names.
type References = HashMap<(String, &'static str, String), HashSet<String>>;

pub struct RouteReconciler {
    context: Context,
    /// Which routes point at a configuration or revision (by namespace, resource, name),
    /// so that a change to one requeues exactly those routes.
    references: Mutex<References>,
}

impl RouteReconciler {
    pub fn new(context: Context) -> Self {
        Self { context, references: Mutex::default() }
    }

    fn remember(&self, route: &ObjectKey, targets: &[(&'static str, String)]) {
        let mut references = self.references.lock().unwrap_or_else(|p| p.into_inner());
        for routes in references.values_mut() {
            routes.remove(&route.name);
        }
        references.retain(|_, routes| !routes.is_empty());
        for (resource, name) in targets {
            references
                .entry((route.namespace.clone(), resource, name.clone()))
                .or_default()
                .insert(route.name.clone());
        }
    }
}

/// Why a traffic target is not assigned: Knative's wording, `False` when it failed for
/// good and `Unknown` while it may still become ready.
type Unassigned = (ConditionStatus, &'static str, String);

/// A traffic target resolved to a ready revision, or why it could not be.
fn resolve(context: &Context, namespace: &str, target: &Value) -> Result<String, Unassigned> {
    let store = context.objects.store();
    let configuration = target["configurationName"].as_str().filter(|c| !c.is_empty());
    let missing = |what: &str, name: &str| {
        (
            ConditionStatus::False,
            "RevisionMissing",
            format!("{what} \"{name}\" referenced in traffic not found."),
        )
    };
    match (target["revisionName"].as_str().filter(|r| !r.is_empty()), configuration) {
        (Some(revision), _) => {
            let Some(found) = store.get(&ObjectKey::new(REVISIONS.key, namespace, revision)) else {
                return Err(missing("Revision", revision));
            };
            match meta::condition(&found, "Ready").map(|c| c.status) {
                Some(ConditionStatus::True) => Ok(revision.to_string()),
                Some(ConditionStatus::False) => Err((
                    ConditionStatus::False,
                    "RevisionMissing",
                    format!("Revision \"{revision}\" failed to become ready."),
                )),
                _ => Err((
                    ConditionStatus::Unknown,
                    "RevisionMissing",
                    format!("Revision \"{revision}\" is not yet ready."),
                )),
            }
        }
        (None, Some(name)) => {
            let Some(found) = store.get(&ObjectKey::new(CONFIGURATIONS.key, namespace, name)) else {
                return Err(missing("Configuration", name));
            };
            if let Some(ready) = found.pointer("/status/latestReadyRevisionName").and_then(Value::as_str) {
                return Ok(ready.to_string());
            }
            match meta::condition(&found, "Ready").map(|c| c.status) {
                Some(ConditionStatus::False) => Err((
                    ConditionStatus::False,
                    "RevisionMissing",
                    format!("Configuration \"{name}\" does not have any ready Revision."),
                )),
                _ => Err((
                    ConditionStatus::Unknown,
                    "RevisionMissing",
                    format!("Configuration \"{name}\" is waiting for a Revision to become ready."),
                )),
            }
        }
        (None, None) => Err((
            ConditionStatus::False,
            "RevisionMissing",
            "a traffic target names neither a revision nor a configuration".into(),
        )),
    }
}

/// `http://{tag}-{name}.{namespace}.{domain}` or, without a tag, the route's own URL.
pub fn url(name: &str, namespace: &str, domain: &str, tag: Option<&str>) -> String {
    match tag {
        Some(tag) => format!("http://{tag}-{name}.{namespace}.{domain}"),
        None => format!("http://{name}.{namespace}.{domain}"),
    }
}

impl Reconciler for RouteReconciler {
    fn resource(&self) -> &'static ResourceType {
        &ROUTES
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<ObjectKey> {
        let resource = &*event.key.resource;
        if resource == ROUTES.key {
            return vec![event.key.clone()];
        }
        let kind = if resource == CONFIGURATIONS.key {
            CONFIGURATIONS.key
        } else if resource == REVISIONS.key {
            REVISIONS.key
        } else {
            return Vec::new();
        };
        let references = self.references.lock().unwrap_or_else(|p| p.into_inner());
        references
            .get(&(event.key.namespace.clone(), kind, event.key.name.clone()))
            .map(|routes| {
                routes.iter().map(|r| ObjectKey::new(ROUTES.key, &event.key.namespace, r)).collect()
            })
            .unwrap_or_default()
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let context = &self.context;
        let Some(route) = context.objects.store().get(key) else {
            self.remember(key, &[]);
            return Ok(Action::Await);
        };
        let (name, namespace) = (meta::name(&route), meta::namespace(&route));
        let targets = route.pointer("/spec/traffic").and_then(Value::as_array).cloned().unwrap_or_default();

        let mut referenced = Vec::new();
        let mut resolved = Vec::new();
        let mut failure = None;
        for target in &targets {
            if let Some(c) = target["configurationName"].as_str() {
                referenced.push((CONFIGURATIONS.key, c.to_string()));
            }
            if let Some(r) = target["revisionName"].as_str() {
                referenced.push((REVISIONS.key, r.to_string()));
            }
            match resolve(context, namespace, target) {
                Ok(revision) => {
                    let tag = target["tag"].as_str();
                    let mut out = json!({
                        "revisionName": revision,
                        "latestRevision": target["revisionName"].as_str().is_none(),
                        "percent": target["percent"].as_i64().unwrap_or(0),
                    });
                    if let Some(configuration) = target["configurationName"].as_str() {
                        out["configurationName"] = json!(configuration);
                    }
                    if let Some(tag) = tag {
                        out["tag"] = json!(tag);
                        out["url"] = json!(url(name, namespace, &context.domain, Some(tag)));
                    }
                    resolved.push(out);
                }
                // A target that failed for good outweighs one still waiting.
                Err(why) => {
                    if failure.as_ref().is_none_or(|f: &Unassigned| f.0 == ConditionStatus::Unknown) {
                        failure = Some(why);
                    }
                }
            }
        }
        self.remember(key, &referenced);

        let own_url = url(name, namespace, &context.domain, None);
        let mut status = json!({
            "observedGeneration": meta::generation(&route),
            "url": own_url,
            "address": {"url": own_url},
        });
        let conditions = match failure {
            None => {
                status["traffic"] = Value::Array(resolved);
                vec![
                    Condition::truthy("AllTrafficAssigned"),
                    Condition::truthy("IngressReady"),
                    Condition::new("CertificateProvisioned", ConditionStatus::True, "TLSNotEnabled", ""),
                ]
            }
            Some((assigned, reason, message)) => {
                if let Some(previous) = route.pointer("/status/traffic") {
                    status["traffic"] = previous.clone();
                }
                vec![
                    Condition::new("AllTrafficAssigned", assigned, reason, message),
                    Condition::unknown("IngressReady", "TrafficNotAssigned", "Traffic is not yet assigned."),
                    Condition::new("CertificateProvisioned", ConditionStatus::True, "TLSNotEnabled", ""),
                ]
            }
        };
        let mut all = vec![meta::summarize(&conditions)];
        all.extend(conditions);
        status["conditions"] = meta::conditions_json(&all, Some(&route));
        children::write_status(&context.objects, key.clone(), meta::uid(&route), status).await?;
        Ok(Action::Await)
    }
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn urls_follow_the_domain_template() {
        assert_eq!(url("hello", "default", "localhost", None), "http://hello.default.localhost");
        assert_eq!(
            url("hello", "default", "example.com", Some("blue")),
            "http://blue-hello.default.example.com"
        );
    }
}
