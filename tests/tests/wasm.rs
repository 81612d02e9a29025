//! Wasm functions through the data plane: deploy, call, split, contain.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use skiff_tests::{Skiff, condition};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const HELLO: &str = "hello.default.localhost";

#[tokio::test]
async fn a_function_deployed_with_one_request_answers_and_streams() {
    let skiff = Skiff::start();
    let created = skiff.deploy_wasm("hello", skiff_guests::HELLO).await;
    assert_eq!(created["spec"]["template"]["spec"]["runtimeClassName"], "wasm");
    assert!(
        created["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("skiff.local/")
    );
    let ready = skiff.wait_ready("hello").await;
    assert_eq!(ready["status"]["url"], "http://hello.default.localhost");
    assert_eq!(skiff.call(HELLO, "/").await, (200, "Hello World!\n".to_string()));

    // The revision pinned what it runs.
    let (_, revision) =
        skiff.get("/apis/serving.knative.dev/v1/namespaces/default/revisions/hello-00001").await;
    let pinned = revision["status"]["containerStatuses"][0]["imageDigest"].as_str().unwrap();
    assert!(pinned.starts_with("skiff.local/components/hello@sha256:"), "{pinned}");

    // echo streams a large body back with the request's headers.
    skiff.deploy_wasm("echo", skiff_guests::ECHO).await;
    skiff.wait_ready("echo").await;
    let body: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let response = skiff
        .to_host(Method::POST, "echo.default.localhost", "/some/path?q=1")
        .header("x-custom", "yes")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-echo-x-custom"], "yes");
    assert_eq!(response.headers()["x-echo-method"], "POST");
    assert_eq!(response.headers()["x-echo-path"], "/some/path?q=1");
    assert_eq!(response.bytes().await.unwrap().as_ref(), body.as_slice());

    // Unknown hosts are told so.
    let (status, text) = skiff.call("nope.default.localhost", "/").await;
    assert_eq!(status, 404);
    assert!(text.contains("nope.default.localhost"), "{text}");
}

/// A one-shot HTTP server on loopback answering every request with `body`.
fn outside_server(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test]
async fn guests_reach_platform_services_and_only_the_hosts_they_are_allowed() {
    let skiff = Skiff::start();
    skiff.deploy_wasm("hello", skiff_guests::HELLO).await;
    skiff.deploy_wasm("fetch", skiff_guests::FETCH).await;
    skiff.wait_ready("hello").await;
    skiff.wait_ready("fetch").await;

    let (status, text) = skiff.call("fetch.default.localhost", "/?url=http://hello.default.localhost/").await;
    assert_eq!((status, text.as_str()), (200, "Hello World!\n"));

    let port = outside_server("from outside");
    let outside = format!("/?url=http://127.0.0.1:{port}/");
    let (status, text) = skiff.call("fetch.default.localhost", &outside).await;
    assert_eq!(status, 502, "{text}");
    let log = skiff
        .api_request(
            reqwest::Method::GET,
            "/apis/serving.knative.dev/v1/namespaces/default/revisions/fetch-00001/log",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("denied"), "{log}");

    // The allow-list annotation opens it (a new revision).
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "skiff.dev/allowed-outbound-hosts": "http://127.0.0.1:*"}}}}});
    assert_eq!(skiff.merge_patch(&format!("{SERVICES}/fetch"), &patch).await.0, 200);
    skiff
        .wait_for(&format!("{SERVICES}/fetch"), Duration::from_secs(60), |s| {
            s["status"]["latestReadyRevisionName"] == "fetch-00002"
                && s["status"]["traffic"][0]["revisionName"] == "fetch-00002"
        })
        .await;
    assert_eq!(skiff.call("fetch.default.localhost", &outside).await, (200, "from outside".to_string()));
}

#[tokio::test]
async fn traffic_splits_by_percent_and_tags_get_their_own_host() {
    let skiff = Skiff::start();
    skiff.deploy_wasm("hello", skiff_guests::HELLO).await;
    skiff.wait_ready("hello").await;
    let env = json!({"spec": {"template": {"spec": {"containers": [{
        "image": skiff.get(&format!("{SERVICES}/hello")).await.1["spec"]["template"]["spec"]["containers"][0]["image"],
        "env": [{"name": "TARGET", "value": "v2"}]}]}}}});
    assert_eq!(skiff.merge_patch(&format!("{SERVICES}/hello"), &env).await.0, 200);
    skiff
        .wait_for(&format!("{SERVICES}/hello"), Duration::from_secs(60), |s| {
            s["status"]["latestReadyRevisionName"] == "hello-00002"
        })
        .await;
    let split = json!({"spec": {"traffic": [
        {"revisionName": "hello-00001", "percent": 50, "tag": "old"},
        {"revisionName": "hello-00002", "percent": 50, "tag": "new"},
    ]}});
    assert_eq!(skiff.merge_patch(&format!("{SERVICES}/hello"), &split).await.0, 200);
    skiff
        .wait_for(&format!("{SERVICES}/hello"), Duration::from_secs(30), |s| {
            s["status"]["traffic"].as_array().is_some_and(|t| t.len() == 2)
        })
        .await;
    assert_eq!(skiff.call("old-hello.default.localhost", "/").await.1, "Hello World!\n");
    assert_eq!(skiff.call("new-hello.default.localhost", "/").await.1, "Hello v2!\n");
    let mut counts = std::collections::HashMap::new();
    for _ in 0..200 {
        let (status, text) = skiff.call(HELLO, "/").await;
        assert_eq!(status, 200);
        *counts.entry(text).or_insert(0) += 1;
    }
    let old = counts.get("Hello World!\n").copied().unwrap_or(0);
    let new = counts.get("Hello v2!\n").copied().unwrap_or(0);
    assert_eq!(old + new, 200);
    // 50/50 over 200 requests: far outside 60..140 would mean the split is not applied.
    assert!((60..=140).contains(&old), "old {old}, new {new}");
}

#[tokio::test]
async fn a_misbehaving_guest_is_stopped_while_another_service_keeps_answering() {
    let skiff = Skiff::start();
    skiff.deploy_wasm("hello", skiff_guests::HELLO).await;
    skiff.deploy_wasm("misbehave", skiff_guests::MISBEHAVE).await;
    let limits = json!({"spec": {"template": {"spec": {"timeoutSeconds": 2, "containers": [{
        "image": skiff.get(&format!("{SERVICES}/misbehave")).await.1["spec"]["template"]["spec"]["containers"][0]["image"],
        "resources": {"limits": {"memory": "32Mi"}}}]}}}});
    assert_eq!(skiff.merge_patch(&format!("{SERVICES}/misbehave"), &limits).await.0, 200);
    skiff.wait_ready("hello").await;
    skiff
        .wait_for(&format!("{SERVICES}/misbehave"), Duration::from_secs(60), |s| {
            s["status"]["latestReadyRevisionName"] == "misbehave-00002"
                && s["status"]["traffic"][0]["revisionName"] == "misbehave-00002"
        })
        .await;

    // A steady stream of requests to hello, from 4 clients, all of which must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, stop, served, failed) =
                (skiff.http.clone(), skiff.data.clone(), stop.clone(), served.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = match http.get(&url).header("host", HELLO).send().await {
                        Ok(r) => r.status() == 200 && r.text().await.is_ok_and(|t| t == "Hello World!\n"),
                        Err(_) => false,
                    };
                    let counter = if ok { &served } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let misbehave = "misbehave.default.localhost";
    let log = || async {
        let path = "/apis/serving.knative.dev/v1/namespaces/default/revisions/misbehave-00002/log";
        skiff.api_request(reqwest::Method::GET, path).send().await.unwrap().text().await.unwrap()
    };
    let (status, text) = skiff.call(misbehave, "/trap").await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("trap"), "{text}");
    assert!(log().await.contains("trapping on purpose"), "the panic message is in the pod's log");

    let started = std::time::Instant::now();
    let (status, text) = skiff.call(misbehave, "/loop").await;
    assert_eq!(status, 504, "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "the loop was not stopped at its timeout");

    let (status, text) = skiff.call(misbehave, "/alloc").await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("33554432"), "the memory limit is named: {text}");

    let (status, text) = skiff.call(misbehave, "/spam").await;
    assert_eq!(status, 504, "{text}");

    // The misbehaving service itself still answers.
    assert_eq!(skiff.call(misbehave, "/").await, (200, "fine\n".to_string()));

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (served, failed) = (served.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests to hello failed while misbehave misbehaved",
        served + failed
    );
    assert!(served > 20, "only {served} requests to hello were served");

    // The spam filled the log only up to its bound, and the log says what it dropped.
    let log = log().await;
    assert!(log.lines().count() <= 1001, "the log holds {} lines", log.lines().count());
    assert!(log.starts_with('(') && log.contains("dropped"), "{}", &log[..log.len().min(300)]);
}

#[tokio::test]
async fn a_full_queue_answers_503_at_once() {
    let skiff = Skiff::start();
    skiff.deploy_wasm("misbehave", skiff_guests::MISBEHAVE).await;
    let limits = json!({"spec": {"template": {"spec": {"timeoutSeconds": 3, "containerConcurrency": 1, "containers": [{
        "image": skiff.get(&format!("{SERVICES}/misbehave")).await.1["spec"]["template"]["spec"]["containers"][0]["image"]}]}}}});
    assert_eq!(skiff.merge_patch(&format!("{SERVICES}/misbehave"), &limits).await.0, 200);
    skiff
        .wait_for(&format!("{SERVICES}/misbehave"), Duration::from_secs(60), |s| {
            s["status"]["traffic"][0]["revisionName"] == "misbehave-00002"
        })
        .await;
    // One request holds the only slot, ten wait (Knative's 10 x containerConcurrency): the
    // twelfth is refused without waiting.
    let busy: Vec<_> = (0..11)
        .map(|_| {
            let request = skiff.to_host(Method::GET, "misbehave.default.localhost", "/loop");
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // Probe until the queue is full (the busy requests may take a moment to arrive): a probe
    // that is queued rather than refused gives up after 500 ms and leaves the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let started = std::time::Instant::now();
        let probe = skiff
            .to_host(Method::GET, "misbehave.default.localhost", "/")
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        if let Ok(response) = probe
            && response.status().as_u16() == 503
        {
            let text = response.text().await.unwrap();
            assert!(text.contains("overloaded"), "{text}");
            assert!(started.elapsed() < Duration::from_secs(2), "the refusal waited");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a full queue never refused a request");
    }
    for request in busy {
        request.abort();
    }
}

#[tokio::test]
async fn a_bad_component_fails_its_revision_and_the_last_ready_one_keeps_serving() {
    let skiff = Skiff::start();
    skiff.deploy_wasm("hello", skiff_guests::HELLO).await;
    skiff.wait_ready("hello").await;

    for (bytes, revision, expect) in [
        (b"this is not wasm".to_vec(), "hello-00002", "not a wasm component"),
        // An empty component: valid, but not a wasi:http/proxy.
        (b"\0asm\x0d\x00\x01\x00".to_vec(), "hello-00003", "wasi:http/proxy"),
    ] {
        let response = skiff
            .api_request(reqwest::Method::PUT, &format!("{SERVICES}/hello/wasm"))
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let failed = skiff
            .wait_for(
                &format!("/apis/serving.knative.dev/v1/namespaces/default/revisions/{revision}"),
                Duration::from_secs(30),
                |r| condition(r, "Ready").is_some_and(|(status, _)| status == "False"),
            )
            .await;
        let ready =
            failed["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["reason"], "InvalidComponent");
        assert!(ready["message"].as_str().unwrap().contains(expect), "{ready}");
        let svc = skiff
            .wait_for(&format!("{SERVICES}/hello"), Duration::from_secs(30), |s| {
                s["status"]["latestCreatedRevisionName"] == revision
                    && condition(s, "Ready").is_some_and(|(status, _)| status == "False")
            })
            .await;
        assert_eq!(svc["status"]["latestReadyRevisionName"], "hello-00001");
        assert_eq!(skiff.call(HELLO, "/").await, (200, "Hello World!\n".to_string()));
    }
}

#[tokio::test]
async fn components_come_from_an_oci_registry_pinned_by_digest() {
    let Some(registry) = skiff_tests::registry::Registry::start() else { return };
    let client = skiff_runtime_oci::RegistryClient::new(skiff_runtime_oci::Credentials::Anonymous);
    let reference = registry.reference("skiff/hello:v1");
    client.push_wasm(&reference, &std::fs::read(skiff_guests::HELLO).unwrap()).await.unwrap();

    let skiff = Skiff::start();
    // No runtimeClassName: the artifact's media type selects the Wasm runtime.
    let service = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {"containers": [{"image": reference}]}}}});
    assert_eq!(skiff.post(SERVICES, &service).await.0, 201);
    skiff.wait_ready("hello").await;
    assert_eq!(skiff.call(HELLO, "/").await.1, "Hello World!\n");
    let (_, revision) =
        skiff.get("/apis/serving.knative.dev/v1/namespaces/default/revisions/hello-00001").await;
    let pinned = revision["status"]["containerStatuses"][0]["imageDigest"].as_str().unwrap().to_string();
    assert!(pinned.contains("@sha256:"), "{pinned}");

    // Moving the tag does not change the running revision, even across a restart.
    client.push_wasm(&reference, &std::fs::read(skiff_guests::ECHO).unwrap()).await.unwrap();
    let skiff = skiff.restart();
    skiff.wait_ready("hello").await;
    assert_eq!(skiff.call(HELLO, "/").await.1, "Hello World!\n");

    // A missing image says what the registry said.
    let missing = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "missing"},
        "spec": {"template": {"spec": {"runtimeClassName": "wasm",
            "containers": [{"image": registry.reference("skiff/nothing:here")}]}}}});
    assert_eq!(skiff.post(SERVICES, &missing).await.0, 201);
    let failed = skiff
        .wait_for(
            "/apis/serving.knative.dev/v1/namespaces/default/revisions/missing-00001",
            Duration::from_secs(30),
            |r| condition(r, "Ready").is_some_and(|(status, _)| status == "False"),
        )
        .await;
    let text = failed["status"]["conditions"].to_string();
    assert!(text.contains("ContainerMissing") && text.contains("manifest unknown"), "{text}");
}

#[tokio::test]
async fn a_restart_serves_from_the_compile_cache() {
    let skiff = Skiff::start();
    skiff.deploy_wasm("hello", skiff_guests::HELLO).await;
    skiff.wait_ready("hello").await;
    let cached: Vec<(std::path::PathBuf, std::time::SystemTime)> =
        std::fs::read_dir(skiff.data_dir.join("cache"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
            .collect();
    assert_eq!(cached.len(), 1, "one compiled component in the cache");
    let skiff = skiff.restart();
    skiff.wait_ready("hello").await;
    assert_eq!(skiff.call(HELLO, "/").await, (200, "Hello World!\n".to_string()));
    let after = std::fs::metadata(&cached[0].0).unwrap().modified().unwrap();
    assert_eq!(after, cached[0].1, "the cached artifact was not rewritten: nothing was recompiled");
}
