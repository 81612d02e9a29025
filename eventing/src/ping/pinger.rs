//! A running PingSource: a task that sleeps until the next firing, builds the event and sends
//! it to the sink, as Knative's `mt-ping` adapter does.
//!
//! * The wait is computed from the wall clock (chrono's `Utc::now`) and read again at least
//!   every minute, so a clock step or a suspended machine delays a firing by at most that much.
//! * A firing missed while the process was down, or overslept, is not replayed: one late firing
//!   is sent, and the schedule resumes from the present.
//! * Each firing is the root of its own trace: a span `ping {namespace}/{name}` whose context
//!   the event carries (`traceparent` extension and header) to its sink.
//! * A delivery runs on its own, so a slow sink does not hold up the schedule: up to three
//!   retries of a retryable outcome ([`delivery::is_retryable`]) 200 ms, 400 ms and 800 ms
//!   apart, each attempt bounded by 30 s; then the event is dropped with a warning. With the
//!   shortest interval (one second) that bounds the deliveries in flight to about 120.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, Request};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

use super::spec::{PingSpec, ping_event};
use crate::broker::{self, TRACEPARENT_EXTENSION, TRACESTATE_EXTENSION};
use crate::codec::{self, Event};
use crate::delivery;
use crate::sender::Sender;

/// The longest single sleep before the wall clock is read again.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// `faas.trigger` of a firing.
const FAAS_TRIGGER_TIMER: &str = "timer";

/// How much of a failed response's body a warning quotes.
const BODY_EXCERPT: usize = 256;

/// How a firing's event is delivered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// The wait before each retry; as many retries as waits.
    pub(super) backoff: &'static [Duration],
    /// The bound on each attempt.
    pub(super) timeout: Duration,
}

impl Policy {
    /// `mt-ping`'s: three retries with exponential backoff from 200 ms, 30 s per attempt.
    pub(super) const KNATIVE: Policy = Policy {
        backoff: &[Duration::from_millis(200), Duration::from_millis(400), Duration::from_millis(800)],
        timeout: Duration::from_secs(30),
    };
}

/// What a [`Pinger`] has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PingStats {
    /// Firings: events built and handed to delivery.
    pub fired: u64,
    /// Events the sink accepted (a 2xx).
    pub sent: u64,
    /// Events given up on: a final refusal, or retries exhausted. `fired - sent - failed` are in
    /// flight (or were abandoned by [`Pinger::stop`] or a drop).
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    fired: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    last_fired: Mutex<Option<DateTime<Utc>>>,
}

/// What a pinger sends, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    spec: PingSpec,
    sink: String,
}

/// A running PingSource. Dropping it stops it at once, abandoning deliveries in flight;
/// [`Pinger::stop`] lets them finish first.
#[derive(Debug)]
pub struct Pinger {
    target: watch::Sender<Target>,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<Duration>>,
    task: Option<JoinHandle<()>>,
}

impl Pinger {
    /// Start sending the PingSource `namespace/name`'s events on its schedule to `sink` (the
    /// resolved URI), through `sender`. Must be called within a Tokio runtime.
    pub fn start(
        sender: Arc<dyn Sender>,
        namespace: &str,
        name: &str,
        spec: PingSpec,
        sink: String,
    ) -> Pinger {
        Self::start_with(sender, namespace, name, spec, sink, Policy::KNATIVE)
    }

    pub(super) fn start_with(
        sender: Arc<dyn Sender>,
        namespace: &str,
        name: &str,
        spec: PingSpec,
        sink: String,
        policy: Policy,
    ) -> Pinger {
        let (target, targets) = watch::channel(Target { spec, sink });
        let (stop, stopped) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let scheduler = Scheduler {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            sender,
            counters: counters.clone(),
            policy,
            deliveries: JoinSet::new(),
        };
        let span = tracing::debug_span!("pinger", source = %format!("{namespace}/{name}"));
        let task = tokio::spawn(scheduler.run(targets, stopped).instrument(span));
        Pinger { target, counters, stop: Some(stop), task: Some(task) }
    }

    /// Change what the source sends and where. A changed schedule is evaluated afresh from now;
    /// otherwise the next firing stays when it was. Deliveries in flight carry on to the sink
    /// they started for. The same spec and sink again change nothing.
    pub fn update(&self, spec: PingSpec, sink: String) {
        let new = Target { spec, sink };
        self.target.send_if_modified(|current| {
            let changed = *current != new;
            if changed {
                *current = new;
            }
            changed
        });
    }

    /// The counts of firings, events sent and events given up on.
    pub fn stats(&self) -> PingStats {
        self.counters.stats()
    }

    /// The scheduled time of the latest firing.
    pub fn last_fired(&self) -> Option<DateTime<Utc>> {
        *self.counters.last_fired.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stop firing, give the deliveries in flight up to `grace` to finish, then abandon the rest.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(grace);
        }
        if let Some(task) = self.task.take() {
            // Ends by itself within `grace` (plus the time to abort the rest); a panic was logged.
            let _ = task.await;
        }
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Counters {
    fn stats(&self) -> PingStats {
        PingStats {
            fired: self.fired.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// The pinger's task: the schedule, and the deliveries it started.
struct Scheduler {
    namespace: String,
    name: String,
    sender: Arc<dyn Sender>,
    counters: Arc<Counters>,
    policy: Policy,
    deliveries: JoinSet<()>,
}

impl Scheduler {
    async fn run(mut self, mut targets: watch::Receiver<Target>, mut stop: oneshot::Receiver<Duration>) {
        let mut target = targets.borrow_and_update().clone();
        // Firings at or before `after` are done (or missed, and not replayed).
        let mut after = Utc::now();
        let mut next = self.next(&target, after);
        loop {
            tokio::select! {
                biased;
                // A dropped Pinger aborts this task; its closed channel stops it all the same.
                grace = &mut stop => return self.drain(grace.unwrap_or_default()).await,
                () = sleep_until(next) => {
                    if let Some(at) = next {
                        self.fire(&target, at);
                        after = at.max(Utc::now());
                        next = self.next(&target, after);
                    }
                }
                changed = targets.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let new = targets.borrow_and_update().clone();
                    if new.spec.schedule != target.spec.schedule {
                        after = after.max(Utc::now());
                        next = self.next(&new, after);
                    }
                    target = new;
                }
                Some(done) = self.deliveries.join_next(), if !self.deliveries.is_empty() => {
                    if let Err(err) = done
                        && err.is_panic()
                    {
                        tracing::error!(source = %self.source(), "a ping delivery panicked: {err}");
                    }
                }
            }
        }
    }

    fn source(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn next(&self, target: &Target, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = target.spec.schedule.next_after(after);
        if next.is_none() {
            tracing::warn!(
                source = %self.source(),
                schedule = %target.spec.schedule,
                "the schedule does not fire within the next five years; nothing is sent until it changes"
            );
        }
        next
    }

    /// Build the event of the firing at `at` and start delivering it.
    fn fire(&mut self, target: &Target, at: DateTime<Utc>) {
        let mut event = ping_event(&self.namespace, &self.name, &target.spec, at);
        let span = firing_span(&self.namespace, &self.name, &target.spec, &target.sink, &event);
        let mut trace = HeaderMap::new();
        skiff_tracing::inject_span(&span, &mut trace);
        for name in [TRACEPARENT_EXTENSION, TRACESTATE_EXTENSION] {
            if let Some(value) = trace.get(name).and_then(|v| v.to_str().ok()) {
                event.extensions.insert(name.to_owned(), value.to_owned());
            }
        }
        self.counters.fired.fetch_add(1, Ordering::Relaxed);
        *self.counters.last_fired.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
        let delivery = Delivery {
            source: self.source(),
            sink: target.sink.clone(),
            sender: self.sender.clone(),
            counters: self.counters.clone(),
            policy: self.policy,
            span: span.clone(),
        };
        self.deliveries.spawn(delivery.run(event).instrument(span));
    }

    /// Wait up to `grace` for the deliveries in flight, then abandon the rest.
    async fn drain(mut self, grace: Duration) {
        let finished =
            tokio::time::timeout(grace, async { while self.deliveries.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            tracing::warn!(
                source = %self.source(),
                abandoned = self.deliveries.len(),
                "the pinger stopped with ping deliveries in flight; they are abandoned"
            );
            self.deliveries.shutdown().await;
        }
    }
}

/// The root span of one firing.
fn firing_span(namespace: &str, name: &str, spec: &PingSpec, sink: &str, event: &Event) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "ping",
        otel.name = %format!("ping {namespace}/{name}"),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        faas.trigger = FAAS_TRIGGER_TIMER,
        faas.time = event.time.as_deref().unwrap_or_default(),
        faas.cron = %spec.schedule,
        cloudevents.event_id = %event.id,
        cloudevents.event_type = %event.type_,
        cloudevents.event_source = %event.source,
        messaging.operation.type = "send",
        url.full = %sink,
        http.response.status_code = tracing::field::Empty,
        http.request.resend_count = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// The request parts of an event: binary mode, plus its trace context as W3C headers.
fn encode(event: &Event) -> (HeaderMap, Bytes) {
    let (mut headers, body) = codec::encode_binary(event);
    headers.extend(broker::trace_headers(event));
    (headers, body)
}

/// Why a delivery failed: `error.type`, and words for the log.
struct Failure {
    kind: String,
    message: String,
}

/// One event on its way to the sink.
struct Delivery {
    source: String,
    sink: String,
    sender: Arc<dyn Sender>,
    counters: Arc<Counters>,
    policy: Policy,
    span: tracing::Span,
}

impl Delivery {
    async fn run(self, event: Event) {
        let (attempts, outcome) = self.send(&event).await;
        match outcome {
            Ok(()) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(source = %self.source, sink = %self.sink, id = %event.id, attempts, "ping delivered");
            }
            Err(failure) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.span.record("otel.status_code", "ERROR");
                self.span.record("error.type", failure.kind.as_str());
                tracing::warn!(
                    source = %self.source,
                    sink = %self.sink,
                    id = %event.id,
                    attempts,
                    "a PingSource event was not delivered: {}",
                    failure.message
                );
            }
        }
    }

    /// Send with retries; the number of attempts made, and how it ended.
    async fn send(&self, event: &Event) -> (u32, Result<(), Failure>) {
        let uri = match self.sink.parse::<http::Uri>() {
            Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => uri,
            _ => {
                let message = format!("the sink {:?} is not an absolute URI", self.sink);
                return (0, Err(Failure { kind: "invalid_sink".to_owned(), message }));
            }
        };
        let (headers, body) = encode(event);
        let mut attempts = 0;
        loop {
            let mut request = Request::new(body.clone());
            *request.method_mut() = Method::POST;
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            attempts += 1;
            let (status, failure) = match tokio::time::timeout(self.policy.timeout, self.sender.send(request))
                .await
            {
                Ok(Ok(response)) => {
                    let status = response.status();
                    self.span.record("http.response.status_code", status.as_u16());
                    if status.is_success() {
                        return (attempts, Ok(()));
                    }
                    let excerpt =
                        String::from_utf8_lossy(&response.body()[..response.body().len().min(BODY_EXCERPT)])
                            .trim()
                            .to_owned();
                    let message = match excerpt.is_empty() {
                        true => format!("the sink answered {status}"),
                        false => format!("the sink answered {status}: {excerpt}"),
                    };
                    (Some(status), Failure { kind: status.as_u16().to_string(), message })
                }
                Ok(Err(err)) => (None, Failure { kind: "send_error".to_owned(), message: err.to_string() }),
                Err(_) => (
                    None,
                    Failure {
                        kind: "timeout".to_owned(),
                        message: format!("the sink did not answer within {:?}", self.policy.timeout),
                    },
                ),
            };
            let retry =
                delivery::is_retryable(status).then(|| self.policy.backoff.get(attempts as usize - 1));
            let Some(Some(&wait)) = retry else {
                let message = format!("{} (attempt {attempts})", failure.message);
                return (attempts, Err(Failure { message, ..failure }));
            };
            tracing::debug!(source = %self.source, sink = %self.sink, id = %event.id, attempts, "retrying a ping: {}", failure.message);
            tokio::time::sleep(wait).await;
            self.span.record("http.request.resend_count", attempts);
        }
    }
}

/// Sleep until the wall clock reads `at` (forever for `None`), reading it again at least every
/// [`MAX_SLEEP`].
async fn sleep_until(at: Option<DateTime<Utc>>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    while let Ok(left) = (at - Utc::now()).to_std()
        && !left.is_zero()
    {
        tokio::time::sleep(left.min(MAX_SLEEP)).await;
    }
}

#[cfg(test)]
mod tests;
