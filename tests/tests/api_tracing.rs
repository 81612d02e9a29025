//! The API's own spans leave over OTLP and continue the caller's trace.

use std::time::Duration;

use skiff_tests::Skiff;
use skiff_tests::otlp::OtlpReceiver;

#[tokio::test]
async fn every_api_request_is_a_server_span_in_the_callers_trace() {
    let receiver = OtlpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_in(
        dir.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let response = skiff
        .api_request(reqwest::Method::GET, "/apis/serving.knative.dev/v1/namespaces/default/services")
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let spans = receiver
        .wait_for(Duration::from_secs(15), |spans| spans.iter().any(|s| s.trace_id == trace_id))
        .await;
    let span = spans.iter().find(|s| s.trace_id == trace_id).unwrap();
    assert_eq!(span.service, "skiff");
    assert_eq!(span.name, "GET /apis/{group}/{version}/namespaces/{namespace}/{resource}");
    assert_eq!(span.parent_span_id, parent);
    assert_eq!(span.kind, 2, "a SERVER span");
    assert_eq!(span.attributes.get("http.response.status_code").map(String::as_str), Some("200"));
    assert_eq!(span.attributes.get("http.request.method").map(String::as_str), Some("GET"));
}
