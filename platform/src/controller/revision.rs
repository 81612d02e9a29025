//! Revision -> its pods. Until a runtime is built in, a revision says honestly that
//! nothing can run it: `Ready=False` with the reason, never a faked Ready.

use serde_json::{Value, json};

use super::Context;
use super::children;
use super::runner::{Action, ReconcileError, Reconciler};
use crate::resources::meta::{self, Condition};
use crate::resources::{REVISIONS, ResourceType};
use crate::store::ObjectKey;

pub struct RevisionReconciler {
    context: Context,
}

impl RevisionReconciler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }
}

/// Which runtime a revision asks for: `wasm` by `runtimeClassName`, else an OCI container.
pub fn runtime_class(revision: &Value) -> &'static str {
    match revision.pointer("/spec/runtimeClassName").and_then(Value::as_str) {
        Some("wasm") => "wasm",
        _ => "oci",
    }
}

impl Reconciler for RevisionReconciler {
    fn resource(&self) -> &'static ResourceType {
        &REVISIONS
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let objects = &self.context.objects;
        let Some(revision) = objects.store().get(key) else { return Ok(Action::Await) };
        let image = revision.pointer("/spec/containers/0/image").and_then(Value::as_str).unwrap_or("");
        let runtime = match runtime_class(&revision) {
            "wasm" => "WebAssembly",
            _ => "OCI container",
        };
        let message =
            format!("no {runtime} runtime is built into this skiff yet, so image \"{image}\" cannot run");
        let conditions = [
            Condition::falsy("ResourcesAvailable", "NoRuntime", message),
            Condition::unknown("ContainerHealthy", "NoRuntime", "no pod has been started"),
            Condition::unknown("Active", "NoRuntime", "no pod has been started"),
        ];
        let mut all = vec![meta::summarize(&conditions[..1])];
        all.extend(conditions);
        let status = json!({
            "observedGeneration": meta::generation(&revision),
            "conditions": meta::conditions_json(&all, Some(&revision)),
            "actualReplicas": 0,
            "desiredReplicas": 0,
        });
        children::write_status(objects, key.clone(), meta::uid(&revision), status).await?;
        Ok(Action::Await)
    }
}
