//! `init` without an endpoint: logging only, no OpenTelemetry layer, but W3C
//! propagation still works at the `Context` level.
//!
//! `init` installs a process-global subscriber, so this file holds one test.

use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::TraceContextExt;
use skiff_tracing::{TelemetryError, TelemetryOptions};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn without_endpoint_nothing_is_exported_and_propagation_still_works() {
    let endpoint_in_env = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|key| std::env::var(key).is_ok_and(|v| !v.trim().is_empty()));
    if endpoint_in_env {
        eprintln!("skipped: an OTLP endpoint is set in the environment");
        return;
    }

    let telemetry = skiff_tracing::init("no-export-test", TelemetryOptions::default()).expect("init");
    assert!(!telemetry.exporting());
    assert_eq!(telemetry.endpoint(), None);

    // The global propagator is W3C trace-context, not the default no-op.
    let fields: Vec<String> =
        opentelemetry::global::get_text_map_propagator(|p| p.fields().map(str::to_owned).collect());
    assert!(fields.iter().any(|f| f == "traceparent"), "{fields:?}");

    // Span helpers degrade gracefully without the OpenTelemetry layer.
    let mut incoming = HeaderMap::new();
    incoming.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
    let span = tracing::info_span!("request");
    skiff_tracing::set_parent_from_headers(&span, &incoming);
    assert_eq!(skiff_tracing::trace_id(&span), None);
    assert_eq!(skiff_tracing::traceresponse(&span), None);
    let mut outgoing = HeaderMap::new();
    skiff_tracing::inject_span(&span, &mut outgoing);
    assert!(outgoing.is_empty());

    // Context-level propagation is unaffected.
    let cx = skiff_tracing::extract_context(&incoming);
    assert!(cx.span().span_context().is_valid());
    skiff_tracing::inject_context(&cx, &mut outgoing);
    assert_eq!(outgoing.get("traceparent").map(HeaderValue::as_bytes), Some(TRACEPARENT.as_bytes()));

    let second = skiff_tracing::init("again", TelemetryOptions::default());
    assert!(matches!(second, Err(TelemetryError::AlreadyInitialized { .. })), "{second:?}");

    telemetry.shutdown();
}
