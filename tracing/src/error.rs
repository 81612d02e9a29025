//! The error type returned by [`crate::init`] and by configuration parsing.

/// Everything that can go wrong while setting up telemetry.
///
/// `origin` fields name where a bad value came from: an environment variable
/// (e.g. `OTEL_EXPORTER_OTLP_PROTOCOL`) or a [`crate::TelemetryOptions`] field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The OTLP protocol is neither `grpc` nor `http/protobuf`.
    #[error("invalid otlp protocol {value:?} from {origin}: expected \"grpc\" or \"http/protobuf\"")]
    InvalidProtocol {
        /// Where the value came from.
        origin: &'static str,
        /// The rejected value.
        value: String,
    },

    /// `OTEL_TRACES_SAMPLER` names a sampler this crate does not know.
    #[error(
        "invalid sampler {value:?} from {origin}: expected one of always_on, always_off, \
         traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
    )]
    InvalidSampler {
        /// Where the value came from.
        origin: &'static str,
        /// The rejected value.
        value: String,
    },

    /// The sampler ratio is not a number between 0.0 and 1.0.
    #[error("invalid sampler ratio {value:?} from {origin}: expected a number between 0.0 and 1.0")]
    InvalidSamplerArg {
        /// Where the value came from.
        origin: &'static str,
        /// The rejected value.
        value: String,
    },

    /// The log filter (`TelemetryOptions::log_filter` or `RUST_LOG`) is not a valid
    /// `EnvFilter` directive string.
    #[error("invalid log filter {value:?}")]
    InvalidLogFilter {
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },

    /// The gRPC exporter was selected but `init` was not called inside a tokio runtime.
    #[error(
        "the grpc otlp exporter for {endpoint} needs a tokio runtime: call init inside one, \
         or use the http/protobuf protocol"
    )]
    NoTokioRuntime {
        /// The configured endpoint.
        endpoint: String,
    },

    /// `opentelemetry-otlp` refused to build the span exporter.
    #[error("failed to build the otlp span exporter for {endpoint}")]
    ExporterBuild {
        /// The configured endpoint.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },

    /// A global tracing subscriber (or `log` logger) is already installed,
    /// typically because `init` was called twice.
    #[error("a global tracing subscriber is already installed (init may be called only once)")]
    AlreadyInitialized {
        /// The error from `tracing-subscriber`, when it got that far.
        #[source]
        source: Option<tracing_subscriber::util::TryInitError>,
    },
}
