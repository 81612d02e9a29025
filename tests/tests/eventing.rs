//! Eventing end to end: the real `skiff` binary, a Broker taking CloudEvents over HTTP, and
//! Triggers delivering them to an event recorder (an HTTP server in this process, as Knative's
//! e2e tests use) or to Wasm services, with Knative's filters, retries, dead letters and replies.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_tests::recorder::{Received, Recorder};
use skiff_tests::{BROKERS, PINGSOURCES, Skiff, TRIGGERS, condition, is_ready};

/// Create broker `name` and wait until it is Ready; its URL.
async fn broker(skiff: &Skiff, name: &str, spec: Value) -> String {
    let object = json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": name}, "spec": spec});
    let broker = skiff.create_ready(BROKERS, object).await;
    broker["status"]["address"]["url"].as_str().expect("broker URL").to_string()
}

/// Create trigger `name` with this spec and wait until it is Ready.
async fn trigger(skiff: &Skiff, name: &str, annotations: Value, spec: Value) -> Value {
    let object = json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
        "metadata": {"name": name, "annotations": annotations}, "spec": spec});
    skiff.create_ready(TRIGGERS, object).await
}

/// POST to a broker URL (`http://broker-ingress.localhost/ns/name`) through the data plane.
fn to_broker(skiff: &Skiff, url: &str) -> reqwest::RequestBuilder {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    skiff.to_host(reqwest::Method::POST, host, &format!("/{path}"))
}

async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("request to the broker");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A binary-mode event: `ce-*` headers and the data as the body.
fn binary(skiff: &Skiff, url: &str, id: &str, type_: &str, data: &str) -> reqwest::RequestBuilder {
    to_broker(skiff, url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-type", type_)
        .header("ce-source", "/skiff/tests")
        .header("content-type", "text/plain")
        .body(data.to_string())
}

/// The `ce-*` attributes of a delivered binary-mode event, by name.
fn attributes(received: &Received) -> BTreeMap<String, String> {
    received
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().strip_prefix("ce-")?;
            Some((name.to_string(), value.to_str().unwrap_or("").to_string()))
        })
        .collect()
}

/// Conformance-style events, each as it is sent and what must arrive: binary and structured
/// modes, CloudEvents 1.0 and 0.3, every optional attribute, extensions of every type, and data
/// that is JSON, text, or bytes that are not UTF-8.
#[tokio::test]
async fn events_arrive_with_every_attribute_extension_and_data_byte_in_both_modes() {
    let skiff = Skiff::start();
    let recorder = Recorder::start();
    let url = broker(&skiff, "default", json!({})).await;
    trigger(
        &skiff,
        "everything",
        json!({}),
        json!({"broker": "default", "subscriber": {"uri": format!("{}/all", recorder.url)}}),
    )
    .await;

    // 1.0 binary: every attribute, two extensions, percent-encoded header value, bytes not UTF-8.
    let raw: Vec<u8> = vec![0x00, 0xff, 0xfe, b'a', 0x80, 0x0a];
    let (status, body) = send(
        to_broker(&skiff, &url)
            .header("ce-specversion", "1.0")
            .header("ce-id", "binary-1")
            .header("ce-type", "com.example.binary")
            .header("ce-source", "https://example.com/source")
            .header("ce-subject", "caf%C3%A9 %22quoted%22")
            .header("ce-time", "2024-04-05T17:31:00Z")
            .header("ce-dataschema", "https://example.com/schema")
            .header("ce-comexampleextension1", "value")
            .header("ce-comexampleothervalue", "5")
            .header("content-type", "application/octet-stream")
            .body(raw.clone()),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // 1.0 structured with JSON data.
    let structured = json!({
        "specversion": "1.0", "id": "structured-1", "type": "com.example.structured",
        "source": "/mycontext", "subject": "larger-context", "time": "2018-04-05T17:31:00Z",
        "datacontenttype": "application/json", "comexampleextension1": "value",
        "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": true, "nested": [1, 2.5, null]},
    });
    let (status, body) = send(
        to_broker(&skiff, &url)
            .header("content-type", "application/cloudevents+json")
            .body(structured.to_string()),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // 1.0 structured with data_base64.
    let (status, body) = send(
        to_broker(&skiff, &url).header("content-type", "application/cloudevents+json").body(
            json!({"specversion": "1.0", "id": "base64-1", "type": "com.example.base64", "source": "/b64",
            "datacontenttype": "image/png", "data_base64": "AP/+YYAK"})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // 0.3 binary and structured.
    let (status, body) = send(
        to_broker(&skiff, &url)
            .header("ce-specversion", "0.3")
            .header("ce-id", "v03-binary")
            .header("ce-type", "com.example.v03")
            .header("ce-source", "/v03")
            .header("ce-schemaurl", "/schema")
            .header("content-type", "text/plain")
            .body("zero three"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = send(
        to_broker(&skiff, &url).header("content-type", "application/cloudevents+json").body(
            json!({"specversion": "0.3", "id": "v03-structured", "type": "com.example.v03", "source": "/v03",
            "datacontentencoding": "base64", "datacontenttype": "text/plain", "data": "aGVsbG8="})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // A batch of two.
    let (status, body) = send(to_broker(&skiff, &url).header("content-type", "application/cloudevents-batch+json").body(
        json!([
            {"specversion": "1.0", "id": "batch-1", "type": "com.example.batch", "source": "/batch", "data": "one"},
            {"specversion": "1.0", "id": "batch-2", "type": "com.example.batch", "source": "/batch", "data": {"n": 2}},
        ])
        .to_string(),
    ))
    .await;
    assert_eq!(status, 202, "{body}");

    let got = recorder.wait_for("/all", 7, Duration::from_secs(20)).await;
    let by_id = |id: &str| {
        got.iter()
            .find(|r| r.header("ce-id") == id)
            .unwrap_or_else(|| panic!("{id} was not delivered: {got:?}"))
    };

    let first = by_id("binary-1");
    let attrs = attributes(first);
    assert_eq!(attrs["specversion"], "1.0");
    assert_eq!(attrs["type"], "com.example.binary");
    assert_eq!(attrs["source"], "https://example.com/source");
    // The same value, percent-encoded as the HTTP binding asks (space and quote included).
    assert_eq!(attrs["subject"], "caf%C3%A9%20%22quoted%22");
    assert_eq!(attrs["time"], "2024-04-05T17:31:00Z");
    assert_eq!(attrs["dataschema"], "https://example.com/schema");
    assert_eq!(attrs["comexampleextension1"], "value");
    assert_eq!(attrs["comexampleothervalue"], "5");
    assert!(attrs.contains_key("knativearrivaltime"), "{attrs:?}");
    assert!(
        !attrs.contains_key("knativebrokerttl"),
        "the TTL is the broker's, not the subscriber's: {attrs:?}"
    );
    assert_eq!(first.header("content-type"), "application/octet-stream");
    assert_eq!(first.body.as_ref(), raw.as_slice(), "data bytes changed");
    assert_eq!(first.header("prefer"), "reply");

    let second = by_id("structured-1");
    let attrs = attributes(second);
    assert_eq!(attrs["subject"], "larger-context");
    assert_eq!(attrs["time"], "2018-04-05T17:31:00Z");
    assert_eq!(attrs["comexampleextension1"], "value");
    assert_eq!(second.header("content-type"), "application/json");
    let data: Value = serde_json::from_slice(&second.body).expect("JSON data");
    assert_eq!(data, structured["data"]);

    let third = by_id("base64-1");
    assert_eq!(third.header("content-type"), "image/png");
    assert_eq!(third.body.as_ref(), &[0x00, 0xff, 0xfe, 0x61, 0x80, 0x0a]);

    let v03 = by_id("v03-binary");
    assert_eq!(v03.header("ce-specversion"), "0.3");
    assert_eq!(v03.header("ce-schemaurl"), "/schema");
    assert_eq!(v03.body.as_ref(), b"zero three");
    assert_eq!(by_id("v03-structured").body.as_ref(), b"hello");

    let one: Value = serde_json::from_slice(&by_id("batch-1").body).expect("JSON data");
    assert_eq!(one, json!("one"));
    let n: Value = serde_json::from_slice(&by_id("batch-2").body).expect("JSON data");
    assert_eq!(n, json!({"n": 2}));
}

/// Every way an event can be refused, each answered with the code Knative's ingress gives and a
/// message naming the problem; nothing refused is delivered.
#[tokio::test]
async fn the_ingress_refuses_bad_requests_with_the_right_code() {
    let skiff = Skiff::start();
    let recorder = Recorder::start();
    let url = broker(&skiff, "default", json!({})).await;
    trigger(&skiff, "all", json!({}), json!({"subscriber": {"uri": format!("{}/all", recorder.url)}})).await;

    let (status, body) = send(binary(&skiff, &url, "", "t", "x")).await;
    assert_eq!(status, 400, "empty id: {body}");
    assert!(body.contains("id"), "{body}");
    let (status, body) = send(
        to_broker(&skiff, &url)
            .header("content-type", "application/cloudevents+json")
            .body(json!({"specversion": "1.0", "id": "s", "type": "", "source": "/s"}).to_string()),
    )
    .await;
    assert_eq!(status, 400, "empty type: {body}");
    assert!(body.contains("type"), "{body}");
    let (status, body) =
        send(to_broker(&skiff, &url).header("content-type", "application/cloudevents+json").body(
            json!({"specversion": "1.0", "id": "s", "type": "t", "source": "/s", "BadName": "v"}).to_string(),
        ))
        .await;
    assert_eq!(status, 400, "capitalised extension: {body}");
    let (status, body) =
        send(to_broker(&skiff, &url).header("content-type", "application/cloudevents+xml").body("<event/>"))
            .await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = send(to_broker(&skiff, &url).header("content-type", "text/plain").body("hi")).await;
    assert_eq!(status, 400, "not a CloudEvent: {body}");
    let (status, body) =
        send(binary(&skiff, &url, "loop", "t", "x").header("ce-knativebrokerttl", "0")).await;
    assert_eq!(status, 400, "TTL 0: {body}");

    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let response = skiff.to_host(reqwest::Method::GET, host, &format!("/{path}")).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let (status, body) = send(
        skiff.to_host(reqwest::Method::POST, host, "/default/nope").header("ce-specversion", "1.0").body("x"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("nope"), "{body}");
    let big = "x".repeat(5 << 20);
    let (status, body) = send(binary(&skiff, &url, "big", "t", &big)).await;
    assert_eq!(status, 413, "{body}");

    // Only the one good event arrives.
    let (status, body) = send(binary(&skiff, &url, "good", "t", "fine")).await;
    assert_eq!(status, 202, "{body}");
    let got = recorder.wait_for("/all", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = recorder.received("/all").iter().map(|r| r.header("ce-id").to_string()).collect();
    assert_eq!(ids, vec!["good".to_string()], "{got:?}");
}

/// Knative's filters, old and new, each against events that must and must not pass.
#[tokio::test]
async fn triggers_filter_events_by_attributes_and_the_filters_dialect() {
    let skiff = Skiff::start();
    let recorder = Recorder::start();
    let url = broker(&skiff, "default", json!({})).await;
    let cases = [
        ("exact-type", json!({"filter": {"attributes": {"type": "order.created"}}})),
        ("present-ext", json!({"filter": {"attributes": {"region": ""}}})),
        ("type-and-source", json!({"filter": {"attributes": {"type": "order.created", "source": "/shop"}}})),
        ("prefix", json!({"filters": [{"prefix": {"type": "order."}}]})),
        ("suffix", json!({"filters": [{"suffix": {"source": "/billing"}}]})),
        ("any", json!({"filters": [{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "order.paid"}}]}]})),
        ("not", json!({"filters": [{"not": {"prefix": {"type": "order."}}}]})),
        ("all", json!({"filters": [{"all": [{"prefix": {"type": "order."}}, {"exact": {"region": "eu"}}]}]})),
    ];
    for (name, filter) in &cases {
        let mut spec =
            json!({"broker": "default", "subscriber": {"uri": format!("{}/{name}", recorder.url)}});
        for (key, value) in filter.as_object().expect("object") {
            spec[key] = value.clone();
        }
        trigger(&skiff, name, json!({}), spec).await;
    }
    let events = [
        ("e1", "order.created", "/shop", Some("eu")),
        ("e2", "order.created", "/warehouse", None),
        ("e3", "order.paid", "/eu/billing", None),
        ("e4", "user.signup", "/shop", Some("us")),
    ];
    for (id, type_, source, region) in events {
        let mut request = to_broker(&skiff, &url)
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-type", type_)
            .header("ce-source", source)
            .body("{}");
        if let Some(region) = region {
            request = request.header("ce-region", region);
        }
        let (status, body) = send(request).await;
        assert_eq!(status, 202, "{body}");
    }
    let expected: &[(&str, &[&str])] = &[
        ("exact-type", &["e1", "e2"]),
        ("present-ext", &["e1", "e4"]),
        ("type-and-source", &["e1"]),
        ("prefix", &["e1", "e2", "e3"]),
        ("suffix", &["e3"]),
        ("any", &["e3"]),
        ("not", &["e4"]),
        ("all", &["e1"]),
    ];
    for (name, ids) in expected {
        recorder.wait_for(&format!("/{name}"), ids.len(), Duration::from_secs(20)).await;
    }
    // Let any wrongly matched event arrive before looking.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for (name, ids) in expected {
        let mut got: Vec<String> =
            recorder.received(&format!("/{name}")).iter().map(|r| r.header("ce-id").to_string()).collect();
        got.sort();
        assert_eq!(got, ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "trigger {name}");
    }

    // An invalid filter is refused at admission, naming the field.
    let (status, body) = skiff
        .post(
            TRIGGERS,
            &json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "bad"},
            "spec": {"broker": "default", "filters": [{"exact": {"type": "a"}, "prefix": {"type": "b"}}],
                     "subscriber": {"uri": "http://example.com"}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("spec.filters[0]"), "{body}");
}

/// A subscriber failing with 500 is retried until it takes the event; one answering 400 is not
/// retried: the event goes to the dead letter sink with Knative's error extensions.
#[tokio::test]
async fn retries_and_dead_letters_follow_the_delivery_policy() {
    let skiff = Skiff::start();
    let recorder = Recorder::start();
    let url = broker(&skiff, "default", json!({})).await;
    recorder.script(
        "/flaky",
        vec![(500, vec![], "busy".into()), (500, vec![], "busy".into()), (200, vec![], String::new())],
    );
    recorder.script("/bad", vec![(400, vec![], "no thanks: bad input".into())]);
    recorder.script("/down", vec![(503, vec![], "down".into())]);
    let delivery = |dls: &str| {
        json!({"retry": 3, "backoffPolicy": "linear", "backoffDelay": "PT0.1S",
               "deadLetterSink": {"uri": format!("{}/{dls}", recorder.url)}})
    };
    trigger(
        &skiff,
        "flaky",
        json!({}),
        json!({"filter": {"attributes": {"type": "flaky"}},
        "subscriber": {"uri": format!("{}/flaky", recorder.url)}, "delivery": delivery("dls-flaky")}),
    )
    .await;
    let bad = trigger(
        &skiff,
        "bad",
        json!({}),
        json!({"filter": {"attributes": {"type": "bad"}},
        "subscriber": {"uri": format!("{}/bad", recorder.url)}, "delivery": delivery("dls-bad")}),
    )
    .await;
    assert_eq!(bad["status"]["deadLetterSinkUri"], format!("{}/dls-bad", recorder.url));
    trigger(
        &skiff,
        "down",
        json!({}),
        json!({"filter": {"attributes": {"type": "down"}},
        "subscriber": {"uri": format!("{}/down", recorder.url)}, "delivery": delivery("dls-down")}),
    )
    .await;

    for (id, type_) in [("f1", "flaky"), ("b1", "bad"), ("d1", "down")] {
        let (status, body) = send(binary(&skiff, &url, id, type_, "payload")).await;
        assert_eq!(status, 202, "{body}");
    }
    let flaky = recorder.wait_for("/flaky", 3, Duration::from_secs(20)).await;
    assert!(flaky.iter().all(|r| r.header("ce-id") == "f1"));
    // Linear backoff of 0.1 s: the second retry waits 0.2 s.
    assert!(
        flaky[2].at.duration_since(flaky[1].at) >= Duration::from_millis(150),
        "no backoff between retries"
    );

    let dead = recorder.wait_for("/dls-bad", 1, Duration::from_secs(20)).await;
    let attrs = attributes(&dead[0]);
    assert_eq!(attrs["id"], "b1");
    assert_eq!(attrs["knativeerrordest"], format!("{}/bad", recorder.url));
    assert_eq!(attrs["knativeerrorcode"], "400");
    assert_eq!(attrs["knativeerrordata"], "bm8gdGhhbmtzOiBiYWQgaW5wdXQ=", "base64 of the response body");
    assert_eq!(dead[0].body.as_ref(), b"payload");
    assert_eq!(recorder.received("/bad").len(), 1, "a 400 is not retried");

    // 503 every time: 1 attempt + 3 retries, then the dead letter sink.
    let dead = recorder.wait_for("/dls-down", 1, Duration::from_secs(20)).await;
    assert_eq!(attributes(&dead[0])["knativeerrorcode"], "503");
    assert_eq!(recorder.received("/down").len(), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(recorder.received("/dls-flaky").is_empty(), "a delivered event is not dead-lettered");

    let (status, metrics) = skiff.get("/metrics").await;
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap_or_default().to_string();
    let sample = |name: &str, trigger: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("trigger=\"{trigger}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} for {trigger} missing from /metrics:\n{text}"))
    };
    assert_eq!(sample("skiff_trigger_events_delivered_total", "flaky"), 1.0);
    assert_eq!(sample("skiff_trigger_events_retried_total", "flaky"), 2.0);
    assert_eq!(sample("skiff_trigger_events_dead_lettered_total", "bad"), 1.0);
    assert_eq!(sample("skiff_trigger_events_retried_total", "down"), 3.0);
    assert!(sample("skiff_trigger_delivery_latency_seconds_count", "flaky") >= 1.0);
}

/// A reply chain: an event wakes a Wasm service at zero (through the activator), whose reply
/// goes back into the broker and on to a second trigger's subscriber.
#[tokio::test]
async fn a_services_reply_goes_back_into_the_broker() {
    let skiff = Skiff::start();
    let recorder = Recorder::start();
    let url = broker(&skiff, "default", json!({})).await;
    let image = skiff
        .upload_component(std::fs::read(skiff_guests::EVENT_HANDLER).expect("guest"), "event-handler")
        .await;
    skiff
        .create_service(
            "handler",
            json!({"autoscaling.knative.dev/initial-scale": "0"}),
            json!({"containers": [{"image": image}]}),
        )
        .await;
    skiff.wait_ready("handler").await;
    assert!(skiff.pods_of("handler").await.is_empty(), "the handler starts at zero");
    let first = trigger(&skiff, "to-handler", json!({}), json!({"filter": {"attributes": {"type": "order.created"}},
        "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "handler"}}})).await;
    assert_eq!(first["status"]["subscriberUri"], "http://handler.default.localhost");
    trigger(
        &skiff,
        "replies",
        json!({}),
        json!({"filter": {"attributes": {"type": "order.created.reply"}},
        "subscriber": {"uri": format!("{}/replies", recorder.url)}}),
    )
    .await;

    let (status, body) = send(
        binary(&skiff, &url, "order-1", "order.created", r#"{"item":"boat"}"#)
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let replies = recorder.wait_for("/replies", 1, Duration::from_secs(30)).await;
    let attrs = attributes(&replies[0]);
    assert_eq!(attrs["id"], "order-1-reply");
    assert_eq!(attrs["source"], "/skiff/examples/event-handler");
    let data: Value = serde_json::from_slice(&replies[0].body).expect("JSON reply");
    assert_eq!(data, json!({"received": {"item": "boat"}}));
    assert!(!skiff.pods_of("handler").await.is_empty(), "the delivery woke the handler");
}

/// A PingSource sends its event every minute, on the minute, with Knative's attributes.
#[tokio::test]
async fn a_ping_source_fires_every_minute() {
    let skiff = Skiff::start();
    let recorder = Recorder::start();
    let (status, body) = skiff
        .post(PINGSOURCES, &json!({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": {"name": "tick"},
            "spec": {"schedule": "* * * * *", "timezone": "Europe/Madrid", "contentType": "application/json",
                     "data": "{\"message\":\"hello\"}", "sink": {"uri": format!("{}/ping", recorder.url)}}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let source = skiff.wait_for(&format!("{PINGSOURCES}/tick"), Duration::from_secs(20), is_ready).await;
    assert_eq!(source["status"]["sinkUri"], format!("{}/ping", recorder.url));

    let pings = recorder.wait_for("/ping", 2, Duration::from_secs(130)).await;
    let (a, b) = (&pings[0], &pings[1]);
    let gap = b.at.duration_since(a.at);
    assert!(gap > Duration::from_secs(55) && gap < Duration::from_secs(65), "{gap:?} between pings");
    let attrs = attributes(a);
    assert_eq!(attrs["type"], "dev.knative.sources.ping");
    assert_eq!(attrs["source"], "/apis/v1/namespaces/default/pingsources/tick");
    assert!(attrs["time"].contains(":00"), "fires on the minute: {}", attrs["time"]);
    assert_ne!(attrs["id"], attributes(b)["id"]);
    assert_eq!(a.header("content-type"), "application/json");
    assert_eq!(a.body.as_ref(), br#"{"message":"hello"}"#);

    let (status, body) = skiff
        .post(
            PINGSOURCES,
            &json!({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": {"name": "bad"},
            "spec": {"schedule": "61 * * * *", "sink": {"uri": "http://example.com"}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("spec.schedule"), "{body}");
}

/// 2,000 events posted by 16 clients while the process is killed with `kill -9`: after a
/// restart, every event that was answered 202 reaches the subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_event_is_delivered_across_kill_9() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let recorder = Recorder::start();
    let mut skiff = Skiff::start_in(data_dir.path(), &[], &[]);
    let url = broker(&skiff, "default", json!({})).await;
    trigger(
        &skiff,
        "all",
        json!({}),
        json!({"subscriber": {"uri": format!("{}/all", recorder.url)},
        "delivery": {"retry": 10, "backoffDelay": "PT0.05S"}}),
    )
    .await;

    let data_address = skiff.data.clone();
    let accepted = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = skiff.http.clone();
    let rest = url.strip_prefix("http://").expect("http URL").to_string();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h.to_string(), format!("/{p}"))).expect("path");
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (accepted, next, client, host, path, data_address) = (
                accepted.clone(),
                next.clone(),
                client.clone(),
                host.clone(),
                path.clone(),
                data_address.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= 2000 {
                        return;
                    }
                    let id = format!("e{n}");
                    let sent = client
                        .post(format!("{data_address}{path}"))
                        .header("host", &host)
                        .header("ce-specversion", "1.0")
                        .header("ce-id", &id)
                        .header("ce-type", "load")
                        .header("ce-source", "/kill9")
                        .body(vec![b'x'; 256])
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    if let Ok(response) = sent
                        && response.status().as_u16() == 202
                    {
                        accepted.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
                    }
                }
            })
        })
        .collect();
    // Kill in the middle of the stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while accepted.lock().unwrap_or_else(|p| p.into_inner()).len() < 600 {
        assert!(std::time::Instant::now() < deadline, "the broker accepted too few events");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    skiff.kill9();
    for sender in senders {
        sender.await.expect("sender task");
    }
    let acknowledged = accepted.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(acknowledged.len() < 2000, "the kill came too late to test anything");
    let skiff = Skiff::start_in(data_dir.path(), &[], &[]);
    let _ = &skiff;

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: HashSet<String> =
            recorder.received("/all").iter().map(|r| r.header("ce-id").to_string()).collect();
        let missing: Vec<&String> = acknowledged.iter().filter(|id| !delivered.contains(*id)).collect();
        if missing.is_empty() {
            eprintln!(
                "{} events acknowledged before the kill, all delivered ({} deliveries, {} distinct)",
                acknowledged.len(),
                recorder.received("/all").len(),
                delivered.len()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} acknowledged events never arrived, e.g. {:?}",
            missing.len(),
            acknowledged.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Brokers, triggers and sources say what they wait for: a trigger whose broker or subscriber
/// is missing is not Ready and says why, and becomes Ready once they exist.
#[tokio::test]
async fn conditions_say_what_a_trigger_waits_for() {
    let skiff = Skiff::start();
    let recorder = Recorder::start();
    let (status, body) = skiff
        .post(TRIGGERS, &json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "early"},
            "spec": {"broker": "later", "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "missing"}}}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let early = skiff
        .wait_for(&format!("{TRIGGERS}/early"), Duration::from_secs(10), |t| {
            condition(t, "BrokerReady").is_some()
        })
        .await;
    assert_eq!(condition(&early, "BrokerReady"), Some(("False".into(), "BrokerDoesNotExist".into())));
    assert_eq!(condition(&early, "SubscriberResolved").map(|c| c.0), Some("False".into()));
    assert_eq!(condition(&early, "Ready").map(|c| c.0), Some("False".into()));

    broker(&skiff, "later", json!({})).await;
    let (status, body) = skiff
        .merge_patch(
            &format!("{TRIGGERS}/early"),
            &json!({"spec": {"subscriber": {"ref": null, "uri": format!("{}/early", recorder.url)}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let early = skiff.wait_for(&format!("{TRIGGERS}/early"), Duration::from_secs(10), is_ready).await;
    assert_eq!(early["status"]["subscriberUri"], format!("{}/early", recorder.url));

    // The broker's address, as Knative's MT broker shapes it; its conditions.
    let (_, later) = skiff.get(&format!("{BROKERS}/later")).await;
    assert_eq!(later["status"]["address"]["url"], "http://broker-ingress.localhost/default/later");
    for type_ in ["Addressable", "IngressReady", "FilterReady"] {
        assert_eq!(condition(&later, type_).map(|c| c.0), Some("True".into()), "{type_}");
    }
    // A trigger's broker cannot change.
    let (status, body) =
        skiff.merge_patch(&format!("{TRIGGERS}/early"), &json!({"spec": {"broker": "other"}})).await;
    assert_eq!(status, 422, "{body}");
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `kn`-like CLI end to end: a broker, a trigger with a filter, a ping source, `event send`
/// and the lists; and kubectl applying and reading the same kinds.
#[tokio::test]
async fn the_cli_and_kubectl_drive_brokers_triggers_and_sources() {
    let mut skiff = Skiff::start();
    let data_plane = skiff.data.trim_start_matches("http://").to_string();
    skiff.set_cli_env("SKIFF_DATA_PLANE", &data_plane);
    let recorder = Recorder::start();

    let created = skiff.cli(&["broker", "create", "orders"]);
    assert!(created.status.success(), "{}", skiff_tests::describe(&created));
    assert!(
        stdout(&created).contains("http://broker-ingress.localhost/default/orders"),
        "{}",
        stdout(&created)
    );
    let sink = format!("{}/cli", recorder.url);
    let trigger = skiff.cli(&[
        "trigger",
        "create",
        "paid",
        "--broker",
        "orders",
        "--filter",
        "type=order.paid",
        "--sink",
        &sink,
    ]);
    assert!(trigger.status.success(), "{}", skiff_tests::describe(&trigger));
    assert!(stdout(&trigger).contains(&sink), "{}", stdout(&trigger));

    let sent = skiff.cli(&[
        "event",
        "send",
        "--broker",
        "orders",
        "--type",
        "order.paid",
        "--source",
        "/cli",
        "--id",
        "cli-1",
        "--data",
        "{\"total\":12}",
    ]);
    assert!(sent.status.success(), "{}", skiff_tests::describe(&sent));
    assert!(stdout(&sent).contains("cli-1"), "{}", stdout(&sent));
    let other =
        skiff.cli(&["event", "send", "--broker", "orders", "--type", "order.created", "--id", "cli-2"]);
    assert!(other.status.success(), "{}", skiff_tests::describe(&other));
    let got = recorder.wait_for("/cli", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("ce-id"), "cli-1");
    assert_eq!(got[0].header("ce-type"), "order.paid");
    assert_eq!(got[0].body.as_ref(), br#"{"total":12}"#);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.received("/cli").len(), 1, "the filter kept order.created out");

    let refused = skiff.cli(&["event", "send", "--broker", "missing", "--type", "t"]);
    assert!(!refused.status.success(), "sending to a missing broker must fail");

    let ping = skiff.cli(&[
        "source",
        "ping",
        "create",
        "tick",
        "--schedule",
        "*/5 * * * *",
        "--data",
        "hi",
        "--sink",
        &sink,
    ]);
    assert!(ping.status.success(), "{}", skiff_tests::describe(&ping));
    let bad = skiff.cli(&["source", "ping", "create", "bad", "--schedule", "99 * * * *", "--sink", &sink]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("spec.schedule"),
        "{}",
        skiff_tests::describe(&bad)
    );

    let brokers = stdout(&skiff.cli(&["broker", "list"]));
    assert!(brokers.contains("orders") && brokers.contains("True"), "{brokers}");
    let triggers = stdout(&skiff.cli(&["trigger", "list"]));
    assert!(triggers.contains("paid") && triggers.contains("orders"), "{triggers}");
    let sources = stdout(&skiff.cli(&["source", "ping", "list"]));
    assert!(sources.contains("tick") && sources.contains("*/5 * * * *"), "{sources}");

    if !std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(!skiff_tests::in_ci(), "kubectl is not installed (scripts/setup.sh installs it)");
        eprintln!("skipping the kubectl part: kubectl is not installed (outside CI)");
        return;
    }
    let manifest = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: from-kubectl\nspec:\n  broker: orders\n  filters:\n  - prefix:\n      type: order.\n  subscriber:\n    uri: {sink}\n"
    );
    let applied = skiff.kubectl(&["apply", "-f", "-"], Some(&manifest));
    assert!(applied.status.success(), "{}", skiff_tests::describe(&applied));
    skiff.wait_for(&format!("{TRIGGERS}/from-kubectl"), Duration::from_secs(10), is_ready).await;
    let listed = skiff.kubectl(&["get", "brokers,triggers,pingsources"], None);
    let listed = stdout(&listed);
    for needle in ["orders", "paid", "from-kubectl", "tick", "http://broker-ingress.localhost/default/orders"]
    {
        assert!(listed.contains(needle), "kubectl get lacks {needle}:\n{listed}");
    }
    let deleted = skiff.kubectl(&["delete", "trigger", "from-kubectl"], None);
    assert!(deleted.status.success(), "{}", skiff_tests::describe(&deleted));
    let removed = skiff.cli(&["trigger", "delete", "paid"]);
    assert!(removed.status.success(), "{}", skiff_tests::describe(&removed));
    let (status, _) = skiff.get(&format!("{TRIGGERS}/paid")).await;
    assert_eq!(status, 404);
}

/// The eventing example `scripts/up.sh` applies: an order reaches the event-handler function,
/// and its reply comes back through the broker to the echo function.
#[tokio::test]
async fn the_eventing_example_routes_an_order_and_its_reply() {
    let skiff = Skiff::start();
    for (name, wasm) in [("event-handler", skiff_guests::EVENT_HANDLER), ("echo", skiff_guests::ECHO)] {
        let image = skiff.upload_component(std::fs::read(wasm).expect("guest"), name).await;
        skiff.create_service(name, json!({}), json!({"containers": [{"image": image}]})).await;
        skiff.wait_ready(name).await;
    }
    let manifest = include_str!("../../examples/manifests/eventing/orders.yaml");
    let applied = skiff.cli_with_stdin(&["apply", "-f", "-"], Some(manifest));
    assert!(applied.status.success(), "{}", skiff_tests::describe(&applied));
    for trigger in ["orders", "order-replies"] {
        skiff.wait_for(&format!("{TRIGGERS}/{trigger}"), Duration::from_secs(20), is_ready).await;
    }
    skiff.wait_for(&format!("{PINGSOURCES}/heartbeat"), Duration::from_secs(20), is_ready).await;
    let (_, broker) = skiff.get(&format!("{BROKERS}/default")).await;
    let url = broker["status"]["address"]["url"].as_str().expect("url").to_string();
    let (status, body) = send(
        binary(&skiff, &url, "order-7", "com.example.order.created", r#"{"item":"boat"}"#)
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = skiff.get("/metrics").await;
        let text = metrics.as_str().unwrap_or_default().to_string();
        let delivered = |trigger: &str| {
            text.lines().any(|l| {
                l.starts_with("skiff_trigger_events_delivered_total")
                    && l.contains(&format!("trigger=\"{trigger}\""))
                    && l.ends_with(" 1")
            })
        };
        if delivered("orders") && delivered("order-replies") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the order and its reply were not both delivered:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
