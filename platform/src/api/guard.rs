//! What every API request passes before a handler sees it, cheapest first:
//!
//! 1. `Host` must name this API (its listen address, loopback, `localhost` or an
//!    `--api-host`): a page that rebinds its own name to 127.0.0.1 gets 403.
//! 2. A write must say it is JSON, YAML or a patch (or a component for the upload routes):
//!    a browser's cross-site "simple" request (`text/plain`, a form, multipart) gets 415.
//! 3. At most so many requests in flight, and so many watches open: past them, 429 with
//!    `Retry-After`, as kube-apiserver's max-requests-inflight answers.
//!
//! The bearer token (`auth`) is checked between 1 and 2. No CORS headers are ever sent.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::status::{Reason, StatusError};

/// Which `Host` values name this API.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    listen: SocketAddr,
    /// `--api-host` names, lower-case.
    names: Vec<String>,
}

impl HostPolicy {
    pub fn new(listen: SocketAddr, names: &[String]) -> Self {
        Self { listen, names: names.iter().map(|n| n.to_ascii_lowercase()).collect() }
    }

    /// `Host` without its port: `localhost`, `127.0.0.1`, `::1` (from `[::1]:8081`).
    fn host_part(raw: &str) -> &str {
        if let Some(rest) = raw.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("");
        }
        match raw.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => raw,
        }
    }

    pub fn allows(&self, raw: &str) -> bool {
        let host = Self::host_part(raw.trim());
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.eq_ignore_ascii_case("localhost") || self.names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
            return true;
        }
        let Ok(ip) = host.parse::<IpAddr>() else { return false };
        let listen = self.listen.ip();
        // An address literal cannot be rebound. Loopback always names a local listener; a
        // listener on every address answers to any of this machine's addresses.
        ip == listen || ip.is_loopback() || listen.is_unspecified()
    }

    /// The names a `Host` may carry, for the refusal's message.
    fn described(&self) -> String {
        let mut names = vec![self.listen.ip().to_string(), "localhost".to_string(), "127.0.0.1".into()];
        names.extend(self.names.iter().cloned());
        names.dedup();
        names.join(", ")
    }
}

pub(super) async fn check_host(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let host =
        request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| request.uri().host());
    match host {
        Some(host) if state.hosts.allows(host) => next.run(request).await,
        Some(host) => StatusError::new(
            Reason::Forbidden,
            format!(
                "this API does not answer to the host {host:?}: it answers to {} (add a name with skiff up --api-host)",
                state.hosts.described()
            ),
        )
        .into_response(),
        None => StatusError::new(Reason::Forbidden, "the request names no Host").into_response(),
    }
}

/// The media types a write may carry. The upload routes take the component's bytes.
const OBJECT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
const COMPONENT_TYPES: &[&str] = &["application/wasm", "application/octet-stream"];

fn is_component_route(path: &str) -> bool {
    if path == "/skiff/v1/components" {
        return true;
    }
    // `/apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}/wasm`
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    segments.len() == 8 && segments[5] == "services" && segments[7] == super::components::SUBRESOURCE
}

pub(super) async fn check_content_type(request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH) {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let accepted = if is_component_route(path) { COMPONENT_TYPES } else { OBJECT_TYPES };
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match media {
        Some(media) if accepted.contains(&media.as_str()) => next.run(request).await,
        Some(media) => {
            unsupported(&format!("the body of the request was in an unsupported format ({media})"), accepted)
        }
        None => unsupported("the request has no Content-Type", accepted),
    }
}

fn unsupported(what: &str, accepted: &[&str]) -> Response {
    StatusError::new(
        Reason::UnsupportedMediaType,
        format!("{what} - accepted media types include: {}", accepted.join(", ")),
    )
    .into_response()
}

/// How many requests the API serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflightLimits {
    /// Short requests (everything but watches and followed logs): kube-apiserver's 400 + 200.
    pub requests: usize,
    /// Open watches and followed logs.
    pub watches: usize,
}

impl Default for InflightLimits {
    fn default() -> Self {
        Self { requests: 600, watches: 1000 }
    }
}

/// The counters behind [`InflightLimits`].
#[derive(Debug, Default)]
pub struct Inflight {
    requests: AtomicUsize,
    watches: AtomicUsize,
}

/// A place taken in one of the counters, given back on drop (when the response body ends).
struct Place(Arc<Inflight>, bool);

impl Drop for Place {
    fn drop(&mut self) {
        let counter = if self.1 { &self.0.watches } else { &self.0.requests };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

fn is_long_running(request: &Request) -> bool {
    request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1" | "watch" | "follow=true" | "follow=1"))
    })
}

pub(super) async fn limit_inflight(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let long = is_long_running(&request);
    let (counter, limit, what) = match long {
        true => (&state.inflight.watches, state.inflight_limits.watches, "open watches"),
        false => (&state.inflight.requests, state.inflight_limits.requests, "requests in flight"),
    };
    if counter.fetch_add(1, Ordering::Relaxed) >= limit {
        counter.fetch_sub(1, Ordering::Relaxed);
        let mut response = StatusError::new(
            Reason::TooManyRequests,
            format!("too many requests: this API serves at most {limit} {what}; please try again later"),
        )
        .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let place = Place(state.inflight.clone(), long);
    let response = next.run(request).await;
    // The place is held until the body is sent: a watch holds it while it streams.
    let (parts, body) = response.into_parts();
    let body = axum::body::Body::new(HoldWhileStreaming { body, _place: place });
    Response::from_parts(parts, body)
}

struct HoldWhileStreaming {
    body: axum::body::Body,
    _place: Place,
}

impl http_body::Body for HoldWhileStreaming {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_name_the_api() {
        let policy = HostPolicy::new("127.0.0.1:8081".parse().unwrap(), &["api.example.com".to_string()]);
        for host in [
            "localhost:8081",
            "LOCALHOST",
            "127.0.0.1:8081",
            "[::1]:8081",
            "api.example.com",
            "api.example.com.",
        ] {
            assert!(policy.allows(host), "{host}");
        }
        for host in
            ["attacker.example", "attacker.example:8081", "10.0.0.1:8081", "localhost.attacker.example", ""]
        {
            assert!(!policy.allows(host), "{host}");
        }
        let everywhere = HostPolicy::new("0.0.0.0:8081".parse().unwrap(), &[]);
        assert!(everywhere.allows("192.0.2.7:8081"));
        assert!(!everywhere.allows("rebound.example:8081"));
    }

    #[test]
    fn component_routes_are_known() {
        assert!(is_component_route("/skiff/v1/components"));
        assert!(is_component_route("/apis/serving.knative.dev/v1/namespaces/default/services/hello/wasm"));
        assert!(!is_component_route("/apis/serving.knative.dev/v1/namespaces/default/services/hello"));
    }
}
