//! Configuration -> one immutable Revision per template generation.

use serde_json::{Map, Value, json};

use super::Context;
use super::children;
use super::runner::{Action, ReconcileError, Reconciler};
use crate::resources::meta::{self, Condition, ConditionStatus};
use crate::resources::serving::{
    LABEL_CONFIGURATION, LABEL_CONFIGURATION_GENERATION, LABEL_CONFIGURATION_UID, LABEL_SERVICE,
    LABEL_SERVICE_UID,
};
use crate::resources::{CONFIGURATIONS, REVISIONS, ResourceType};
use crate::store::{ObjectKey, WatchEvent};

pub struct ConfigurationReconciler {
    context: Context,
}

impl ConfigurationReconciler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }
}

/// `{configuration}-00002` for generation 2, unless the template names the revision.
pub fn revision_name(configuration: &Value) -> String {
    match configuration.pointer("/spec/template/metadata/name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => format!("{}-{:05}", meta::name(configuration), meta::generation(configuration)),
    }
}

fn desired_revision(configuration: &Value, name: &str) -> Value {
    let template = &configuration["spec"]["template"];
    let mut labels: Map<String, Value> =
        template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(LABEL_CONFIGURATION.into(), json!(meta::name(configuration)));
    labels.insert(LABEL_CONFIGURATION_UID.into(), json!(meta::uid(configuration)));
    labels.insert(LABEL_CONFIGURATION_GENERATION.into(), json!(meta::generation(configuration).to_string()));
    for key in [LABEL_SERVICE, LABEL_SERVICE_UID] {
        if let Some(value) = meta::label(configuration, key) {
            labels.insert(key.into(), json!(value));
        }
    }
    let mut metadata = json!({
        "name": name,
        "namespace": meta::namespace(configuration),
        "labels": labels,
        "ownerReferences": [meta::controller_ref(configuration)],
    });
    if let Some(annotations) = template["metadata"].get("annotations") {
        metadata["annotations"] = annotations.clone();
    }
    json!({
        "apiVersion": REVISIONS.api_version(),
        "kind": REVISIONS.kind,
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

fn configuration_generation(revision: &Value) -> i64 {
    meta::label(revision, LABEL_CONFIGURATION_GENERATION).and_then(|g| g.parse().ok()).unwrap_or(0)
}

impl Reconciler for ConfigurationReconciler {
    fn resource(&self) -> &'static ResourceType {
        &CONFIGURATIONS
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<ObjectKey> {
        let resource = &*event.key.resource;
        if resource == CONFIGURATIONS.key {
            return vec![event.key.clone()];
        }
        if resource == REVISIONS.key
            && let Some(configuration) = meta::label(&event.object, LABEL_CONFIGURATION)
        {
            return vec![ObjectKey::new(CONFIGURATIONS.key, &event.key.namespace, configuration)];
        }
        Vec::new()
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let objects = &self.context.objects;
        let Some(configuration) = objects.store().get(key) else { return Ok(Action::Await) };
        let uid = meta::uid(&configuration).to_string();
        let namespace = meta::namespace(&configuration);
        let latest_name = revision_name(&configuration);
        let existing = objects.store().get(&ObjectKey::new(REVISIONS.key, namespace, &latest_name));

        let mut problem = None;
        let latest = match existing {
            None => {
                let desired = desired_revision(&configuration, &latest_name);
                Some(objects.create(&REVISIONS, Some(namespace), desired, false).await?)
            }
            Some(revision) if !meta::is_owned_by(&revision, &uid) => {
                problem = Some(format!(
                    "Revision \"{latest_name}\" already exists and is not owned by this Configuration."
                ));
                None
            }
            Some(revision) => {
                let desired = desired_revision(&configuration, &latest_name);
                if configuration_generation(&revision) != meta::generation(&configuration)
                    && revision.get("spec") != desired.get("spec")
                {
                    problem = Some(format!(
                        "Revision \"{latest_name}\" already exists with a different spec; name the new revision \
                         differently (spec.template.metadata.name) or leave the name out."
                    ));
                }
                Some((*revision).clone())
            }
        };

        // The newest of this configuration's revisions that is ready.
        let (revisions, _) = objects.store().list(REVISIONS.key, Some(namespace));
        let latest_ready = revisions
            .iter()
            .filter(|r| meta::is_owned_by(r, &uid) && meta::is_ready(r))
            .max_by_key(|r| configuration_generation(r))
            .map(|r| meta::name(r).to_string());

        let ready = match (&problem, &latest) {
            (Some(message), _) => Condition::falsy("Ready", "RevisionFailed", message.clone()),
            (None, Some(revision)) => match meta::condition(revision, "Ready") {
                Some(c) if c.status == ConditionStatus::True => Condition::truthy("Ready"),
                Some(c) if c.status == ConditionStatus::False => Condition::falsy(
                    "Ready",
                    "RevisionFailed",
                    format!(
                        "Revision \"{latest_name}\" failed with message: {}.",
                        c.message.trim_end_matches('.')
                    ),
                ),
                _ => Condition::unknown("Ready", "", ""),
            },
            (None, None) => Condition::unknown("Ready", "", ""),
        };
        let mut status = json!({
            "observedGeneration": meta::generation(&configuration),
            "conditions": meta::conditions_json(&[ready], Some(&configuration)),
        });
        if problem.is_none() {
            status["latestCreatedRevisionName"] = json!(latest_name);
        } else if let Some(previous) = configuration.pointer("/status/latestCreatedRevisionName") {
            status["latestCreatedRevisionName"] = previous.clone();
        }
        if let Some(ready) = latest_ready {
            status["latestReadyRevisionName"] = json!(ready);
        }
        children::write_status(objects, key.clone(), &uid, status).await?;
        Ok(Action::Await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_named_by_generation_unless_named() {
        let mut configuration = json!({"metadata": {"name": "hello", "namespace": "default", "uid": "u",
            "generation": 2}, "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert_eq!(revision_name(&configuration), "hello-00002");
        let revision = desired_revision(&configuration, "hello-00002");
        assert_eq!(revision["metadata"]["labels"][LABEL_CONFIGURATION_GENERATION], "2");
        assert_eq!(revision["metadata"]["ownerReferences"][0]["uid"], "u");
        assert_eq!(revision["spec"]["containers"][0]["image"], "x");
        configuration["spec"]["template"]["metadata"] = json!({"name": "hello-blue"});
        assert_eq!(revision_name(&configuration), "hello-blue");
    }
}
