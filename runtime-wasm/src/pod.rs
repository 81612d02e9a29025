//! A Wasm "pod": a pre-instantiated `wasi:http/proxy` component with its own settings,
//! serving each request in a fresh store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::{Instrument, field};
use wasmtime::{Store, Trap, WasmBacktrace};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::body::{self, BoxError, ResponseBody};
use crate::engine::RuntimeInner;
use crate::error::InvokeError;
use crate::limits::{self, MemoryLimiter};
use crate::log::{LogStream, PodLog};
use crate::outbound::{AllowList, OutboundPolicy};
use crate::store::Host;

/// The settings of one pod (one revision's instance set).
#[derive(Clone)]
pub struct PodSettings {
    /// Total linear memory one request's instance may use (`resources.limits.memory`);
    /// growth beyond it fails inside the guest, reported as
    /// [`InvokeError::OutOfMemory`] if the guest dies of it.
    pub memory_limit_bytes: u64,
    /// The longest a request may run, guest code and body streaming included
    /// (`timeoutSeconds`); the guest is then stopped and its CPU freed.
    pub timeout: Duration,
    /// The guest's environment variables.
    pub env: Vec<(String, String)>,
    /// Decides on every outbound HTTP request.
    pub outbound: Arc<dyn OutboundPolicy>,
    /// Where guest stdout and stderr (and host messages about the guest) go.
    pub log: PodLog,
    /// Name for spans and logs (the revision's name).
    pub name: String,
}

impl PodSettings {
    /// Default memory limit: 128 MiB.
    pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 128 << 20;
    /// Default timeout: 300 s, as Knative's `timeoutSeconds`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

    /// Defaults for a pod called `name`: 128 MiB, 300 s, no environment, no outbound
    /// access, a log of [`PodLog::DEFAULT_CAPACITY_LINES`] lines.
    pub fn new(name: impl Into<String>) -> Self {
        PodSettings {
            memory_limit_bytes: Self::DEFAULT_MEMORY_LIMIT_BYTES,
            timeout: Self::DEFAULT_TIMEOUT,
            env: Vec::new(),
            outbound: Arc::new(AllowList::deny_all()),
            log: PodLog::default(),
            name: name.into(),
        }
    }
}

impl std::fmt::Debug for PodSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSettings")
            .field("name", &self.name)
            .field("memory_limit_bytes", &self.memory_limit_bytes)
            .field("timeout", &self.timeout)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A prepared component serving requests. Cheap to clone; clones serve concurrently.
#[derive(Clone)]
pub struct WasmPod {
    inner: Arc<PodInner>,
}

struct PodInner {
    runtime: Arc<RuntimeInner>,
    pre: ProxyPre<Host>,
    digest: String,
    settings: PodSettings,
    invocations: AtomicU64,
}

impl std::fmt::Debug for WasmPod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPod")
            .field("digest", &self.inner.digest)
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl WasmPod {
    pub(crate) fn new(
        runtime: Arc<RuntimeInner>,
        pre: ProxyPre<Host>,
        digest: String,
        settings: PodSettings,
    ) -> Self {
        WasmPod {
            inner: Arc::new(PodInner { runtime, pre, digest, settings, invocations: AtomicU64::new(0) }),
        }
    }

    /// Serves one request in a fresh instance (a new store from the pre-instantiated
    /// component: pooled slots, copy-on-write memory images), streaming the request body
    /// in and the response body out. Must be called within a tokio runtime.
    ///
    /// Returns once the guest has sent its response head; the guest keeps running (in a
    /// spawned task) while it streams the body, within the pod's timeout.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
    ) -> Result<http::Response<ResponseBody>, InvokeError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let pod = &self.inner;
        let invocation = pod.invocations.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "invoke",
            otel.name = %format!("invoke {}", pod.settings.name),
            otel.kind = "internal",
            "faas.name" = %pod.settings.name,
            "faas.trigger" = skiff_tracing::conventions::FAAS_TRIGGER_HTTP,
            "faas.invocation_id" = %format!("{}-{invocation}", pod.settings.name),
            "faas.coldstart" = request.extensions().get::<skiff_tracing::ColdStart>().is_some(),
            "http.request.method" = %request.method(),
            "url.path" = request.uri().path(),
            "http.response.status_code" = field::Empty,
            "error.type" = field::Empty,
            "otel.status_code" = field::Empty,
        );
        let result = self.invoke(request).instrument(span.clone()).await;
        match &result {
            Ok(response) => {
                span.record("http.response.status_code", response.status().as_u16());
            }
            Err(error) => {
                span.record("error.type", error.kind());
                span.record("otel.status_code", "ERROR");
            }
        }
        result
    }

    async fn invoke<B>(&self, request: http::Request<B>) -> Result<http::Response<ResponseBody>, InvokeError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let pod = &self.inner;
        let settings = &pod.settings;
        let started = Instant::now();
        // A timeout too large to add is as good as none.
        let deadline =
            started.checked_add(settings.timeout).unwrap_or(started + Duration::from_secs(1 << 32));

        let mut store = Store::new(
            &pod.runtime.engine,
            Host::new(&settings.env, &settings.log, &settings.outbound, settings.memory_limit_bytes),
        );
        store.limiter(|host| &mut host.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(limits::epoch_deadline(deadline));

        let request = prepare_request(request);
        let scheme = if request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let (response_tx, response_rx) = oneshot::channel();
        let mut http = store.data_mut().http();
        let incoming = http
            .new_incoming_request(scheme, request.map(body::incoming))
            .map_err(|e| InvokeError::Internal(format!("cannot pass the request to the guest: {e:#}")))?;
        let outparam = http
            .new_response_outparam(response_tx)
            .map_err(|e| InvokeError::Internal(format!("cannot create the response slot: {e:#}")))?;

        let (outcome_tx, mut outcome_rx) = oneshot::channel();
        let pre = pod.pre.clone();
        let timeout = settings.timeout;
        // Beyond the deadline, the epoch callback traps a guest that is running; this
        // wall-clock bound stops one that waits on the host (a body, an outbound call).
        let grace = pod.runtime.config.epoch_tick * 2;
        let log = settings.log.clone();
        let mut task = AbortOnDrop(Some(tokio::spawn(
            async move {
                let run = async {
                    let proxy = pre.instantiate_async(&mut store).await.map_err(Failure::Instantiate)?;
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, incoming, outparam)
                        .await
                        .map_err(Failure::Guest)
                };
                let outcome = match tokio::time::timeout(timeout.saturating_add(grace), run).await {
                    Ok(result) => classify(result, &store.data().limiter, timeout),
                    Err(_elapsed) => Err(InvokeError::Timeout { after: timeout }),
                };
                if let Err(error) = &outcome {
                    tracing::warn!("guest failed: {error}");
                    log_failure(&log, error);
                }
                // Send the outcome before the store (and with it the response body's
                // sender) is dropped, so that the body sees it when its stream ends.
                let _ = outcome_tx.send(outcome.clone());
                drop(store);
                outcome
            }
            .in_current_span(),
        )));

        match response_rx.await {
            Ok(Ok(response)) => {
                // From here the guest runs on its own, streaming the body.
                task.detach();
                tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "response head sent");
                Ok(response.map(|inner| ResponseBody::new(inner, outcome_rx)))
            }
            Ok(Err(code)) => {
                Err(InvokeError::Trap { message: format!("guest answered with an error: {code:?}") })
            }
            // The guest never set its response: the task tells why.
            Err(_) => {
                let outcome = match outcome_rx.try_recv() {
                    Ok(outcome) => outcome,
                    Err(_) => task.outcome().await,
                };
                Err(outcome.err().unwrap_or(InvokeError::NoResponse))
            }
        }
    }

    /// sha256 hex of the component this pod runs.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// The pod's settings.
    pub fn settings(&self) -> &PodSettings {
        &self.inner.settings
    }

    /// The pod's log.
    pub fn log(&self) -> &PodLog {
        &self.inner.settings.log
    }
}

/// Aborts the invocation task (stopping the guest) if the caller stops waiting for the
/// response head, for example because the client went away.
struct AbortOnDrop(Option<tokio::task::JoinHandle<Result<(), InvokeError>>>);

impl AbortOnDrop {
    /// Lets the task run to its end whatever happens to this guard.
    fn detach(&mut self) {
        self.0 = None;
    }

    /// Waits for the task's outcome.
    async fn outcome(&mut self) -> Result<(), InvokeError> {
        match self.0.as_mut() {
            Some(task) => match task.await {
                Ok(outcome) => outcome,
                Err(join) => Err(InvokeError::Internal(format!("invocation task failed: {join}"))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// What went wrong in the invocation task, before classification.
enum Failure {
    Instantiate(wasmtime::Error),
    Guest(wasmtime::Error),
}

/// Tells out-of-memory, timeouts and other traps apart.
fn classify(
    result: Result<(), Failure>,
    limiter: &MemoryLimiter,
    timeout: Duration,
) -> Result<(), InvokeError> {
    let (error, instantiating) = match result {
        Ok(()) => return Ok(()),
        Err(Failure::Instantiate(e)) => (e, true),
        Err(Failure::Guest(e)) => (e, false),
    };
    if limiter.refused() {
        return Err(InvokeError::OutOfMemory { limit_bytes: limiter.limit_bytes() });
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return Err(InvokeError::Timeout { after: timeout });
    }
    if instantiating {
        Err(InvokeError::Instantiate(format!("{error:#}")))
    } else {
        Err(InvokeError::Trap { message: trap_message(&error) })
    }
}

/// What a trap was (first line), then the guest's backtrace when there is one.
fn trap_message(error: &wasmtime::Error) -> String {
    let mut message = error.root_cause().to_string();
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        message.push('\n');
        message.push_str(backtrace.to_string().trim_end());
    }
    message
}

/// Writes a failure the guest cannot report itself into the pod log.
fn log_failure(log: &PodLog, error: &InvokeError) {
    match error {
        InvokeError::Trap { .. } | InvokeError::Timeout { .. } | InvokeError::OutOfMemory { .. } => {
            let first_line = error.to_string();
            let first_line = first_line.lines().next().unwrap_or_default();
            log.push(LogStream::Host, first_line);
        }
        _ => {}
    }
}

/// `wasi:http` needs an authority: use the `host` header, else `localhost`.
fn prepare_request<B>(mut request: http::Request<B>) -> http::Request<B> {
    if request.uri().authority().is_none() && !request.headers().contains_key(http::header::HOST) {
        request.headers_mut().insert(http::header::HOST, http::HeaderValue::from_static("localhost"));
    }
    request
}
