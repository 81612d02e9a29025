//! A small OpenAPI v3 description, enough for kubectl: it finds each kind by its
//! group-version-kind, learns which patch types and query parameters the server takes
//! (so `kubectl apply` sends JSON merge patches and leaves field validation to the
//! server), and sees schemas that accept the Knative shapes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resources::{ALL, ResourceType};

/// Changes when the documents change, so that kubectl's cache stays right.
const HASH: &str = concat!("skiff-", env!("CARGO_PKG_VERSION"), "-1");

fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `GET /openapi/v3`
pub fn root() -> Value {
    let mut paths = BTreeMap::new();
    for resource in ALL {
        let path = group_version_path(resource.group, resource.version);
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={HASH}")}));
    }
    json!({"paths": paths})
}

fn schema_name(resource: &ResourceType) -> String {
    let group = if resource.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else {
        resource.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", resource.version, resource.kind)
}

fn gvk(resource: &ResourceType) -> Value {
    json!({"group": resource.group, "version": resource.version, "kind": resource.kind})
}

fn query(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(resource: &ResourceType, action: &str, body: Option<&[&str]>) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(resource))});
    let mut op = json!({
        "operationId": format!("{action}{}", resource.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(resource),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
    });
    if let Some(types) = body {
        let content: BTreeMap<&str, Value> =
            types.iter().map(|t| (*t, json!({"schema": {"type": "object"}}))).collect();
        op["requestBody"] = json!({"required": true, "content": content});
        op["parameters"] = json!([query("dryRun"), query("fieldManager"), query("fieldValidation")]);
    }
    op
}

/// `GET /openapi/v3/apis/{group}/{version}` (or `/openapi/v3/api/v1`).
pub fn group_version(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceType> =
        ALL.iter().copied().filter(|r| r.group == group && r.version == version).collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = BTreeMap::new();
    let mut schemas = BTreeMap::new();
    for resource in resources {
        let collection = resource.path(Some("{namespace}"));
        let object = format!("{collection}/{{name}}");
        paths.insert(
            collection,
            json!({
                "get": operation(resource, "list", None),
                "post": operation(resource, "post", Some(&["application/json", "application/yaml"])),
            }),
        );
        paths.insert(
            object,
            json!({
                "get": operation(resource, "get", None),
                "put": operation(resource, "put", Some(&["application/json", "application/yaml"])),
                "patch": operation(
                    resource,
                    "patch",
                    Some(&["application/merge-patch+json", "application/json-patch+json"]),
                ),
                "delete": operation(resource, "delete", None),
            }),
        );
        let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        schemas.insert(
            schema_name(resource),
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [gvk(resource)],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": open,
                    "spec": open,
                    "status": open,
                },
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Skiff", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_finds_each_kind_and_its_patch_types() {
        let doc = group_version("serving.knative.dev", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Service");
        assert!(patch["requestBody"]["content"].get("application/merge-patch+json").is_some());
        assert!(patch["requestBody"]["content"].get("application/strategic-merge-patch+json").is_none());
        assert!(doc["components"]["schemas"].get("dev.knative.serving.v1.Service").is_some());
        assert!(root()["paths"].get("apis/serving.knative.dev/v1").is_some());
    }
}
