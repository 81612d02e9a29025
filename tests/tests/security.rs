//! Safe by default, as an attacker on the same machine or a web page the user opens would try
//! it: the API wants the token over TLS, refuses cross-site and rebinding requests, bounds what
//! it is sent, keeps its data directory private, and eventing does not follow a sink elsewhere.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use skiff_tests::recorder::Recorder;
use skiff_tests::{BROKERS, Skiff, TRIGGERS, describe};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";

fn service(name: &str) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"template": {"spec": {"containers": [{"image": "registry.example/app:1"}]}}}})
}

#[tokio::test]
async fn the_api_wants_its_token_over_tls_and_the_kubeconfig_carries_it() {
    let skiff = Skiff::start();
    assert!(skiff.api.starts_with("https://"), "{}", skiff.api);
    // Plain HTTP on the API's port gets no API.
    let plain =
        skiff_tests::http_client().get(skiff.api.replace("https://", "http://") + "/api").send().await;
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));
    for path in ["/api/v1/namespaces", SERVICES, "/metrics", "/apis"] {
        let anonymous = skiff.http.get(format!("{}{path}", skiff.api)).send().await.unwrap();
        assert_eq!(anonymous.status().as_u16(), 401, "{path}");
        let status: Value = anonymous.json().await.unwrap();
        assert_eq!(status["reason"], "Unauthorized");
        let where_ = skiff.data_dir.join("token").display().to_string();
        assert!(status["message"].as_str().unwrap().contains(&where_), "{status}");
    }
    let wrong = skiff.http.get(format!("{}{SERVICES}", skiff.api)).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let health = skiff.http.get(format!("{}/readyz", skiff.api)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let metrics = skiff.api_request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);

    // Token and kubeconfig are the owner's alone.
    for file in ["token", "kubeconfig", "pki/ca.key", "pki/server.key"] {
        let mode = std::fs::metadata(skiff.data_dir.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    // kubectl with the generated kubeconfig: apply, get, delete.
    let applied = skiff.kubectl(&["apply", "-f", "-"], Some(&service("kube").to_string()));
    assert!(applied.status.success(), "{}", describe(&applied));
    let got = skiff.kubectl(&["get", "ksvc", "-o", "name"], None);
    assert!(String::from_utf8_lossy(&got.stdout).contains("kube"), "{}", describe(&got));
    // The CLI finds the same kubeconfig through KUBECONFIG, --kubeconfig, or the default data dir.
    let listed = skiff.cli(&["service", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("kube"), "{}", describe(&listed));
    let explicit = skiff.cli(&["--kubeconfig", skiff.kubeconfig().to_str().unwrap(), "get", "ksvc"]);
    assert!(explicit.status.success(), "{}", describe(&explicit));
    let by_data_dir = std::process::Command::new(skiff_tests::skiff_bin())
        .args(["service", "list"])
        .env_remove("KUBECONFIG")
        .env("SKIFF_DATA_DIR", &skiff.data_dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&by_data_dir.stdout).contains("kube"), "{}", describe(&by_data_dir));
    // A server whose certificate the CLI cannot check is refused, unless told to skip it.
    let untrusted = std::process::Command::new(skiff_tests::skiff_bin())
        .args(["get", "ksvc", "--server", &skiff.api, "--token", &skiff.token])
        .env_remove("KUBECONFIG")
        .env("SKIFF_DATA_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert!(!untrusted.status.success(), "{}", describe(&untrusted));
    let insecure = std::process::Command::new(skiff_tests::skiff_bin())
        .args(["get", "ksvc", "--server", &skiff.api, "--token", &skiff.token, "--insecure-skip-tls-verify"])
        .env_remove("KUBECONFIG")
        .env("SKIFF_DATA_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert!(insecure.status.success(), "{}", describe(&insecure));
}

#[tokio::test]
async fn cross_site_and_rebinding_requests_are_refused() {
    let skiff = Skiff::start();
    let body = service("cross").to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain;charset=UTF-8",
    ] {
        let response = skiff
            .api_request(Method::POST, SERVICES)
            .header("content-type", content_type)
            .header("origin", "http://attacker.example")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type}");
        assert!(response.headers().get("access-control-allow-origin").is_none());
        let status: Value = response.json().await.unwrap();
        assert_eq!(status["reason"], "UnsupportedMediaType", "{status}");
    }
    let none = skiff.api_request(Method::POST, SERVICES).body(body.clone()).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 415);
    let (status, _) = skiff.get(&format!("{SERVICES}/cross")).await;
    assert_eq!(status, 404, "a refused write wrote nothing");

    // DNS rebinding: a page's own name pointed at 127.0.0.1.
    for host in ["attacker.example", "attacker.example:8081", "localhost.attacker.example"] {
        let response = skiff.api_request(Method::GET, SERVICES).header("host", host).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403, "{host}");
        let status: Value = response.json().await.unwrap();
        assert!(status["message"].as_str().unwrap().contains("--api-host"), "{status}");
    }
    let (status, _) = skiff.get(SERVICES).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn api_hosts_are_in_the_certificate_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_in(dir.path(), &["--api-host", "skiff.test"], &[]);
    let port = skiff.api.rsplit(':').next().unwrap().to_string();
    let client = reqwest::Client::builder()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(dir.path().join("pki/ca.crt")).unwrap())
                .unwrap(),
        )
        .resolve("skiff.test", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let response = client
        .get(format!("https://skiff.test:{port}{SERVICES}"))
        .bearer_auth(&skiff.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn inputs_are_bounded_and_the_process_survives_a_patch_bomb() {
    let skiff = Skiff::start();
    let mut bomb = service("bomb");
    bomb["metadata"]["annotations"] = json!({"pad": "x".repeat(2000)});
    let (status, body) = skiff.post(SERVICES, &bomb).await;
    assert_eq!(status, 201, "{body}");

    // 22 self-copies of a growing value: 2^22 times the annotation if nothing stopped it.
    let mut operations =
        vec![json!({"op": "add", "path": "/metadata/annotations/grow", "value": "x".repeat(100)})];
    operations.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
    operations.push(json!({"op": "copy", "from": "/metadata/annotations", "path": "/metadata/labels/a0"}));
    for i in 1..=22 {
        operations.push(
            json!({"op": "copy", "from": "/metadata/labels", "path": format!("/metadata/labels/a{i}")}),
        );
    }
    let response = skiff
        .api_request(Method::PATCH, &format!("{SERVICES}/bomb"))
        .header("content-type", "application/json-patch+json")
        .body(Value::Array(operations).to_string())
        .send()
        .await
        .unwrap();
    let code = response.status().as_u16();
    let status: Value = response.json().await.unwrap();
    assert!(code == 413 || code == 422, "{code} {status}");
    assert!(status["message"].as_str().unwrap().contains("1572864"), "{status}");
    let pid = skiff.pid().unwrap();
    assert!(rss_bytes(pid) < 1 << 30, "the process grew past 1 GiB");
    let (alive, current) = skiff.get(&format!("{SERVICES}/bomb")).await;
    assert_eq!(alive, 200);
    assert!(current["metadata"].get("labels").is_none_or(|l| l.get("a0").is_none()), "the patch was applied");

    // Too many operations.
    let many: Vec<Value> =
        (0..10_001).map(|_| json!({"op": "test", "path": "/kind", "value": "Service"})).collect();
    let response = skiff
        .api_request(Method::PATCH, &format!("{SERVICES}/bomb"))
        .header("content-type", "application/json-patch+json")
        .body(Value::Array(many).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let status: Value = response.json().await.unwrap();
    assert!(status["message"].as_str().unwrap().contains("10000"), "{status}");

    // Annotations of 2 MiB.
    let mut annotated = service("annotated");
    annotated["metadata"]["annotations"] = json!({"big": "y".repeat(2 << 20)});
    let (status, body) = skiff.post(SERVICES, &annotated).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("metadata.annotations") && body.to_string().contains("262144"),
        "{body}"
    );
    // An object of 1.6 MiB, under the body limit.
    let mut large = service("large");
    large["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "BIG", "value": "z".repeat(1_700_000)}]);
    let (status, body) = skiff.post(SERVICES, &large).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["message"].as_str().unwrap().contains("1572864"), "{body}");
    // A merge patch that would grow an object past the limit.
    let (status, body) = skiff
        .merge_patch(&format!("{SERVICES}/bomb"), &json!({"spec": {"template": {"spec": {"containers": [{"image": "registry.example/app:1", "env": [{"name": "BIG", "value": "z".repeat(1_700_000)}]}]}}}}))
        .await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = skiff.get(&format!("{SERVICES}/large")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let skiff = Skiff::start();
    let api = skiff.api.trim_start_matches("https://").to_string();
    let data = skiff.data.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let mut connections = Vec::new();
    for i in 0..200 {
        let address = if i % 2 == 0 { &data } else { &api };
        let mut stream = tokio::net::TcpStream::connect(address.as_str()).await.unwrap();
        if i % 4 == 0 {
            // Half a request on the data plane; on the API, a TLS handshake that never ends.
            stream.write_all(b"GET / HTTP/1.1\r\nHost: hello.default.localhost\r\nX-Slow: ").await.unwrap();
        }
        connections.push(stream);
    }
    let closed = futures::future::join_all(connections.into_iter().map(|mut stream| async move {
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(65), stream.read_to_end(&mut sink)).await.is_ok()
    }))
    .await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} of 200 connections were still open after 65 s");
    assert!(started.elapsed() < Duration::from_secs(65));
    // And the listeners still serve.
    let (status, _) = skiff.get(SERVICES).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_data_dir_is_private_on_a_fresh_start_and_on_an_old_one() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = parent.path().join("data");
    // A data dir as an older, more open Skiff left it.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let skiff = Skiff::start_in(&data, &[], &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        let expected = if entry.file_type().unwrap().is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&entry.path()), expected, "{}", entry.path().display());
    }
    drop(skiff);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("skiff.redb"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let skiff = Skiff::start_in(&data, &[], &[]);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("skiff.redb")), 0o600);
    // Another user cannot list it or read the database.
    let listing =
        std::process::Command::new("runuser").args(["-u", "nobody", "--", "ls"]).arg(&data).output().unwrap();
    assert!(!listing.status.success(), "nobody listed the data dir: {}", describe(&listing));
    let reading = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "cat"])
        .arg(data.join("skiff.redb"))
        .output()
        .unwrap();
    assert!(!reading.status.success());
    drop(skiff);
}

#[tokio::test]
async fn a_sink_that_redirects_is_not_followed() {
    let skiff = Skiff::start();
    let recorder = Recorder::start();
    let elsewhere = Recorder::start();
    recorder.script(
        "/redirect",
        vec![(307, vec![("location".into(), format!("{}/stolen", elsewhere.url))], String::new())],
    );
    let broker = skiff
        .create_ready(BROKERS, json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}}))
        .await;
    let url = broker["status"]["address"]["url"].as_str().unwrap().to_string();
    skiff
        .create_ready(
            TRIGGERS,
            json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "redirected"},
                   "spec": {"broker": "default", "subscriber": {"uri": format!("{}/redirect", recorder.url)},
                            "delivery": {"retry": 0, "deadLetterSink": {"uri": format!("{}/dls", recorder.url)}}}}),
        )
        .await;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let response = skiff
        .to_host(Method::POST, host, &format!("/{path}"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "r1")
        .header("ce-type", "t")
        .header("ce-source", "/tests")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let dead = recorder.wait_for("/dls", 1, Duration::from_secs(20)).await;
    assert_eq!(dead[0].header("ce-knativeerrorcode"), "307");
    assert_eq!(recorder.received("/redirect").len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(elsewhere.received("/stolen").is_empty(), "the delivery followed the redirect");
}

#[tokio::test]
async fn watches_and_requests_in_flight_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_in(dir.path(), &["--max-watches", "3", "--max-requests-inflight", "50"], &[]);
    let watch = || skiff.api_request(Method::GET, &format!("{SERVICES}?watch=true")).send();
    let mut open = Vec::new();
    for _ in 0..3 {
        let response = watch().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        open.push(response);
    }
    let refused = watch().await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let status: Value = refused.json().await.unwrap();
    assert!(status["message"].as_str().unwrap().contains("at most 3 open watches"), "{status}");
    // Short requests have their own budget, and a closed watch gives its place back.
    let (code, _) = skiff.get(SERVICES).await;
    assert_eq!(code, 200);
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = watch().await.unwrap();
        if response.status().as_u16() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed watch's place never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
