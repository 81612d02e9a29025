//! Service -> a Configuration and a Route of the same name; status mirrors both.

use serde_json::{Map, Value, json};

use super::Context;
use super::children::{self, Child};
use super::runner::{Action, ReconcileError, Reconciler};
use crate::resources::meta::{self, Condition};
use crate::resources::serving::{LABEL_SERVICE, LABEL_SERVICE_UID};
use crate::resources::{CONFIGURATIONS, ROUTES, ResourceType, SERVICES};
use crate::store::{ObjectKey, WatchEvent};

pub struct ServiceReconciler {
    context: Context,
}

impl ServiceReconciler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }
}

/// Labels of a Service's children: the Service's own, plus who they belong to.
fn child_metadata(service: &Value) -> Value {
    let mut labels = children::inherited(service, "labels");
    labels.insert(LABEL_SERVICE.into(), json!(meta::name(service)));
    labels.insert(LABEL_SERVICE_UID.into(), json!(meta::uid(service)));
    json!({
        "name": meta::name(service),
        "namespace": meta::namespace(service),
        "labels": labels,
        "annotations": children::inherited(service, "annotations"),
        "ownerReferences": [meta::controller_ref(service)],
    })
}

fn desired(service: &Value, resource: &ResourceType, spec: Value) -> Value {
    let metadata = child_metadata(service);
    json!({"apiVersion": resource.api_version(), "kind": resource.kind, "metadata": metadata, "spec": spec})
}

/// The route's traffic: the service's, with `latestRevision` targets pointing at its configuration.
fn route_traffic(service: &Value) -> Value {
    let name = meta::name(service);
    let targets = service.pointer("/spec/traffic").and_then(Value::as_array).cloned().unwrap_or_default();
    Value::Array(
        targets
            .into_iter()
            .map(|mut target| {
                if target["latestRevision"] == Value::Bool(true) {
                    target["configurationName"] = json!(name);
                }
                target
            })
            .collect(),
    )
}

/// The condition `type_` of a Service from its child's Ready, once the child caught up.
fn mirror(child: &Child, type_: &'static str, resource: &ResourceType, name: &str) -> Condition {
    match child {
        Child::NotOwned => Condition::falsy(
            type_,
            "NotOwned",
            format!("There is an existing {} \"{name}\" that we do not own.", resource.kind),
        ),
        Child::Current(object) => {
            let observed = object.pointer("/status/observedGeneration").and_then(Value::as_i64);
            if observed != Some(meta::generation(object)) {
                return Condition::unknown(
                    type_,
                    "OutOfDate",
                    format!("{} \"{name}\" is being reconciled.", resource.kind),
                );
            }
            match meta::condition(object, "Ready") {
                Some(ready) => ready.renamed(type_),
                None => Condition::unknown(type_, "", ""),
            }
        }
    }
}

impl Reconciler for ServiceReconciler {
    fn resource(&self) -> &'static ResourceType {
        &SERVICES
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<ObjectKey> {
        let resource = &*event.key.resource;
        if resource == SERVICES.key {
            return vec![event.key.clone()];
        }
        if (resource == CONFIGURATIONS.key || resource == ROUTES.key)
            && let Some(service) = meta::label(&event.object, LABEL_SERVICE)
        {
            return vec![ObjectKey::new(SERVICES.key, &event.key.namespace, service)];
        }
        Vec::new()
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let objects = &self.context.objects;
        let Some(service) = objects.store().get(key) else { return Ok(Action::Await) };
        let uid = meta::uid(&service).to_string();
        let name = meta::name(&service).to_string();
        let template = service.pointer("/spec/template").cloned().unwrap_or(json!({}));

        let configuration = children::ensure(
            objects,
            &CONFIGURATIONS,
            desired(&service, &CONFIGURATIONS, json!({"template": template})),
            &uid,
        )
        .await?;
        let route = children::ensure(
            objects,
            &ROUTES,
            desired(&service, &ROUTES, json!({"traffic": route_traffic(&service)})),
            &uid,
        )
        .await?;

        let configurations_ready = mirror(&configuration, "ConfigurationsReady", &CONFIGURATIONS, &name);
        let routes_ready = mirror(&route, "RoutesReady", &ROUTES, &name);
        let ready = meta::summarize(&[configurations_ready.clone(), routes_ready.clone()]);

        let mut status = Map::new();
        status.insert("observedGeneration".into(), json!(meta::generation(&service)));
        status.insert(
            "conditions".into(),
            meta::conditions_json(&[ready, configurations_ready, routes_ready], Some(&service)),
        );
        if let Child::Current(configuration) = &configuration {
            for field in ["latestCreatedRevisionName", "latestReadyRevisionName"] {
                if let Some(value) = configuration.pointer(&format!("/status/{field}")) {
                    status.insert(field.into(), value.clone());
                }
            }
        }
        if let Child::Current(route) = &route {
            for field in ["url", "address", "traffic"] {
                if let Some(value) = route.pointer(&format!("/status/{field}")) {
                    status.insert(field.into(), value.clone());
                }
            }
        }
        children::write_status(objects, key.clone(), &uid, Value::Object(status)).await?;
        Ok(Action::Await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::meta::ConditionStatus;

    #[test]
    fn latest_targets_name_the_configuration() {
        let service = json!({"metadata": {"name": "hello"}, "spec": {"traffic": [
            {"latestRevision": true, "percent": 50}, {"revisionName": "hello-00001", "percent": 50}]}});
        let traffic = route_traffic(&service);
        assert_eq!(traffic[0]["configurationName"], "hello");
        assert!(traffic[1].get("configurationName").is_none());
    }

    #[test]
    fn a_child_not_caught_up_is_unknown() {
        let child = Child::Current(json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert_eq!(mirror(&child, "RoutesReady", &ROUTES, "hello").status, ConditionStatus::Unknown);
        let child = Child::Current(json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert_eq!(mirror(&child, "RoutesReady", &ROUTES, "hello").status, ConditionStatus::True);
        assert_eq!(mirror(&Child::NotOwned, "RoutesReady", &ROUTES, "hello").reason, "NotOwned");
    }
}
