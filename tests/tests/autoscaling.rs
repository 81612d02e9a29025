//! The autoscaler, the activator and scale to zero, driven through the real binary: pods
//! come and go with traffic as a Knative user expects.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_tests::{Skiff, condition};

const REVISIONS: &str = "/apis/serving.knative.dev/v1/namespaces/default/revisions";
const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// Short windows so that a test sees a whole scale cycle: Knative's smallest stable window.
const FAST: &[&str] = &[
    "--autoscaler",
    "stable-window=6s",
    "--autoscaler",
    "scale-to-zero-grace-period=6s",
    "--autoscaler",
    "tick-interval=1s",
];

fn start(extra: &[&str]) -> (Skiff, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = FAST.iter().chain(extra).copied().collect();
    (Skiff::start_in(dir.path(), &args, &[]), dir)
}

/// Upload a component file; its image reference.
async fn upload(skiff: &Skiff, wasm: &str, name: &str) -> String {
    skiff.upload_component(std::fs::read(wasm).unwrap(), name).await
}

/// Create service `name` running `image` with these autoscaling annotations, and wait for it.
async fn create(skiff: &Skiff, name: &str, image: &str, annotations: Value) {
    let spec = json!({"runtimeClassName": "wasm", "containers": [{"image": image}]});
    skiff.create_service(name, annotations, spec).await;
    skiff.wait_ready(name).await;
}

/// Wait until the service's pods satisfy `check`; their list.
async fn wait_pods(
    skiff: &Skiff,
    service: &str,
    timeout: Duration,
    check: impl Fn(usize) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let pods = skiff.pods_of(service).await;
        if check(pods.len()) {
            return pods;
        }
        assert!(Instant::now() < deadline, "{service}: {} pods after {timeout:?}", pods.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn revision(skiff: &Skiff, name: &str) -> Value {
    skiff.get(&format!("{REVISIONS}/{name}")).await.1
}

async fn metrics(skiff: &Skiff) -> String {
    skiff.api_request(reqwest::Method::GET, "/metrics").send().await.unwrap().text().await.unwrap()
}

/// The value of the sample `name{...revision="revision"...}` in Prometheus text.
fn sample(text: &str, name: &str, revision: &str) -> Option<f64> {
    let needle = format!("revision=\"{revision}\"");
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_cold_service_wakes_on_its_first_request_and_returns_to_zero() {
    let (skiff, _dir) = start(&[]);
    let image = upload(&skiff, skiff_guests::HELLO, "hello").await;
    create(&skiff, "cold", &image, json!({"autoscaling.knative.dev/initial-scale": "0"})).await;
    create(&skiff, "kept", &image, json!({"autoscaling.knative.dev/min-scale": "2"})).await;

    // Created cold: Ready, no pods, not Active.
    assert!(skiff.pods_of("cold").await.is_empty());
    let cold = revision(&skiff, "cold-00001").await;
    assert_eq!(cold["status"]["actualReplicas"], 0, "{cold}");
    assert_eq!(condition(&cold, "Active"), Some(("False".into(), "NoTraffic".into())), "{cold}");
    assert_eq!(condition(&cold, "Ready").unwrap().0, "True");

    // The first request waits for its pod and is served.
    assert_eq!(skiff.call("cold.default.localhost", "/").await, (200, "Hello World!\n".to_string()));
    let pods = wait_pods(&skiff, "cold", Duration::from_secs(10), |n| n == 1).await;
    let pod = &pods[0];
    assert!(pod["metadata"]["name"].as_str().unwrap().starts_with("cold-00001-deployment-"), "{pod}");
    assert_eq!(pod["metadata"]["labels"]["serving.knative.dev/revision"], "cold-00001");
    assert_eq!(pod["metadata"]["labels"]["serving.knative.dev/service"], "cold");
    assert_eq!(pod["spec"]["runtimeClassName"], "wasm");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(condition(pod, "Ready").unwrap().0, "True");
    assert!(pod["status"]["startTime"].is_string());
    let woken = skiff
        .wait_for(&format!("{REVISIONS}/cold-00001"), Duration::from_secs(10), |r| {
            r["status"]["actualReplicas"] == 1 && r["status"]["coldStarts"]["count"] == 1
        })
        .await;
    assert_eq!(condition(&woken, "Active").unwrap().0, "True", "{woken}");
    assert!(woken["status"]["coldStarts"]["lastDurationMillis"].as_f64().unwrap() > 0.0);
    // min-scale pods are kept (once the route makes the revision reachable).
    let kept = wait_pods(&skiff, "kept", Duration::from_secs(10), |n| n == 2).await;
    let text = metrics(&skiff).await;
    assert_eq!(sample(&text, "skiff_cold_starts_total", "cold-00001"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "skiff_cold_starts_total", "kept-00001"), Some(0.0), "{text}");
    assert!(sample(&text, "skiff_cold_start_duration_seconds_count", "cold-00001") == Some(1.0), "{text}");
    assert!(sample(&text, "skiff_requests_total", "cold-00001").is_some(), "{text}");
    assert_eq!(sample(&text, "skiff_revision_ready_pods", "kept-00001"), Some(2.0), "{text}");

    // A deleted pod is replaced.
    let victim = kept[0]["metadata"]["name"].as_str().unwrap().to_string();
    let (status, _) = skiff.delete(&format!("{PODS}/{victim}")).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = skiff
            .pods_of("kept")
            .await
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        if names.len() == 2 && !names.contains(&victim) {
            break;
        }
        assert!(Instant::now() < deadline, "the deleted pod was not replaced: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Without traffic, after the stable window and the grace period, back to zero.
    let started = Instant::now();
    wait_pods(&skiff, "cold", Duration::from_secs(40), |n| n == 0).await;
    assert!(started.elapsed() >= Duration::from_secs(6), "scaled down before the stable window ended");
    let idle = skiff
        .wait_for(&format!("{REVISIONS}/cold-00001"), Duration::from_secs(10), |r| {
            r["status"]["actualReplicas"] == 0
        })
        .await;
    assert_eq!(condition(&idle, "Active"), Some(("False".into(), "NoTraffic".into())), "{idle}");
    assert_eq!(skiff.pods_of("kept").await.len(), 2, "min-scale keeps its pods through idleness");

    // And it wakes again.
    assert_eq!(skiff.call("cold.default.localhost", "/").await.0, 200);
    skiff
        .wait_for(&format!("{REVISIONS}/cold-00001"), Duration::from_secs(10), |r| {
            r["status"]["coldStarts"]["count"] == 2
        })
        .await;
}

#[tokio::test]
async fn a_burst_with_a_low_target_scales_out_and_back() {
    let (skiff, _dir) = start(&[]);
    let image = upload(&skiff, skiff_guests::MISBEHAVE, "misbehave").await;
    create(
        &skiff,
        "bursty",
        &image,
        json!({
            "autoscaling.knative.dev/target": "1",
            "autoscaling.knative.dev/target-utilization-percentage": "100",
            "autoscaling.knative.dev/max-scale": "4",
        }),
    )
    .await;
    assert_eq!(wait_pods(&skiff, "bursty", Duration::from_secs(10), |n| n == 1).await.len(), 1);

    // Eight requests in flight at all times for a few seconds: ~8 concurrency against a
    // target of 1 panics the autoscaler up to max-scale.
    let load_until = Instant::now() + Duration::from_secs(5);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let client = skiff.http.clone();
            let url = format!("{}/sleep?ms=200", skiff.data);
            tokio::spawn(async move {
                let mut answered = 0;
                while Instant::now() < load_until {
                    let response = client.get(&url).header("host", "bursty.default.localhost").send().await;
                    assert_eq!(response.unwrap().status().as_u16(), 200);
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let mut peak = 0;
    while Instant::now() < load_until {
        peak = peak.max(skiff.pods_of("bursty").await.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for worker in workers {
        assert!(worker.await.unwrap() > 0);
    }
    assert_eq!(peak, 4, "eight in flight against a target of one scales to max-scale");
    let text = metrics(&skiff).await;
    assert!(sample(&text, "skiff_autoscaler_stable_value", "bursty-00001").unwrap() > 1.0, "{text}");

    // With the load gone it scales back down, then to zero.
    wait_pods(&skiff, "bursty", Duration::from_secs(40), |n| n < 4).await;
    wait_pods(&skiff, "bursty", Duration::from_secs(40), |n| n == 0).await;
}

#[tokio::test]
async fn the_activator_holds_a_bounded_queue_and_never_hangs() {
    let (skiff, _dir) = start(&["--activator-queue-depth", "2"]);
    let image = upload(&skiff, skiff_guests::HELLO, "hello").await;
    create(&skiff, "queued", &image, json!({"autoscaling.knative.dev/initial-scale": "0"})).await;
    // With the compile cache emptied the cold start compiles again (a fraction of a
    // second), long enough for a burst to find the activator's queue full.
    for entry in std::fs::read_dir(skiff.data_dir.join("cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let request = skiff.to_host(reqwest::Method::GET, "queued.default.localhost", "/");
            tokio::spawn(async move {
                let response = tokio::time::timeout(Duration::from_secs(30), request.send())
                    .await
                    .expect("every request is answered: none hangs")
                    .unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    let mut served = 0;
    let mut refused = 0;
    for request in burst {
        match request.await.unwrap() {
            (200, body) => {
                assert_eq!(body, "Hello World!\n");
                served += 1;
            }
            (503, body) => {
                assert!(body.contains("requests waiting"), "{body}");
                refused += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(served >= 1, "the held requests are served once the pod is ready");
    assert!(refused >= 1, "requests beyond the queue depth are refused at once");
    // Once the pod is up, nothing is refused.
    for _ in 0..5 {
        assert_eq!(skiff.call("queued.default.localhost", "/").await.0, 200);
    }
}

#[tokio::test]
async fn pods_are_read_only_and_scale_annotations_are_validated() {
    let (skiff, _dir) = start(&[]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mine"}, "spec": {}});
    let (status, body) = skiff.post(PODS, &pod).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["kind"], "Status");
    assert!(body["message"].as_str().unwrap().contains("autoscaler"), "{body}");

    let invalid = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "bad"},
        "spec": {"template": {
            "metadata": {"annotations": {
                "autoscaling.knative.dev/min-scale": "5",
                "autoscaling.knative.dev/max-scale": "2",
            }},
            "spec": {"containers": [{"image": "skiff.local/components/x@sha256:00"}]},
        }},
    });
    let (status, body) = skiff.post(SERVICES, &invalid).await;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("autoscaling.knative.dev/max-scale"), "{message}");
    assert!(message.contains("less than min-scale"), "{message}");
}

#[tokio::test]
async fn a_restart_brings_back_what_ran_and_leaves_idle_revisions_at_zero() {
    let (mut skiff, dir) = start(&[]);
    let image = upload(&skiff, skiff_guests::HELLO, "hello").await;
    create(&skiff, "kept", &image, json!({"autoscaling.knative.dev/min-scale": "2"})).await;
    create(&skiff, "idle", &image, json!({"autoscaling.knative.dev/initial-scale": "0"})).await;
    let before: Vec<String> = wait_pods(&skiff, "kept", Duration::from_secs(10), |n| n == 2)
        .await
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();

    skiff.kill9();
    let skiff = Skiff::start_in(dir.path(), FAST, &[]);
    // The pods of the killed process are gone; the autoscaler starts new ones.
    let after = wait_pods(&skiff, "kept", Duration::from_secs(10), |n| n == 2).await;
    for pod in &after {
        assert!(!before.contains(&pod["metadata"]["name"].as_str().unwrap().to_string()), "{pod}");
    }
    assert!(skiff.pods_of("idle").await.is_empty(), "a revision at zero stays at zero");
    assert_eq!(skiff.call("idle.default.localhost", "/").await.0, 200);
    assert_eq!(skiff.call("kept.default.localhost", "/").await.0, 200);
}

#[tokio::test]
async fn a_cold_start_is_a_span_in_the_requests_trace() {
    let receiver = skiff_tests::otlp::OtlpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = FAST.to_vec();
    let skiff = Skiff::start_exporting(dir.path(), &args, &receiver.endpoint);
    let image = upload(&skiff, skiff_guests::HELLO, "hello").await;
    create(&skiff, "sleepy", &image, json!({"autoscaling.knative.dev/initial-scale": "0"})).await;
    let trace_id = "6bf92f3577b34da6a3ce929d0e0e4738";
    let response = skiff
        .to_host(reqwest::Method::GET, "sleepy.default.localhost", "/")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let spans = receiver
        .wait_for(Duration::from_secs(15), |spans| {
            spans.iter().any(|s| s.trace_id == trace_id && s.name.starts_with("activator wait"))
        })
        .await;
    let ingress = spans.iter().find(|s| s.trace_id == trace_id && s.kind == 2).expect("the ingress span");
    let wait = spans.iter().find(|s| s.trace_id == trace_id && s.name.starts_with("activator wait")).unwrap();
    assert_eq!(wait.parent_span_id, ingress.span_id, "the wait is part of the request");
    assert_eq!(wait.attributes.get("faas.coldstart").map(String::as_str), Some("true"));
}
