//! The Wasm runtime behind the [`Runtime`] seam: components from the blob store or an OCI
//! registry, compiled once (cached on disk by digest), served in-process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use axum::body::Body;
use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use skiff_runtime_oci::RegistryClient;
use skiff_runtime_wasm::{
    AllowList, InvokeError, Loaded, PodLog, PodSettings, WasmError, WasmPod, WasmRuntime,
};
use tracing::Instrument;

use super::{InvokeFailure, PlatformOutbound, Pod, RevisionSpec, Runtime, RuntimeError};
use crate::blobs::{self, BlobStore};

pub struct WasmAdapter {
    runtime: WasmRuntime,
    blobs: BlobStore,
    registry: RegistryClient,
    domain: String,
    ingress: SocketAddr,
    /// Compiled components in use, shared by the pods that run them; a component whose
    /// last pod is gone (scaled to zero) is freed, and reloaded from the disk cache next time.
    in_use: Mutex<HashMap<String, Weak<Loaded>>>,
}

impl WasmAdapter {
    pub fn new(
        runtime: WasmRuntime,
        blobs: BlobStore,
        registry: RegistryClient,
        domain: String,
        ingress: SocketAddr,
    ) -> Self {
        Self { runtime, blobs, registry, domain, ingress, in_use: Mutex::default() }
    }

    /// Pin what `spec` runs: the image by digest and the component by the sha256 of its
    /// bytes, which are kept in the blob store. A revision that already knows both (a restart,
    /// a scale from zero) needs no registry.
    pub async fn resolve(&self, spec: &RevisionSpec) -> Result<Resolved, RuntimeError> {
        if let Some(digest) = blobs::local_digest(&spec.image) {
            return Ok(Resolved { pinned_image: spec.image.clone(), component_digest: digest.to_string() });
        }
        if let (Some(pinned), Some(digest)) = (&spec.pinned_image, &spec.component_digest)
            && self.blobs.contains(digest)
        {
            return Ok(Resolved { pinned_image: pinned.clone(), component_digest: digest.clone() });
        }
        let reference = spec.pinned_image.clone().unwrap_or_else(|| spec.image.clone());
        let artifact = self
            .registry
            .pull_wasm(&reference)
            .await
            .map_err(|e| RuntimeError::new("ContainerMissing", format!("pulling {reference}: {e}")))?;
        let blobs = self.blobs.clone();
        let digest = tokio::task::spawn_blocking(move || blobs.put(&artifact.bytes))
            .await
            .map_err(|e| RuntimeError::new("InternalError", e.to_string()))?
            .map_err(|e| RuntimeError::new("InternalError", format!("keeping {reference}: {e}")))?;
        Ok(Resolved { pinned_image: artifact.pinned, component_digest: digest })
    }

    /// The compiled component with `digest`, shared with the pods already running it.
    async fn shared_component(&self, digest: &str) -> Result<Arc<Loaded>, RuntimeError> {
        let lookup =
            || self.in_use.lock().unwrap_or_else(|p| p.into_inner()).get(digest).and_then(Weak::upgrade);
        if let Some(loaded) = lookup() {
            return Ok(loaded);
        }
        let loaded = Arc::new(self.component(digest).await?);
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        in_use.retain(|_, weak| weak.strong_count() > 0);
        // Another pod may have loaded it meanwhile: use one copy.
        match in_use.get(digest).and_then(Weak::upgrade) {
            Some(existing) => Ok(existing),
            None => {
                in_use.insert(digest.to_string(), Arc::downgrade(&loaded));
                Ok(loaded)
            }
        }
    }

    /// The compiled component with `digest`: from the compile cache, else compiled from
    /// the blob store.
    async fn component(&self, digest: &str) -> Result<Loaded, RuntimeError> {
        let (runtime, wanted) = (self.runtime.clone(), digest.to_string());
        let cached = tokio::task::spawn_blocking(move || runtime.load_cached(&wanted))
            .await
            .map_err(|e| RuntimeError::new("InternalError", e.to_string()))?
            .map_err(invalid)?;
        if let Some(loaded) = cached {
            return Ok(loaded);
        }
        let bytes = self
            .blobs
            .get(digest)
            .map_err(|e| RuntimeError::new("ContainerMissing", format!("component sha256:{digest}: {e}")))?;
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.load(&bytes))
            .await
            .map_err(|e| RuntimeError::new("InternalError", e.to_string()))?
            .map_err(invalid)
    }

    /// Whether `image` is a Wasm component (uploaded, or a Wasm OCI artifact).
    pub async fn is_wasm(&self, image: &str) -> Result<bool, RuntimeError> {
        if blobs::local_digest(image).is_some() {
            return Ok(true);
        }
        self.registry
            .is_wasm(image)
            .await
            .map_err(|e| RuntimeError::new("ContainerMissing", format!("looking up {image}: {e}")))
    }
}

/// What a revision runs, pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `registry/repo@sha256:...` (the manifest), or the `skiff.local` reference.
    pub pinned_image: String,
    /// sha256 of the component's bytes, hex.
    pub component_digest: String,
}

fn invalid(err: WasmError) -> RuntimeError {
    match err {
        WasmError::NotAComponent(_) | WasmError::WrongWorld(_) => {
            RuntimeError::new("InvalidComponent", err.to_string())
        }
        other => RuntimeError::new("InternalError", other.to_string()),
    }
}

impl Runtime for WasmAdapter {
    fn start_pod<'a>(
        &'a self,
        spec: &'a RevisionSpec,
        _name: &'a str,
        log: PodLog,
    ) -> BoxFuture<'a, Result<Arc<dyn Pod>, RuntimeError>> {
        async move {
            let digest = spec.component_digest.as_deref().ok_or_else(|| {
                RuntimeError::new(
                    "InternalError",
                    format!("revision {} was not resolved before its start", spec.name),
                )
            })?;
            let started = std::time::Instant::now();
            // Mapping the compiled code (shared with the revision's other pods, from the disk
            // cache after a scale to zero) and pre-instantiating it: the cold start's parts.
            let load_span = tracing::info_span!(
                "instance load",
                otel.name = %format!("load {}", spec.name),
                otel.kind = "internal",
                faas.name = %spec.name,
            );
            let loaded = self.shared_component(digest).instrument(load_span).await?;
            let loaded_in = started.elapsed();
            let allow =
                AllowList::new(spec.allowed_outbound_hosts.iter().map(String::as_str)).map_err(|e| {
                    RuntimeError::new(
                        "InvalidAnnotation",
                        format!("{}: {e}", super::spec::ALLOWED_OUTBOUND_HOSTS),
                    )
                })?;
            let settings = PodSettings {
                memory_limit_bytes: spec.memory_limit.unwrap_or(PodSettings::DEFAULT_MEMORY_LIMIT_BYTES),
                timeout: spec.timeout,
                env: spec.env.clone(),
                outbound: Arc::new(PlatformOutbound::new(&self.domain, self.ingress, allow)),
                log,
                name: spec.name.clone(),
            };
            let instantiate_span = tracing::info_span!(
                "instantiate",
                otel.name = %format!("instantiate {}", spec.name),
                otel.kind = "internal",
                faas.name = %spec.name,
            );
            let pod =
                instantiate_span.in_scope(|| self.runtime.prepare(&loaded, settings)).map_err(invalid)?;
            tracing::debug!(
                revision = %spec.name,
                load_us = loaded_in.as_micros() as u64,
                prepare_us = (started.elapsed() - loaded_in).as_micros() as u64,
                "pod prepared"
            );
            Ok(Arc::new(WasmPodHandle { pod, _component: loaded }) as Arc<dyn Pod>)
        }
        .boxed()
    }
}

/// A pod: its own pre-instantiated component (settings, memory budget) over the shared
/// compiled code, which it keeps alive.
struct WasmPodHandle {
    pod: WasmPod,
    _component: Arc<Loaded>,
}

fn failure(err: InvokeError) -> InvokeFailure {
    let status = match err {
        InvokeError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        InvokeError::Instantiate(_) => StatusCode::SERVICE_UNAVAILABLE,
        InvokeError::NoResponse => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    InvokeFailure { status, kind: err.kind(), message: err.to_string() }
}

impl Pod for WasmPodHandle {
    fn serve(&self, request: Request<Body>) -> BoxFuture<'static, Result<Response<Body>, InvokeFailure>> {
        let pod = self.pod.clone();
        async move {
            let response = pod.handle(request).await.map_err(failure)?;
            Ok(response.map(Body::new))
        }
        .boxed()
    }
}
