//! Pods as objects: what `kubectl get pods` shows of a revision's running units, and
//! the revision status fields the autoscaler owns.

use serde_json::{Map, Value, json};

use crate::objects::Objects;
use crate::resources::meta::{self, Condition};
use crate::resources::{PODS, REVISIONS, serving};
use crate::runtime::{PodExit, RevisionSpec};
use crate::store::{Mutation, ObjectKey};

pub fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(PODS.key, namespace, name)
}

/// A fresh pod name, as a Deployment's: `{revision}-deployment-{5 random}`.
pub fn new_name(revision: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect();
    format!("{revision}-deployment-{suffix}")
}

/// The object of a pod that is running and ready, restarted `restarts` times.
pub fn object(
    spec: &RevisionSpec,
    labels: &Map<String, Value>,
    name: &str,
    started: &str,
    restarts: u32,
) -> Value {
    with_address(spec, labels, name, started, restarts, None)
}

/// As [`object`], with the pod's own address (`status.podIP`) when it has one.
pub fn with_address(
    spec: &RevisionSpec,
    labels: &Map<String, Value>,
    name: &str,
    started: &str,
    restarts: u32,
    address: Option<std::net::SocketAddr>,
) -> Value {
    let mut labels = labels.clone();
    labels.insert(serving::LABEL_REVISION.into(), json!(spec.name));
    labels.insert(serving::LABEL_REVISION_UID.into(), json!(spec.uid));
    let image = spec.pinned_image.clone().unwrap_or_else(|| spec.image.clone());
    let runtime = if spec.component_digest.is_some() { "wasm" } else { "oci" };
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": started,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": REVISIONS.api_version(),
                "kind": REVISIONS.kind,
                "name": spec.name,
                "uid": spec.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "runtimeClassName": runtime,
            "containers": [{"name": serving::DEFAULT_CONTAINER_NAME, "image": spec.image}],
        },
        "status": {
            "phase": "Running",
            "startTime": started,
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": started},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
            ],
            "containerStatuses": [{
                "name": serving::DEFAULT_CONTAINER_NAME,
                "ready": true,
                "started": true,
                "restartCount": restarts,
                "image": spec.image,
                "imageID": image,
                "state": {"running": {"startedAt": started}},
            }],
        },
    });
    if let Some(address) = address {
        pod["status"]["podIP"] = json!(address.ip().to_string());
    }
    pod
}

/// The object of a pod whose container ended by itself and waits to be restarted.
pub fn crashed(
    spec: &RevisionSpec,
    labels: &Map<String, Value>,
    name: &str,
    restarts: u32,
    exit: &PodExit,
) -> Value {
    let now = meta::now();
    let mut pod = object(spec, labels, name, &now, restarts);
    let status = &mut pod["status"];
    status["conditions"] = json!([
        {"type": "Ready", "status": "False", "lastTransitionTime": now, "reason": "ContainersNotReady"},
        {"type": "ContainersReady", "status": "False", "lastTransitionTime": now, "reason": "ContainersNotReady"},
    ]);
    let container = &mut status["containerStatuses"][0];
    container["ready"] = json!(false);
    container["started"] = json!(false);
    container["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": exit.message}});
    container["lastState"] =
        json!({"terminated": {"reason": exit.reason, "message": exit.message, "finishedAt": now}});
    pod
}

/// Write a pod's object.
pub async fn create(objects: &Objects, pod: Value) {
    let key = key(meta::namespace(&pod), meta::name(&pod));
    let result = objects.store().mutate(key, Box::new(move |_| Ok(Mutation::Put(pod)))).await;
    if let Err(err) = result {
        tracing::warn!("writing a pod: {err}");
    }
}

/// Remove a pod's object (gone already is fine).
pub async fn delete(objects: &Objects, namespace: &str, name: &str) {
    let result = objects
        .store()
        .mutate(
            key(namespace, name),
            Box::new(|current| Ok(if current.is_some() { Mutation::Delete } else { Mutation::Unchanged })),
        )
        .await;
    if let Err(err) = result {
        tracing::warn!(pod = name, "deleting a pod: {err}");
    }
}

/// What the autoscaler says in a revision's status.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleStatus {
    pub actual: u32,
    pub desired: u32,
    pub active: Condition,
    /// Cold starts so far, and the last one's duration in milliseconds.
    pub cold_starts: u64,
    pub last_cold_start_ms: Option<f64>,
}

/// Set the autoscaler's fields of a revision's status, leaving the rest as it is.
pub async fn write_status(objects: &Objects, key: ObjectKey, uid: String, status: ScaleStatus) {
    let result = objects
        .store()
        .mutate(
            key,
            Box::new(move |current| {
                let Some(current) = current.filter(|c| meta::uid(c) == uid) else {
                    return Ok(Mutation::Unchanged);
                };
                let mut next = (**current).clone();
                apply(&mut next, &status);
                Ok(if next == **current { Mutation::Unchanged } else { Mutation::Put(next) })
            }),
        )
        .await;
    if let Err(err) = result {
        tracing::warn!("writing a revision's scale: {err}");
    }
}

fn apply(revision: &mut Value, status: &ScaleStatus) {
    let active = meta::conditions_json(std::slice::from_ref(&status.active), Some(revision));
    if !revision["status"].is_object() {
        revision["status"] = json!({});
    }
    let out = &mut revision["status"];
    out["actualReplicas"] = json!(status.actual);
    out["desiredReplicas"] = json!(status.desired);
    if status.cold_starts > 0 {
        let mut cold = json!({"count": status.cold_starts});
        if let Some(ms) = status.last_cold_start_ms {
            cold["lastDurationMillis"] = json!((ms * 1000.0).round() / 1000.0);
        }
        out["coldStarts"] = cold;
    }
    set_condition(out, active[0].clone());
}

/// Put `condition` into `status.conditions` in place of the one of its type, in
/// Knative's order (Ready first, then by type).
pub fn set_condition(status: &mut Value, condition: Value) {
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status["conditions"].as_array_mut() else { return };
    conditions.retain(|c| c["type"] != condition["type"]);
    conditions.push(condition);
    conditions.sort_by_key(|c| {
        let type_ = c["type"].as_str().unwrap_or_default().to_string();
        (type_ != "Ready", type_)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_status_replaces_only_its_own_fields() {
        let mut revision = json!({"status": {
            "observedGeneration": 1,
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "t0"},
                {"type": "ResourcesAvailable", "status": "True", "lastTransitionTime": "t0"},
            ],
        }});
        let status = ScaleStatus {
            actual: 2,
            desired: 3,
            active: Condition::truthy("Active"),
            cold_starts: 1,
            last_cold_start_ms: Some(2.5),
        };
        apply(&mut revision, &status);
        let types: Vec<_> =
            revision["status"]["conditions"].as_array().unwrap().iter().map(|c| c["type"].clone()).collect();
        assert_eq!(types, vec![json!("Ready"), json!("Active"), json!("ResourcesAvailable")]);
        assert_eq!(revision["status"]["actualReplicas"], 2);
        assert_eq!(revision["status"]["desiredReplicas"], 3);
        assert_eq!(revision["status"]["coldStarts"], json!({"count": 1, "lastDurationMillis": 2.5}));
        assert_eq!(revision["status"]["observedGeneration"], 1);
    }

    #[test]
    fn pod_names_look_like_a_deployments() {
        let name = new_name("hello-00001");
        assert!(name.starts_with("hello-00001-deployment-"));
        assert_eq!(name.len(), "hello-00001-deployment-".len() + 5);
        assert!(serving::dns1035_problem(&name).is_none());
    }
}
