//! Revision -> its pod: pick the runtime, pin the image digest, start the pod and put it
//! in the data plane's table. A revision that cannot run says why in its conditions.

use std::time::Duration;

use serde_json::{Value, json};

use super::Context;
use super::children;
use super::runner::{Action, ReconcileError, Reconciler};
use crate::dataplane::{Limiter, RevisionEntry};
use crate::resources::meta::{self, Condition};
use crate::resources::{REVISIONS, ResourceType};
use crate::runtime::wasm::Resolved;
use crate::runtime::{RevisionSpec, Runtime, RuntimeError};
use crate::store::ObjectKey;

/// How soon a revision that failed for a reason that may pass (a registry down) is retried.
const RETRY_AFTER: Duration = Duration::from_secs(10);

pub struct RevisionReconciler {
    context: Context,
}

impl RevisionReconciler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }

    /// Start the revision's pod; returns what it pinned.
    async fn start(&self, revision: &Value) -> Result<Resolved, RuntimeError> {
        let mut spec = RevisionSpec::from_revision(revision)?;
        let wasm = &self.context.wasm;
        let is_wasm = match spec.runtime_class.as_deref() {
            Some("wasm") => true,
            _ => wasm.is_wasm(&spec.image).await?,
        };
        if !is_wasm {
            return Err(RuntimeError::new(
                "NoRuntime",
                format!(
                    "image {:?} is an OCI container image, and this skiff runs only Wasm components so far \
                     (set runtimeClassName: wasm for a Wasm component)",
                    spec.image
                ),
            ));
        }
        let resolved = wasm.resolve(&spec).await?;
        spec.pinned_image = Some(resolved.pinned_image.clone());
        spec.component_digest = Some(resolved.component_digest.clone());
        let pod = wasm.start_pod(&spec).await?;
        self.context.tables.insert_revision(RevisionEntry {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            uid: spec.uid.clone(),
            service: spec.service.clone(),
            pod,
            limiter: Limiter::for_concurrency(spec.container_concurrency, 1),
            timeout: spec.timeout,
        });
        Ok(resolved)
    }
}

fn transient(err: &RuntimeError) -> bool {
    matches!(err.reason, "ContainerMissing" | "InternalError")
}

impl Reconciler for RevisionReconciler {
    fn resource(&self) -> &'static ResourceType {
        &REVISIONS
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let objects = &self.context.objects;
        let Some(revision) = objects.store().get(key) else {
            self.context.tables.remove_revision(&key.namespace, &key.name);
            return Ok(Action::Await);
        };
        let uid = meta::uid(&revision).to_string();
        let running =
            self.context.tables.revision(&key.namespace, &key.name).filter(|entry| entry.uid == uid);
        let outcome = match running {
            Some(_) => Ok(Resolved {
                pinned_image: meta::str_at(&revision, "/status/containerStatuses/0/imageDigest")
                    .unwrap_or_default()
                    .to_string(),
                component_digest: meta::str_at(&revision, "/status/componentDigest")
                    .unwrap_or_default()
                    .to_string(),
            }),
            None => self.start(&revision).await,
        };
        let container =
            revision.pointer("/spec/containers/0/name").and_then(Value::as_str).unwrap_or("user-container");
        let (conditions, replicas, pinned, action) = match &outcome {
            Ok(pinned) => (
                vec![
                    Condition::truthy("ResourcesAvailable"),
                    Condition::truthy("ContainerHealthy"),
                    Condition::truthy("Active"),
                ],
                1,
                Some(pinned.clone()),
                Action::Await,
            ),
            Err(err) => {
                tracing::warn!(revision = %key, reason = err.reason, "{}", err.message);
                (
                    vec![
                        Condition::falsy("ResourcesAvailable", err.reason, err.message.clone()),
                        Condition::unknown("ContainerHealthy", err.reason, "no pod is running"),
                        Condition::falsy("Active", "NoPods", "no pod is running"),
                    ],
                    0,
                    None,
                    if transient(err) { Action::RequeueAfter(RETRY_AFTER) } else { Action::Await },
                )
            }
        };
        let mut all = vec![meta::summarize(&conditions[..2])];
        all.extend(conditions);
        let mut status = json!({
            "observedGeneration": meta::generation(&revision),
            "conditions": meta::conditions_json(&all, Some(&revision)),
            "actualReplicas": replicas,
            "desiredReplicas": replicas,
        });
        if let Some(resolved) = pinned.filter(|r| !r.pinned_image.is_empty()) {
            status["containerStatuses"] = json!([{"name": container, "imageDigest": resolved.pinned_image}]);
            status["componentDigest"] = json!(resolved.component_digest);
        }
        children::write_status(objects, key.clone(), &uid, status).await?;
        Ok(action)
    }
}
