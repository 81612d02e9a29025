//! One event's delivery: to the subscriber with retries, its reply back to the broker, and on
//! final failure to the dead letter sink.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use skiff_tracing::conventions;
use time::OffsetDateTime;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::Subscription;
use super::stats::TriggerStats;
use crate::broker;
use crate::codec::{self, Event};
use crate::delivery;
use crate::log::EventLog;
use crate::sender::Sender;

/// What every delivery of one dispatcher shares.
pub(super) struct Context {
    pub(super) log: EventLog,
    pub(super) sender: Arc<dyn Sender>,
    pub(super) stats: Arc<TriggerStats>,
}

/// The status a dead letter sink is told the subscriber answered when its 2xx reply was not a
/// valid CloudEvent: Knative's broker filter answers 502 Bad Gateway then.
const INVALID_REPLY_CODE: StatusCode = StatusCode::BAD_GATEWAY;

/// The `Prefer` request header (RFC 7240), with which Knative asks a subscriber for a reply.
const PREFER: HeaderName = HeaderName::from_static("prefer");

/// Deliver `event`, appended to the log at `appended_at`, and count how it ended. Returns once
/// the event is finished: delivered (and its reply appended), dead-lettered or dropped.
pub(super) async fn deliver(
    ctx: &Context,
    sub: &Subscription,
    appended_at: OffsetDateTime,
    mut event: Event,
) {
    // The TTL is the broker's business: subscribers never see it.
    let ttl = match codec::take_ttl(&mut event) {
        Ok(0) => {
            tracing::warn!(
                trigger = %sub.name, event_id = %event.id, event_type = %event.type_,
                "dropping an event whose broker TTL is exhausted (a reply loop?)"
            );
            ctx.stats.failed();
            return;
        }
        Ok(ttl) => ttl,
        Err(err) => {
            tracing::warn!(trigger = %sub.name, event_id = %event.id, "dropping an event: {err}");
            ctx.stats.failed();
            return;
        }
    };

    let (mut headers, body) = codec::encode_binary(&event);
    headers.insert(PREFER, HeaderValue::from_static("reply"));
    let failure = match send(ctx, sub, Target::Subscriber, &sub.subscriber, &event, headers, body).await {
        Ok((response, span)) => match codec::decode_reply(response.headers(), response.body()) {
            Ok(reply) => {
                if let Some(reply) = reply {
                    append_reply(ctx, sub, &event, reply, ttl, &span).await;
                }
                let latency = OffsetDateTime::now_utc() - appended_at;
                ctx.stats.delivered(Duration::try_from(latency).unwrap_or(Duration::ZERO));
                return;
            }
            Err(err) => {
                span.record("otel.status_code", "ERROR");
                span.record(conventions::ERROR_TYPE, "invalid_reply");
                Failure {
                    status: Some(INVALID_REPLY_CODE),
                    body: Bytes::from(err.to_string()),
                    reason: format!(
                        "the subscriber answered {} with a reply that is not a valid CloudEvent: {err}",
                        response.status()
                    ),
                }
            }
        },
        Err(failure) => failure,
    };
    dead_letter(ctx, sub, event, failure).await;
}

/// Append the subscriber's reply to the broker, one TTL down, or drop it when none is left.
async fn append_reply(
    ctx: &Context,
    sub: &Subscription,
    event: &Event,
    mut reply: Event,
    ttl: u32,
    span: &tracing::Span,
) {
    let Some(ttl) = codec::reply_ttl(ttl) else {
        tracing::debug!(
            trigger = %sub.name, event_id = %event.id, reply_id = %reply.id,
            "dropping a reply: the broker TTL is exhausted"
        );
        return;
    };
    broker::stamp(&mut reply, ttl, span);
    if let Err(err) = ctx.log.append(&sub.broker, vec![Bytes::from(codec::to_bytes(&reply))]).await {
        tracing::error!(
            trigger = %sub.name, event_id = %event.id, reply_id = %reply.id, broker = %sub.broker,
            "lost a reply: appending it to the broker failed: {err}"
        );
        ctx.stats.failed();
    }
}

/// Send an event the subscriber did not take to the dead letter sink, or drop it.
async fn dead_letter(ctx: &Context, sub: &Subscription, mut event: Event, failure: Failure) {
    let Some(sink) = &sub.delivery.dead_letter_sink else {
        tracing::warn!(
            trigger = %sub.name, event_id = %event.id, event_type = %event.type_,
            "dropping an event (no dead letter sink): {}", failure.reason
        );
        ctx.stats.failed();
        return;
    };
    for (name, value) in delivery::dead_letter_extensions(&sub.subscriber, failure.status, &failure.body) {
        event.extensions.insert(name, value);
    }
    let (headers, body) = codec::encode_binary(&event);
    match send(ctx, sub, Target::DeadLetterSink, sink, &event, headers, body).await {
        Ok(_) => {
            tracing::info!(
                trigger = %sub.name, event_id = %event.id, sink = %sink,
                "dead-lettered an event: {}", failure.reason
            );
            ctx.stats.dead_lettered();
        }
        Err(sink_failure) => {
            tracing::error!(
                trigger = %sub.name, event_id = %event.id, event_type = %event.type_, sink = %sink,
                "lost an event: {}, and the dead letter sink did not take it either: {}",
                failure.reason, sink_failure.reason
            );
            ctx.stats.failed();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Subscriber,
    DeadLetterSink,
}

impl Target {
    fn describe(self) -> &'static str {
        match self {
            Target::Subscriber => "the subscriber",
            Target::DeadLetterSink => "the dead letter sink",
        }
    }
}

/// Why a destination did not take an event, after every attempt.
#[derive(Debug)]
struct Failure {
    /// The last status, None when the last attempt got no response.
    status: Option<StatusCode>,
    /// The last response's body (for `knativeerrordata`).
    body: Bytes,
    /// For logs: what happened, in words.
    reason: String,
}

/// How one attempt ended.
enum Attempt {
    Response(http::Response<Bytes>),
    NoResponse(String),
    TimedOut(Duration),
}

/// POST the event (already encoded as `headers` and `body`) to `uri`, retrying as the
/// subscription's delivery spec says. On a 2xx, the response and the span of the attempt that
/// got it.
async fn send(
    ctx: &Context,
    sub: &Subscription,
    target: Target,
    uri: &str,
    event: &Event,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(http::Response<Bytes>, tracing::Span), Failure> {
    let parsed: http::Uri = match uri.parse() {
        Ok(parsed) => parsed,
        Err(err) => {
            return Err(Failure {
                status: None,
                body: Bytes::new(),
                reason: format!("{} {uri:?} is not a valid URI: {err}", target.describe()),
            });
        }
    };
    let host = parsed.host().unwrap_or_default().to_owned();
    let trace = broker::trace_headers(event);
    let spec = &sub.delivery;
    let mut attempt: u32 = 0;
    loop {
        let span = attempt_span(target, sub, event, uri, &host);
        if attempt > 0 {
            span.record(conventions::HTTP_REQUEST_RESEND_COUNT, attempt);
        }
        // The parent first: an OpenTelemetry span's parent is fixed once it starts.
        skiff_tracing::set_parent_from_headers(&span, &trace);
        let mut request = http::Request::new(body.clone());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = parsed.clone();
        *request.headers_mut() = headers.clone();
        skiff_tracing::inject_span(&span, request.headers_mut());
        if !request.headers().contains_key(broker::TRACEPARENT_EXTENSION) {
            // Not tracing here: pass the event's context on, as a W3C intermediary that does not
            // take part would, so that the subscriber still joins the event's trace.
            request.headers_mut().extend(trace.clone());
        }

        let outcome = async {
            let sending = ctx.sender.send(request);
            let limit = spec.timeout.unwrap_or(delivery::DEFAULT_ATTEMPT_TIMEOUT);
            match tokio::time::timeout(limit, sending).await {
                Ok(result) => result.map_or_else(|err| Attempt::NoResponse(err.0), Attempt::Response),
                Err(_) => Attempt::TimedOut(limit),
            }
        }
        .instrument(span.clone())
        .await;

        let (status, reason, response) = match outcome {
            Attempt::Response(response) => {
                let status = response.status();
                span.record(conventions::HTTP_RESPONSE_STATUS_CODE, status.as_u16());
                if status.is_success() {
                    return Ok((response, span));
                }
                span.record(conventions::ERROR_TYPE, status.as_str());
                (Some(status), format!("{} answered {status}", target.describe()), Some(response))
            }
            Attempt::NoResponse(err) => {
                span.record(conventions::ERROR_TYPE, "no_response");
                (None, format!("{} did not answer: {err}", target.describe()), None)
            }
            Attempt::TimedOut(limit) => {
                span.record(conventions::ERROR_TYPE, "timeout");
                (None, format!("{} did not answer within {limit:?}", target.describe()), None)
            }
        };
        span.record("otel.status_code", "ERROR");
        let attempts = attempt + 1;
        if attempt >= spec.retry || !delivery::is_retryable(status) {
            let reason = if attempts > 1 { format!("{reason} (after {attempts} attempts)") } else { reason };
            let body = response.map(http::Response::into_body).unwrap_or_default();
            return Err(Failure { status, body, reason });
        }

        attempt += 1;
        let parts = response.as_ref().map(|response| (response.status(), response.headers()));
        let wait = spec.wait_before_retry(attempt, parts, SystemTime::now());
        tracing::debug!(
            trigger = %sub.name, event_id = %event.id, retry = attempt, wait = ?wait,
            "{reason}; retrying"
        );
        ctx.stats.retried();
        tokio::time::sleep(wait).await;
    }
}

/// The client span of one attempt, with every attribute it will get declared.
fn attempt_span(target: Target, sub: &Subscription, event: &Event, uri: &str, host: &str) -> tracing::Span {
    let name = match target {
        Target::Subscriber => format!("send {}", sub.name),
        Target::DeadLetterSink => format!("dead-letter {}", sub.name),
    };
    let span = tracing::info_span!(
        "dispatch",
        otel.name = %name,
        otel.kind = "client",
        otel.status_code = Empty,
        "messaging.operation.type" = "send",
        "messaging.destination.name" = %sub.name,
        "cloudevents.event_id" = %event.id,
        "cloudevents.event_type" = %event.type_,
        "cloudevents.event_source" = %event.source,
        "http.request.method" = "POST",
        "url.full" = %uri,
        "server.address" = %host,
        "http.request.resend_count" = Empty,
        "http.response.status_code" = Empty,
        "error.type" = Empty,
        "skiff.dead_letter" = Empty,
    );
    if target == Target::DeadLetterSink {
        span.record("skiff.dead_letter", true);
    }
    span
}
