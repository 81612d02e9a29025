//! `skiff up`: the whole platform in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, HostPolicy};
use crate::autoscaler::AutoscalerConfig;
use crate::blobs::BlobStore;
use crate::controller::{self, Context};
use crate::dataplane::{self, ActivatorLimits, Tables};
use crate::eventing::{self, Eventing};
use crate::listen::{self, ListenerLimits};
use crate::objects::Objects;
use crate::resources::NAMESPACES;
use crate::runtime::oci::OciAdapter;
use crate::runtime::wasm::WasmAdapter;
use crate::scaling::Scaling;
use crate::security::{Credentials, ServingTls};
use crate::store::{RedbStore, SharedStore};
use skiff_runtime_oci::container::RuntimeKind;

/// What `skiff up` is told on its command line.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Where the state lives (`skiff.redb`).
    pub data_dir: PathBuf,
    /// The data plane listener (ingress).
    pub listen: SocketAddr,
    /// The management API listener.
    pub api_listen: SocketAddr,
    /// The domain services answer under: `{name}.{namespace}.{domain}`.
    pub domain: String,
    /// The bearer token the API requires and where it came from (`--token-file`,
    /// `SKIFF_TOKEN`); without one, the data directory's own (made on the first start).
    pub token: Option<(String, String)>,
    /// The API's certificate and key; without them, one signed by the data directory's CA.
    pub tls: Option<crate::security::TlsFiles>,
    /// More names the API answers to (its certificate and the `Host` check).
    pub api_hosts: Vec<String>,
    /// How many requests and watches the API serves at once.
    pub api_inflight: api::InflightLimits,
    /// The autoscaler's cluster defaults.
    pub autoscaler: AutoscalerConfig,
    /// How the activator bounds the requests it holds.
    pub activator: ActivatorLimits,
    /// The OCI runtime containers run under.
    pub oci_runtime: RuntimeKind,
    /// How long brokers keep events.
    pub event_retention: skiff_eventing::log::Retention,
    /// Trace export; each unset field leaves it to the `OTEL_*` variables.
    pub telemetry: skiff_tracing::TelemetryOptions,
}

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Run the platform until SIGTERM or SIGINT.
pub async fn run(options: UpOptions) -> anyhow::Result<()> {
    let telemetry =
        skiff_tracing::init("skiff", options.telemetry.clone()).context("setting up telemetry")?;
    let result = serve(options).await;
    // Flushing blocks; the telemetry crate does it off the runtime.
    telemetry.shutdown();
    result
}

async fn serve(options: UpOptions) -> anyhow::Result<()> {
    crate::security::make_private(&options.data_dir)?;
    let credentials = Credentials::load_or_generate(&options.data_dir, options.token.clone())?;
    let store: SharedStore = Arc::new(RedbStore::open(&options.data_dir.join("skiff.redb"))?);
    let objects = Objects::new(store.clone());
    ensure_default_namespace(&objects).await?;

    let api_listener = TcpListener::bind(options.api_listen)
        .await
        .with_context(|| format!("listening for the API on {}", options.api_listen))?;
    let data_listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening for the data plane on {}", options.listen))?;
    let api_address = api_listener.local_addr()?;
    let data_address = data_listener.local_addr()?;
    // Guests reach the platform's services through the ingress, on loopback if it listens everywhere.
    let ingress_address = crate::listen::reachable(data_address);
    let api_url = format!("https://{}", crate::listen::reachable(api_address));
    let tls = api_tls(&options, api_address)?;
    let kubeconfig = credentials.write_kubeconfig(&options.data_dir, &api_url, tls.ca_pem.as_deref())?;

    let blobs = BlobStore::open(&options.data_dir)
        .with_context(|| format!("opening the blob store in {}", options.data_dir.display()))?;
    let runtime = skiff_runtime_wasm::WasmRuntime::new(skiff_runtime_wasm::RuntimeConfig {
        cache_dir: options.data_dir.join("cache"),
        ..Default::default()
    })
    .context("starting the Wasm runtime")?;
    let registry = skiff_runtime_oci::RegistryClient::new(skiff_runtime_oci::Credentials::from_env());
    let oci = match OciAdapter::new(&options.data_dir, options.oci_runtime, registry.clone()).await {
        Ok(oci) => Ok(Arc::new(oci)),
        Err(why) => {
            tracing::warn!("containers cannot run: {why}");
            Err(why)
        }
    };
    let wasm =
        Arc::new(WasmAdapter::new(runtime, blobs.clone(), registry, options.domain.clone(), ingress_address));
    let tables = Arc::new(Tables::new(&options.domain));
    let forgotten = Scaling::forget_old_pods(&store).await.context("removing pods of an earlier run")?;
    if forgotten > 0 {
        tracing::info!(pods = forgotten, "removed the pods of an earlier run; autoscalers start them afresh");
    }
    crate::autoscaler::set_cluster_defaults(options.autoscaler.clone());
    let scaling = Scaling::new(options.autoscaler.clone(), objects.clone(), tables.clone());
    let eventing = Eventing::open(&options.data_dir, &options.domain, store.clone(), options.event_retention)
        .context("starting eventing")?;

    let shutdown = CancellationToken::new();
    let context = Context {
        objects: objects.clone(),
        domain: options.domain.clone(),
        tables: tables.clone(),
        wasm,
        oci,
        scaling: scaling.clone(),
        activator: options.activator,
        eventing: eventing.clone(),
    };
    let mut controllers = controller::start(context, shutdown.clone());
    controllers.push(tokio::spawn(tables.clone().follow_routes(store.clone(), shutdown.clone())));
    controllers.push(tokio::spawn(scaling.follow_pod_deletions(store.clone(), shutdown.clone())));

    let api = api::router(
        ApiState::new(
            store.clone(),
            blobs,
            tables.clone(),
            &credentials,
            HostPolicy::new(api_address, &options.api_hosts),
            api_address.to_string(),
            shutdown.clone(),
        )
        .with_eventing(eventing.clone())
        .with_inflight_limits(options.api_inflight),
    );
    let brokers = axum::Router::new().fallback(eventing::ingress::handle).with_state(eventing.clone());
    let data = dataplane::router(tables.clone(), Some((eventing.ingress_host.clone(), brokers)));
    eventing.sender.set_data_plane(data.clone());
    controllers.push(tokio::spawn(eventing.clone().compact_periodically(shutdown.clone())));
    // Every file the stores made is private too.
    crate::security::make_private(&options.data_dir)?;
    let api_server = tokio::spawn(listen::serve(
        api_listener,
        api,
        Some(tls.acceptor),
        ListenerLimits::API,
        shutdown.clone(),
    ));
    let data_server =
        tokio::spawn(listen::serve(data_listener, data, None, ListenerLimits::DATA_PLANE, shutdown.clone()));

    tracing::info!(api = %api_url, data = %data_address, domain = %options.domain, "skiff is up");
    println!(
        "skiff is up: API {api_url}  data plane http://{data_address}  domain {}  kubeconfig {}",
        options.domain,
        kubeconfig.display()
    );

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    shutdown.cancel();
    let drained = tokio::time::timeout(DRAIN_GRACE, async {
        let _ = api_server.await;
        let _ = data_server.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_GRACE:?}; stopping anyway");
    }
    for task in controllers {
        task.abort();
    }
    // Dispatchers commit their cursors as far as they delivered.
    if tokio::time::timeout(DRAIN_GRACE, eventing.stop_all(DRAIN_GRACE / 2)).await.is_err() {
        tracing::warn!("trigger dispatchers still stopping after {DRAIN_GRACE:?}");
    }
    // Containers outlive nothing: each revision's pods stop (SIGTERM, then SIGKILL).
    let stops: Vec<_> = tables
        .revisions()
        .into_iter()
        .flat_map(|revision| {
            revision.stopped.cancel();
            revision.pods().iter().map(|pod| pod.pod.stop()).collect::<Vec<_>>()
        })
        .collect();
    if tokio::time::timeout(DRAIN_GRACE, futures::future::join_all(stops)).await.is_err() {
        tracing::warn!("pods still stopping after {DRAIN_GRACE:?}; leaving them to the next start's cleanup");
    }
    Ok(())
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// The API's TLS: the user's certificate, or one for loopback, the listen address and the
/// `--api-host` names, signed by the data directory's CA.
fn api_tls(options: &UpOptions, api_address: SocketAddr) -> anyhow::Result<ServingTls> {
    let mut names = vec!["localhost".to_string()];
    names.extend(options.api_hosts.iter().cloned());
    let mut addresses: Vec<std::net::IpAddr> =
        vec![std::net::Ipv4Addr::LOCALHOST.into(), std::net::Ipv6Addr::LOCALHOST.into()];
    if !api_address.ip().is_unspecified() {
        addresses.push(api_address.ip());
    }
    ServingTls::load_or_generate(&options.data_dir.join("pki"), options.tls.as_ref(), &names, &addresses)
        .context("setting up the API's TLS")
}

async fn ensure_default_namespace(objects: &Objects) -> anyhow::Result<()> {
    if objects.get(&NAMESPACES, None, "default").is_ok() {
        return Ok(());
    }
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    match objects.create(&NAMESPACES, None, namespace, false).await {
        Ok(_) => Ok(()),
        Err(err) if err.code() == 409 => Ok(()),
        Err(err) => Err(anyhow::anyhow!("creating the default namespace: {err}")),
    }
}
