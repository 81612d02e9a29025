//! [`init`]: the global subscriber and, when configured, the OTLP pipeline.

use std::io::IsTerminal as _;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{self, Config, ExportConfig};
use crate::filter::is_exporter_internal;
use crate::{Protocol, TelemetryError, TelemetryOptions};

/// How long [`Telemetry::shutdown`] lets the provider flush and shut down.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time allowed for the shutdown thread itself to report back.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// Instrumentation scope name of the spans produced through `tracing`.
const TRACER_NAME: &str = "skiff";

/// Installs the process-wide telemetry: a global `tracing` subscriber, the
/// W3C propagator and, when an OTLP endpoint is configured, span export.
///
/// The subscriber is a compact `fmt` layer writing to stderr, filtered by an
/// `EnvFilter` ([`TelemetryOptions::log_filter`], else `RUST_LOG`, else `"info"`), and, only
/// when an endpoint is configured, a `tracing-opentelemetry` layer feeding an
/// [`SdkTracerProvider`] with a batch span processor and an OTLP exporter (see
/// the crate docs for the variables), exporting spans at INFO and above whatever
/// the log filter says. Without an endpoint there is no
/// OpenTelemetry layer at all.
///
/// The global text-map propagator is set to W3C trace-context in every case
/// (the OpenTelemetry default is a no-op).
///
/// With [`Protocol::Grpc`] this must run inside a tokio runtime (tonic spawns
/// its connection task on it, and that runtime must outlive the exporter;
/// prefer a multi-thread runtime so [`Telemetry::shutdown`] can flush). With
/// [`Protocol::HttpProtobuf`] no runtime is needed: the blocking reqwest client
/// runs on the batch processor's own thread.
///
/// # Errors
///
/// Invalid protocol, sampler or log filter values, an exporter that cannot be
/// built (e.g. a malformed endpoint, or grpc outside a tokio runtime), or a
/// global subscriber that is already installed: `init` works once per process.
pub fn init(default_service_name: &str, opts: TelemetryOptions) -> Result<Telemetry, TelemetryError> {
    let config = config::resolve(default_service_name, &opts, &|key| std::env::var(key).ok())?;
    global::set_text_map_propagator(TraceContextPropagator::new());

    if tracing::dispatcher::has_been_set() {
        return Err(TelemetryError::AlreadyInitialized { source: None });
    }
    let env_filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|source| TelemetryError::InvalidLogFilter { value: config.log_filter.clone(), source })?;
    let fmt_layer = tracing_subscriber::fmt::layer()
        .compact()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);

    let provider = match &config.export {
        Some(export) => Some(build_provider(&config.service_name, export)?),
        None => None,
    };
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(TRACER_NAME))
            // Only what the semantic conventions ask for: no source location, thread or
            // busy/idle attributes on every span (they doubled what each span cost to build
            // and export), and no clock reads on every poll of an instrumented future.
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            // Skiff propagates explicitly from each span (`inject_span`); nothing reads the
            // thread's current OpenTelemetry context, so entering a span need not set it.
            .with_context_activation(false)
            // Export does not follow RUST_LOG: log verbosity and tracing are separate
            // choices. Spans and events at INFO and above are exported.
            .with_filter(
                filter_fn(|meta| {
                    *meta.level() <= tracing::Level::INFO && !is_exporter_internal(meta.target())
                })
                // The hint keeps `log` records and spans below INFO from being built at all
                // (without it, every `log::trace!` of a dependency reaches the subscriber).
                .with_max_level_hint(tracing::Level::INFO),
            )
    });

    let installed =
        tracing_subscriber::registry().with(fmt_layer.with_filter(env_filter)).with(otel_layer).try_init();
    if let Err(source) = installed {
        if let Some(provider) = provider {
            shutdown_provider(provider);
        }
        return Err(TelemetryError::AlreadyInitialized { source: Some(source) });
    }
    if let Some(provider) = &provider {
        global::set_tracer_provider(provider.clone());
    }

    let Config { service_name, export, .. } = config;
    Ok(Telemetry { provider, service_name, endpoint: export.map(|e| e.endpoint) })
}

/// Builds the OTLP exporter and a tracer provider with a batch processor.
fn build_provider(service_name: &str, export: &ExportConfig) -> Result<SdkTracerProvider, TelemetryError> {
    // reqwest is built without a bundled TLS provider in this workspace: the exporter's
    // HTTP client needs one installed (ring) before it is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let endpoint = export.endpoint.clone();
    let built = match export.protocol {
        Protocol::Grpc => {
            // tonic's lazily connecting channel spawns onto the current runtime
            // and panics without one: turn that into an error.
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(TelemetryError::NoTokioRuntime { endpoint });
            }
            SpanExporter::builder().with_tonic().with_endpoint(endpoint.clone()).build()
        }
        // The protocol is set explicitly: otherwise an OTEL_EXPORTER_OTLP_PROTOCOL
        // of "grpc" in the environment makes the HTTP builder fail.
        Protocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .build(),
    };
    let exporter = built.map_err(|source| TelemetryError::ExporterBuild { endpoint, source })?;

    // `Resource::builder` also applies OTEL_RESOURCE_ATTRIBUTES; the explicit
    // service name wins over anything set there.
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(export.sampler.to_sampler())
        .with_resource(resource)
        .build())
}

/// Flushes and shuts `provider` down on a fresh thread, waiting at most
/// [`SHUTDOWN_TIMEOUT`] (plus a grace period); returns whether it finished.
///
/// A fresh thread because the caller may be a tokio worker: blocking it on
/// the export (or dropping the blocking reqwest client there) can deadlock or
/// panic.
fn shutdown_provider(provider: SdkTracerProvider) -> bool {
    let (done_tx, done_rx) = mpsc::channel();
    let spawned = thread::Builder::new().name("skiff-otel-shutdown".into()).spawn(move || {
        let result = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        drop(provider);
        // The receiver may have given up already; nothing left to tell.
        let _ = done_tx.send(result);
    });
    let handle = match spawned {
        Ok(handle) => handle,
        Err(error) => {
            tracing::warn!(%error, "could not spawn the telemetry shutdown thread");
            return false;
        }
    };
    match done_rx.recv_timeout(SHUTDOWN_TIMEOUT + SHUTDOWN_GRACE) {
        Ok(result) => {
            if let Err(error) = result {
                tracing::warn!(%error, "telemetry shutdown reported an error; spans may be lost");
            }
            if handle.join().is_err() {
                tracing::warn!("the telemetry shutdown thread panicked");
            }
            true
        }
        Err(_) => {
            // Leave the thread detached rather than block the caller forever.
            tracing::warn!(
                timeout = ?SHUTDOWN_TIMEOUT,
                "telemetry shutdown did not finish in time; spans may be lost"
            );
            false
        }
    }
}

/// Handle to the telemetry installed by [`init`]; call [`Telemetry::shutdown`]
/// before the process exits so buffered spans are exported.
#[derive(Debug)]
#[must_use = "call Telemetry::shutdown before exit, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    service_name: String,
    endpoint: Option<String>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP (an endpoint was configured).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// The effective `service.name`.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The URL spans are exported to, when exporting (with `/v1/traces`
    /// already appended where the OTLP/HTTP rules call for it).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Flushes buffered spans and shuts the exporter down.
    ///
    /// Safe to call from inside a tokio runtime: the work happens on a fresh
    /// thread that is joined with a deadline of about five seconds, after
    /// which shutdown gives up (with a warning) instead of hanging. With grpc
    /// on a current-thread runtime the flush cannot make progress while this
    /// blocks, so spans still buffered then are lost. The `tracing` subscriber
    /// stays installed (logging keeps working); spans are no longer exported.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            shutdown_provider(provider);
        }
    }
}
