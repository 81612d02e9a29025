//! `meta.k8s.io/v1` Tables: what `kubectl get` prints, with the columns Knative's CRDs declare.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::resources::{
    BROKERS, CONFIGURATIONS, NAMESPACES, PINGSOURCES, PODS, REVISIONS, ROUTES, ResourceType, SERVICES,
    TRIGGERS, meta, serving,
};

enum Cell {
    Name,
    Pointer(&'static str),
    Label(&'static str),
    ConditionStatus(&'static str),
    ConditionReason(&'static str),
    Age,
    /// `ready/total` containers, as kubectl prints a pod's READY.
    ReadyContainers,
}

struct Column {
    title: &'static str,
    kind: &'static str,
    cell: Cell,
}

const fn column(title: &'static str, kind: &'static str, cell: Cell) -> Column {
    Column { title, kind, cell }
}

fn columns(resource: &ResourceType) -> Vec<Column> {
    let name = column("Name", "string", Cell::Name);
    let ready = column("Ready", "string", Cell::ConditionStatus("Ready"));
    let reason = column("Reason", "string", Cell::ConditionReason("Ready"));
    let age = column("Age", "date", Cell::Age);
    if resource == &SERVICES {
        vec![
            name,
            column("URL", "string", Cell::Pointer("/status/url")),
            column("LatestCreated", "string", Cell::Pointer("/status/latestCreatedRevisionName")),
            column("LatestReady", "string", Cell::Pointer("/status/latestReadyRevisionName")),
            ready,
            reason,
        ]
    } else if resource == &CONFIGURATIONS {
        vec![
            name,
            column("LatestCreated", "string", Cell::Pointer("/status/latestCreatedRevisionName")),
            column("LatestReady", "string", Cell::Pointer("/status/latestReadyRevisionName")),
            ready,
            reason,
        ]
    } else if resource == &REVISIONS {
        vec![
            name,
            column("Config Name", "string", Cell::Label("serving.knative.dev/configuration")),
            column("Generation", "string", Cell::Label("serving.knative.dev/configurationGeneration")),
            ready,
            reason,
            column("Actual Replicas", "integer", Cell::Pointer("/status/actualReplicas")),
            column("Desired Replicas", "integer", Cell::Pointer("/status/desiredReplicas")),
        ]
    } else if resource == &ROUTES {
        vec![name, column("URL", "string", Cell::Pointer("/status/url")), ready, reason]
    } else if resource == &PODS {
        vec![
            name,
            column("Ready", "string", Cell::ReadyContainers),
            column("Status", "string", Cell::Pointer("/status/phase")),
            column("Restarts", "integer", Cell::Pointer("/status/containerStatuses/0/restartCount")),
            age,
            column("Runtime", "string", Cell::Pointer("/spec/runtimeClassName")),
            column("Revision", "string", Cell::Label(serving::LABEL_REVISION)),
        ]
    } else if resource == &NAMESPACES {
        vec![name, column("Status", "string", Cell::Pointer("/status/phase")), age]
    } else if resource == &BROKERS {
        vec![name, column("URL", "string", Cell::Pointer("/status/address/url")), age, ready, reason]
    } else if resource == &TRIGGERS {
        vec![
            name,
            column("Broker", "string", Cell::Pointer("/spec/broker")),
            column("Subscriber_URI", "string", Cell::Pointer("/status/subscriberUri")),
            age,
            ready,
            reason,
        ]
    } else if resource == &PINGSOURCES {
        vec![
            name,
            column("Sink", "string", Cell::Pointer("/status/sinkUri")),
            column("Schedule", "string", Cell::Pointer("/spec/schedule")),
            age,
            ready,
            reason,
        ]
    } else {
        vec![name, age]
    }
}

/// `5s`, `3m`, `2h`, `4d`: how kubectl prints ages.
pub fn age(created: Option<&str>, now: OffsetDateTime) -> String {
    let Some(created) = created.and_then(meta::parse_time) else { return "<unknown>".into() };
    let secs = (now - created).whole_seconds().max(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn cell(cell: &Cell, object: &Value, now: OffsetDateTime) -> Value {
    match cell {
        Cell::Name => json!(meta::name(object)),
        Cell::Pointer(pointer) => object.pointer(pointer).cloned().unwrap_or(json!("")),
        Cell::Label(key) => json!(meta::label(object, key).unwrap_or("")),
        Cell::ConditionStatus(type_) => {
            json!(meta::condition(object, type_).map(|c| c.status.as_str()).unwrap_or(""))
        }
        Cell::ConditionReason(type_) => {
            json!(meta::condition(object, type_).map(|c| c.reason).unwrap_or_default())
        }
        Cell::Age => json!(age(meta::str_at(object, "/metadata/creationTimestamp"), now)),
        Cell::ReadyContainers => {
            let statuses = object.pointer("/status/containerStatuses").and_then(Value::as_array);
            let statuses = statuses.map(Vec::as_slice).unwrap_or_default();
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            json!(format!("{ready}/{}", statuses.len()))
        }
    }
}

/// Whether the client asked for a Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
pub fn wanted(accept: Option<&str>) -> bool {
    accept
        .is_some_and(|a| a.split(',').any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io")))
}

/// A Table of `objects`. `include_object` is the `includeObject` parameter: `None`,
/// `Metadata` (the default) or `Object`.
pub fn render(
    resource: &ResourceType,
    objects: &[&Value],
    resource_version: u64,
    include_object: &str,
) -> Value {
    let now = OffsetDateTime::now_utc();
    let columns = columns(resource);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            let mut def =
                json!({"name": c.title, "type": c.kind, "format": "", "description": c.title, "priority": 0});
            if matches!(c.cell, Cell::Name) {
                def["format"] = json!("name");
            }
            def
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| cell(&c.cell, object, now)).collect();
            let mut row = json!({"cells": cells});
            match include_object {
                "None" => {}
                "Object" => row["object"] = (*object).clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ages_read_like_kubectl() {
        let now = datetime!(2026-01-02 00:00:00 UTC);
        assert_eq!(age(Some("2026-01-01T23:59:30Z"), now), "30s");
        assert_eq!(age(Some("2026-01-01T23:00:00Z"), now), "60m");
        assert_eq!(age(Some("2026-01-01T00:00:00Z"), now), "24h");
        assert_eq!(age(Some("2025-12-01T00:00:00Z"), now), "32d");
        assert_eq!(age(None, now), "<unknown>");
    }

    #[test]
    fn service_rows_carry_knatives_columns() {
        let svc = json!({"metadata": {"name": "hello"}, "status": {"url": "http://hello.default.localhost",
            "latestCreatedRevisionName": "hello-00001",
            "conditions": [{"type": "Ready", "status": "False", "reason": "NoRuntime"}]}});
        let table = render(&SERVICES, &[&svc], 7, "Metadata");
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["hello", "http://hello.default.localhost", "hello-00001", "", "False", "NoRuntime"])
        );
        assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "hello");
        assert!(wanted(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")));
        assert!(!wanted(Some("application/json")));
    }

    #[test]
    fn eventing_rows_carry_knatives_printer_columns() {
        let titles =
            |resource: &ResourceType| -> Vec<&str> { columns(resource).iter().map(|c| c.title).collect() };
        assert_eq!(titles(&BROKERS), ["Name", "URL", "Age", "Ready", "Reason"]);
        assert_eq!(titles(&TRIGGERS), ["Name", "Broker", "Subscriber_URI", "Age", "Ready", "Reason"]);
        assert_eq!(titles(&PINGSOURCES), ["Name", "Sink", "Schedule", "Age", "Ready", "Reason"]);
        let trigger = json!({"metadata": {"name": "orders"}, "spec": {"broker": "default"},
            "status": {"subscriberUri": "http://fulfil.default.localhost",
                "conditions": [{"type": "Ready", "status": "True"}]}});
        let table = render(&TRIGGERS, &[&trigger], 3, "None");
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["orders", "default", "http://fulfil.default.localhost", "<unknown>", "True", ""])
        );
        let source = json!({"metadata": {"name": "heartbeat"}, "spec": {"schedule": "*/1 * * * *"}});
        let table = render(&PINGSOURCES, &[&source], 3, "None");
        assert_eq!(table["rows"][0]["cells"], json!(["heartbeat", "", "*/1 * * * *", "<unknown>", "", ""]));
    }
}
