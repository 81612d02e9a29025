//! The container runtime behind the [`Runtime`] seam: images from OCI registries, unpacked
//! once, each pod a container under runc or crun with its own network namespace and
//! address, reached by the ingress over HTTP at `podIP:port`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use http::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use skiff_runtime_oci::RegistryClient;
use skiff_runtime_oci::container::{
    Container, ContainerConfig, ContainerRuntime, Exit, RuntimeKind, merge_args,
};
use skiff_runtime_oci::image::{Image, ImageStore};
use skiff_runtime_wasm::{LogStream, PodLog};
use tokio::io::AsyncWriteExt;

use super::{InvokeFailure, Pod, PodExit, Probe, RevisionSpec, Runtime, RuntimeError};

/// The longest a container may take to become ready before its start counts as failed.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// How long a stopping container gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct OciAdapter {
    registry: RegistryClient,
    images: ImageStore,
    containers: Arc<ContainerRuntime>,
    client: Client<HttpConnector, Body>,
}

impl OciAdapter {
    /// Images under `{data_dir}/oci`, containers (bundles, state) under `{data_dir}/containers`.
    pub async fn new(data_dir: &Path, kind: RuntimeKind, registry: RegistryClient) -> Result<Self, String> {
        let images = ImageStore::open(&data_dir.join("oci")).map_err(|e| e.to_string())?;
        let containers =
            ContainerRuntime::new(kind, &data_dir.join("containers")).await.map_err(|e| e.to_string())?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(Self { registry, images, containers: Arc::new(containers), client })
    }

    /// Pull the revision's image (pinned by digest from then on) and unpack it, so that its
    /// pods start without the registry. Registry failures keep the registry's message.
    pub async fn prepare(&self, spec: &RevisionSpec) -> Result<Image, RuntimeError> {
        let reference = spec.pinned_image.as_deref().unwrap_or(&spec.image);
        self.images
            .pull(&self.registry, reference)
            .await
            .map_err(|e| RuntimeError::new("ContainerMissing", format!("pulling {reference}: {e}")))
    }
}

impl OciAdapter {
    /// Remove unpacked images and blobs no revision in `keep` (pinned references) runs.
    pub async fn prune(&self, keep: std::collections::HashSet<String>) {
        let images = self.images.clone();
        let pruned = tokio::task::spawn_blocking(move || images.prune(&keep)).await;
        match pruned {
            Ok(Err(err)) => tracing::warn!("pruning images: {err}"),
            Err(err) => tracing::warn!("pruning images: {err}"),
            Ok(Ok(())) => {}
        }
    }
}

/// The environment of a container: the image's, then Knative's, then the revision's.
fn environment(image: &Image, spec: &RevisionSpec) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: &str| {
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    };
    for pair in &image.config.env {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        set(key, value);
    }
    set("PORT", &spec.port.to_string());
    set("K_REVISION", &spec.name);
    if let Some(service) = &spec.service {
        set("K_SERVICE", service);
        set("K_CONFIGURATION", service);
    }
    for (key, value) in &spec.env {
        set(key, value);
    }
    env
}

/// A condition reason and message for how a container ended.
fn describe(exit: &Exit) -> PodExit {
    if exit.oom_killed {
        return PodExit {
            reason: "OOMKilled".into(),
            message: "the container was killed for using more memory than its limit".into(),
        };
    }
    match (exit.code, exit.signal) {
        (Some(code), _) => PodExit {
            reason: format!("ExitCode{code}"),
            message: format!("the container exited with code {code}"),
        },
        (None, Some(signal)) => PodExit {
            reason: format!("Signal{signal}"),
            message: format!("the container was killed by signal {signal}"),
        },
        (None, None) => PodExit { reason: "Error".into(), message: "the container ended".into() },
    }
}

impl Runtime for OciAdapter {
    fn start_pod<'a>(
        &'a self,
        spec: &'a RevisionSpec,
        name: &'a str,
        log: PodLog,
    ) -> BoxFuture<'a, Result<Arc<dyn Pod>, RuntimeError>> {
        async move {
            let image = self.prepare(spec).await?;
            let command = spec.command.as_deref();
            let args =
                merge_args(&image.config.entrypoint, &image.config.cmd, command, spec.args.as_deref());
            if args.is_empty() {
                return Err(RuntimeError::new(
                    "InvalidContainer",
                    format!("image {} has no entrypoint or command, and the container gives none", spec.image),
                ));
            }
            let config = ContainerConfig {
                id: name.to_string(),
                rootfs: image.rootfs.clone(),
                args,
                env: environment(&image, spec),
                working_dir: spec
                    .working_dir
                    .clone()
                    .or_else(|| image.config.working_dir.clone())
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "/".into()),
                user: image.config.user.clone().filter(|u| !u.is_empty()),
                hostname: name.to_string(),
                memory_limit: spec.memory_limit,
                cpu_limit_millis: spec.cpu_limit_millis,
            };
            let sink = log.clone();
            let write = Arc::new(move |stream: &'static str, line: String| {
                let stream = if stream == "stderr" { LogStream::Stderr } else { LogStream::Stdout };
                sink.push(stream, line);
            });
            let started = Instant::now();
            let container = self.containers.start(config, write).await.map_err(|e| {
                RuntimeError::new("ContainerCreateFailed", format!("starting a container of {}: {e}", spec.name))
            })?;
            let address = SocketAddr::from((container.ip(), spec.port));
            let container = Arc::new(container);
            let exited = {
                let container = container.clone();
                async move { describe(&container.wait().await) }.boxed().shared()
            };
            if let Err(err) = ready(&container, address, spec.readiness.as_ref(), exited.clone()).await {
                container.stop(STOP_GRACE).await;
                return Err(err);
            }
            tracing::debug!(pod = name, %address, elapsed_ms = started.elapsed().as_millis() as u64, "container ready");
            log.push(LogStream::Host, format!("pod {name} ready at {address}"));
            Ok(Arc::new(ContainerPod { container, address, client: self.client.clone(), exited }) as Arc<dyn Pod>)
        }
        .boxed()
    }
}

/// Wait until the container is ready: its probe (or a TCP connection to its port) succeeds.
async fn ready(
    container: &Container,
    address: SocketAddr,
    probe: Option<&Probe>,
    exited: Shared<BoxFuture<'static, PodExit>>,
) -> Result<(), RuntimeError> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(exit) = exited.clone().now_or_never() {
            return Err(RuntimeError::new(
                super::intern_reason(exit.reason),
                format!("{} before it became ready", exit.message),
            ));
        }
        if probe_once(address, probe).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::new(
                "ProgressDeadlineExceeded",
                format!(
                    "container {} did not become ready on port {} within {READY_WITHIN:?}",
                    container.id(),
                    address.port()
                ),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// One probe, given at most [`PROBE_TIMEOUT`]: a lost SYN is tried again soon rather than
/// after TCP's own retransmission backoff.
async fn probe_once(address: SocketAddr, probe: Option<&Probe>) -> bool {
    let target = |port: Option<u16>| SocketAddr::new(address.ip(), port.unwrap_or(address.port()));
    let connect = |to: SocketAddr| async move {
        matches!(tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(to)).await, Ok(Ok(_)))
    };
    match probe {
        Some(Probe::Http { path, port }) => http_probe(target(*port), path).await,
        Some(Probe::Tcp { port }) => connect(target(*port)).await,
        None => connect(address).await,
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// A GET of `path` answered 2xx or 3xx.
async fn http_probe(address: SocketAddr, path: &str) -> bool {
    use tokio::io::AsyncReadExt;
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: skiff-probe\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(Duration::from_secs(1), attempt).await {
        Ok(Ok(head)) => matches!(head.get(9), Some(b'2' | b'3')),
        _ => false,
    }
}

/// A container serving as a pod: requests are proxied to `podIP:port`.
struct ContainerPod {
    container: Arc<Container>,
    address: SocketAddr,
    client: Client<HttpConnector, Body>,
    exited: Shared<BoxFuture<'static, PodExit>>,
}

impl Pod for ContainerPod {
    fn serve(&self, request: Request<Body>) -> BoxFuture<'static, Result<Response<Body>, InvokeFailure>> {
        let (mut parts, body) = request.into_parts();
        // The container continues the request's trace if it is instrumented.
        skiff_tracing::inject_span(&tracing::Span::current(), &mut parts.headers);
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
        let client = self.client.clone();
        let address = self.address;
        async move {
            parts.uri = format!("http://{address}{path}").parse().map_err(|e| InvokeFailure {
                status: StatusCode::BAD_REQUEST,
                kind: "bad_request",
                message: format!("cannot forward {path:?}: {e}"),
            })?;
            let response =
                client.request(Request::from_parts(parts, body)).await.map_err(|e| InvokeFailure {
                    status: StatusCode::BAD_GATEWAY,
                    kind: "container_unreachable",
                    message: format!("the container at {address} did not answer: {e}"),
                })?;
            Ok(response.map(Body::new))
        }
        .boxed()
    }

    fn stop(&self) -> BoxFuture<'static, ()> {
        let container = self.container.clone();
        async move { container.stop(STOP_GRACE).await }.boxed()
    }

    fn exited(&self) -> BoxFuture<'static, PodExit> {
        self.exited.clone().boxed()
    }

    fn address(&self) -> Option<SocketAddr> {
        Some(self.address)
    }
}
