//! Keeps the exporter's own instrumentation out of the OpenTelemetry layer.
//!
//! The OTLP exporter runs on reqwest/hyper (http/protobuf) or tonic/h2
//! (grpc), and those crates (plus the OpenTelemetry SDK's internal logs) emit
//! `tracing` spans and events. Were they fed back into the OpenTelemetry
//! layer, every export would produce spans to export: a feedback loop.

/// Crates whose spans and events never reach the OpenTelemetry layer.
const EXPORTER_CRATES: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
    "opentelemetry_proto",
    "tonic",
    "tonic_prost",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "tower",
];

/// Whether `target` (a `tracing` metadata target, usually a module path)
/// belongs to one of the exporter's transport crates.
pub(crate) fn is_exporter_internal(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    EXPORTER_CRATES.contains(&krate)
}

#[cfg(test)]
mod tests {
    use super::is_exporter_internal;

    #[test]
    fn exporter_transport_targets_are_internal() {
        for target in [
            "h2::proto::connection",
            "hyper_util::client::legacy::pool",
            "tonic::transport::channel",
            "reqwest::blocking::client",
            "opentelemetry_sdk",
            "opentelemetry_otlp::exporter::http",
            "tower::buffer::worker",
        ] {
            assert!(is_exporter_internal(target), "{target}");
        }
    }

    #[test]
    fn application_targets_are_not_internal() {
        for target in [
            "skiff_platform::api",
            "skiff_tracing",
            "tower_http::trace::on_request",
            "hyperion",
            "request",
            "opentelemetry_like_app",
        ] {
            assert!(!is_exporter_internal(target), "{target}");
        }
    }
}
