//! The ingress: the data plane's HTTP front door.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use tracing::Instrument;

use super::revision::{Assigned, Refusal, Revision};
use super::routing::Tables;
use super::stats::InFlight;

/// How long a request waits for a revision routed to but not running yet (its pod is
/// being prepared, as after a restart).
const START_PATIENCE: Duration = Duration::from_secs(10);

/// Extra time the ingress gives a pod past its own timeout before answering 504 itself.
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// The data plane's front door. Requests for `side_host` (the broker ingress) go to `side`;
/// every other host is a service's.
pub fn router(tables: Arc<Tables>, side: Option<(String, Router)>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Front { tables, side: side.map(|(host, router)| (host.to_ascii_lowercase(), router)) })
}

#[derive(Clone)]
struct Front {
    tables: Arc<Tables>,
    side: Option<(String, Router)>,
}

fn plain(code: StatusCode, message: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response()
}

fn host_of(request: &Request) -> String {
    let raw =
        request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| request.uri().host());
    let raw = raw.unwrap_or("").to_ascii_lowercase();
    match raw.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host.to_string(),
        _ => raw,
    }
}

async fn handle(State(front): State<Front>, request: Request) -> Response {
    let host = host_of(&request);
    if let Some((side_host, side)) = &front.side
        && host == *side_host
    {
        use tower::ServiceExt;
        return match side.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    let tables = front.tables;
    let span = tracing::info_span!(
        "ingress",
        otel.name = %format!("{} {}", request.method(), host),
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
        server.address = %host,
        faas.name = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    skiff_tracing::set_parent_from_headers(&span, request.headers());
    let mut response = serve(&tables, &host, request, &span).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if let Some(value) = skiff_tracing::traceresponse(&span) {
        response.headers_mut().insert(skiff_tracing::TRACERESPONSE_HEADER, value);
    }
    response
}

async fn serve(tables: &Tables, host: &str, request: Request, span: &tracing::Span) -> Response {
    let Some(route) = tables.route(host) else {
        return plain(StatusCode::NOT_FOUND, format!("no service answers at host {host:?}"));
    };
    let Some(revision_name) = route.pick() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("service {:?} has no revision that can serve: {}", route.route, route.unavailable),
        );
    };
    let Some(revision) = tables.revision_within(&route.namespace, revision_name, START_PATIENCE).await else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "revision {revision_name:?} of service {:?} did not start within {START_PATIENCE:?}",
                route.route
            ),
        );
    };
    span.record("faas.name", revision.service.as_deref().unwrap_or(&revision.name));
    let mut in_flight = revision.stats.begin();
    match revision.acquire().await {
        Ok(assigned) => invoke(&revision, assigned, in_flight, request, span).await,
        Err(refusal) => {
            let (kind, message) = refused(&route.route, &revision.name, refusal);
            span.record("error.type", kind);
            let response = plain(StatusCode::SERVICE_UNAVAILABLE, message);
            in_flight.answered(response.status());
            response
        }
    }
}

/// The 503 a request gets when no pod took it: its `error.type` and message.
fn refused(service: &str, revision: &str, refusal: Refusal) -> (&'static str, String) {
    let message = match &refusal {
        Refusal::Overloaded(full) => format!(
            "service {service:?} is overloaded: {} requests in flight (containerConcurrency) and {} waiting",
            full.limit, full.queue
        ),
        Refusal::ActivatorFull { depth } => format!(
            "service {service:?} is starting and already has {depth} requests waiting for it; try again shortly"
        ),
        Refusal::ColdStartTimeout(waited) => {
            format!("revision {revision:?} of service {service:?} had no ready pod within {waited:?}")
        }
        Refusal::StartFailed(why) => {
            format!("revision {revision:?} of service {service:?} cannot start: {why}")
        }
    };
    (refusal.kind(), message)
}

async fn invoke(
    revision: &Revision,
    assigned: Assigned,
    mut in_flight: InFlight,
    request: Request,
    span: &tracing::Span,
) -> Response {
    let mut request = request;
    if assigned.cold {
        request.extensions_mut().insert(skiff_tracing::ColdStart);
    }
    match tokio::time::timeout(revision.timeout + TIMEOUT_GRACE, assigned.pod.pod.serve(request)).await {
        Ok(Ok(response)) => {
            in_flight.answered(response.status());
            // The slot and the in-flight count are held until the body has been streamed out.
            response.map(|body| Body::new(Holding { body, _held: (assigned, in_flight) }))
        }
        Ok(Err(failure)) => {
            span.record("error.type", failure.kind);
            tracing::warn!(revision = %revision.name, pod = %assigned.pod.name, kind = failure.kind, "{}", failure.message);
            let mut response =
                plain(failure.status, format!("revision {:?} failed: {}", revision.name, failure.message));
            response.headers_mut().insert("x-skiff-error", HeaderValue::from_static(failure.kind));
            in_flight.answered(response.status());
            response
        }
        Err(_) => {
            span.record("error.type", "timeout");
            let response = plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!("revision {:?} did not answer within {:?}", revision.name, revision.timeout),
            );
            in_flight.answered(response.status());
            response
        }
    }
}

/// A body that keeps its pod's slot, and counts as in flight, until it is done.
struct Holding {
    body: Body,
    _held: (Assigned, InFlight),
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
