//! The broker ingress: `POST http://broker-ingress.{domain}/{namespace}/{broker}` takes
//! CloudEvents (binary, structured or batched; 1.0 or 0.3), checks each one itself, stamps it
//! (arrival time, TTL, trace context) and answers 202 only once it is durably in the broker's log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use skiff_eventing::{broker, codec};
use skiff_tracing::conventions as semconv;
use tracing::Instrument;

use super::Eventing;

/// The largest request the ingress takes (one event, or a batch).
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

fn plain(code: StatusCode, message: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response()
}

pub async fn handle(State(eventing): State<Arc<Eventing>>, request: Request) -> Response {
    let path = request.uri().path().trim_matches('/').to_string();
    let span = tracing::info_span!(
        "broker ingress",
        otel.name = %format!("receive {path}"),
        otel.kind = "server",
        { semconv::HTTP_REQUEST_METHOD } = %request.method(),
        { semconv::URL_PATH } = %request.uri().path(),
        { semconv::SERVER_ADDRESS } = %eventing.ingress_host,
        { semconv::MESSAGING_OPERATION_TYPE } = "receive",
        messaging.system = "knative",
        messaging.destination.name = %path,
        messaging.batch.message_count = tracing::field::Empty,
        { semconv::CLOUDEVENTS_EVENT_ID } = tracing::field::Empty,
        { semconv::CLOUDEVENTS_EVENT_TYPE } = tracing::field::Empty,
        { semconv::CLOUDEVENTS_EVENT_SOURCE } = tracing::field::Empty,
        { semconv::HTTP_RESPONSE_STATUS_CODE } = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        { semconv::ERROR_TYPE } = tracing::field::Empty,
    );
    skiff_tracing::set_parent_from_headers(&span, request.headers());
    let mut response = accept(&eventing, &path, request, &span).instrument(span.clone()).await;
    let status = response.status();
    span.record(semconv::HTTP_RESPONSE_STATUS_CODE, status.as_u16());
    if !status.is_success() {
        span.record(semconv::ERROR_TYPE, status.as_str());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    if let Some(value) = skiff_tracing::traceresponse(&span) {
        response.headers_mut().insert(skiff_tracing::TRACERESPONSE_HEADER, value);
    }
    response
}

async fn accept(eventing: &Eventing, path: &str, request: Request, span: &tracing::Span) -> Response {
    if request.method() != Method::POST {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("a broker takes events with POST, not {}", request.method()),
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let Some((namespace, name)) =
        path.split_once('/').filter(|(ns, name)| !ns.is_empty() && !name.contains('/'))
    else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("no broker at /{path}: broker URLs are /{{namespace}}/{{broker}}"),
        );
    };
    if let Err(why) = eventing.broker_accepts(namespace, name) {
        return plain(StatusCode::NOT_FOUND, why);
    }
    let (parts, body) = request.into_parts();
    let mut body = Body::new(body);
    let declared =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_REQUEST_BYTES) {
        return too_large(body).await;
    }
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return plain(StatusCode::BAD_REQUEST, "the request body could not be read".into());
        };
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_REQUEST_BYTES {
                return too_large(body).await;
            }
            collected.extend_from_slice(&data);
        }
    }
    let body = collected.freeze();
    let mut events = match codec::decode(&parts.headers, &body) {
        Ok(events) => events,
        Err(err) => return plain(err.status(), err.to_string()),
    };
    if events.is_empty() {
        return plain(StatusCode::BAD_REQUEST, "the batch holds no event".into());
    }
    if let Some(first) = events.first() {
        span.record(semconv::CLOUDEVENTS_EVENT_ID, first.id.as_str());
        span.record(semconv::CLOUDEVENTS_EVENT_TYPE, first.type_.as_str());
        span.record(semconv::CLOUDEVENTS_EVENT_SOURCE, first.source.as_str());
    }
    if events.len() > 1 {
        span.record("messaging.batch.message_count", events.len());
    }
    let mut records = Vec::with_capacity(events.len());
    for event in &mut events {
        let ttl = match codec::take_ttl(event) {
            Ok(ttl) => ttl,
            Err(err) => return plain(StatusCode::BAD_REQUEST, err.to_string()),
        };
        if ttl == 0 {
            return plain(
                StatusCode::BAD_REQUEST,
                format!(
                    "event {:?} has {} 0: it has come back to the broker too many times (a reply loop?) and is dropped",
                    event.id,
                    codec::TTL_EXTENSION
                ),
            );
        }
        broker::stamp(event, ttl, span);
        records.push(bytes::Bytes::from(codec::to_bytes(event)));
    }
    let key = super::broker_key(namespace, name);
    match eventing.log.append(&key, records).await {
        Ok(_) => {
            eventing.accepted(&key, events.len());
            StatusCode::ACCEPTED.into_response()
        }
        Err(err) => {
            tracing::error!(broker = %path, error = %err, "storing events failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, format!("the event could not be stored: {err}"))
        }
    }
}

/// 413, after reading what the client sends (up to a bound), so that it gets to read the
/// answer instead of a reset connection.
async fn too_large(mut body: Body) -> Response {
    const DRAIN_AT_MOST: usize = 64 << 20;
    let mut drained = 0;
    while drained < DRAIN_AT_MOST
        && let Some(Ok(frame)) = body.frame().await
    {
        drained += frame.data_ref().map_or(0, |d| d.len());
    }
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request is larger than the broker's limit of {MAX_REQUEST_BYTES} bytes"),
    )
}
