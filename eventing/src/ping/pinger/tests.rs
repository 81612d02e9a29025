use std::collections::VecDeque;
use std::time::Instant;

use http::{Response, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use crate::ping::PING_EVENT_TYPE;
use crate::sender::{SendError, Sending};
use spans::{RecordedSpan, SpanRecorder};

/// The span recorder the integration tests use too.
#[path = "../../../tests/common/spans.rs"]
mod spans;

/// A quick policy: the same three retries, without the waiting.
const QUICK: Policy = Policy {
    backoff: &[Duration::from_millis(1), Duration::from_millis(2), Duration::from_millis(4)],
    timeout: Duration::from_millis(20),
};

/// What the fake sink does with a request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(StatusCode),
    Refused,
    Hang,
    Slow(Duration),
}

/// A sink that answers from a script (200 once it runs out) and hands every request over.
struct FakeSink {
    script: Mutex<VecDeque<Reply>>,
    received: mpsc::UnboundedSender<Request<Bytes>>,
}

impl FakeSink {
    fn new(script: &[Reply]) -> (Arc<Self>, mpsc::UnboundedReceiver<Request<Bytes>>) {
        let (received, requests) = mpsc::unbounded_channel();
        (Arc::new(Self { script: Mutex::new(script.iter().copied().collect()), received }), requests)
    }
}

impl Sender for FakeSink {
    fn send(&self, request: Request<Bytes>) -> Sending {
        let reply = self.script.lock().unwrap().pop_front().unwrap_or(Reply::Status(StatusCode::OK));
        let _ = self.received.send(request);
        Box::pin(async move {
            let status = match reply {
                Reply::Status(status) => status,
                Reply::Refused => return Err(SendError("connection refused".to_owned())),
                Reply::Hang => std::future::pending().await,
                Reply::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    StatusCode::ACCEPTED
                }
            };
            Ok(Response::builder().status(status).body(Bytes::from_static(b"busy\n")).unwrap())
        })
    }
}

fn spec(value: serde_json::Value) -> PingSpec {
    PingSpec::from_json(&value).unwrap()
}

async fn next_request(requests: &mut mpsc::UnboundedReceiver<Request<Bytes>>) -> Request<Bytes> {
    tokio::time::timeout(Duration::from_secs(3), requests.recv()).await.expect("a request in time").unwrap()
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn header<'a>(request: &'a Request<Bytes>, name: &str) -> Option<&'a str> {
    request.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn pings_arrive_and_a_503_is_retried() {
    let (sink, mut requests) = FakeSink::new(&[Reply::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    let spec = spec(json!({
        "schedule": "@every 1s",
        "contentType": "application/json",
        "data": "{\"hello\":\"world\"}",
        "ceOverrides": {"extensions": {"team": "blue"}},
    }));
    let started = Utc::now();
    let pinger = Pinger::start(
        sink.clone(),
        "default",
        "heartbeat",
        spec,
        "http://display.default.example.com/".into(),
    );

    let first = next_request(&mut requests).await;
    let retry = next_request(&mut requests).await;
    for request in [&first, &retry] {
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "http://display.default.example.com/");
        assert_eq!(header(request, "ce-specversion"), Some("1.0"));
        assert_eq!(header(request, "ce-type"), Some("dev.knative.sources.ping"));
        assert_eq!(header(request, "ce-source"), Some("/apis/v1/namespaces/default/pingsources/heartbeat"));
        assert_eq!(header(request, "ce-team"), Some("blue"));
        assert_eq!(header(request, "content-type"), Some("application/json"));
        assert_eq!(request.body(), &Bytes::from_static(b"{\"hello\":\"world\"}"));
        // The trace context, when there is one (an OpenTelemetry layer), is both an extension
        // and the W3C header.
        assert_eq!(header(request, "traceparent"), header(request, "ce-traceparent"));
    }
    assert_eq!(header(&first, "ce-id"), header(&retry, "ce-id"), "a retry is the same event");

    eventually("the retry to succeed", || pinger.stats().sent == 1).await;
    let stats = pinger.stats();
    assert_eq!((stats.fired, stats.failed), (1, 0), "{stats:?}");
    let fired = pinger.last_fired().unwrap();
    assert_eq!(
        header(&first, "ce-time"),
        Some(fired.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true).as_str())
    );
    // The first whole second after the start (which may itself be a little after `started`).
    assert!(fired > started && fired <= started + chrono::TimeDelta::seconds(2), "{started} {fired}");
    assert_eq!(fired.timestamp_subsec_nanos(), 0, "@every counts whole seconds");
}

#[tokio::test]
async fn retries_stop_after_three_or_at_a_final_answer() {
    let every_second = spec(json!({"schedule": "@every 1s"}));
    let unavailable = Reply::Status(StatusCode::SERVICE_UNAVAILABLE);
    // (script, requests expected, sent, failed)
    let cases: [(&[Reply], usize, u64, u64); 6] = [
        (&[unavailable; 4], 4, 0, 1),
        (&[unavailable, Reply::Refused, Reply::Hang, Reply::Status(StatusCode::OK)], 4, 1, 0),
        (&[Reply::Hang; 4], 4, 0, 1),
        (&[Reply::Status(StatusCode::TOO_MANY_REQUESTS), Reply::Status(StatusCode::NOT_FOUND)], 3, 1, 0),
        (&[Reply::Status(StatusCode::BAD_REQUEST)], 1, 0, 1),
        (&[unavailable, Reply::Status(StatusCode::FORBIDDEN)], 2, 0, 1),
    ];
    let mut running = Vec::new();
    for (script, expected, sent, failed) in cases {
        let (sink, requests) = FakeSink::new(script);
        let pinger = Pinger::start_with(
            sink,
            "ns",
            "p",
            every_second.clone(),
            "http://sink.example.com".into(),
            QUICK,
        );
        running.push((pinger, requests, script, expected, sent, failed));
    }
    for (pinger, mut requests, script, expected, sent, failed) in running {
        eventually("the first delivery to end", || {
            let stats = pinger.stats();
            stats.sent + stats.failed >= 1
        })
        .await;
        let stats = pinger.stats();
        assert_eq!((stats.sent, stats.failed), (sent, failed), "{script:?}");
        let mut ids = Vec::new();
        while let Ok(request) = requests.try_recv() {
            ids.push(header(&request, "ce-id").unwrap().to_owned());
        }
        // A second firing may have begun meanwhile; count the first event's attempts.
        let attempts = ids.iter().filter(|id| **id == ids[0]).count();
        assert_eq!(attempts, expected, "{script:?}");
    }
}

#[tokio::test]
async fn a_bad_sink_fails_without_a_request() {
    let (sink, mut requests) = FakeSink::new(&[]);
    let pinger = Pinger::start_with(
        sink,
        "ns",
        "p",
        spec(json!({"schedule": "@every 1s"})),
        "not a uri".into(),
        QUICK,
    );
    eventually("the failure", || pinger.stats().failed == 1).await;
    assert!(requests.try_recv().is_err());
}

#[tokio::test]
async fn updates_take_effect() {
    let (sink, mut requests) = FakeSink::new(&[]);
    let yearly = spec(json!({"schedule": "0 0 1 1 *", "data": "one"}));
    let pinger = Pinger::start_with(sink, "ns", "p", yearly.clone(), "http://one.example.com".into(), QUICK);
    // The same spec and sink again change nothing.
    pinger.update(yearly, "http://one.example.com".into());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(requests.try_recv().is_err());
    // A new schedule is evaluated afresh, with the new data and sink.
    let every_second = spec(json!({"schedule": "@every 1s", "data": "two"}));
    pinger.update(every_second, "http://two.example.com".into());
    let request = next_request(&mut requests).await;
    assert_eq!((request.uri().host(), request.body().as_ref()), (Some("two.example.com"), &b"two"[..]));
    assert_eq!(pinger.stats().fired, 1);
}

#[tokio::test]
async fn dropping_a_pinger_stops_it() {
    let (sink, _requests) = FakeSink::new(&[Reply::Hang]);
    let pinger = Pinger::start_with(
        sink.clone(),
        "ns",
        "p",
        spec(json!({"schedule": "@every 1s"})),
        "http://s.example.com".into(),
        QUICK,
    );
    assert!(Arc::strong_count(&sink) > 1);
    drop(pinger);
    // The task, and with it the sender it holds, goes away.
    eventually("the task to end", || Arc::strong_count(&sink) == 1).await;
}

#[tokio::test]
async fn stop_lets_deliveries_in_flight_finish() {
    let every_second = spec(json!({"schedule": "@every 1s"}));
    let (finishing, mut finishing_requests) = FakeSink::new(&[Reply::Slow(Duration::from_millis(100))]);
    let first = Pinger::start_with(
        finishing.clone(),
        "ns",
        "a",
        every_second.clone(),
        "http://a.example.com".into(),
        QUICK,
    );
    // A delivery that outlasts the grace is abandoned, neither sent nor failed.
    let (hanging, mut hanging_requests) = FakeSink::new(&[Reply::Hang]);
    let patient = Policy { timeout: Duration::from_secs(60), ..QUICK };
    let second =
        Pinger::start_with(hanging.clone(), "ns", "b", every_second, "http://b.example.com".into(), patient);
    let (first_counters, second_counters) = (first.counters.clone(), second.counters.clone());
    next_request(&mut finishing_requests).await;
    next_request(&mut hanging_requests).await;

    let stopping = Instant::now();
    tokio::join!(first.stop(Duration::from_secs(5)), second.stop(Duration::from_millis(50)));
    assert!(stopping.elapsed() < Duration::from_secs(1));
    assert_eq!(first_counters.stats(), PingStats { fired: 1, sent: 1, failed: 0 });
    assert_eq!(second_counters.stats(), PingStats { fired: 1, sent: 0, failed: 0 });
    assert_eq!((Arc::strong_count(&finishing), Arc::strong_count(&hanging)), (1, 1));
}

#[test]
fn the_knative_policy() {
    let waits: Vec<u128> = Policy::KNATIVE.backoff.iter().map(Duration::as_millis).collect();
    assert_eq!(waits, [200, 400, 800]);
    assert_eq!(Policy::KNATIVE.timeout, Duration::from_secs(30));
}

#[test]
fn the_trace_context_goes_in_the_event_and_the_headers() {
    let mut event = Event::new("1", "/apis/v1/namespaces/ns/pingsources/p", PING_EVENT_TYPE);
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    event.extensions.insert(TRACEPARENT_EXTENSION.into(), traceparent.into());
    let (headers, body) = encode(&event);
    assert_eq!(headers["traceparent"], traceparent);
    assert_eq!(headers["ce-traceparent"], traceparent);
    assert_eq!(headers["ce-type"], PING_EVENT_TYPE);
    assert!(body.is_empty());
}

#[test]
fn a_firing_is_a_root_span_with_its_attributes() {
    let recorder = SpanRecorder::default();
    let spec = spec(json!({"schedule": "CRON_TZ=Europe/Madrid */5 * * * *"}));
    let at = DateTime::parse_from_rfc3339("2024-05-06T07:10:00Z").unwrap().to_utc();
    let event = ping_event("default", "every-5", &spec, at);
    tracing::subscriber::with_default(recorder.clone(), || {
        let outer = tracing::info_span!("reconcile");
        let _entered = outer.enter();
        let span = firing_span("default", "every-5", &spec, "http://sink.example.com/", &event);
        span.record("http.response.status_code", 202);
    });
    let spans = recorder.spans();
    let RecordedSpan { name, root, fields } =
        spans.iter().find(|span| span.name == "ping").expect("the firing's span");
    assert_eq!(name, "ping");
    assert!(root, "a firing starts its own trace");
    let expected = [
        ("otel.name", "ping default/every-5"),
        ("otel.kind", "producer"),
        ("faas.trigger", "timer"),
        ("faas.time", "2024-05-06T07:10:00Z"),
        ("faas.cron", "CRON_TZ=Europe/Madrid */5 * * * *"),
        ("cloudevents.event_type", "dev.knative.sources.ping"),
        ("cloudevents.event_source", "/apis/v1/namespaces/default/pingsources/every-5"),
        ("messaging.operation.type", "send"),
        ("url.full", "http://sink.example.com/"),
        ("http.response.status_code", "202"),
    ];
    for (key, value) in expected {
        assert_eq!(fields.get(key).map(String::as_str), Some(value), "{key} in {fields:?}");
    }
    assert_eq!(fields.get("cloudevents.event_id"), Some(&event.id));
}
