//! Resolution of [`TelemetryOptions`] and the standard `OTEL_*` / `RUST_LOG`
//! environment variables into one effective configuration.
//!
//! Everything here is pure: the environment is passed in as a lookup function so
//! that the precedence rules can be unit-tested without touching process state.

use std::fmt;
use std::str::FromStr;

use opentelemetry_sdk::trace::Sampler;

use crate::TelemetryError;

pub(crate) const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub(crate) const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub(crate) const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub(crate) const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub(crate) const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
pub(crate) const RUST_LOG: &str = "RUST_LOG";

/// The log filter used when neither [`TelemetryOptions::log_filter`] nor `RUST_LOG` is set.
pub(crate) const DEFAULT_LOG_FILTER: &str = "info";

/// The path the OTLP/HTTP spec appends to a generic endpoint for traces.
const HTTP_TRACES_PATH: &str = "/v1/traces";

/// Programmatic telemetry settings; every `Some` field overrides the matching
/// environment variable. `Default` leaves everything to the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryOptions {
    /// Overrides `OTEL_SERVICE_NAME`; without either, the default passed to [`crate::init`].
    pub service_name: Option<String>,
    /// OTLP collector endpoint, e.g. `http://collector:4318` (http/protobuf) or
    /// `http://collector:4317` (grpc). Overrides `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// and `OTEL_EXPORTER_OTLP_ENDPOINT`. Treated like the generic
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: for http/protobuf, `/v1/traces` is appended
    /// unless the path already ends with it.
    pub endpoint: Option<String>,
    /// Overrides `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: Option<Protocol>,
    /// Sample this fraction of new traces (`parentbased_traceidratio`);
    /// overrides `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler_ratio: Option<f64>,
    /// A `tracing-subscriber` `EnvFilter` directive string; overrides `RUST_LOG`.
    /// Defaults to `"info"`. Applies to both the log output and exported spans.
    pub log_filter: Option<String>,
}

/// OTLP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// OTLP over gRPC (tonic). Needs a tokio runtime when [`crate::init`] runs.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (the OpenTelemetry default).
    #[default]
    HttpProtobuf,
}

impl Protocol {
    /// The value used for this protocol in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    fn parse_from(value: &str, origin: &'static str) -> Result<Self, TelemetryError> {
        match value.trim() {
            v if v.eq_ignore_ascii_case("grpc") => Ok(Protocol::Grpc),
            v if v.eq_ignore_ascii_case("http/protobuf") => Ok(Protocol::HttpProtobuf),
            _ => Err(TelemetryError::InvalidProtocol { origin, value: value.to_owned() }),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = TelemetryError;

    /// Parses `"grpc"` or `"http/protobuf"` (surrounding whitespace and ASCII case ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::parse_from(s, "protocol")
    }
}

/// The sampler chosen by `OTEL_TRACES_SAMPLER` or [`TelemetryOptions::sampler_ratio`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SamplerConfig {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

impl SamplerConfig {
    pub(crate) fn to_sampler(self) -> Sampler {
        match self {
            SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
            SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
            SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
            SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            SamplerConfig::ParentBasedTraceIdRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

/// Parses `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` values.
///
/// No sampler means `parentbased_always_on`; a ratio sampler without an
/// argument samples everything (`1.0`), as the OpenTelemetry spec says. The
/// argument is ignored by samplers that take none.
pub(crate) fn parse_sampler(name: Option<&str>, arg: Option<&str>) -> Result<SamplerConfig, TelemetryError> {
    let ratio = || match arg {
        None => Ok(1.0),
        Some(arg) => parse_ratio(arg, OTEL_TRACES_SAMPLER_ARG),
    };
    let Some(name) = name else {
        return Ok(SamplerConfig::ParentBasedAlwaysOn);
    };
    match name.trim().to_ascii_lowercase().as_str() {
        "always_on" => Ok(SamplerConfig::AlwaysOn),
        "always_off" => Ok(SamplerConfig::AlwaysOff),
        "traceidratio" => ratio().map(SamplerConfig::TraceIdRatio),
        "parentbased_always_on" => Ok(SamplerConfig::ParentBasedAlwaysOn),
        "parentbased_always_off" => Ok(SamplerConfig::ParentBasedAlwaysOff),
        "parentbased_traceidratio" => ratio().map(SamplerConfig::ParentBasedTraceIdRatio),
        _ => Err(TelemetryError::InvalidSampler { origin: OTEL_TRACES_SAMPLER, value: name.to_owned() }),
    }
}

fn parse_ratio(arg: &str, origin: &'static str) -> Result<f64, TelemetryError> {
    arg.trim()
        .parse::<f64>()
        .ok()
        .and_then(|r| check_ratio(r, origin).ok())
        .ok_or_else(|| TelemetryError::InvalidSamplerArg { origin, value: arg.to_owned() })
}

fn check_ratio(ratio: f64, origin: &'static str) -> Result<f64, TelemetryError> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(TelemetryError::InvalidSamplerArg { origin, value: ratio.to_string() })
    }
}

/// Turns a generic OTLP/HTTP base endpoint into the traces endpoint by
/// appending `/v1/traces`, unless the path already ends with it.
pub(crate) fn http_traces_endpoint(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(HTTP_TRACES_PATH) { base.to_owned() } else { format!("{base}{HTTP_TRACES_PATH}") }
}

/// Where the effective endpoint came from; decides whether `/v1/traces` is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndpointKind {
    /// `TelemetryOptions::endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL.
    Generic,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: used exactly as given.
    Traces,
}

/// Where and how to export spans.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExportConfig {
    /// The final URL handed to the exporter.
    pub(crate) endpoint: String,
    pub(crate) protocol: Protocol,
    pub(crate) sampler: SamplerConfig,
}

/// The effective configuration after applying options over the environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    pub(crate) service_name: String,
    pub(crate) log_filter: String,
    /// `None` when no endpoint is configured: no OpenTelemetry pipeline at all.
    pub(crate) export: Option<ExportConfig>,
}

/// Applies `opts` over the environment (read through `env`).
///
/// Empty or whitespace-only values count as unset. Protocol and sampler are
/// only validated when an endpoint is configured, so stray `OTEL_*` variables
/// cannot break a process that does not export.
pub(crate) fn resolve(
    default_service_name: &str,
    opts: &TelemetryOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, TelemetryError> {
    let env = |key: &str| env(key).filter(|v| !v.trim().is_empty());
    let opt = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());

    let service_name = opt(&opts.service_name)
        .or_else(|| env(OTEL_SERVICE_NAME))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| default_service_name.to_owned());
    let log_filter =
        opt(&opts.log_filter).or_else(|| env(RUST_LOG)).unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());

    let endpoint = opt(&opts.endpoint)
        .map(|e| (e, EndpointKind::Generic))
        .or_else(|| env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).map(|e| (e, EndpointKind::Traces)))
        .or_else(|| env(OTEL_EXPORTER_OTLP_ENDPOINT).map(|e| (e, EndpointKind::Generic)));
    let export = match endpoint {
        None => None,
        Some((endpoint, kind)) => {
            let protocol = match opts.protocol {
                Some(protocol) => protocol,
                None => match env(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) {
                    Some(v) => Protocol::parse_from(&v, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)?,
                    None => match env(OTEL_EXPORTER_OTLP_PROTOCOL) {
                        Some(v) => Protocol::parse_from(&v, OTEL_EXPORTER_OTLP_PROTOCOL)?,
                        None => Protocol::default(),
                    },
                },
            };
            let endpoint = match (protocol, kind) {
                (Protocol::HttpProtobuf, EndpointKind::Generic) => http_traces_endpoint(&endpoint),
                _ => endpoint.trim().to_owned(),
            };
            let sampler = match opts.sampler_ratio {
                Some(ratio) => SamplerConfig::ParentBasedTraceIdRatio(check_ratio(
                    ratio,
                    "TelemetryOptions::sampler_ratio",
                )?),
                None => parse_sampler(
                    env(OTEL_TRACES_SAMPLER).as_deref(),
                    env(OTEL_TRACES_SAMPLER_ARG).as_deref(),
                )?,
            };
            Some(ExportConfig { endpoint, protocol, sampler })
        }
    };

    Ok(Config { service_name, log_filter, export })
}

#[cfg(test)]
mod tests;
