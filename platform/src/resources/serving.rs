//! `serving.knative.dev/v1`: defaults and validation, as Knative's webhook applies them.
//!
//! Defaults: `containerConcurrency` 0, `timeoutSeconds` 300, the container named
//! `user-container`, and all traffic to the latest revision. Validation names the field
//! path of what is wrong (`spec.traffic[1].percent`).

use serde_json::{Value, json};

use super::meta;
use super::types::{CONFIGURATIONS, REVISIONS, ROUTES, ResourceType, SERVICES};
use crate::status::Cause;

pub const DEFAULT_TIMEOUT_SECONDS: i64 = 300;
pub const MAX_TIMEOUT_SECONDS: i64 = 600;
pub const MAX_CONTAINER_CONCURRENCY: i64 = 1000;
pub const DEFAULT_CONTAINER_NAME: &str = "user-container";

pub const LABEL_SERVICE: &str = "serving.knative.dev/service";
pub const LABEL_SERVICE_UID: &str = "serving.knative.dev/serviceUID";
pub const LABEL_CONFIGURATION: &str = "serving.knative.dev/configuration";
pub const LABEL_CONFIGURATION_UID: &str = "serving.knative.dev/configurationUID";
pub const LABEL_CONFIGURATION_GENERATION: &str = "serving.knative.dev/configurationGeneration";
pub const LABEL_REVISION: &str = "serving.knative.dev/revision";
pub const LABEL_REVISION_UID: &str = "serving.knative.dev/revisionUID";

/// Fill in what Knative fills in. Idempotent.
pub fn set_defaults(resource: &ResourceType, object: &mut Value) {
    if resource == &SERVICES {
        default_template(object, "/spec/template");
        default_traffic(object, true);
    } else if resource == &CONFIGURATIONS {
        default_template(object, "/spec/template");
    } else if resource == &REVISIONS {
        default_revision_spec(object.pointer_mut("/spec"));
    } else if resource == &ROUTES {
        default_traffic(object, false);
    }
    super::eventing::set_defaults(resource, object);
}

fn default_template(object: &mut Value, pointer: &str) {
    if object.pointer(pointer).is_none()
        && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("template".into(), json!({}));
    }
    let Some(template) = object.pointer_mut(pointer) else { return };
    if !template.is_object() {
        return;
    }
    if template.get("spec").is_none() {
        template["spec"] = json!({});
    }
    default_revision_spec(template.get_mut("spec"));
}

fn default_revision_spec(spec: Option<&mut Value>) {
    let Some(spec) = spec.and_then(Value::as_object_mut) else { return };
    spec.entry("containerConcurrency").or_insert(json!(0));
    spec.entry("timeoutSeconds").or_insert(json!(DEFAULT_TIMEOUT_SECONDS));
    if let Some(Value::Array(containers)) = spec.get_mut("containers") {
        let single = containers.len() == 1;
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            if single && !container.contains_key("name") {
                container.insert("name".into(), json!(DEFAULT_CONTAINER_NAME));
            }
            if !container.contains_key("resources") {
                container.insert("resources".into(), json!({}));
            }
        }
    }
}

fn default_traffic(object: &mut Value, service: bool) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let empty = spec.get("traffic").and_then(Value::as_array).is_none_or(|t| t.is_empty());
    if empty {
        if service {
            spec.insert("traffic".into(), json!([{"latestRevision": true, "percent": 100}]));
        }
        return;
    }
    if let Some(Value::Array(traffic)) = spec.get_mut("traffic") {
        for target in traffic.iter_mut().filter_map(Value::as_object_mut) {
            if target.contains_key("revisionName") && !target.contains_key("latestRevision") {
                target.insert("latestRevision".into(), json!(false));
            }
        }
    }
}

/// Everything wrong with `object` as a `resource`; empty when it is valid.
/// `previous` is the stored object on an update.
pub fn validate(resource: &ResourceType, object: &Value, previous: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = meta::name(object);
    causes.extend(super::limits::annotations_cause(object));
    if resource == &SERVICES {
        validate_template(object, "spec.template", Some(name), &mut causes);
        validate_traffic(object.pointer("/spec/traffic"), false, &mut causes);
    } else if resource == &CONFIGURATIONS {
        validate_template(object, "spec.template", Some(name), &mut causes);
    } else if resource == &REVISIONS {
        match object.get("spec") {
            Some(spec) => validate_revision_spec(spec, "spec", &mut causes),
            None => causes.push(Cause::new("spec", "missing field(s)")),
        }
        if let Some(previous) = previous
            && previous.get("spec") != object.get("spec")
        {
            causes.push(Cause::new("spec", "Immutable fields changed: a revision's spec cannot change"));
        }
    } else if resource == &ROUTES {
        validate_traffic(object.pointer("/spec/traffic"), true, &mut causes);
    }
    super::eventing::validate(resource, object, previous, &mut causes);
    causes
}

fn validate_template(object: &Value, path: &str, owner: Option<&str>, causes: &mut Vec<Cause>) {
    let Some(template) = object.pointer("/spec/template") else {
        causes.push(Cause::new(path, "missing field(s)"));
        return;
    };
    if let Some(name) = template.pointer("/metadata/name").and_then(Value::as_str) {
        let field = format!("{path}.metadata.name");
        if let Some(problem) = dns1035_problem(name) {
            causes.push(Cause::new(&field, problem));
        }
        if let Some(owner) = owner
            && !name.starts_with(&format!("{owner}-"))
        {
            causes.push(Cause::new(&field, format!("must have prefix \"{owner}-\"")));
        }
    }
    validate_annotations(
        template.pointer("/metadata/annotations"),
        &format!("{path}.metadata.annotations"),
        causes,
    );
    match template.get("spec") {
        Some(spec) => validate_revision_spec(spec, &format!("{path}.spec"), causes),
        None => causes.push(Cause::new(format!("{path}.spec"), "missing field(s)")),
    }
}

fn validate_revision_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    match spec.get("containers").and_then(Value::as_array) {
        None => causes.push(Cause::new(format!("{path}.containers"), "missing field(s)")),
        Some(containers) if containers.len() != 1 => causes.push(Cause::new(
            format!("{path}.containers"),
            format!("expected exactly one container, got {}", containers.len()),
        )),
        Some(containers) => validate_container(&containers[0], &format!("{path}.containers[0]"), causes),
    }
    if let Some(cc) = spec.get("containerConcurrency") {
        match cc.as_i64() {
            Some(n) if (0..=MAX_CONTAINER_CONCURRENCY).contains(&n) => {}
            _ => causes.push(Cause::new(
                format!("{path}.containerConcurrency"),
                format!("expected 0 <= {cc} <= {MAX_CONTAINER_CONCURRENCY}"),
            )),
        }
    }
    if let Some(timeout) = spec.get("timeoutSeconds") {
        match timeout.as_i64() {
            Some(n) if (1..=MAX_TIMEOUT_SECONDS).contains(&n) => {}
            _ => causes.push(Cause::new(
                format!("{path}.timeoutSeconds"),
                format!("expected 0 < {timeout} <= {MAX_TIMEOUT_SECONDS}"),
            )),
        }
    }
}

fn validate_container(container: &Value, path: &str, causes: &mut Vec<Cause>) {
    if !container.is_object() {
        causes.push(Cause::new(path, "expected an object"));
        return;
    }
    match container.get("image").and_then(Value::as_str) {
        Some(image) if !image.trim().is_empty() => {}
        _ => causes.push(Cause::new(format!("{path}.image"), "missing field(s)")),
    }
    if let Some(ports) = container.get("ports") {
        match ports.as_array() {
            Some(ports) if ports.len() > 1 => causes.push(Cause::new(
                format!("{path}.ports"),
                format!("more than one container port is set ({})", ports.len()),
            )),
            Some(ports) => {
                for (i, port) in ports.iter().enumerate() {
                    let field = format!("{path}.ports[{i}]");
                    match port.get("containerPort").and_then(Value::as_i64) {
                        Some(1..=65535) | None => {}
                        Some(other) => causes.push(Cause::new(
                            format!("{field}.containerPort"),
                            format!("expected 1 <= {other} <= 65535"),
                        )),
                    }
                    if let Some(name) = port.get("name").and_then(Value::as_str)
                        && !matches!(name, "" | "http1" | "h2c")
                    {
                        causes.push(Cause::new(
                            format!("{field}.name"),
                            format!("port name must be \"http1\" or \"h2c\", not {name:?}"),
                        ));
                    }
                }
            }
            None => causes.push(Cause::new(format!("{path}.ports"), "expected a list")),
        }
    }
    if let Some(env) = container.get("env") {
        match env.as_array() {
            Some(env) => {
                for (i, var) in env.iter().enumerate() {
                    let name = var.get("name").and_then(Value::as_str).unwrap_or("");
                    if !is_env_name(name) {
                        causes.push(Cause::new(
                            format!("{path}.env[{i}].name"),
                            format!("invalid environment variable name {name:?}"),
                        ));
                    }
                }
            }
            None => causes.push(Cause::new(format!("{path}.env"), "expected a list")),
        }
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '-' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `autoscaling.knative.dev/*` annotations, checked as Knative's webhook does against the
/// cluster's autoscaler defaults.
fn validate_annotations(annotations: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(annotations) = annotations.and_then(Value::as_object) else { return };
    let defaults = crate::autoscaler::cluster_defaults();
    for error in crate::autoscaler::validate_annotations(annotations, path, defaults) {
        causes.push(Cause::new(error.path, error.message));
    }
}

fn validate_traffic(traffic: Option<&Value>, route: bool, causes: &mut Vec<Cause>) {
    let Some(traffic) = traffic else { return };
    let Some(targets) = traffic.as_array() else {
        causes.push(Cause::new("spec.traffic", "expected a list"));
        return;
    };
    let mut sum = 0;
    let mut tags = std::collections::HashSet::new();
    for (i, target) in targets.iter().enumerate() {
        let path = format!("spec.traffic[{i}]");
        let latest = target.get("latestRevision").and_then(Value::as_bool);
        let revision = target.get("revisionName").and_then(Value::as_str).filter(|r| !r.is_empty());
        let configuration = target.get("configurationName").and_then(Value::as_str).filter(|c| !c.is_empty());
        if configuration.is_some() && !route {
            causes.push(Cause::new(format!("{path}.configurationName"), "must not set the field(s)"));
        }
        match (latest, revision) {
            (Some(true), Some(_)) => causes.push(Cause::new(
                format!("{path}.revisionName"),
                "may not set revisionName when latestRevision is true",
            )),
            (Some(false), None) => causes.push(Cause::new(
                format!("{path}.latestRevision"),
                "may not set latestRevision to false without a revisionName",
            )),
            (None, None) if configuration.is_none() => causes.push(Cause::new(
                path.clone(),
                "expected exactly one of revisionName or latestRevision: true",
            )),
            _ => {}
        }
        if let Some(revision) = revision
            && let Some(problem) = dns1035_problem(revision)
        {
            causes.push(Cause::new(format!("{path}.revisionName"), problem));
        }
        match target.get("percent") {
            None | Some(Value::Null) => {}
            Some(percent) => match percent.as_i64() {
                Some(p @ 0..=100) => sum += p,
                _ => causes
                    .push(Cause::new(format!("{path}.percent"), format!("expected 0 <= {percent} <= 100"))),
            },
        }
        if let Some(tag) = target.get("tag").and_then(Value::as_str) {
            if let Some(problem) = dns1035_problem(tag) {
                causes.push(Cause::new(format!("{path}.tag"), problem));
            } else if !tags.insert(tag) {
                causes.push(Cause::new(format!("{path}.tag"), format!("duplicate tag {tag:?}")));
            }
        }
    }
    if !targets.is_empty() && sum != 100 {
        causes.push(Cause::new("spec.traffic", format!("traffic targets sum to {sum}, want 100")));
    }
}

/// Why `name` is not a DNS-1035 label (`[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63), if it is not.
pub fn dns1035_problem(name: &str) -> Option<String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let ends = name.chars().last().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() {
        Some("name is required".into())
    } else if name.len() > 63 {
        Some(format!("{name:?} must be no more than 63 characters"))
    } else if !(ok_chars && starts && ends) {
        Some(format!(
            "{name:?} is not a DNS-1035 label: lower case letters, digits and '-', starting with a letter \
             and ending with a letter or digit"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(spec: Value) -> Value {
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
               "metadata": {"name": "hello", "namespace": "default"}, "spec": spec})
    }

    fn template() -> Value {
        json!({"spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go:latest"}]}})
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn defaults_are_knatives() {
        let mut svc = service(json!({"template": template()}));
        set_defaults(&SERVICES, &mut svc);
        assert_eq!(svc["spec"]["template"]["spec"]["containerConcurrency"], 0);
        assert_eq!(svc["spec"]["template"]["spec"]["timeoutSeconds"], 300);
        assert_eq!(svc["spec"]["template"]["spec"]["containers"][0]["name"], "user-container");
        assert_eq!(svc["spec"]["traffic"], json!([{"latestRevision": true, "percent": 100}]));
        assert!(validate(&SERVICES, &svc, None).is_empty());
        let again = svc.clone();
        set_defaults(&SERVICES, &mut svc);
        assert_eq!(svc, again);
    }

    #[test]
    fn a_split_must_sum_to_100() {
        let mut svc = service(json!({"template": template(), "traffic": [
            {"revisionName": "hello-00001", "percent": 50},
            {"revisionName": "hello-00002", "percent": 40},
        ]}));
        set_defaults(&SERVICES, &mut svc);
        assert_eq!(fields(&validate(&SERVICES, &svc, None)), vec!["spec.traffic"]);
        svc["spec"]["traffic"][1]["percent"] = json!(50);
        assert!(validate(&SERVICES, &svc, None).is_empty());
        svc["spec"]["traffic"][1]["percent"] = json!(150);
        assert!(fields(&validate(&SERVICES, &svc, None)).contains(&"spec.traffic[1].percent"));
    }

    #[test]
    fn targets_name_one_revision_and_unique_tags() {
        let svc = service(json!({"template": template(), "traffic": [
            {"latestRevision": true, "revisionName": "hello-00001", "percent": 50, "tag": "a"},
            {"latestRevision": false, "percent": 50, "tag": "a"},
        ]}));
        let causes = validate(&SERVICES, &svc, None);
        assert_eq!(
            fields(&causes),
            vec!["spec.traffic[0].revisionName", "spec.traffic[1].latestRevision", "spec.traffic[1].tag"]
        );
    }

    #[test]
    fn one_container_with_one_port_and_sane_limits() {
        let svc = service(json!({"template": {"spec": {
            "containerConcurrency": 5000, "timeoutSeconds": 0,
            "containers": [{"image": "x", "ports": [{"containerPort": 8080}, {"containerPort": 9090}]}]}}}));
        let causes = validate(&SERVICES, &svc, None);
        assert_eq!(
            fields(&causes),
            vec![
                "spec.template.spec.containers[0].ports",
                "spec.template.spec.containerConcurrency",
                "spec.template.spec.timeoutSeconds"
            ]
        );
        let two = service(json!({"template": {"spec": {"containers": [{"image": "a"}, {"image": "b"}]}}}));
        assert_eq!(fields(&validate(&SERVICES, &two, None)), vec!["spec.template.spec.containers"]);
    }

    #[test]
    fn revision_names_need_the_service_prefix() {
        let mut t = template();
        t["metadata"] = json!({"name": "other-v1"});
        let svc = service(json!({"template": t}));
        assert_eq!(fields(&validate(&SERVICES, &svc, None)), vec!["spec.template.metadata.name"]);
    }

    #[test]
    fn revisions_are_immutable() {
        let old = json!({"metadata": {"name": "hello-00001"}, "spec": {"containers": [{"image": "a"}]}});
        let mut new = old.clone();
        assert!(validate(&REVISIONS, &new, Some(&old)).is_empty());
        new["spec"]["containers"][0]["image"] = json!("b");
        assert_eq!(fields(&validate(&REVISIONS, &new, Some(&old))), vec!["spec"]);
    }

    #[test]
    fn dns1035() {
        assert!(dns1035_problem("hello-world1").is_none());
        for bad in ["", "Hello", "1abc", "abc-", "a_b", &"a".repeat(64)] {
            assert!(dns1035_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn scale_annotations_are_checked() {
        let mut t = template();
        t["metadata"] = json!({"annotations": {
            "autoscaling.knative.dev/min-scale": "5", "autoscaling.knative.dev/max-scale": "2",
            "autoscaling.knative.dev/initial-scale": "-1"}});
        let causes = validate(&SERVICES, &service(json!({"template": t})), None);
        assert_eq!(causes.len(), 2, "{causes:?}");
    }
}
