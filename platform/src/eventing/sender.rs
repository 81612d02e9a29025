//! How eventing's requests leave: to Skiff's own hosts (services and brokers under the domain)
//! in process, through the data plane's front door, so that a delivery to a service at zero goes
//! through the activator and its trace continues; to anything else over the network.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use skiff_eventing::sender::{SendError, Sender, Sending};
use tower::ServiceExt;

/// The largest response body a delivery reads back (a reply event, or an error to report):
/// reading stops there, while the body streams.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// How long a connection to a subscriber may take to open. The whole attempt is bounded by
/// the delivery's timeout (`skiff_eventing::delivery::DEFAULT_ATTEMPT_TIMEOUT` without one).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct PlatformSender {
    /// `.{domain}`: hosts under it are Skiff's own.
    domain_suffix: String,
    /// The data plane, set once it is built (it needs the broker ingress, which needs this).
    data_plane: OnceLock<Router>,
    network: reqwest::Client,
}

impl PlatformSender {
    pub fn new(domain: &str) -> Arc<Self> {
        // A subscriber's redirect is its answer, not an instruction: a sink that answers 307
        // towards the API or a private address must not have the event follow it there.
        let network = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Arc::new(Self {
            domain_suffix: format!(".{}", domain.to_ascii_lowercase()),
            data_plane: OnceLock::new(),
            network,
        })
    }

    /// Route requests for Skiff's own hosts into `router` from now on.
    pub fn set_data_plane(&self, router: Router) {
        let _ = self.data_plane.set(router);
    }

    fn is_own(&self, host: &str) -> bool {
        let suffix = self.domain_suffix.len();
        host.len() > suffix
            && host.as_bytes()[host.len() - suffix..].eq_ignore_ascii_case(self.domain_suffix.as_bytes())
    }
}

async fn collect(body: Body) -> Result<Bytes, SendError> {
    axum::body::to_bytes(body, MAX_RESPONSE_BYTES)
        .await
        .map_err(|err| SendError(format!("reading the response: {err}")))
}

impl Sender for PlatformSender {
    fn send(&self, request: http::Request<Bytes>) -> Sending {
        let host = request.uri().host().unwrap_or("").to_string();
        if self.is_own(&host)
            && let Some(router) = self.data_plane.get().cloned()
        {
            return Box::pin(async move {
                let (mut parts, body) = request.into_parts();
                if let Ok(value) = http::HeaderValue::from_str(&host) {
                    parts.headers.insert(http::header::HOST, value);
                }
                let request = http::Request::from_parts(parts, Body::from(body));
                let response = match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let (parts, body) = response.into_parts();
                let body = collect(body).await?;
                Ok(http::Response::from_parts(parts, body))
            });
        }
        let client = self.network.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
                .map_err(|e| SendError(format!("building the request: {e}")))?;
            let response = client.execute(request).await.map_err(|e| SendError(describe(&e)))?;
            let mut out = http::Response::builder().status(response.status());
            if let Some(headers) = out.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = read_limited(response).await?;
            out.body(body).map_err(|e| SendError(e.to_string()))
        })
    }
}

/// The response body, refused as soon as it passes [`MAX_RESPONSE_BYTES`].
async fn read_limited(mut response: reqwest::Response) -> Result<Bytes, SendError> {
    let too_large =
        || SendError(format!("the response body is larger than the limit of {MAX_RESPONSE_BYTES} bytes"));
    if response.content_length().is_some_and(|length| length > MAX_RESPONSE_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| SendError(describe(&e)))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// reqwest's error with its causes, which say what actually failed (refused, reset, DNS).
fn describe(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
