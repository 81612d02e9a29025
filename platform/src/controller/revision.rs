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

/// How soon a revision that failed for a reason that may pass (a registry down) is retried
/// at first; the wait grows with how long it has been failing, up to [`MAX_RETRY_AFTER`].
const RETRY_AFTER: Duration = Duration::from_secs(10);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The next retry of a revision failing since its Ready condition last changed: as long
/// again as it has been failing, within [`RETRY_AFTER`]..[`MAX_RETRY_AFTER`].
fn retry_after(revision: &Value) -> Duration {
    let failing_for = revision
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Ready" && c["status"] == "False"))
        .and_then(|ready| ready["lastTransitionTime"].as_str())
        .and_then(meta::parse_time)
        .map(|since| (time::OffsetDateTime::now_utc() - since).unsigned_abs())
        .unwrap_or_default();
    failing_for.clamp(RETRY_AFTER, MAX_RETRY_AFTER)
}

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
                // Say it once per change, not on every retry.
                if meta::condition(&revision, "ResourcesAvailable").is_none_or(|c| c.message != err.message) {
                    tracing::warn!(revision = %key, reason = err.reason, "{}", err.message);
                }
                (
                    vec![
                        Condition::falsy("ResourcesAvailable", err.reason, err.message.clone()),
                        Condition::unknown("ContainerHealthy", err.reason, "no pod is running"),
                        Condition::falsy("Active", "NoPods", "no pod is running"),
                    ],
                    0,
                    None,
                    if transient(err) { Action::RequeueAfter(retry_after(&revision)) } else { Action::Await },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_how_long_a_revision_has_failed() {
        let since = |secs: i64| {
            let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(secs);
            let at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
            json!({"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": at}]}})
        };
        assert_eq!(retry_after(&json!({})), RETRY_AFTER);
        assert_eq!(retry_after(&since(2)), RETRY_AFTER);
        let minute = retry_after(&since(60));
        assert!(minute >= Duration::from_secs(59) && minute <= Duration::from_secs(61), "{minute:?}");
        assert_eq!(retry_after(&since(3600)), MAX_RETRY_AFTER);
    }
}
