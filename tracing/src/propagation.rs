//! W3C trace-context propagation over `http::HeaderMap`, and helpers that read
//! the OpenTelemetry context of a `tracing` span.
//!
//! The header helpers always use the W3C [`TraceContextPropagator`]
//! (`traceparent` / `tracestate`) directly, independent of the global
//! propagator, so they behave the same whether or not [`crate::init`] ran or
//! exports. The span helpers need the OpenTelemetry layer that `init` installs
//! only when exporting; without it they return `None` / do nothing.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C trace-context level 2 response header name.
pub const TRACERESPONSE_HEADER: &str = "traceresponse";

/// Read-only [`Extractor`] view of a `HeaderMap`; non-UTF-8 values are skipped.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self.0.get_all(key).iter().filter_map(|v| v.to_str().ok()).collect();
        (!values.is_empty()).then_some(values)
    }
}

/// [`Injector`] into a `HeaderMap`; replaces existing values, drops invalid ones.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Extracts the remote parent context from W3C `traceparent` / `tracestate`
/// headers. Without a valid `traceparent` the result carries no valid span.
pub fn extract_context(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `traceparent` (and `tracestate` when non-empty) for the span in `cx`;
/// does nothing when `cx` holds no valid span context.
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// Injects the OpenTelemetry context of a `tracing` span, e.g. into an
/// outgoing request. Does nothing when the span has no OpenTelemetry context
/// (not exporting, or the span is disabled).
///
/// This starts the span's OpenTelemetry counterpart: call
/// [`set_parent_from_headers`] before, not after.
pub fn inject_span(span: &tracing::Span, headers: &mut HeaderMap) {
    inject_context(&span.context(), headers);
}

/// Makes the W3C context carried by `headers` the parent of `span`, when the
/// headers carry a valid `traceparent`; otherwise the span stays a root.
///
/// Must be called before the span is entered or its context is read, since
/// an OpenTelemetry span's parent cannot change once started. Failures
/// (no OpenTelemetry layer, span already started or disabled) are ignored.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &HeaderMap) {
    let cx = extract_context(headers);
    if !cx.span().span_context().is_valid() {
        return;
    }
    if let Err(error) = span.set_parent(cx) {
        tracing::debug!(%error, "could not set the remote parent of a span");
    }
}

/// The span context of a `tracing` span, when it has a valid OpenTelemetry one.
fn span_context(span: &tracing::Span) -> Option<SpanContext> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The trace id of `span` as 32 lower-case hex characters, or `None` when the
/// span has no valid OpenTelemetry context.
///
/// Like [`inject_span`], this starts the span's OpenTelemetry counterpart.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    span_context(span).map(|sc| sc.trace_id().to_string())
}

/// The W3C trace-context level 2 `traceresponse` header value for `span`:
/// `00-{trace_id}-{span_id}-{flags}`, or `None` without a valid context.
/// Insert it under [`TRACERESPONSE_HEADER`].
///
/// Like [`inject_span`], this starts the span's OpenTelemetry counterpart.
pub fn traceresponse(span: &tracing::Span) -> Option<HeaderValue> {
    span_context(span).and_then(|sc| format_traceresponse(&sc)).and_then(|v| HeaderValue::from_str(&v).ok())
}

/// Formats a `traceresponse` value; `None` for an invalid span context.
pub(crate) fn format_traceresponse(sc: &SpanContext) -> Option<String> {
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

#[cfg(test)]
mod tests;
