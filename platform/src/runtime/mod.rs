//! The seam between the platform and its runtimes.
//!
//! A [`Runtime`] turns a revision into pods; a [`Pod`] serves requests. The platform
//! knows revisions, routes and scaling; a runtime knows how to run one kind of workload
//! (Wasm components today; OCI containers later) and nothing of the platform.

pub mod oci;
mod outbound;
mod quantity;
mod spec;
pub mod wasm;

pub use outbound::PlatformOutbound;
pub use quantity::parse_quantity;
pub use spec::{DEFAULT_PORT, Probe, RevisionSpec};

use std::sync::Arc;

use axum::body::Body;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use skiff_runtime_wasm::PodLog;

/// Why a revision cannot run: the reason and message of its conditions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct RuntimeError {
    /// CamelCase, as Knative's reasons (`ContainerMissing`, `InvalidComponent`, ...).
    pub reason: &'static str,
    pub message: String,
}

impl RuntimeError {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

/// Why one request to a pod failed: the answer the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeFailure {
    pub status: StatusCode,
    /// The `error.type` of the span: `trap`, `timeout`, `out_of_memory`, ...
    pub kind: &'static str,
    pub message: String,
}

/// A line a pod wrote (or the host wrote about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// RFC 3339.
    pub time: String,
    /// `stdout`, `stderr` or `host`.
    pub stream: &'static str,
    pub line: String,
}

/// Why a pod ended by itself: a condition's reason (`ExitCode3`, `OOMKilled`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodExit {
    pub reason: String,
    pub message: String,
}

/// One running unit of a revision.
pub trait Pod: Send + Sync + 'static {
    fn serve(&self, request: Request<Body>) -> BoxFuture<'static, Result<Response<Body>, InvokeFailure>>;

    /// Stop it, once it serves nothing more. A Wasm pod has nothing to stop: dropping it
    /// frees its component.
    fn stop(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// Its network address, if it has one of its own (a container: `podIP:port`).
    fn address(&self) -> Option<std::net::SocketAddr> {
        None
    }

    /// Resolves if the pod ends by itself (a container whose process exited). A Wasm pod
    /// never does.
    fn exited(&self) -> BoxFuture<'static, PodExit> {
        Box::pin(std::future::pending())
    }
}

/// Something that can run revisions.
pub trait Runtime: Send + Sync + 'static {
    /// Start pod `name` of `spec`, writing to `log`: fetch, compile or unpack, prepare; it is
    /// ready to serve when this returns.
    fn start_pod<'a>(
        &'a self,
        spec: &'a RevisionSpec,
        name: &'a str,
        log: PodLog,
    ) -> BoxFuture<'a, Result<Arc<dyn Pod>, RuntimeError>>;
}

/// A condition reason made at run time (`ExitCode3`), as the `&'static str` reasons are:
/// each distinct reason is kept once (a process can end in only so many ways).
pub fn intern_reason(reason: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static REASONS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut reasons = REASONS.lock().unwrap_or_else(|p| p.into_inner());
    let known = reasons.get_or_insert_with(HashSet::new);
    if let Some(reason) = known.get(reason.as_str()) {
        return reason;
    }
    let kept: &'static str = Box::leak(reason.into_boxed_str());
    known.insert(kept);
    kept
}

/// What a revision's pods wrote, oldest first, and how many lines were dropped for space.
pub fn log_entries(log: &PodLog) -> (Vec<LogEntry>, u64) {
    let lines = log
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
    (lines, log.dropped())
}
