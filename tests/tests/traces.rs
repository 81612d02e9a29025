//! One trace across every hop, checked at a real OTLP receiver: a request to service A, whose
//! guest calls service B, whose guest posts an event to a broker, whose trigger delivers it to
//! service C started from zero. And an event's own `traceparent` extension carried through the
//! durable log across a `kill -9`.

use std::time::Duration;

use serde_json::json;
use skiff_tests::otlp::{OtlpReceiver, ReceivedSpan};
use skiff_tests::recorder::Recorder;
use skiff_tests::{BROKERS, PINGSOURCES, Skiff, TRIGGERS};

fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn attr<'a>(span: &'a ReceivedSpan, key: &str) -> &'a str {
    span.attributes.get(key).map(String::as_str).unwrap_or("")
}

/// The single span of `trace` that `pick` selects; panics listing the trace otherwise.
fn one<'a>(spans: &'a [ReceivedSpan], what: &str, pick: impl Fn(&ReceivedSpan) -> bool) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| pick(s)).collect();
    match found.as_slice() {
        [span] => span,
        _ => {
            let listing: Vec<String> = spans
                .iter()
                .map(|s| format!("{} [{}] parent={} kind={}", s.name, s.span_id, s.parent_span_id, s.kind))
                .collect();
            panic!("expected one {what}, found {}:\n{}", found.len(), listing.join("\n"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_through_functions_and_an_event_is_one_trace() {
    let receiver = OtlpReceiver::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let skiff = Skiff::start_exporting(dir.path(), &[], &receiver.endpoint);
    let fetch = skiff.upload_component(std::fs::read(skiff_guests::FETCH).expect("guest"), "fetch").await;
    let hello = skiff.upload_component(std::fs::read(skiff_guests::HELLO).expect("guest"), "hello").await;
    skiff.create_service("a", json!({}), json!({"containers": [{"image": fetch}]})).await;
    skiff.create_service("b", json!({}), json!({"containers": [{"image": fetch}]})).await;
    skiff
        .create_service(
            "c",
            json!({"autoscaling.knative.dev/initial-scale": "0"}),
            json!({"containers": [{"image": hello}]}),
        )
        .await;
    for name in ["a", "b", "c"] {
        skiff.wait_ready(name).await;
    }
    skiff.create_ready(BROKERS,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}}),
    )
    .await;
    skiff.create_ready(TRIGGERS, json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "to-c"},
        "spec": {"broker": "default", "filter": {"attributes": {"type": "chain.step"}},
                 "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "c"}}}}))
    .await;
    assert!(skiff.pods_of("c").await.is_empty(), "c starts at zero");

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let b_url = format!(
        "http://b.default.localhost/?url={}",
        encode("http://broker-ingress.localhost/default/default")
    );
    let response = skiff
        .to_host(reqwest::Method::POST, "a.default.localhost", &format!("/?url={}", encode(&b_url)))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "chain-1")
        .header("ce-type", "chain.step")
        .header("ce-source", "/tests/chain")
        .header("content-type", "text/plain")
        .body("along the chain")
        .send()
        .await
        .expect("request to a");
    assert_eq!(response.status().as_u16(), 200);
    let traceresponse =
        response.headers().get("traceresponse").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(traceresponse.contains(trace_id), "the response names the trace: {traceresponse:?}");
    assert_eq!(
        response.headers().get("x-fetched-status").and_then(|v| v.to_str().ok()),
        Some("200"),
        "b answered"
    );

    // Wait for the end of the chain: c's invocation.
    receiver
        .wait_for(Duration::from_secs(30), |spans| {
            spans.iter().any(|s| s.trace_id == trace_id && s.name.starts_with("invoke c-"))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans: Vec<ReceivedSpan> = receiver.spans().into_iter().filter(|s| s.trace_id == trace_id).collect();

    let ingress_a = one(&spans, "ingress span of a", |s| {
        s.kind == 2 && attr(s, "server.address") == "a.default.localhost"
    });
    assert_eq!(ingress_a.parent_span_id, client_span, "a continues the caller's trace");
    let invoke_a = one(&spans, "invocation of a", |s| s.name.starts_with("invoke a-"));
    assert_eq!(invoke_a.parent_span_id, ingress_a.span_id);
    assert_eq!(attr(invoke_a, "faas.trigger"), "http");
    let out_a = one(&spans, "a's outbound call", |s| s.kind == 3 && s.parent_span_id == invoke_a.span_id);
    let ingress_b = one(&spans, "ingress span of b", |s| {
        s.kind == 2 && attr(s, "server.address") == "b.default.localhost"
    });
    assert_eq!(ingress_b.parent_span_id, out_a.span_id, "the host injected traceparent into a's call");
    let invoke_b = one(&spans, "invocation of b", |s| s.name.starts_with("invoke b-"));
    assert_eq!(invoke_b.parent_span_id, ingress_b.span_id);
    let out_b = one(&spans, "b's outbound call", |s| s.kind == 3 && s.parent_span_id == invoke_b.span_id);
    let broker = one(&spans, "broker ingress span", |s| attr(s, "messaging.operation.type") == "receive");
    assert_eq!(broker.parent_span_id, out_b.span_id);
    assert_eq!(broker.kind, 2);
    assert_eq!(attr(broker, "cloudevents.event_id"), "chain-1");
    assert_eq!(attr(broker, "cloudevents.event_type"), "chain.step");
    assert_eq!(attr(broker, "cloudevents.event_source"), "/tests/chain");
    let delivery =
        one(&spans, "trigger delivery", |s| s.kind == 3 && attr(s, "messaging.operation.type") == "send");
    assert_eq!(delivery.parent_span_id, broker.span_id, "the event carries the broker ingress's context");
    assert_eq!(attr(delivery, "cloudevents.event_id"), "chain-1");
    let ingress_c = one(&spans, "ingress span of c", |s| {
        s.kind == 2 && attr(s, "server.address") == "c.default.localhost"
    });
    assert_eq!(ingress_c.parent_span_id, delivery.span_id);
    let wait = one(&spans, "activator wait of c", |s| s.name.starts_with("activator wait c-"));
    assert_eq!(wait.parent_span_id, ingress_c.span_id);
    let cold = one(&spans, "cold start of c", |s| s.name.starts_with("cold start c-"));
    assert_eq!(
        cold.parent_span_id, wait.span_id,
        "the cold start is in the trace of the request that woke c"
    );
    let load = one(&spans, "instance load", |s| s.name.starts_with("load c-"));
    let instantiate = one(&spans, "instantiate", |s| s.name.starts_with("instantiate c-"));
    assert_eq!(load.parent_span_id, cold.span_id);
    assert_eq!(instantiate.parent_span_id, cold.span_id);
    let invoke_c = one(&spans, "invocation of c", |s| s.name.starts_with("invoke c-"));
    assert_eq!(attr(invoke_c, "faas.coldstart"), "true");
    assert_eq!(attr(invoke_a, "faas.coldstart"), "false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_traceparent_survives_the_log_and_a_kill_9() {
    let receiver = OtlpReceiver::start();
    let recorder = Recorder::start();
    recorder.script("/sub", vec![(503, vec![], "not yet".into())]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut skiff = Skiff::start_exporting(dir.path(), &[], &receiver.endpoint);
    skiff.create_ready(BROKERS,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}}),
    )
    .await;
    skiff
        .create_ready(
            TRIGGERS,
            json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "later"},
        "spec": {"broker": "default", "subscriber": {"uri": format!("{}/sub", recorder.url)},
                 "delivery": {"retry": 20, "backoffPolicy": "linear", "backoffDelay": "PT0.5S"}}}),
        )
        .await;

    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4736";
    let producer_span = "00f067aa0ba902b8";
    let response = skiff
        .to_host(reqwest::Method::POST, "broker-ingress.localhost", "/default/default")
        .header("ce-specversion", "1.0")
        .header("ce-id", "traced-1")
        .header("ce-type", "traced")
        .header("ce-source", "/tests/producer")
        .header("ce-traceparent", format!("00-{trace_id}-{producer_span}-01"))
        .body("carried")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 202);
    recorder.wait_for("/sub", 2, Duration::from_secs(10)).await;
    // Let the failed attempts' spans leave (the exporter sends every 100 ms) before the crash.
    tokio::time::sleep(Duration::from_millis(400)).await;
    skiff.kill9();
    recorder.script("/sub", vec![(200, vec![], String::new())]);
    let _skiff = Skiff::start_exporting(dir.path(), &[], &receiver.endpoint);

    let got = recorder
        .wait_for("/sub", 3, Duration::from_secs(30))
        .await
        .into_iter()
        .rev()
        .find(|r| r.header("ce-id") == "traced-1")
        .expect("delivered");
    assert_eq!(
        got.header("ce-traceparent"),
        format!("00-{trace_id}-{producer_span}-01"),
        "the extension is kept"
    );
    assert!(
        got.header("traceparent").contains(trace_id),
        "the delivery continues the event's trace: {:?}",
        got.header("traceparent")
    );
    let spans = receiver
        .wait_for(Duration::from_secs(15), |spans| {
            spans.iter().any(|s| {
                s.trace_id == trace_id && s.kind == 3 && attr(s, "http.response.status_code") == "200"
            })
        })
        .await;
    let delivered = spans
        .iter()
        .find(|s| s.trace_id == trace_id && s.kind == 3 && attr(s, "http.response.status_code") == "200")
        .expect("the delivery after the restart");
    assert_eq!(delivered.parent_span_id, producer_span, "a child of the event's creation context");
    let failed: Vec<&ReceivedSpan> =
        spans.iter().filter(|s| s.trace_id == trace_id && s.kind == 3 && s.status_code == 2).collect();
    assert!(!failed.is_empty(), "the 503 attempts before the kill are ERROR spans in the same trace");
    assert!(failed.iter().all(|s| attr(s, "error.type") == "503"));
}

#[tokio::test]
async fn ping_source_firings_are_timer_roots() {
    let receiver = OtlpReceiver::start();
    let recorder = Recorder::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let skiff = Skiff::start_exporting(dir.path(), &[], &receiver.endpoint);
    skiff.create_ready(PINGSOURCES, json!({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": {"name": "often"},
        "spec": {"schedule": "@every 1s", "data": "tick", "sink": {"uri": format!("{}/ping", recorder.url)}}}))
    .await;
    let got = recorder.wait_for("/ping", 1, Duration::from_secs(10)).await;
    let traceparent = got[0].header("traceparent").to_string();
    let trace_id = traceparent.split('-').nth(1).expect("a traceparent").to_string();
    assert_eq!(got[0].header("ce-traceparent"), traceparent, "the event carries its creation context");
    let spans = receiver
        .wait_for(Duration::from_secs(15), |spans| spans.iter().any(|s| s.trace_id == trace_id))
        .await;
    let root =
        spans.iter().find(|s| s.trace_id == trace_id && s.parent_span_id.is_empty()).expect("a root span");
    assert_eq!(attr(root, "faas.trigger"), "timer");
    assert!(root.name.contains("default/often"), "{}", root.name);
}
