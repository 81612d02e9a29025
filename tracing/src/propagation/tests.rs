use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn headers_with(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in pairs {
        headers.insert(*k, HeaderValue::from_str(v).expect("valid header value"));
    }
    headers
}

#[test]
fn traceparent_round_trips_through_header_maps() {
    let incoming = headers_with(&[("traceparent", TRACEPARENT), ("tracestate", "congo=t61rcWkgMzE")]);
    let cx = extract_context(&incoming);
    let sc = cx.span().span_context().clone();
    assert!(sc.is_valid());
    assert!(sc.is_remote());
    assert!(sc.is_sampled());
    assert_eq!(sc.trace_id().to_string(), TRACE_ID);
    assert_eq!(sc.span_id().to_string(), SPAN_ID);
    assert_eq!(sc.trace_state().get("congo"), Some("t61rcWkgMzE"));

    let mut outgoing = HeaderMap::new();
    outgoing.insert("traceparent", HeaderValue::from_static("stale"));
    inject_context(&cx, &mut outgoing);
    assert_eq!(outgoing.get("traceparent").map(HeaderValue::as_bytes), Some(TRACEPARENT.as_bytes()));
    assert_eq!(outgoing.get("tracestate").map(HeaderValue::as_bytes), Some(&b"congo=t61rcWkgMzE"[..]));
    assert_eq!(outgoing.get_all("traceparent").iter().count(), 1);
}

#[test]
fn missing_or_invalid_traceparent_extracts_nothing() {
    for headers in [
        HeaderMap::new(),
        headers_with(&[("traceparent", "garbage")]),
        headers_with(&[("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")]),
    ] {
        let cx = extract_context(&headers);
        assert!(!cx.span().span_context().is_valid(), "{headers:?}");
        let mut out = HeaderMap::new();
        inject_context(&cx, &mut out);
        assert!(out.is_empty(), "nothing to inject from {headers:?}");
    }
}

#[test]
fn traceresponse_has_the_level_2_format() {
    let sc = SpanContext::new(
        TraceId::from_hex(TRACE_ID).expect("hex"),
        SpanId::from_hex(SPAN_ID).expect("hex"),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    assert_eq!(
        format_traceresponse(&sc).as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    let unsampled =
        SpanContext::new(sc.trace_id(), sc.span_id(), TraceFlags::default(), false, TraceState::default());
    assert_eq!(
        format_traceresponse(&unsampled).as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    );
    assert_eq!(format_traceresponse(&SpanContext::empty_context()), None);
}

#[test]
fn span_helpers_are_inert_without_an_opentelemetry_layer() {
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("plain");
        set_parent_from_headers(&span, &headers_with(&[("traceparent", TRACEPARENT)]));
        assert_eq!(trace_id(&span), None);
        assert_eq!(traceresponse(&span), None);
        let mut out = HeaderMap::new();
        inject_span(&span, &mut out);
        assert!(out.is_empty());
    });
}

#[test]
fn span_helpers_follow_the_remote_parent_with_an_opentelemetry_layer() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("child");
        set_parent_from_headers(&span, &headers_with(&[("traceparent", TRACEPARENT)]));
        assert_eq!(trace_id(&span).as_deref(), Some(TRACE_ID));

        let value = traceresponse(&span).expect("traceresponse");
        let value = value.to_str().expect("ascii");
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!(parts.len(), 4, "{value}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], TRACE_ID);
        assert_eq!(parts[2].len(), 16);
        assert_ne!(parts[2], SPAN_ID, "the span's own id, not the parent's");
        assert_eq!(parts[3], "01");

        let mut out = HeaderMap::new();
        inject_span(&span, &mut out);
        let expected = format!("00-{TRACE_ID}-{}-01", parts[2]);
        assert_eq!(out.get("traceparent").map(HeaderValue::as_bytes), Some(expected.as_bytes()));
    });
}

#[test]
fn span_without_remote_parent_becomes_a_new_root() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("root");
        set_parent_from_headers(&span, &HeaderMap::new());
        let id = trace_id(&span).expect("a fresh trace id");
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(id, TRACE_ID);
    });
}
