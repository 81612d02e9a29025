//! Attribute keys and span names used by Skiff, following the OpenTelemetry
//! semantic conventions (HTTP, FaaS, messaging, CloudEvents).
//!
//! Use the keys as `tracing` field names, e.g.
//! `tracing::info_span!("request", otel.name = %name, otel.kind = "server", "http.request.method" = %method)`;
//! `tracing-opentelemetry` passes dotted field names through unchanged.

// HTTP, URL and server attributes.

/// HTTP request method, e.g. `GET`.
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// HTTP response status code, e.g. `200`.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// Matched route template, e.g. `/apis/{group}`; low cardinality.
pub const HTTP_ROUTE: &str = "http.route";
/// Ordinal of a resent/retried request (attempts after the first).
pub const HTTP_REQUEST_RESEND_COUNT: &str = "http.request.resend_count";
/// Request path, e.g. `/apis/serving/services`.
pub const URL_PATH: &str = "url.path";
/// URL scheme, `http` or `https`.
pub const URL_SCHEME: &str = "url.scheme";
/// Server host name or address the request targeted.
pub const SERVER_ADDRESS: &str = "server.address";
/// Class of error an operation ended with (e.g. status code or error kind).
pub const ERROR_TYPE: &str = "error.type";

// FaaS attributes.

/// What triggered a function invocation: `http`, `pubsub`, `datasource`, `timer`, `other`.
pub const FAAS_TRIGGER: &str = "faas.trigger";
/// Unique id of one function invocation.
pub const FAAS_INVOCATION_ID: &str = "faas.invocation_id";
/// Whether the invocation had to start a new instance.
pub const FAAS_COLDSTART: &str = "faas.coldstart";
/// Name of the invoked function.
pub const FAAS_NAME: &str = "faas.name";

// Messaging and CloudEvents attributes.

/// Messaging operation type: `create`, `send`, `receive`, `process`, `settle`.
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// CloudEvent `id`.
pub const CLOUDEVENTS_EVENT_ID: &str = "cloudevents.event_id";
/// CloudEvent `type`.
pub const CLOUDEVENTS_EVENT_TYPE: &str = "cloudevents.event_type";
/// CloudEvent `source`.
pub const CLOUDEVENTS_EVENT_SOURCE: &str = "cloudevents.event_source";

// Common values.

/// [`FAAS_TRIGGER`] value for HTTP-triggered invocations.
pub const FAAS_TRIGGER_HTTP: &str = "http";
/// [`FAAS_TRIGGER`] value for event (pub/sub) triggered invocations.
pub const FAAS_TRIGGER_PUBSUB: &str = "pubsub";

/// Span name of an HTTP server span: `"{method} {route}"`, or just
/// `"{method}"` when no route matched (never the raw path: it is unbounded).
///
/// ```
/// use skiff_tracing::conventions::server_span_name;
/// assert_eq!(server_span_name("GET", Some("/apis/{group}")), "GET /apis/{group}");
/// assert_eq!(server_span_name("GET", None), "GET");
/// ```
pub fn server_span_name(method: &str, route: Option<&str>) -> String {
    http_span_name(method, route)
}

/// Span name of an HTTP client span: `"{method} {url_template}"`, or just
/// `"{method}"` without a template.
pub fn client_span_name(method: &str, url_template: Option<&str>) -> String {
    http_span_name(method, url_template)
}

/// Span name of a messaging span: `"{operation} {destination}"`, e.g.
/// `"send broker-default"`, or just `"{operation}"`.
pub fn messaging_span_name(operation: &str, destination: Option<&str>) -> String {
    join_nonempty(operation, destination)
}

fn http_span_name(method: &str, target: Option<&str>) -> String {
    // The spec uses `HTTP` when the method is unknown.
    let method = if method.trim().is_empty() { "HTTP" } else { method.trim() };
    join_nonempty(method, target)
}

fn join_nonempty(head: &str, tail: Option<&str>) -> String {
    match tail.map(str::trim).filter(|t| !t.is_empty()) {
        Some(tail) => format!("{head} {tail}"),
        None => head.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_span_names() {
        assert_eq!(server_span_name("GET", Some("/apis/{group}")), "GET /apis/{group}");
        assert_eq!(server_span_name("POST", None), "POST");
        assert_eq!(server_span_name("GET", Some("")), "GET");
        assert_eq!(server_span_name("", Some("/x")), "HTTP /x");
    }

    #[test]
    fn client_and_messaging_span_names() {
        assert_eq!(client_span_name("PUT", Some("/v1/{id}")), "PUT /v1/{id}");
        assert_eq!(client_span_name("PUT", None), "PUT");
        assert_eq!(messaging_span_name("send", Some("default")), "send default");
        assert_eq!(messaging_span_name("process", None), "process");
    }

    #[test]
    fn keys_are_the_semantic_convention_names() {
        assert_eq!(HTTP_REQUEST_METHOD, "http.request.method");
        assert_eq!(HTTP_RESPONSE_STATUS_CODE, "http.response.status_code");
        assert_eq!(FAAS_INVOCATION_ID, "faas.invocation_id");
        assert_eq!(CLOUDEVENTS_EVENT_SOURCE, "cloudevents.event_source");
        assert_eq!(HTTP_REQUEST_RESEND_COUNT, "http.request.resend_count");
    }
}
