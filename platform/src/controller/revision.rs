//! Revision -> its autoscaled pods: pick the runtime, pin the image digest, check the
//! component compiles, put the revision in the data plane and start its autoscaler. A
//! revision that cannot run says why in its conditions.

use std::time::Duration;

use std::sync::Arc;

use serde_json::{Value, json};
use skiff_runtime_wasm::PodLog;

use super::Context;
use super::children;
use super::runner::{Action, ReconcileError, Reconciler};
use crate::autoscaler::RevisionScaling;
use crate::dataplane::Revision;
use crate::resources::meta::{self, Condition};
use crate::resources::{REVISIONS, ResourceType};
use crate::runtime::wasm::Resolved;
use crate::runtime::{RevisionSpec, Runtime, RuntimeError};
use crate::scaling::{Start, pods};
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

    /// Check the revision can run (its image resolves and pins, a pod of it starts), put it in the data plane and start its autoscaler, which starts
    /// its pods. Returns what it pinned.
    async fn start(&self, revision: &Value) -> Result<Resolved, RuntimeError> {
        let mut spec = RevisionSpec::from_revision(revision)?;
        let scaling = scaling_of(&self.context, revision, &spec)?;
        let wasm = &self.context.wasm;
        let is_wasm = match spec.runtime_class.as_deref() {
            Some("wasm") => true,
            _ => wasm.is_wasm(&spec.image).await?,
        };
        let (resolved, runtime): (Resolved, Arc<dyn Runtime>) = if is_wasm {
            let resolved = wasm.resolve(&spec).await?;
            spec.pinned_image = Some(resolved.pinned_image.clone());
            spec.component_digest = Some(resolved.component_digest.clone());
            // One pod started and dropped: the component compiles into the cache (so its first
            // cold start finds it warm), links as a wasi:http proxy, and its settings hold.
            wasm.start_pod(&spec, &spec.name, PodLog::new(1)).await?;
            (resolved, wasm.clone())
        } else {
            let oci = self.context.oci.as_ref().map_err(|why| {
                RuntimeError::new(
                    "NoRuntime",
                    format!(
                        "image {:?} is an OCI container image, and containers cannot run here: {why}",
                        spec.image
                    ),
                )
            })?;
            // Pulled and unpacked now, pinned by digest from then on.
            let image = oci.prepare(&spec).await?;
            spec.pinned_image = Some(image.pinned.clone());
            spec.component_digest = None;
            (Resolved { pinned_image: image.pinned, component_digest: String::new() }, oci.clone())
        };
        let entry = Arc::new(Revision::new(
            spec.namespace.clone(),
            spec.name.clone(),
            spec.uid.clone(),
            spec.service.clone(),
            spec.timeout,
            spec.container_concurrency,
            PodLog::new(LOG_LINES),
            self.context.activator,
        ));
        self.context.tables.insert_revision(entry.clone());
        let previous_replicas =
            revision.pointer("/status/actualReplicas").and_then(Value::as_u64).map(|n| n as u32);
        self.context.scaling.start(Start {
            revision: entry,
            spec,
            labels: children::inherited(revision, "labels"),
            scaling,
            previous_replicas,
            runtime,
        });
        Ok(resolved)
    }
}

/// Lines of guest output kept per revision.
const LOG_LINES: usize = 1000;

/// The revision's autoscaling settings: its annotations over the cluster defaults.
fn scaling_of(
    context: &Context,
    revision: &Value,
    spec: &RevisionSpec,
) -> Result<RevisionScaling, RuntimeError> {
    let annotations = revision.pointer("/metadata/annotations").and_then(Value::as_object);
    RevisionScaling::from_annotations(annotations, spec.container_concurrency, context.scaling.config())
        .map_err(|errors| {
            let message = errors.iter().map(|e| format!("{}: {}", e.path, e.message)).collect::<Vec<_>>();
            RuntimeError::new("InvalidAnnotation", message.join("; "))
        })
}

fn transient(err: &RuntimeError) -> bool {
    matches!(err.reason, "ContainerMissing" | "InternalError")
}

/// The fields of a revision's status its autoscaler writes, which the reconciler keeps.
const SCALER_FIELDS: &[&str] = &["actualReplicas", "desiredReplicas", "coldStarts"];

/// Carry the autoscaler's part of `current`'s status (its fields and the `Active`
/// condition) into `status`, as it stands when the status is written.
fn keep_scaler_status(current: &Value, status: &mut Value) {
    for field in SCALER_FIELDS {
        if let Some(value) = current.pointer(&format!("/status/{field}")) {
            status[*field] = value.clone();
        }
    }
    let active = current
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Active"));
    if let Some(active) = active {
        pods::set_condition(status, active.clone());
    }
}

impl Reconciler for RevisionReconciler {
    fn resource(&self) -> &'static ResourceType {
        &REVISIONS
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let objects = &self.context.objects;
        let Some(revision) = objects.store().get(key) else {
            let removed = self.context.tables.remove_revision(&key.namespace, &key.name);
            // Images no revision runs any more go, with the blobs only they used.
            if let (Some(_), Ok(oci)) = (removed, &self.context.oci) {
                let (revisions, _) = objects.store().list(REVISIONS.key, None);
                let keep = revisions
                    .iter()
                    .filter_map(|r| meta::str_at(r, "/status/containerStatuses/0/imageDigest"))
                    .map(str::to_string)
                    .collect();
                oci.prune(keep).await;
            }
            return Ok(Action::Await);
        };
        let uid = meta::uid(&revision).to_string();
        let running =
            self.context.tables.revision(&key.namespace, &key.name).filter(|entry| entry.uid == uid);
        let outcome = match running {
            Some(_) => {
                let spec = RevisionSpec::from_revision(&revision);
                match spec.and_then(|spec| scaling_of(&self.context, &revision, &spec)) {
                    Ok(scaling) => {
                        self.context.scaling.update(&uid, scaling);
                        Ok(Resolved {
                            pinned_image: meta::str_at(&revision, "/status/containerStatuses/0/imageDigest")
                                .unwrap_or_default()
                                .to_string(),
                            component_digest: meta::str_at(&revision, "/status/componentDigest")
                                .unwrap_or_default()
                                .to_string(),
                        })
                    }
                    Err(err) => {
                        self.context.tables.remove_revision(&key.namespace, &key.name);
                        Err(err)
                    }
                }
            }
            None => self.start(&revision).await,
        };
        let container =
            revision.pointer("/spec/containers/0/name").and_then(Value::as_str).unwrap_or("user-container");
        let (conditions, pinned, action) = match &outcome {
            Ok(pinned) => {
                let health = self.context.tables.revision(&key.namespace, &key.name).and_then(|r| r.health());
                let healthy = match health {
                    Some((reason, message)) => Condition::falsy("ContainerHealthy", reason, message),
                    None => Condition::truthy("ContainerHealthy"),
                };
                (vec![Condition::truthy("ResourcesAvailable"), healthy], Some(pinned.clone()), Action::Await)
            }
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
        });
        if outcome.is_err() {
            status["actualReplicas"] = json!(0);
            status["desiredReplicas"] = json!(0);
        }
        if let Some(resolved) = pinned.filter(|r| !r.pinned_image.is_empty()) {
            status["containerStatuses"] = json!([{"name": container, "imageDigest": resolved.pinned_image}]);
            if !resolved.component_digest.is_empty() {
                status["componentDigest"] = json!(resolved.component_digest);
            }
        }
        let running = outcome.is_ok();
        children::write_status_keeping(objects, key.clone(), &uid, status, move |current, status| {
            if running {
                keep_scaler_status(current, status);
            }
        })
        .await?;
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
