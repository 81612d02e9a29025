//! Discovery: `/api`, `/apis`, `/apis/{group}/{version}`, `/version`, so that kubectl
//! finds the Knative kinds by their names and short names.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resources::{ALL, ResourceType};

const VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const MANAGED_VERBS: &[&str] = &["delete", "get", "list", "watch"];

fn groups() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for resource in ALL.iter().filter(|r| !r.group.is_empty()) {
        let versions = groups.entry(resource.group).or_default();
        if !versions.contains(&resource.version) {
            versions.push(resource.version);
        }
    }
    groups
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
}

/// `GET /api`
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(name, versions)| group_json(name, versions)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`
pub fn group(name: &str) -> Option<Value> {
    let groups = groups();
    let versions = groups.get(name)?;
    let mut doc = group_json(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn resource_json(resource: &ResourceType) -> Value {
    json!({
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": if resource.managed { MANAGED_VERBS } else { VERBS },
        "shortNames": resource.short_names,
        "categories": resource.categories,
    })
}

/// `GET /api/v1` (group "") or `GET /apis/{group}/{version}`
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for resource in ALL.iter().filter(|r| r.group == group && r.version == version) {
        resources.push(resource_json(resource));
        if resource.status_subresource && !resource.managed {
            resources.push(json!({
                "name": format!("{}/status", resource.plural),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// `GET /version`: the Kubernetes API conventions Skiff follows, and Skiff's own version.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": format!("v1.32.0-skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_group_lists_its_kinds_with_short_names() {
        let list = resource_list("serving.knative.dev", "v1").unwrap();
        let services =
            list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "services").unwrap();
        assert_eq!(services["shortNames"][0], "ksvc");
        assert_eq!(services["kind"], "Service");
        assert!(
            group_list()["groups"].as_array().unwrap().iter().any(|g| g["name"] == "serving.knative.dev")
        );
        assert!(resource_list("nope", "v1").is_none());
        assert_eq!(resource_list("", "v1").unwrap()["resources"][0]["name"], "namespaces");
    }
}
