//! What a broker does to every event it accepts, from a client or as a reply.

use http::HeaderMap;

use crate::codec::{self, Event};

/// The CloudEvents distributed-tracing extensions.
pub const TRACEPARENT_EXTENSION: &str = "traceparent";
pub const TRACESTATE_EXTENSION: &str = "tracestate";

/// Ready an accepted event for the log: `knativearrivaltime` now, the broker TTL `ttl`, and,
/// when the event does not carry a `traceparent` extension already, the context of `span` (the
/// broker ingress's, or the delivery that brought a reply) so that its deliveries join the trace.
pub fn stamp(event: &mut Event, ttl: u32, span: &tracing::Span) {
    codec::set_arrival_time(event, time::OffsetDateTime::now_utc());
    codec::set_ttl(event, ttl);
    if !event.extensions.contains_key(TRACEPARENT_EXTENSION) {
        let mut headers = HeaderMap::new();
        skiff_tracing::inject_span(span, &mut headers);
        for name in [TRACEPARENT_EXTENSION, TRACESTATE_EXTENSION] {
            if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
                event.extensions.insert(name.to_owned(), value.to_owned());
            }
        }
    }
}

/// The event's trace context as W3C headers (empty when it carries none), to make a span a
/// child of the context the event was created in.
pub fn trace_headers(event: &Event) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in [TRACEPARENT_EXTENSION, TRACESTATE_EXTENSION] {
        if let Some(value) = event.extensions.get(name).and_then(|v| http::HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    headers
}
