//! An event recorder, as Knative's e2e tests use one: an HTTP server in the test process that
//! subscribers and sinks point at (`uri`). It keeps every request it gets and answers each path
//! with a script of responses, so that a test can make a subscriber fail, then succeed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request the recorder got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    /// A header as text (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// A scripted answer: status, extra headers, body.
pub type Answer = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Per path, the answers still to give; the last one repeats.
    scripts: Mutex<HashMap<String, Vec<Answer>>>,
    arrived: tokio::sync::Notify,
}

pub struct Recorder {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let answer = {
        let mut scripts = shared.scripts.lock().unwrap_or_else(|p| p.into_inner());
        match scripts.get_mut(&path) {
            Some(script) if script.len() > 1 => Some(script.remove(0)),
            Some(script) => script.first().cloned(),
            None => None,
        }
    };
    shared.received.lock().unwrap_or_else(|p| p.into_inner()).push(Received {
        path,
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    shared.arrived.notify_waiters();
    let (status, headers, body) = answer.unwrap_or((200, Vec::new(), String::new()));
    let mut response = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::from_bytes(name.as_bytes()), axum::http::HeaderValue::from_str(&value))
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

impl Recorder {
    /// Listen on a free loopback port, on a runtime of its own (so that it outlives any test's).
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the recorder");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("recorder address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new().fallback(record).with_state(shared.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("recorder runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Self { url, shared, _stop: stop }
    }

    /// Answer requests to `path` with these, in order; the last one repeats.
    pub fn script(&self, path: &str, answers: Vec<Answer>) {
        self.shared.scripts.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string(), answers);
    }

    /// Everything `path` got so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Wait until `path` got at least `count` requests; panics after `timeout`.
    pub async fn wait_for(&self, path: &str, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let got = self.received(path);
            if got.len() >= count {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{path} got {} requests, not {count}, within {timeout:?}", got.len());
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), arrived).await;
        }
    }
}
