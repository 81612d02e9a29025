//! The seam between eventing and whatever carries its HTTP requests: the platform sends to
//! its own services in process (through its ingress and activator) and to anything else over
//! the network. Eventing knows nothing of how.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A request that got no HTTP response at all (refused, reset, timed out): Knative retries these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// What a [`Sender`] returns.
pub type Sending = Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, SendError>> + Send + 'static>>;

/// Carries one HTTP request (a delivery to a subscriber or a dead letter sink, a PingSource's
/// event) to its URI and brings back the whole response. Timeouts are the caller's.
pub trait Sender: Send + Sync + 'static {
    fn send(&self, request: http::Request<Bytes>) -> Sending;
}
