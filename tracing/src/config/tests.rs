use std::collections::HashMap;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |key| map.get(key).cloned()
}

fn resolve_with(opts: &TelemetryOptions, pairs: &[(&str, &str)]) -> Result<Config, TelemetryError> {
    resolve("skiff", opts, &env_of(pairs))
}

#[test]
fn protocol_parses_the_two_supported_values() {
    assert_eq!("grpc".parse::<Protocol>().ok(), Some(Protocol::Grpc));
    assert_eq!("http/protobuf".parse::<Protocol>().ok(), Some(Protocol::HttpProtobuf));
    assert_eq!(" GRPC ".parse::<Protocol>().ok(), Some(Protocol::Grpc));
    assert_eq!(Protocol::default(), Protocol::HttpProtobuf);
    for p in [Protocol::Grpc, Protocol::HttpProtobuf] {
        assert_eq!(p.to_string().parse::<Protocol>().ok(), Some(p));
    }
}

#[test]
fn protocol_rejects_other_values_naming_them() {
    for bad in ["http/json", "http", "", "grpcs"] {
        let err = bad.parse::<Protocol>().expect_err(bad);
        assert!(matches!(&err, TelemetryError::InvalidProtocol { value, .. } if value == bad), "{err:?}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn sampler_defaults_to_parentbased_always_on() {
    assert_eq!(parse_sampler(None, None).ok(), Some(SamplerConfig::ParentBasedAlwaysOn));
    // An argument alone does not pick a sampler.
    assert_eq!(parse_sampler(None, Some("0.5")).ok(), Some(SamplerConfig::ParentBasedAlwaysOn));
}

#[test]
fn sampler_parses_every_spec_value() {
    let cases = [
        ("always_on", None, SamplerConfig::AlwaysOn),
        ("always_off", None, SamplerConfig::AlwaysOff),
        ("traceidratio", Some("0.25"), SamplerConfig::TraceIdRatio(0.25)),
        ("traceidratio", None, SamplerConfig::TraceIdRatio(1.0)),
        ("parentbased_always_on", None, SamplerConfig::ParentBasedAlwaysOn),
        ("parentbased_always_off", Some("0.3"), SamplerConfig::ParentBasedAlwaysOff),
        ("parentbased_traceidratio", Some(" 0 "), SamplerConfig::ParentBasedTraceIdRatio(0.0)),
        ("ParentBased_TraceIdRatio", Some("1"), SamplerConfig::ParentBasedTraceIdRatio(1.0)),
    ];
    for (name, arg, want) in cases {
        assert_eq!(parse_sampler(Some(name), arg).ok(), Some(want), "{name} {arg:?}");
    }
}

#[test]
fn sampler_rejects_unknown_names_and_bad_ratios() {
    let err = parse_sampler(Some("jaeger_remote"), None).expect_err("unknown sampler");
    assert!(err.to_string().contains("\"jaeger_remote\""), "{err}");
    assert!(err.to_string().contains(OTEL_TRACES_SAMPLER), "{err}");

    for bad in ["1.5", "-0.1", "half", "NaN", ""] {
        let err = parse_sampler(Some("traceidratio"), Some(bad)).expect_err(bad);
        assert!(
            matches!(&err, TelemetryError::InvalidSamplerArg { value, origin } if value == bad && *origin == OTEL_TRACES_SAMPLER_ARG),
            "{err:?}"
        );
        assert!(err.to_string().contains(OTEL_TRACES_SAMPLER_ARG), "{err}");
    }
}

#[test]
fn sampler_variants_map_to_sdk_samplers() {
    use opentelemetry_sdk::trace::Sampler;
    assert!(matches!(SamplerConfig::AlwaysOff.to_sampler(), Sampler::AlwaysOff));
    assert!(matches!(
        SamplerConfig::TraceIdRatio(0.5).to_sampler(),
        Sampler::TraceIdRatioBased(r) if r == 0.5
    ));
    assert!(matches!(SamplerConfig::ParentBasedTraceIdRatio(0.5).to_sampler(), Sampler::ParentBased(_)));
}

#[test]
fn traces_suffix_is_appended_once() {
    let cases = [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
        ("http://collector:4318/v1/traces/", "http://collector:4318/v1/traces"),
        ("https://gw.example/otlp", "https://gw.example/otlp/v1/traces"),
        ("https://gw.example/otlp/", "https://gw.example/otlp/v1/traces"),
    ];
    for (base, want) in cases {
        assert_eq!(http_traces_endpoint(base), want, "{base}");
    }
}

#[test]
fn no_endpoint_means_no_export_and_ignores_bad_otel_vars() {
    let cfg = resolve_with(
        &TelemetryOptions::default(),
        &[
            (OTEL_EXPORTER_OTLP_PROTOCOL, "carrier-pigeon"),
            (OTEL_TRACES_SAMPLER, "bogus"),
            (OTEL_EXPORTER_OTLP_ENDPOINT, "  "),
        ],
    )
    .expect("no export, no validation");
    assert_eq!(cfg.export, None);
    assert_eq!(cfg.service_name, "skiff");
    assert_eq!(cfg.log_filter, DEFAULT_LOG_FILTER);
}

#[test]
fn generic_env_endpoint_gets_the_suffix_for_http() {
    let cfg = resolve_with(&TelemetryOptions::default(), &[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318")])
        .expect("valid");
    let export = cfg.export.expect("exporting");
    assert_eq!(export.endpoint, "http://c:4318/v1/traces");
    assert_eq!(export.protocol, Protocol::HttpProtobuf);
    assert_eq!(export.sampler, SamplerConfig::ParentBasedAlwaysOn);
}

#[test]
fn signal_env_endpoint_is_used_as_is_and_wins_over_generic() {
    let cfg = resolve_with(
        &TelemetryOptions::default(),
        &[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://generic:4318"),
            (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://traces:4318/custom"),
        ],
    )
    .expect("valid");
    assert_eq!(cfg.export.map(|e| e.endpoint).as_deref(), Some("http://traces:4318/custom"));
}

#[test]
fn grpc_endpoint_is_used_as_is() {
    let cfg = resolve_with(
        &TelemetryOptions::default(),
        &[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4317"), (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")],
    )
    .expect("valid");
    let export = cfg.export.expect("exporting");
    assert_eq!(export.endpoint, "http://c:4317");
    assert_eq!(export.protocol, Protocol::Grpc);
}

#[test]
fn signal_protocol_wins_over_generic_protocol() {
    let cfg = resolve_with(
        &TelemetryOptions::default(),
        &[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
            (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "http/protobuf"),
        ],
    )
    .expect("valid");
    assert_eq!(cfg.export.map(|e| e.protocol), Some(Protocol::HttpProtobuf));
}

#[test]
fn bad_env_protocol_is_an_error_naming_the_variable() {
    let err = resolve_with(
        &TelemetryOptions::default(),
        &[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"), (OTEL_EXPORTER_OTLP_PROTOCOL, "http/json")],
    )
    .expect_err("http/json is not supported");
    let msg = err.to_string();
    assert!(msg.contains(OTEL_EXPORTER_OTLP_PROTOCOL), "{msg}");
    assert!(msg.contains("\"http/json\""), "{msg}");
}

#[test]
fn options_override_the_environment() {
    let opts = TelemetryOptions {
        service_name: Some("from-opts".into()),
        endpoint: Some("http://opts:4318/".into()),
        protocol: Some(Protocol::HttpProtobuf),
        sampler_ratio: Some(0.1),
        log_filter: Some("debug,hyper=warn".into()),
    };
    let cfg = resolve_with(
        &opts,
        &[
            (OTEL_SERVICE_NAME, "from-env"),
            (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://env:4318/v1/traces"),
            (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
            (OTEL_TRACES_SAMPLER, "always_off"),
            (RUST_LOG, "trace"),
        ],
    )
    .expect("valid");
    assert_eq!(cfg.service_name, "from-opts");
    assert_eq!(cfg.log_filter, "debug,hyper=warn");
    assert_eq!(
        cfg.export,
        Some(ExportConfig {
            endpoint: "http://opts:4318/v1/traces".into(),
            protocol: Protocol::HttpProtobuf,
            sampler: SamplerConfig::ParentBasedTraceIdRatio(0.1),
        })
    );
}

#[test]
fn environment_is_used_when_options_are_unset() {
    let cfg = resolve_with(
        &TelemetryOptions::default(),
        &[
            (OTEL_SERVICE_NAME, "from-env"),
            (RUST_LOG, "warn"),
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_TRACES_SAMPLER, "traceidratio"),
            (OTEL_TRACES_SAMPLER_ARG, "0.5"),
        ],
    )
    .expect("valid");
    assert_eq!(cfg.service_name, "from-env");
    assert_eq!(cfg.log_filter, "warn");
    assert_eq!(cfg.export.map(|e| e.sampler), Some(SamplerConfig::TraceIdRatio(0.5)));
}

#[test]
fn out_of_range_sampler_ratio_option_is_rejected() {
    for bad in [1.01, -1.0, f64::NAN, f64::INFINITY] {
        let opts = TelemetryOptions {
            endpoint: Some("http://c:4318".into()),
            sampler_ratio: Some(bad),
            ..TelemetryOptions::default()
        };
        let err = resolve_with(&opts, &[]).expect_err("out of range");
        assert!(
            matches!(err, TelemetryError::InvalidSamplerArg { origin, .. } if origin.contains("sampler_ratio")),
            "{err:?}"
        );
    }
}
