//! The management API as a user meets it: Knative Serving objects over Kubernetes REST.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use skiff_tests::{Skiff, condition};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const REVISIONS: &str = "/apis/serving.knative.dev/v1/namespaces/default/revisions";

fn service(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": image, "env": [{"name": "TARGET", "value": "Go Sample v1"}]}]}}},
    })
}

#[tokio::test]
async fn a_service_is_created_defaulted_and_reconciled_into_its_parts() {
    let skiff = Skiff::start();
    let (code, created) =
        skiff.post(SERVICES, &service("hello", "ghcr.io/knative/helloworld-go:latest")).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(!created["metadata"]["uid"].as_str().unwrap().is_empty());
    assert_eq!(created["spec"]["template"]["spec"]["timeoutSeconds"], 300);
    assert_eq!(created["spec"]["template"]["spec"]["containerConcurrency"], 0);
    assert_eq!(created["spec"]["traffic"], json!([{"latestRevision": true, "percent": 100}]));

    // The controllers create the configuration, route and first revision and say honestly
    // that nothing can run it yet.
    let svc = skiff
        .wait_for(&format!("{SERVICES}/hello"), Duration::from_secs(10), |s| {
            s["status"]["latestCreatedRevisionName"] == "hello-00001"
                && condition(s, "Ready").is_some_and(|(status, _)| status == "False")
        })
        .await;
    assert_eq!(svc["status"]["url"], "http://hello.default.localhost");
    assert_eq!(svc["status"]["observedGeneration"], 1);
    let (_, revision) = skiff.get(&format!("{REVISIONS}/hello-00001")).await;
    assert_eq!(revision["metadata"]["labels"]["serving.knative.dev/service"], "hello");
    assert_eq!(condition(&revision, "Ready").unwrap().0, "False");
    assert_eq!(revision["metadata"]["ownerReferences"][0]["kind"], "Configuration");
    let (code, route) = skiff.get("/apis/serving.knative.dev/v1/namespaces/default/routes/hello").await;
    assert_eq!(code, 200);
    assert_eq!(route["spec"]["traffic"][0]["configurationName"], "hello");

    // A template change makes a second, immutable revision. The controllers write status
    // meanwhile, so a PUT may meet a newer resourceVersion: re-read and retry, as clients do.
    let updated = loop {
        let (_, mut changed) = skiff.get(&format!("{SERVICES}/hello")).await;
        changed["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("Go Sample v2");
        let (code, updated) = skiff.put(&format!("{SERVICES}/hello"), &changed).await;
        if code != 409 {
            assert_eq!(code, 200, "{updated}");
            break updated;
        }
    };
    assert_eq!(updated["metadata"]["generation"], 2);
    skiff
        .wait_for(&format!("{SERVICES}/hello"), Duration::from_secs(10), |s| {
            s["status"]["latestCreatedRevisionName"] == "hello-00002"
                && s["status"]["observedGeneration"] == 2
        })
        .await;
    let (_, old) = skiff.get(&format!("{REVISIONS}/hello-00001")).await;
    let mut tampered = old.clone();
    tampered["spec"]["containers"][0]["image"] = json!("other");
    let (code, status) = skiff.put(&format!("{REVISIONS}/hello-00001"), &tampered).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "spec");

    // A 50/50 split between the two revisions is accepted.
    let patch = json!({"spec": {"traffic": [
        {"revisionName": "hello-00001", "percent": 50},
        {"revisionName": "hello-00002", "percent": 50, "tag": "candidate"},
    ]}});
    let (code, split) = skiff.merge_patch(&format!("{SERVICES}/hello"), &patch).await;
    assert_eq!(code, 200, "{split}");
    assert_eq!(split["spec"]["traffic"][1]["percent"], 50);
    assert_eq!(split["metadata"]["generation"], 3);

    // Deleting the service deletes what it owns.
    let (code, _) = skiff.delete(&format!("{SERVICES}/hello")).await;
    assert_eq!(code, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, revisions) = skiff.get(REVISIONS).await;
        let (_, routes) = skiff.get("/apis/serving.knative.dev/v1/namespaces/default/routes").await;
        let (_, configs) = skiff.get("/apis/serving.knative.dev/v1/namespaces/default/configurations").await;
        let left =
            [revisions, routes, configs].iter().map(|l| l["items"].as_array().unwrap().len()).sum::<usize>();
        if left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{left} dependents left after deleting the service");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_requests_get_a_status_naming_what_is_wrong() {
    let skiff = Skiff::start();
    // An invalid split names spec.traffic.
    let mut bad = service("split", "img");
    bad["spec"]["traffic"] = json!([
        {"revisionName": "split-00001", "percent": 50},
        {"latestRevision": true, "percent": 40},
    ]);
    let (code, status) = skiff.post(SERVICES, &bad).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.traffic");
    assert!(status["message"].as_str().unwrap().contains("spec.traffic"));

    // A missing name.
    let mut nameless = service("x", "img");
    nameless["metadata"] = json!({});
    let (code, status) = skiff.post(SERVICES, &nameless).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");

    // Malformed YAML.
    let response = skiff
        .api_request(Method::POST, SERVICES)
        .header("content-type", "application/yaml")
        .body("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: [name: oops\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["reason"], "BadRequest");

    // An unknown resource, and an unknown object.
    let (code, status) = skiff.get("/apis/serving.knative.dev/v1/namespaces/default/widgets").await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, status) = skiff.get(&format!("{SERVICES}/nope")).await;
    assert_eq!(code, 404);
    assert_eq!(status["message"], "services.serving.knative.dev \"nope\" not found");

    // A duplicate.
    assert_eq!(skiff.post(SERVICES, &service("dup", "img")).await.0, 201);
    let (code, status) = skiff.post(SERVICES, &service("dup", "img")).await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("AlreadyExists")));

    // A stale resourceVersion (on a namespace: no controller writes to it meanwhile).
    assert_eq!(skiff.post("/api/v1/namespaces", &json!({"metadata": {"name": "stale"}})).await.0, 201);
    let (_, current) = skiff.get("/api/v1/namespaces/stale").await;
    let mut first = current.clone();
    first["metadata"]["labels"] = json!({"team": "a"});
    assert_eq!(skiff.put("/api/v1/namespaces/stale", &first).await.0, 200);
    let mut stale = current.clone();
    stale["metadata"]["labels"] = json!({"team": "b"});
    let (code, status) = skiff.put("/api/v1/namespaces/stale", &stale).await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")), "{status}");
    // A PUT without any resourceVersion is invalid.
    let mut unversioned = current.clone();
    unversioned["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let (code, status) = skiff.put("/api/v1/namespaces/stale", &unversioned).await;
    assert_eq!(code, 422, "{status}");

    // A 20 MiB body.
    let huge = "x".repeat(20 * 1024 * 1024);
    let response = skiff
        .api_request(Method::POST, SERVICES)
        .header("content-type", "application/json")
        .body(format!("{{\"pad\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["reason"], "RequestEntityTooLarge");

    // Not a method this resource takes.
    let (code, _) = skiff.request(Method::PUT, SERVICES, Some(&json!({}))).await;
    assert_eq!(code, 405);
    // Strategic merge patch is not something Knative's CRDs take either.
    let response = skiff
        .api_request(Method::PATCH, &format!("{SERVICES}/dup"))
        .header("content-type", "application/strategic-merge-patch+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    // A namespace that does not exist.
    let (code, status) =
        skiff.post("/apis/serving.knative.dev/v1/namespaces/nowhere/services", &service("a", "img")).await;
    assert_eq!(code, 404, "{status}");
}

#[tokio::test]
async fn kill_9_loses_nothing_that_was_acknowledged() {
    let skiff = Skiff::start();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let (code, created) = skiff.post(SERVICES, &service(&format!("svc{i}"), "img")).await;
        assert_eq!(code, 201);
        acknowledged.push(created);
    }
    // Let the controllers finish, so that nothing changes between the list and the kill.
    let mut before = skiff.get(SERVICES).await.1;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = skiff.get(SERVICES).await.1;
        if now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"] {
            break;
        }
        before = now;
    }
    let skiff = skiff.restart();
    let (code, after) = skiff.get(SERVICES).await;
    assert_eq!(code, 200);
    let key = |list: &Value| -> Vec<(String, String, String)> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let m = &o["metadata"];
                (
                    m["name"].as_str().unwrap().into(),
                    m["uid"].as_str().unwrap().into(),
                    m["resourceVersion"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(key(&before), key(&after));
    assert_eq!(after["items"].as_array().unwrap().len(), 20);
    for created in &acknowledged {
        let name = created["metadata"]["name"].as_str().unwrap();
        let (code, object) = skiff.get(&format!("{SERVICES}/{name}")).await;
        assert_eq!(code, 200);
        assert_eq!(object["metadata"]["uid"], created["metadata"]["uid"]);
    }
    // The store keeps counting from where it was.
    let (_, fresh) = skiff.post(SERVICES, &service("after-restart", "img")).await;
    let max_before = key(&before).iter().map(|(_, _, rv)| rv.parse::<u64>().unwrap()).max().unwrap();
    assert!(fresh["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap() > max_before);
}

#[tokio::test]
async fn watch_streams_changes_from_a_resource_version() {
    let skiff = Skiff::start();
    let (_, list) = skiff.get(SERVICES).await;
    let from = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let response = skiff
        .api_request(Method::GET, &format!("{SERVICES}?watch=true&resourceVersion={from}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (_, created) = skiff.post(SERVICES, &service("watched", "img")).await;
    let uid = created["metadata"]["uid"].clone();
    skiff.merge_patch(&format!("{SERVICES}/watched"), &json!({"metadata": {"labels": {"a": "b"}}})).await;
    skiff.delete(&format!("{SERVICES}/watched")).await;

    use futures::StreamExt;
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(&"DELETED".to_string()) {
        let chunk = tokio::time::timeout_at(deadline, stream.next()).await.expect("watch events in time");
        buffer.extend_from_slice(&chunk.unwrap().unwrap());
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(event["object"]["metadata"]["uid"], uid);
            seen.push(event["type"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen.first().map(String::as_str), Some("ADDED"));
    assert!(seen.contains(&"MODIFIED".to_string()));
    assert_eq!(seen.last().map(String::as_str), Some("DELETED"));
}

#[tokio::test]
async fn lists_span_namespaces_and_filter_by_label() {
    let skiff = Skiff::start();
    let (code, _) = skiff.post("/api/v1/namespaces", &json!({"metadata": {"name": "team-a"}})).await;
    assert_eq!(code, 201);
    let mut labelled = service("one", "img");
    labelled["metadata"]["labels"] = json!({"tier": "web"});
    assert_eq!(skiff.post(SERVICES, &labelled).await.0, 201);
    assert_eq!(
        skiff.post("/apis/serving.knative.dev/v1/namespaces/team-a/services", &service("two", "img")).await.0,
        201
    );
    let (_, all) = skiff.get("/apis/serving.knative.dev/v1/services").await;
    assert_eq!(all["kind"], "ServiceList");
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (_, web) = skiff.get("/apis/serving.knative.dev/v1/services?labelSelector=tier%3Dweb").await;
    assert_eq!(web["items"].as_array().unwrap().len(), 1);
    assert_eq!(web["items"][0]["metadata"]["name"], "one");
    // Discovery tells kubectl what exists.
    let (_, groups) = skiff.get("/apis").await;
    let names: Vec<&str> =
        groups["groups"].as_array().unwrap().iter().filter_map(|g| g["name"].as_str()).collect();
    for group in ["serving.knative.dev", "eventing.knative.dev", "sources.knative.dev"] {
        assert!(names.contains(&group), "{group} missing from /apis: {names:?}");
    }
    assert_eq!(skiff.get("/readyz").await.0, 200);
}
