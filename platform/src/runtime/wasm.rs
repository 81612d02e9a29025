//! The Wasm runtime behind the [`Runtime`] seam: components from the blob store or an OCI
//! registry, compiled once (cached on disk by digest), served in-process.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use skiff_runtime_oci::RegistryClient;
use skiff_runtime_wasm::{AllowList, InvokeError, Loaded, PodLog, PodSettings, WasmError, WasmPod, WasmRuntime};

use super::{InvokeFailure, LogEntry, PlatformOutbound, Pod, RevisionSpec, Runtime, RuntimeError};
use crate::blobs::{self, BlobStore};

/// Lines of guest output kept per pod.
const LOG_LINES: usize = 1000;

pub struct WasmAdapter {
    runtime: WasmRuntime,
    blobs: BlobStore,
    registry: RegistryClient,
    domain: String,
    ingress: SocketAddr,
}

impl WasmAdapter {
    pub fn new(
        runtime: WasmRuntime,
        blobs: BlobStore,
        registry: RegistryClient,
        domain: String,
        ingress: SocketAddr,
    ) -> Self {
        Self { runtime, blobs, registry, domain, ingress }
    }

    /// The compiled component for `spec`: from the compile cache when its digest is known
    /// (a restart or a scale from zero), else fetched and compiled.
    async fn component(&self, spec: &RevisionSpec) -> Result<Loaded, RuntimeError> {
        let known = blobs::local_digest(&spec.image).map(str::to_string).or_else(|| spec.pinned_digest.clone());
        if let Some(digest) = known.as_deref().and_then(|d| d.strip_prefix("sha256:").or(Some(d))) {
            let runtime = self.runtime.clone();
            let digest = digest.to_string();
            let cached = tokio::task::spawn_blocking(move || runtime.load_cached(&digest))
                .await
                .map_err(|e| RuntimeError::new("InternalError", e.to_string()))?
                .map_err(invalid)?;
            if let Some(loaded) = cached {
                return Ok(loaded);
            }
        }
        let bytes = match blobs::local_digest(&spec.image) {
            Some(digest) => self.blobs.get(digest).map_err(|e| {
                RuntimeError::new("ContainerMissing", format!("uploaded component {}: {e}", spec.image))
            })?,
            None => {
                let reference = spec.pinned_digest.as_ref().map_or(spec.image.clone(), |digest| pin(&spec.image, digest));
                let artifact = self
                    .registry
                    .pull_wasm(&reference)
                    .await
                    .map_err(|e| RuntimeError::new("ContainerMissing", format!("pulling {reference}: {e}")))?;
                artifact.bytes.to_vec()
            }
        };
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.load(&bytes))
            .await
            .map_err(|e| RuntimeError::new("InternalError", e.to_string()))?
            .map_err(invalid)
    }

    /// The registry digest a tag resolves to now, to pin in the revision's status.
    pub async fn resolve_digest(&self, image: &str) -> Result<String, RuntimeError> {
        if let Some(digest) = blobs::local_digest(image) {
            return Ok(format!("sha256:{digest}"));
        }
        self.registry
            .resolve(image)
            .await
            .map(|resolved| resolved.digest)
            .map_err(|e| RuntimeError::new("ContainerMissing", format!("resolving {image}: {e}")))
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

/// `registry/repo:tag` pinned to `digest`: `registry/repo@sha256:...`.
fn pin(image: &str, digest: &str) -> String {
    let repository = image.split('@').next().unwrap_or(image);
    let repository = match repository.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => repository,
    };
    format!("{repository}@{digest}")
}

fn invalid(err: WasmError) -> RuntimeError {
    match err {
        WasmError::NotAComponent(_) | WasmError::WrongWorld(_) => RuntimeError::new("InvalidComponent", err.to_string()),
        other => RuntimeError::new("InternalError", other.to_string()),
    }
}

impl Runtime for WasmAdapter {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn start_pod<'a>(&'a self, spec: &'a RevisionSpec) -> BoxFuture<'a, Result<Arc<dyn Pod>, RuntimeError>> {
        async move {
            let loaded = self.component(spec).await?;
            let allow = AllowList::new(spec.allowed_outbound_hosts.iter().map(String::as_str)).map_err(|e| {
                RuntimeError::new("InvalidAnnotation", format!("{}: {e}", super::spec::ALLOWED_OUTBOUND_HOSTS))
            })?;
            let log = PodLog::new(LOG_LINES);
            let settings = PodSettings {
                memory_limit_bytes: spec.memory_limit.unwrap_or(PodSettings::DEFAULT_MEMORY_LIMIT_BYTES),
                timeout: spec.timeout,
                env: spec.env.clone(),
                outbound: Arc::new(PlatformOutbound::new(&self.domain, self.ingress, allow)),
                log: log.clone(),
                name: spec.name.clone(),
            };
            let pod = self.runtime.prepare(&loaded, settings).map_err(invalid)?;
            Ok(Arc::new(WasmPodHandle { pod, log }) as Arc<dyn Pod>)
        }
        .boxed()
    }
}

struct WasmPodHandle {
    pod: WasmPod,
    log: PodLog,
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

    fn logs(&self) -> (Vec<LogEntry>, u64) {
        let lines = self
            .log
            .lines()
            .into_iter()
            .map(|l| LogEntry {
                time: time::OffsetDateTime::from(l.at)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                stream: l.stream.as_str(),
                line: l.text,
            })
            .collect();
        (lines, self.log.dropped())
    }
}

#[cfg(test)]
mod tests {
    use super::pin;

    #[test]
    fn tags_are_replaced_by_the_pinned_digest() {
        assert_eq!(pin("127.0.0.1:5000/hello:v1", "sha256:ab"), "127.0.0.1:5000/hello@sha256:ab");
        assert_eq!(pin("127.0.0.1:5000/hello", "sha256:ab"), "127.0.0.1:5000/hello@sha256:ab");
        assert_eq!(pin("r.io/a/b@sha256:00", "sha256:ab"), "r.io/a/b@sha256:ab");
    }
}
