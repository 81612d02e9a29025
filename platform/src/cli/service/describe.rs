//! `skiff service describe`: a service, where its traffic goes, and its conditions, like
//! `kn service describe`.

use serde_json::Value;
use time::OffsetDateTime;

use crate::cli::object::{condition, conditions, label, name, namespace, str_at};
use crate::cli::table::{age, conditions_table};

/// The description of `service`, given its revisions.
pub fn render(service: &Value, revisions: &[Value], now: OffsetDateTime) -> String {
    let mut out = String::new();
    let field = |out: &mut String, key: &str, value: &str| {
        out.push_str(&format!("{:<11} {value}\n", format!("{key}:")))
    };
    field(&mut out, "Name", name(service));
    field(&mut out, "Namespace", namespace(service));
    field(&mut out, "Age", &age(service, now));
    field(&mut out, "URL", str_at(service, "/status/url"));

    out.push_str("\nRevisions:\n");
    let targets = traffic(service);
    let revision = |name: &str| revisions.iter().find(|r| crate::cli::object::name(r) == name);
    for target in targets {
        let revision_name = str_at(target, "/revisionName");
        let percent = target["percent"].as_i64().unwrap_or(0);
        let mut line = format!("  {:>4}%  ", percent);
        if target["latestRevision"].as_bool().unwrap_or(false) {
            line.push_str("@latest");
            if !revision_name.is_empty() {
                line.push_str(&format!(" ({revision_name})"));
            }
        } else {
            line.push_str(revision_name);
        }
        match str_at(target, "/tag") {
            "" => {}
            tag => line.push_str(&format!(" #{tag}")),
        }
        out.push_str(&revision_lines(line, revision(revision_name), str_at(target, "/url"), now));
    }
    let latest = str_at(service, "/status/latestCreatedRevisionName");
    if !latest.is_empty() && !targets.iter().any(|t| str_at(t, "/revisionName") == latest) {
        let line = format!("     +  {latest} (current @latest)");
        out.push_str(&revision_lines(line, revision(latest), "", now));
    }
    if targets.is_empty() && latest.is_empty() {
        out.push_str("  (none yet)\n");
    }

    out.push_str("\nConditions:\n");
    out.push_str(&conditions_table(&conditions(service), now));
    out
}

/// Traffic as the route reports it, or as the spec asks for it before that.
fn traffic(service: &Value) -> &[Value] {
    let reported = service.pointer("/status/traffic").and_then(Value::as_array);
    let wanted = service.pointer("/spec/traffic").and_then(Value::as_array);
    reported.filter(|t| !t.is_empty()).or(wanted).map(Vec::as_slice).unwrap_or_default()
}

/// The target's line with the revision's generation and age, then its image, tag URL and trouble.
fn revision_lines(mut line: String, revision: Option<&Value>, url: &str, now: OffsetDateTime) -> String {
    let mut out = String::new();
    if let Some(revision) = revision {
        match label(revision, "serving.knative.dev/configurationGeneration") {
            "" => {}
            generation => line.push_str(&format!(" [{generation}]")),
        }
        line.push_str(&format!(" ({})", age(revision, now)));
    }
    out.push_str(&line);
    out.push('\n');
    if let Some(revision) = revision {
        out.push_str(&format!("        Image:  {}\n", str_at(revision, "/spec/containers/0/image")));
    }
    if !url.is_empty() {
        out.push_str(&format!("        URL:    {url}\n"));
    }
    if let Some(ready) = revision.and_then(|r| condition(r, "Ready")).filter(|c| !c.is_true()) {
        out.push_str(&format!("        {}\n", ready.one_line()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn a_description_shows_traffic_revisions_and_conditions() {
        let service = json!({
            "metadata": {"name": "hello", "namespace": "default", "creationTimestamp": "2024-05-01T11:55:00Z"},
            "status": {
                "url": "http://hello.default.localhost",
                "latestCreatedRevisionName": "hello-00003",
                "traffic": [
                    {"revisionName": "hello-00002", "latestRevision": true, "percent": 90},
                    {"revisionName": "hello-00001", "percent": 10, "tag": "old", "url": "http://old-hello.default.localhost"},
                ],
                "conditions": [
                    {"type": "Ready", "status": "Unknown", "reason": "RevisionMissing", "message": "waiting for hello-00003", "lastTransitionTime": "2024-05-01T11:59:30Z"},
                    {"type": "RoutesReady", "status": "True", "lastTransitionTime": "2024-05-01T11:56:00Z"},
                ],
            },
        });
        let revision = |name: &str, generation: &str, ready: &str| {
            json!({
                "metadata": {
                    "name": name, "creationTimestamp": "2024-05-01T11:58:00Z",
                    "labels": {"serving.knative.dev/configurationGeneration": generation},
                },
                "spec": {"containers": [{"image": format!("example.com/hello:{generation}")}]},
                "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "Deploying"}]},
            })
        };
        let revisions = [
            revision("hello-00001", "1", "True"),
            revision("hello-00002", "2", "True"),
            revision("hello-00003", "3", "Unknown"),
        ];
        let text = render(&service, &revisions, datetime!(2024-05-01 12:00:00 UTC));
        let want = "\
Name:       hello
Namespace:  default
Age:        5m
URL:        http://hello.default.localhost

Revisions:
    90%  @latest (hello-00002) [2] (2m)
        Image:  example.com/hello:2
    10%  hello-00001 #old [1] (2m)
        Image:  example.com/hello:1
        URL:    http://old-hello.default.localhost
     +  hello-00003 (current @latest) [3] (2m)
        Image:  example.com/hello:3
        Ready: Unknown Deploying

Conditions:
  OK   TYPE          AGE   REASON            MESSAGE
  ??   Ready         30s   RevisionMissing   waiting for hello-00003
  ++   RoutesReady   4m
";
        assert_eq!(text, want);
    }

    #[test]
    fn a_new_service_without_status_still_describes() {
        let service = json!({"metadata": {"name": "hello", "namespace": "default"}, "spec": {}});
        let text = render(&service, &[], datetime!(2024-05-01 12:00:00 UTC));
        assert!(text.contains("Revisions:\n  (none yet)\n"), "{text}");
        assert!(text.ends_with("Conditions:\n  (none reported)\n"), "{text}");
    }
}
