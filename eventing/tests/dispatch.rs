//! The Trigger dispatcher through its public API, over a real event log and a scripted
//! in-memory sender: delivery, filtering, concurrency, retries, dead letters, replies, TTLs,
//! cursors across stops, drops and `kill -9`, updates, counters and spans.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::print_now;
use common::spans::SpanRecorder;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use skiff_eventing::broker;
use skiff_eventing::codec::{self, Event};
use skiff_eventing::delivery::{BackoffPolicy, DeliverySpec};
use skiff_eventing::dispatch::{Dispatcher, Subscription};
use skiff_eventing::filter::{Filter, TriggerFilter};
use skiff_eventing::log::{EventLog, Retention};
use skiff_eventing::sender::{SendError, Sender, Sending};
use tokio::time::Instant;

const BROKER: &str = "ns/default";
const TRIGGER_ID: &str = "3f0c7d0e-trigger-uid";
const SUBSCRIBER: &str = "http://subscriber.ns.svc.cluster.local/events";
const SINK: &str = "http://sink.ns.svc.cluster.local/";

// ---- a scripted sender ------------------------------------------------------------------------

/// What the fake answers one request with.
#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    Full(u16, HeaderMap, Bytes),
    NoResponse,
    /// Never answers.
    Hang,
    /// Answers after a while.
    Later(Duration, Box<Answer>),
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
    /// The event's `ce-id`.
    id: String,
    /// 0 for the first request of this event to this URI, 1 for the next, ...
    attempt: usize,
}

impl Seen {
    fn event(&self) -> Event {
        let mut events = codec::decode(&self.headers, &self.body).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

type Script = dyn Fn(&Seen) -> Answer + Send + Sync;

/// Answers as its script says, and remembers every request and answer.
struct FakeSender {
    script: Box<Script>,
    record: Arc<Record>,
}

#[derive(Default)]
struct Record {
    seen: Mutex<Vec<Seen>>,
    /// (uri, event id, status) of every answer given, in order.
    answered: Mutex<Vec<(String, String, u16)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a request in flight until its future ends or is dropped.
struct Counted(Arc<Record>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeSender {
    fn new(script: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(FakeSender { script: Box::new(script), record: Arc::default() })
    }

    fn ok() -> Arc<Self> {
        Self::new(|_| Answer::Status(200))
    }

    fn seen(&self) -> Vec<Seen> {
        self.record.seen.lock().unwrap().clone()
    }

    fn seen_by(&self, uri: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|seen| seen.uri == uri).collect()
    }

    /// The ids of the events `uri` answered with a 2xx.
    fn accepted_by(&self, uri: &str) -> HashSet<String> {
        let answered = self.record.answered.lock().unwrap();
        answered
            .iter()
            .filter(|(u, _, status)| u == uri && (200..300).contains(status))
            .map(|(_, id, _)| id.clone())
            .collect()
    }

    fn max_in_flight(&self) -> usize {
        self.record.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Sender for FakeSender {
    fn send(&self, request: http::Request<Bytes>) -> Sending {
        let (parts, body) = request.into_parts();
        let uri = parts.uri.to_string();
        let id = parts.headers.get("ce-id").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let seen = {
            let mut all = self.record.seen.lock().unwrap();
            let attempt = all.iter().filter(|s| s.uri == uri && s.id == id).count();
            let seen = Seen {
                at: Instant::now(),
                method: parts.method,
                uri,
                headers: parts.headers,
                body,
                id,
                attempt,
            };
            all.push(seen.clone());
            seen
        };
        let mut answer = (self.script)(&seen);
        let now = self.record.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.record.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let counted = Counted(self.record.clone());
        Box::pin(async move {
            while let Answer::Later(wait, then) = answer {
                tokio::time::sleep(wait).await;
                answer = *then;
            }
            let (status, headers, body) = match answer {
                Answer::Status(status) => (status, HeaderMap::new(), Bytes::new()),
                Answer::Full(status, headers, body) => (status, headers, body),
                Answer::NoResponse => return Err(SendError("connection refused".into())),
                Answer::Hang | Answer::Later(..) => std::future::pending().await,
            };
            counted.0.answered.lock().unwrap().push((seen.uri.clone(), seen.id.clone(), status));
            drop(counted);
            let mut response = http::Response::new(body);
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            *response.headers_mut() = headers;
            Ok(response)
        })
    }
}

// ---- helpers ----------------------------------------------------------------------------------

fn open(path: &Path) -> EventLog {
    EventLog::open(path, Retention::default()).unwrap()
}

/// No retries, no wait, no timeout, no sink.
fn once() -> DeliverySpec {
    DeliverySpec {
        retry: 0,
        backoff_policy: BackoffPolicy::Linear,
        backoff_delay: Duration::ZERO,
        timeout: None,
        retry_after_max: None,
        dead_letter_sink: None,
    }
}

fn subscription(delivery: DeliverySpec) -> Subscription {
    Subscription {
        id: TRIGGER_ID.into(),
        name: "ns/trigger".into(),
        broker: BROKER.into(),
        filter: TriggerFilter::default(),
        subscriber: SUBSCRIBER.into(),
        delivery,
        concurrency: 1,
    }
}

fn with_sink(mut delivery: DeliverySpec) -> DeliverySpec {
    delivery.dead_letter_sink = Some(SINK.into());
    delivery
}

fn event(id: &str, type_: &str) -> Event {
    Event::new(id, "/orders", type_)
}

/// Append events as the broker ingress does (arrival time, TTL, trace context), with `ttl`.
async fn publish_with_ttl(log: &EventLog, ttl: u32, events: Vec<Event>) -> Vec<u64> {
    let bytes = events
        .into_iter()
        .map(|mut event| {
            broker::stamp(&mut event, ttl, &tracing::Span::none());
            Bytes::from(codec::to_bytes(&event))
        })
        .collect();
    log.append(BROKER, bytes).await.unwrap()
}

async fn publish(log: &EventLog, events: Vec<Event>) -> Vec<u64> {
    publish_with_ttl(log, codec::DEFAULT_TTL, events).await
}

/// The events `e{n}` for `n` in `range`, of type `t`.
fn numbered(range: std::ops::Range<u64>) -> Vec<Event> {
    range.map(|n| event(&format!("e{n}"), "t")).collect()
}

/// A fresh log in a temporary directory.
fn fresh_log(dir: &tempfile::TempDir) -> EventLog {
    open(&dir.path().join("events.redb"))
}

/// Wait (in real time, at most 10 s) until `condition` holds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn cursor_reaches(log: &EventLog, offset: u64) {
    eventually(&format!("the cursor to reach {offset}"), || log.cursor(TRIGGER_ID).unwrap() == Some(offset))
        .await;
}

/// Start a dispatcher whose trigger exists since offset 0 (so that it sees every event).
async fn start_at_zero(log: &EventLog, sender: &Arc<FakeSender>, subscription: Subscription) -> Dispatcher {
    log.set_cursor(&subscription.id, 0).await.unwrap();
    Dispatcher::start(log.clone(), sender.clone(), subscription)
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

// ---- delivery ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_event_is_posted_in_binary_mode_without_the_broker_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::ok();
    let dispatcher = start_at_zero(&log, &sender, subscription(once())).await;

    let mut originals = Vec::new();
    for n in 0..5 {
        let mut event = event(&format!("e{n}"), "com.example.order");
        event.subject = Some(format!("order-{n}"));
        event.time = Some("2024-05-06T07:08:09.123456789Z".into());
        event.datacontenttype = Some("application/json".into());
        event.data = Some(Bytes::from(format!(r#"{{"n":{n},"text":"ünïcode"}}"#)));
        event.extensions.insert("myext".into(), format!("value {n}%"));
        event
            .extensions
            .insert("traceparent".into(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        originals.push(event);
    }
    publish(&log, originals.clone()).await;
    eventually("5 deliveries", || dispatcher.stats().snapshot().delivered == 5).await;

    let seen = sender.seen();
    assert_eq!(seen.len(), 5);
    for (seen, original) in seen.iter().zip(&originals) {
        assert_eq!(seen.method, Method::POST);
        assert_eq!(seen.uri, SUBSCRIBER);
        assert_eq!(seen.header("ce-specversion"), Some("1.0"), "binary mode");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.body, original.data.clone().unwrap(), "the data is the body");
        assert_eq!(seen.header("prefer"), Some("reply"));
        assert_eq!(seen.header("ce-knativebrokerttl"), None, "the TTL is not for subscribers");
        // Not tracing here: the event's own context goes on to the subscriber.
        assert_eq!(seen.header("traceparent"), original.extensions.get("traceparent").map(String::as_str));
        let mut delivered = seen.event();
        assert!(delivered.extensions.remove("knativearrivaltime").is_some(), "the broker's arrival time");
        assert_eq!(&delivered, original);
    }
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.failed, stats.retried, stats.dead_lettered, stats.filtered_out), (0, 0, 0, 0));
    assert_eq!(stats.latency.count, 5);
    assert!(stats.latency.sum > 0.0);
    cursor_reaches(&log, 5).await;
    assert_eq!(dispatcher.stats().snapshot().in_flight, 0);
    dispatcher.stop().await;
}

#[tokio::test]
async fn events_the_filter_does_not_match_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::ok();
    let mut sub = subscription(once());
    sub.filter = TriggerFilter::new(Filter::Exact { attribute: "type".into(), value: "wanted".into() });
    let dispatcher = start_at_zero(&log, &sender, sub).await;

    let events =
        (0..6).map(|n| event(&format!("e{n}"), if n % 2 == 0 { "wanted" } else { "other" })).collect();
    publish(&log, events).await;
    cursor_reaches(&log, 6).await;
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.filtered_out, stats.failed), (3, 3, 0));
    let ids: Vec<String> = sender.seen().iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, ["e0", "e2", "e4"], "one at a time, in order");
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_in_flight_never_exceed_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| {
        let millis = seen.id.trim_start_matches('e').parse::<u64>().unwrap() % 4;
        Answer::Later(Duration::from_millis(2 + millis), Box::new(Answer::Status(200)))
    });
    let mut sub = subscription(once());
    sub.concurrency = 4;
    let dispatcher = start_at_zero(&log, &sender, sub).await;
    publish(&log, numbered(0..60)).await;
    eventually("60 deliveries", || dispatcher.stats().snapshot().delivered == 60).await;
    assert_eq!(sender.max_in_flight(), 4, "up to 4 at once, and no more");
    assert_eq!(sender.accepted_by(SUBSCRIBER).len(), 60);
    cursor_reaches(&log, 60).await;
    dispatcher.stop().await;
}

#[tokio::test]
async fn a_concurrency_of_one_delivers_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| {
        // Later events answer sooner: out of order if two were ever in flight.
        let n = seen.id.trim_start_matches('e').parse::<u64>().unwrap();
        Answer::Later(Duration::from_millis(20u64.saturating_sub(n)), Box::new(Answer::Status(200)))
    });
    let mut sub = subscription(once());
    sub.concurrency = 0; // counts as 1
    let dispatcher = start_at_zero(&log, &sender, sub).await;
    publish(&log, numbered(0..20)).await;
    eventually("20 deliveries", || dispatcher.stats().snapshot().delivered == 20).await;
    let ids: Vec<String> = sender.record.answered.lock().unwrap().iter().map(|a| a.1.clone()).collect();
    assert_eq!(ids, (0..20).map(|n| format!("e{n}")).collect::<Vec<_>>());
    assert_eq!(sender.max_in_flight(), 1);
    dispatcher.stop().await;
}

// ---- retries and dead letters -----------------------------------------------------------------

#[tokio::test]
async fn a_retryable_failure_is_retried_after_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| Answer::Status(if seen.attempt == 0 { 500 } else { 200 }));
    let mut delivery = with_sink(once());
    delivery.retry = 3;
    delivery.backoff_delay = Duration::from_millis(30);
    delivery.backoff_policy = BackoffPolicy::Exponential;
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    publish(&log, numbered(0..1)).await;
    cursor_reaches(&log, 1).await;

    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.retried, stats.failed, stats.dead_lettered), (1, 1, 0, 0));
    let seen = sender.seen();
    assert_eq!(seen.len(), 2, "delivered once, after one retry");
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_millis(60), "the first retry waits 30ms * 2^1, not {waited:?}");
    assert_eq!(seen[1].event(), seen[0].event(), "the same event again");
    assert!(sender.seen_by(SINK).is_empty());
    dispatcher.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| {
        if seen.attempt == 0 {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from_static("1"));
            Answer::Full(429, headers, Bytes::new())
        } else {
            Answer::Status(202)
        }
    });
    let mut delivery = once();
    delivery.retry = 1;
    delivery.backoff_delay = Duration::from_millis(1);
    delivery.retry_after_max = Some(Duration::from_secs(30));
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    publish(&log, numbered(0..1)).await;
    eventually("a delivery", || dispatcher.stats().snapshot().delivered == 1).await;
    let seen = sender.seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(1), "Retry-After: 1 is longer than the backoff");
    dispatcher.stop().await;
}

#[tokio::test]
async fn a_non_retryable_failure_goes_straight_to_the_dead_letter_sink() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| {
        if seen.uri == SUBSCRIBER {
            Answer::Full(400, HeaderMap::new(), Bytes::from_static(b"missing field: amount"))
        } else {
            Answer::Status(200)
        }
    });
    let mut delivery = with_sink(once());
    delivery.retry = 5;
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    let mut original = event("e0", "com.example.order");
    original.data = Some(Bytes::from_static(b"payload"));
    original.datacontenttype = Some("text/plain".into());
    publish(&log, vec![original.clone()]).await;
    cursor_reaches(&log, 1).await;

    assert_eq!(sender.seen_by(SUBSCRIBER).len(), 1, "400 is not retried");
    let dead = sender.seen_by(SINK);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].method, Method::POST);
    assert_eq!(dead[0].header("ce-id"), Some("e0"), "binary mode");
    assert_eq!(dead[0].header("prefer"), None, "a sink's reply is not wanted");
    assert_eq!(dead[0].header("ce-knativebrokerttl"), None);
    let mut dead_event = dead[0].event();
    assert_eq!(dead_event.extensions.remove("knativeerrordest").as_deref(), Some(SUBSCRIBER));
    assert_eq!(dead_event.extensions.remove("knativeerrorcode").as_deref(), Some("400"));
    assert_eq!(
        dead_event.extensions.remove("knativeerrordata"),
        Some(base64("missing field: amount")),
        "the subscriber's answer"
    );
    dead_event.extensions.remove("knativearrivaltime");
    assert_eq!(dead_event, original, "otherwise the event as it was");
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.dead_lettered, stats.failed, stats.retried), (0, 1, 0, 0));
    assert_eq!(stats.latency.count, 0, "only deliveries count in the latency");
    dispatcher.stop().await;
}

#[tokio::test]
async fn exhausted_retries_go_to_the_dead_letter_sink() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| Answer::Status(if seen.uri == SUBSCRIBER { 503 } else { 201 }));
    let mut delivery = with_sink(once());
    delivery.retry = 2;
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    publish(&log, numbered(0..2)).await;
    cursor_reaches(&log, 2).await;

    assert_eq!(sender.seen_by(SUBSCRIBER).len(), 6, "3 attempts each");
    let dead = sender.seen_by(SINK);
    assert_eq!(dead.len(), 2);
    for seen in &dead {
        let event = seen.event();
        assert_eq!(event.attribute("knativeerrorcode"), Some("503"));
        assert_eq!(event.attribute("knativeerrordata"), None, "the answers had no body");
    }
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.dead_lettered, stats.failed, stats.retried), (0, 2, 0, 4));
    dispatcher.stop().await;
}

#[tokio::test]
async fn when_the_dead_letter_sink_fails_too_the_event_is_counted_failed() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender =
        FakeSender::new(|seen| if seen.uri == SUBSCRIBER { Answer::Status(500) } else { Answer::NoResponse });
    let mut delivery = with_sink(once());
    delivery.retry = 1;
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    publish(&log, numbered(0..1)).await;
    cursor_reaches(&log, 1).await;

    assert_eq!(sender.seen_by(SUBSCRIBER).len(), 2);
    assert_eq!(sender.seen_by(SINK).len(), 2, "the sink is retried with the same policy");
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.dead_lettered, stats.failed, stats.retried), (0, 0, 1, 2));
    dispatcher.stop().await;
}

#[tokio::test]
async fn without_a_dead_letter_sink_a_failed_event_is_dropped_and_the_cursor_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| Answer::Status(if seen.id == "e0" { 422 } else { 200 }));
    let dispatcher = start_at_zero(&log, &sender, subscription(once())).await;
    publish(&log, numbered(0..3)).await;
    cursor_reaches(&log, 3).await;
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.failed, stats.dead_lettered), (2, 1, 0));
    assert_eq!(sender.seen().len(), 3);
    dispatcher.stop().await;
}

#[tokio::test]
async fn a_timeout_is_no_response_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| match (seen.uri == SUBSCRIBER, seen.attempt) {
        (true, 0) => Answer::Hang,
        (true, _) => Answer::Later(Duration::from_secs(3600), Box::new(Answer::Status(200))),
        (false, _) => Answer::Status(200),
    });
    let mut delivery = with_sink(once());
    delivery.retry = 1;
    delivery.timeout = Some(Duration::from_millis(50));
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    publish(&log, numbered(0..1)).await;
    cursor_reaches(&log, 1).await;

    let tries = sender.seen_by(SUBSCRIBER);
    assert_eq!(tries.len(), 2, "a timeout is retried");
    assert!(tries[1].at - tries[0].at >= Duration::from_millis(50));
    let dead = sender.seen_by(SINK);
    assert_eq!(dead.len(), 1);
    let event = dead[0].event();
    assert_eq!(event.attribute("knativeerrorcode"), Some("500"), "no response is reported as 500");
    assert_eq!(event.attribute("knativeerrordata"), None);
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.dead_lettered, stats.retried, stats.in_flight), (1, 1, 0));
    dispatcher.stop().await;
}

#[tokio::test]
async fn no_response_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender =
        FakeSender::new(|seen| if seen.attempt < 2 { Answer::NoResponse } else { Answer::Status(204) });
    let mut delivery = once();
    delivery.retry = 2;
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    publish(&log, numbered(0..1)).await;
    cursor_reaches(&log, 1).await;
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.retried, stats.failed), (1, 2, 0));
    dispatcher.stop().await;
}

// ---- replies and TTLs -------------------------------------------------------------------------

/// A binary-mode reply of type `receipt` to the event `seen`.
fn receipt(seen: &Seen) -> Answer {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("ce-specversion", "1.0".to_owned()),
        ("ce-id", format!("receipt-{}", seen.id)),
        ("ce-source", "/billing".to_owned()),
        ("ce-type", "receipt".to_owned()),
        ("content-type", "text/plain".to_owned()),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    Answer::Full(200, headers, Bytes::from_static(b"paid"))
}

#[tokio::test]
async fn a_reply_goes_back_to_the_broker_one_ttl_down() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| {
        if seen.header("ce-type") == Some("order") { receipt(seen) } else { Answer::Status(200) }
    });
    let dispatcher = start_at_zero(&log, &sender, subscription(once())).await;
    publish_with_ttl(&log, 5, vec![event("o1", "order")]).await;
    eventually("the order and its receipt", || dispatcher.stats().snapshot().delivered == 2).await;

    let entries = log.read(BROKER, 0, 10).unwrap();
    assert_eq!(entries.len(), 2);
    let reply = codec::from_bytes(&entries[1].event).unwrap();
    assert_eq!((reply.id.as_str(), reply.type_.as_str()), ("receipt-o1", "receipt"));
    assert_eq!(reply.data.as_deref(), Some(&b"paid"[..]));
    assert_eq!(reply.attribute("knativebrokerttl"), Some("4"), "one less than the order's");
    assert!(reply.attribute("knativearrivaltime").is_some(), "stamped as the broker stamps");
    // The receipt goes round to the trigger too, without its TTL.
    let seen = sender.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].id, "receipt-o1");
    assert_eq!(seen[1].header("ce-knativebrokerttl"), None);
    cursor_reaches(&log, 2).await;
    dispatcher.stop().await;
}

#[tokio::test]
async fn a_reply_to_an_event_at_ttl_1_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(receipt);
    let dispatcher = start_at_zero(&log, &sender, subscription(once())).await;
    publish_with_ttl(&log, 1, vec![event("o1", "order")]).await;
    // Counted delivered only once the reply is dealt with.
    eventually("a delivery", || dispatcher.stats().snapshot().delivered == 1).await;
    assert_eq!(log.next_offset(BROKER), 1, "no reply appended");
    assert_eq!(dispatcher.stats().snapshot().failed, 0, "dropping the reply is no failure");
    dispatcher.stop().await;
}

#[tokio::test]
async fn an_event_at_ttl_0_is_dropped_unsent() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::ok();
    let dispatcher = start_at_zero(&log, &sender, subscription(with_sink(once()))).await;
    publish_with_ttl(&log, 0, vec![event("loop", "t")]).await;
    publish(&log, vec![event("fine", "t")]).await;
    cursor_reaches(&log, 2).await;
    let ids: Vec<String> = sender.seen().iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, ["fine"]);
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.failed, stats.dead_lettered), (1, 1, 0));
    dispatcher.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_an_event_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|_| {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        Answer::Full(200, headers, Bytes::from_static(b"thanks"))
    });
    let dispatcher = start_at_zero(&log, &sender, subscription(with_sink(once()))).await;
    publish(&log, numbered(0..1)).await;
    eventually("a delivery", || dispatcher.stats().snapshot().delivered == 1).await;
    assert_eq!(log.next_offset(BROKER), 1);
    assert!(sender.seen_by(SINK).is_empty());
    dispatcher.stop().await;
}

#[tokio::test]
async fn an_invalid_reply_is_a_failure_that_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| {
        if seen.uri == SINK {
            return Answer::Status(200);
        }
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
        headers.insert("ce-type", HeaderValue::from_static("reply"));
        Answer::Full(200, headers, Bytes::new())
    });
    let mut delivery = with_sink(once());
    delivery.retry = 3;
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    publish(&log, numbered(0..1)).await;
    cursor_reaches(&log, 1).await;

    assert_eq!(sender.seen_by(SUBSCRIBER).len(), 1);
    let dead = sender.seen_by(SINK);
    assert_eq!(dead.len(), 1);
    let event = dead[0].event();
    assert_eq!(event.attribute("knativeerrorcode"), Some("502"));
    let data = base64::engine::general_purpose::STANDARD
        .decode(event.attribute("knativeerrordata").unwrap())
        .unwrap();
    let data = String::from_utf8(data).unwrap();
    assert!(data.starts_with("invalid CloudEvent"), "{data}");
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.dead_lettered, stats.retried), (0, 1, 0));
    assert_eq!(log.next_offset(BROKER), 1);
    dispatcher.stop().await;
}

#[tokio::test]
async fn an_entry_that_is_not_an_event_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::ok();
    let dispatcher = start_at_zero(&log, &sender, subscription(once())).await;
    publish(&log, numbered(0..1)).await;
    log.append(BROKER, vec![Bytes::from_static(b"{not json")]).await.unwrap();
    publish(&log, numbered(2..3)).await;
    cursor_reaches(&log, 3).await;
    let stats = dispatcher.stats().snapshot();
    assert_eq!((stats.delivered, stats.failed), (2, 1));
    dispatcher.stop().await;
}

// ---- cursors ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_trigger_starts_at_the_brokers_next_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    publish(&log, numbered(0..3)).await;
    let sender = FakeSender::ok();
    assert_eq!(log.cursor(TRIGGER_ID).unwrap(), None);
    let dispatcher = Dispatcher::start(log.clone(), sender.clone(), subscription(once()));
    // Written durably first, before anything is delivered.
    cursor_reaches(&log, 3).await;
    publish(&log, numbered(3..5)).await;
    cursor_reaches(&log, 5).await;
    let ids: Vec<String> = sender.seen().iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, ["e3", "e4"], "events from before the trigger are not delivered");
    dispatcher.stop().await;

    // Started again, it resumes from its cursor rather than the broker's end.
    publish(&log, numbered(5..7)).await;
    let dispatcher = Dispatcher::start(log.clone(), sender.clone(), subscription(once()));
    cursor_reaches(&log, 7).await;
    assert_eq!(sender.seen().len(), 4);
    dispatcher.stop().await;
}

#[tokio::test]
async fn stop_abandons_deliveries_in_flight_and_commits_what_finished() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let hanging = FakeSender::new(|seen| if seen.id == "e1" { Answer::Hang } else { Answer::Status(200) });
    let mut sub = subscription(once());
    sub.concurrency = 3;
    let dispatcher = start_at_zero(&log, &hanging, sub.clone()).await;
    publish(&log, numbered(0..3)).await;
    eventually("e0 and e2", || dispatcher.stats().snapshot().delivered == 2).await;
    assert_eq!(dispatcher.stats().snapshot().in_flight, 1);
    let stats = dispatcher.stats();
    dispatcher.stop().await;
    assert_eq!(
        log.cursor(TRIGGER_ID).unwrap(),
        Some(1),
        "e1 did not finish: everything from it on is redelivered"
    );
    assert_eq!(stats.snapshot().in_flight, 0);
    assert_eq!(hanging.record.in_flight.load(Ordering::SeqCst), 0, "the abandoned request was dropped");

    let sender = FakeSender::ok();
    let dispatcher = Dispatcher::start(log.clone(), sender.clone(), sub);
    cursor_reaches(&log, 3).await;
    assert_eq!(sender.accepted_by(SUBSCRIBER), HashSet::from(["e1".to_owned(), "e2".to_owned()]));
    dispatcher.stop().await;
}

#[tokio::test]
async fn drain_lets_deliveries_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| {
        if seen.id == "e0" {
            Answer::Later(Duration::from_millis(100), Box::new(Answer::Status(200)))
        } else {
            Answer::Status(200)
        }
    });
    let mut sub = subscription(once());
    sub.concurrency = 2;
    let dispatcher = start_at_zero(&log, &sender, sub).await;
    publish(&log, numbered(0..2)).await;
    eventually("e1", || dispatcher.stats().snapshot().delivered == 1).await;
    dispatcher.drain(Duration::from_secs(5)).await;
    assert_eq!(log.cursor(TRIGGER_ID).unwrap(), Some(2));
    assert_eq!(sender.accepted_by(SUBSCRIBER).len(), 2);
}

/// Deliver 300 events `e0`.. 8 at a time, the subscriber taking up to 2 ms each and not
/// answering from `e150` on; interrupt with `interrupt` once 100 are delivered, checking all along
/// that the durable cursor never passes an event the subscriber has not accepted; then start
/// again, with the subscriber answering everything, and check that every event was delivered.
async fn interrupted(interrupt: impl AsyncFnOnce(Dispatcher)) {
    let (total, after, stuck) = (300, 100, 150);
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let released = Arc::new(AtomicBool::new(false));
    let sender = FakeSender::new({
        let released = released.clone();
        move |seen| {
            let n: u64 = seen.id.trim_start_matches('e').parse().unwrap();
            if n >= stuck && !released.load(Ordering::SeqCst) {
                return Answer::Hang;
            }
            Answer::Later(Duration::from_micros(fastrand::u64(0..2000)), Box::new(Answer::Status(200)))
        }
    });
    let mut sub = subscription(once());
    sub.concurrency = 8;
    let dispatcher = start_at_zero(&log, &sender, sub.clone()).await;
    publish(&log, numbered(0..total)).await;

    let check = |log: &EventLog, sender: &FakeSender| {
        let cursor = log.cursor(TRIGGER_ID).unwrap().unwrap();
        let accepted = sender.accepted_by(SUBSCRIBER);
        for n in 0..cursor {
            assert!(accepted.contains(&format!("e{n}")), "the cursor {cursor} passed e{n}, never delivered");
        }
        cursor
    };
    eventually("some deliveries", || {
        check(&log, &sender);
        sender.accepted_by(SUBSCRIBER).len() >= after
    })
    .await;
    interrupt(dispatcher).await;
    let cursor = check(&log, &sender);
    assert!(cursor <= stuck, "the cursor {cursor} passed events in flight");

    released.store(true, Ordering::SeqCst);
    let dispatcher = Dispatcher::start(log.clone(), sender.clone(), sub);
    eventually("every event", || {
        check(&log, &sender);
        sender.accepted_by(SUBSCRIBER).len() == total as usize
    })
    .await;
    cursor_reaches(&log, total).await;
    let deliveries = sender.seen().len() as u64;
    // Before: at most everything below `stuck` and 8 stuck ones; after: from the cursor on.
    assert!(
        deliveries <= stuck + 8 + (total - cursor),
        "{deliveries} deliveries, the cursor was at {cursor}"
    );
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_when_stopped_mid_stream() {
    interrupted(async |dispatcher| dispatcher.stop().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_when_dropped_mid_stream() {
    interrupted(async |dispatcher| drop(dispatcher)).await;
}

// ---- updates ----------------------------------------------------------------------------------

#[tokio::test]
async fn update_applies_to_deliveries_started_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::ok();
    let dispatcher = start_at_zero(&log, &sender, subscription(once())).await;
    publish(&log, numbered(0..1)).await;
    cursor_reaches(&log, 1).await;

    let other = "http://other.ns.svc.cluster.local/";
    let mut changed = subscription(once());
    changed.subscriber = other.into();
    changed.name = "ns/renamed".into();
    changed.filter = TriggerFilter::new(Filter::Prefix { attribute: "id".into(), prefix: "keep".into() });
    changed.broker = "ns/elsewhere".into(); // a trigger's broker cannot change: ignored
    dispatcher.update(changed);
    assert_eq!(dispatcher.subscription().subscriber, other);
    assert_eq!(dispatcher.subscription().broker, BROKER);

    publish(&log, vec![event("keep-1", "t"), event("drop-1", "t")]).await;
    cursor_reaches(&log, 3).await;
    let seen: Vec<(String, String)> = sender.seen().iter().map(|s| (s.uri.clone(), s.id.clone())).collect();
    assert_eq!(seen, [(SUBSCRIBER.to_owned(), "e0".to_owned()), (other.to_owned(), "keep-1".to_owned())]);
    assert_eq!(dispatcher.stats().snapshot().filtered_out, 1);
    dispatcher.stop().await;
}

// ---- spans ------------------------------------------------------------------------------------

/// The fields of the client spans, in order.
fn attempts(spans: &SpanRecorder) -> Vec<BTreeMap<String, String>> {
    let spans = spans.spans();
    spans
        .iter()
        .filter(|span| span.fields.get("otel.kind").map(String::as_str) == Some("client"))
        .map(|span| span.fields.clone())
        .collect()
}

/// Set in the re-executed test binary: run the span test for real.
const SPANS_CHILD: &str = "SKIFF_DISPATCH_SPANS_CHILD";

#[test]
fn every_attempt_is_a_client_span() {
    if std::env::var_os(SPANS_CHILD).is_none() {
        // `tracing` caches process-wide whether a callsite is enabled, and misses a subscriber
        // set for one thread when another thread hits the callsite first: run alone.
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "every_attempt_is_a_client_span", "--test-threads=1"])
            .env(SPANS_CHILD, "1")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the span test failed in its own process:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    // Every task runs on this thread, where the subscriber is.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(attempt_spans());
}

async fn attempt_spans() {
    let spans = SpanRecorder::default();
    let _default = tracing::subscriber::set_default(spans.clone());
    let dir = tempfile::tempdir().unwrap();
    let log = fresh_log(&dir);
    let sender = FakeSender::new(|seen| match (seen.uri == SUBSCRIBER, seen.attempt) {
        (true, 0) => Answer::NoResponse,
        (true, 1) => Answer::Hang,
        (true, _) => Answer::Status(503),
        (false, _) => Answer::Status(202),
    });
    let mut delivery = with_sink(once());
    delivery.retry = 2;
    delivery.timeout = Some(Duration::from_millis(20));
    let dispatcher = start_at_zero(&log, &sender, subscription(delivery)).await;
    publish(&log, vec![event("o1", "com.example.order")]).await;
    cursor_reaches(&log, 1).await;
    dispatcher.stop().await;

    let attempts = attempts(&spans);
    assert_eq!(attempts.len(), 4, "{:#?}", spans.spans());
    for (attempt, fields) in attempts.iter().enumerate() {
        let field = |name: &str| fields.get(name).map(String::as_str);
        let dead_letter = attempt == 3;
        let expected_name = if dead_letter { "dead-letter ns/trigger" } else { "send ns/trigger" };
        assert_eq!(field("otel.name"), Some(expected_name));
        assert_eq!(field("messaging.operation.type"), Some("send"));
        assert_eq!(field("messaging.destination.name"), Some("ns/trigger"));
        assert_eq!(field("cloudevents.event_id"), Some("o1"));
        assert_eq!(field("cloudevents.event_type"), Some("com.example.order"));
        assert_eq!(field("cloudevents.event_source"), Some("/orders"));
        assert_eq!(field("http.request.method"), Some("POST"));
        let (url, host) = if dead_letter {
            (SINK, "sink.ns.svc.cluster.local")
        } else {
            (SUBSCRIBER, "subscriber.ns.svc.cluster.local")
        };
        assert_eq!(field("url.full"), Some(url));
        assert_eq!(field("server.address"), Some(host));
        assert_eq!(field("skiff.dead_letter"), dead_letter.then_some("true"));
    }
    let field = |attempt: usize, name: &str| attempts[attempt].get(name).cloned();
    let resends: Vec<Option<String>> = (0..4).map(|a| field(a, "http.request.resend_count")).collect();
    assert_eq!(resends, [None, Some("1".into()), Some("2".into()), None]);
    let errors: Vec<Option<String>> = (0..4).map(|a| field(a, "error.type")).collect();
    assert_eq!(errors, [Some("no_response".into()), Some("timeout".into()), Some("503".into()), None]);
    let statuses: Vec<Option<String>> = (0..4).map(|a| field(a, "otel.status_code")).collect();
    assert_eq!(statuses, [Some("ERROR".into()), Some("ERROR".into()), Some("ERROR".into()), None]);
    let codes: Vec<Option<String>> = (0..4).map(|a| field(a, "http.response.status_code")).collect();
    assert_eq!(codes, [None, None, Some("503".into()), Some("202".into())]);
}

// ---- crash safety -----------------------------------------------------------------------------

/// Set in the re-executed test binary: the path of the log to dispatch from until killed.
const CHILD_LOG: &str = "SKIFF_DISPATCH_CRASH_CHILD";
const CRASH_EVENTS: u64 = 400;

/// Prints `ACK {id}` for every event, before answering 200.
struct Printing;

impl Sender for Printing {
    fn send(&self, request: http::Request<Bytes>) -> Sending {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_micros(fastrand::u64(0..1500))).await;
            let id = request.headers()["ce-id"].to_str().unwrap().to_owned();
            print_now(&format!("ACK {id}\n"));
            Ok(http::Response::new(Bytes::new()))
        })
    }
}

fn crash_child(path: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let log = open(Path::new(path));
        let mut sub = subscription(once());
        sub.concurrency = 4;
        let _dispatcher = Dispatcher::start(log, Arc::new(Printing), sub);
        std::future::pending::<()>().await;
    });
}

#[test]
fn a_kill_9_at_any_moment_loses_no_event() {
    if let Ok(path) = std::env::var(CHILD_LOG) {
        crash_child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let log = open(&path);
        log.set_cursor(TRIGGER_ID, 0).await.unwrap();
        publish(&log, numbered(0..CRASH_EVENTS)).await;
    });

    let mut acked: HashSet<String> = HashSet::new();
    // Kill after a different number of acknowledgements each round, at different points of
    // the dispatcher's commit cycle; each round goes on from the last one's cursor.
    for kill_after in [1usize, 60, 25, 130] {
        let test = "a_kill_9_at_any_moment_loses_no_event";
        // The test harness's own output may start the first line.
        let seen =
            common::kill_9_after(kill_after, test, &[(CHILD_LOG, path.as_os_str())], |line| {
                match line.split_once("ACK ") {
                    Some((_, id)) => {
                        acked.insert(id.to_owned());
                        true
                    }
                    None => false,
                }
            });
        assert!(seen >= kill_after, "the child stopped after {seen} deliveries");

        let log = open(&path);
        let cursor = log.cursor(TRIGGER_ID).unwrap().unwrap();
        for n in 0..cursor {
            assert!(acked.contains(&format!("e{n}")), "the cursor {cursor} passed e{n}, never delivered");
        }
    }
    assert!(acked.len() < CRASH_EVENTS as usize, "the children were killed before the end");

    // One last run, to the end.
    runtime.block_on(async {
        let log = open(&path);
        let sender = FakeSender::ok();
        let dispatcher = Dispatcher::start(log.clone(), sender.clone(), subscription(once()));
        cursor_reaches(&log, CRASH_EVENTS).await;
        acked.extend(sender.accepted_by(SUBSCRIBER));
        dispatcher.stop().await;
    });
    let missing: Vec<u64> = (0..CRASH_EVENTS).filter(|n| !acked.contains(&format!("e{n}"))).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
}
