//! Bodies across the host/guest boundary: request bodies into `wasi:http`, and
//! [`ResponseBody`], the guest's response body streamed out.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::error::InvokeError;

/// A boxed error of a body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as `wasi:http` takes it.
pub(crate) fn incoming<B>(body: B) -> wasmtime_wasi_http::WasiBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(|e| http_error(e.into())).boxed_unsync()
}

/// Keeps hyper's errors as such (wasi:http maps them to error codes); anything else
/// reaches the guest as an internal error with its message.
fn http_error(error: BoxError) -> wasmtime_wasi_http::Error {
    match error.downcast::<hyper::Error>() {
        Ok(hyper) => wasmtime_wasi_http::Error::Hyper(*hyper),
        Err(other) => match other.downcast::<wasmtime_wasi_http::Error>() {
            Ok(http) => *http,
            Err(other) => wasmtime_wasi_http::Error::InternalError(Some(other.to_string())),
        },
    }
}

/// The body of a guest's response, streamed while the guest writes it.
///
/// `Send` but not `Sync`; use it with `axum::body::Body::new` or as a hyper response
/// body. Its frames are `Bytes`, its error a [`BoxError`]: when the guest fails after it
/// sent the response head (trap, timeout, out of memory), the stream ends with that
/// [`InvokeError`] rather than looking complete. (A guest failing after it finished the
/// body, in post-response work, may still make the end of the stream an error.)
pub struct ResponseBody {
    inner: HyperOutgoingBody,
    outcome: Option<oneshot::Receiver<Result<(), InvokeError>>>,
}

impl ResponseBody {
    pub(crate) fn new(inner: HyperOutgoingBody, outcome: oneshot::Receiver<Result<(), InvokeError>>) -> Self {
        ResponseBody { inner, outcome: Some(outcome) }
    }

    /// A complete body holding `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let inner = http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync();
        ResponseBody { inner, outcome: None }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                self.outcome = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                // The guest's stream ended: either it finished the body, or its store was
                // dropped after a failure, whose outcome is sent before the store goes.
                match self.outcome.take().map(|mut rx| rx.try_recv()) {
                    Some(Ok(Err(failure))) => Poll::Ready(Some(Err(Box::new(failure)))),
                    _ => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.outcome.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failure_after_the_head_ends_the_stream_with_an_error() {
        let (tx, rx) = oneshot::channel();
        let inner = http_body_util::Full::new(Bytes::from_static(b"partial"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut body = ResponseBody::new(inner, rx);
        tx.send(Err(InvokeError::Timeout { after: std::time::Duration::from_secs(1) })).unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "partial");
        let end = body.frame().await.unwrap().unwrap_err();
        assert!(end.to_string().contains("timed out"), "{end}");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_finished_guest_ends_the_stream_cleanly() {
        let (_tx, rx) = oneshot::channel();
        let inner = http_body_util::Full::new(Bytes::from_static(b"all"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let collected = ResponseBody::new(inner, rx).collect().await.unwrap().to_bytes();
        assert_eq!(collected, "all");
        assert_eq!(ResponseBody::full("x").collect().await.unwrap().to_bytes(), "x");
    }

    #[test]
    fn hyper_and_other_errors_map_to_wasi_http() {
        let other: BoxError = "disk on fire".into();
        assert!(
            matches!(http_error(other), wasmtime_wasi_http::Error::InternalError(Some(m)) if m == "disk on fire")
        );
    }
}
