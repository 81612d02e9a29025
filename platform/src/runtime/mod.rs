//! The seam between the platform and its runtimes.
//!
//! A [`Runtime`] turns a revision into pods; a [`Pod`] serves requests. The platform
//! knows revisions, routes and scaling; a runtime knows how to run one kind of workload
//! (Wasm components today; OCI containers later) and nothing of the platform.

mod outbound;
mod quantity;
mod spec;
pub mod wasm;

pub use outbound::PlatformOutbound;
pub use quantity::parse_quantity;
pub use spec::RevisionSpec;

use std::sync::Arc;

use axum::body::Body;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};

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

/// One running unit of a revision.
pub trait Pod: Send + Sync + 'static {
    fn serve(&self, request: Request<Body>) -> BoxFuture<'static, Result<Response<Body>, InvokeFailure>>;

    /// What it wrote, oldest first, and how many lines were dropped for space.
    fn logs(&self) -> (Vec<LogEntry>, u64);
}

/// Something that can run revisions.
pub trait Runtime: Send + Sync + 'static {
    /// Start one pod of `spec`: fetch, compile or unpack, prepare.
    fn start_pod<'a>(&'a self, spec: &'a RevisionSpec) -> BoxFuture<'a, Result<Arc<dyn Pod>, RuntimeError>>;
}
