//! One revision as the data plane sees it: its ready pods, the request metrics the
//! autoscaler reads, and the activator that holds requests while it has no capacity.
//!
//! Two paths lead to a pod, as in Knative:
//! * out of the activator's path (the revision has burst capacity to spare), a request goes
//!   straight to the least-loaded ready pod and queues there (`containerConcurrency`);
//! * in the activator's path (no pods, too little burst capacity, or
//!   `target-burst-capacity: -1`), the request is counted as held, the autoscaler is
//!   poked at once when nothing is ready, and the request waits, bounded in number and
//!   in time, until a pod is ready.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use skiff_runtime_wasm::PodLog;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::limiter::{Limiter, Overloaded};
use super::stats::{Histogram, RequestStats};
use crate::runtime::Pod;

/// A ready pod of a revision.
pub struct PodSlot {
    pub name: String,
    pub pod: Arc<dyn Pod>,
    /// Its `containerConcurrency` slots and their queue (none when unlimited).
    limiter: Option<Limiter>,
    in_flight: AtomicUsize,
}

impl PodSlot {
    pub fn new(name: String, pod: Arc<dyn Pod>, container_concurrency: u32) -> Self {
        Self { name, pod, limiter: Limiter::for_concurrency(container_concurrency, 1), in_flight: 0.into() }
    }

    /// Requests this pod is serving or queueing.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Take a slot of this pod, queueing behind its `containerConcurrency`.
    async fn admit(self: Arc<Self>) -> Result<Assigned, Refusal> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        // Counted from here, so a request queued on this pod counts against it.
        let mut assigned = Assigned { pod: self, permit: None, cold: false };
        let permit = match &assigned.pod.limiter {
            Some(limiter) => Some(limiter.acquire().await.map_err(Refusal::Overloaded)?),
            None => None,
        };
        assigned.permit = permit;
        Ok(assigned)
    }
}

/// A request's pod, and its slot there until this is dropped (after the body is out).
pub struct Assigned {
    pub pod: Arc<PodSlot>,
    permit: Option<OwnedSemaphorePermit>,
    /// The request waited in the activator for a pod to start: a cold start.
    pub cold: bool,
}

impl Drop for Assigned {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.pod.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a request got no pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The pod's `containerConcurrency` queue is full.
    Overloaded(Overloaded),
    /// The activator already holds as many requests as it may for this revision.
    ActivatorFull { depth: usize },
    /// No pod became ready in time.
    ColdStartTimeout(Duration),
    /// Starting a pod failed.
    StartFailed(String),
}

/// What the autoscaler last decided, for `/metrics` and the revision's status.
#[derive(Default)]
pub struct ScaleGauges {
    pub desired: AtomicU64,
    pub panicking: AtomicBool,
    stable_value: AtomicU64,
    panic_value: AtomicU64,
    excess_burst_capacity: AtomicU64,
    pub cold_starts: Histogram,
}

impl ScaleGauges {
    pub fn set_observed(&self, stable: f64, panic: f64, excess_burst_capacity: i64) {
        self.stable_value.store(stable.to_bits(), Ordering::Relaxed);
        self.panic_value.store(panic.to_bits(), Ordering::Relaxed);
        self.excess_burst_capacity.store(excess_burst_capacity as u64, Ordering::Relaxed);
    }

    /// (stable, panic) observed metric values and the excess burst capacity.
    pub fn observed(&self) -> (f64, f64, i64) {
        (
            f64::from_bits(self.stable_value.load(Ordering::Relaxed)),
            f64::from_bits(self.panic_value.load(Ordering::Relaxed)),
            self.excess_burst_capacity.load(Ordering::Relaxed) as i64,
        )
    }
}

/// How the activator bounds what it holds.
#[derive(Debug, Clone, Copy)]
pub struct ActivatorLimits {
    /// Requests held per revision while it has no capacity.
    pub queue_depth: usize,
    /// The longest a request is held (and no longer than the revision's own timeout).
    pub timeout: Duration,
}

impl Default for ActivatorLimits {
    fn default() -> Self {
        Self { queue_depth: 1000, timeout: Duration::from_secs(60) }
    }
}

/// The data plane's state of one revision.
pub struct Revision {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub service: Option<String>,
    pub timeout: Duration,
    pub container_concurrency: u32,
    /// What its pods wrote, across pods and scale-to-zero.
    pub log: PodLog,
    pub stats: Arc<RequestStats>,
    pub gauges: ScaleGauges,
    limits: ActivatorLimits,
    pods: RwLock<Arc<[Arc<PodSlot>]>>,
    /// Woken when pods come or go, or a start fails.
    changed: Notify,
    /// Wakes the autoscaler: a request waits with nothing ready.
    poke: Notify,
    poked_at: Mutex<Option<Instant>>,
    poked_span: Mutex<Option<tracing::Span>>,
    in_path: AtomicBool,
    held: AtomicUsize,
    /// The last failure to start a pod, while it stands.
    failure: Mutex<Option<String>>,
    /// Why its pods are unhealthy (a reason such as `ExitCode3` and a message), while they are.
    health: Mutex<Option<(String, String)>>,
    /// Spreads ties between equally loaded pods.
    turn: AtomicUsize,
    /// Cancelled when the revision leaves the data plane: its autoscaler stops.
    pub stopped: CancellationToken,
}

impl Revision {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        namespace: String,
        name: String,
        uid: String,
        service: Option<String>,
        timeout: Duration,
        container_concurrency: u32,
        log: PodLog,
        limits: ActivatorLimits,
    ) -> Self {
        Self {
            namespace,
            name,
            uid,
            service,
            timeout,
            container_concurrency,
            log,
            stats: Arc::default(),
            gauges: ScaleGauges::default(),
            limits,
            pods: RwLock::new(Arc::from(Vec::new())),
            changed: Notify::new(),
            poke: Notify::new(),
            poked_at: Mutex::new(None),
            poked_span: Mutex::new(None),
            in_path: AtomicBool::new(true),
            held: AtomicUsize::new(0),
            failure: Mutex::new(None),
            health: Mutex::new(None),
            turn: AtomicUsize::new(0),
            stopped: CancellationToken::new(),
        }
    }

    /// The ready pods.
    pub fn pods(&self) -> Arc<[Arc<PodSlot>]> {
        self.pods.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the ready pods and wake whoever waits for them.
    pub fn set_pods(&self, pods: Vec<Arc<PodSlot>>) {
        if !pods.is_empty() {
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        *self.pods.write().unwrap_or_else(|p| p.into_inner()) = Arc::from(pods);
        self.changed.notify_waiters();
    }

    /// A pod could not be started: requests held now fail with `message`, as do new ones
    /// until a pod is ready.
    pub fn set_failure(&self, message: Option<String>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = message;
        self.changed.notify_waiters();
    }

    /// Record why the pods are unhealthy, or that they are healthy again (`None`).
    pub fn set_health(&self, problem: Option<(String, String)>) {
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }

    /// Why the pods are unhealthy, if they are.
    pub fn health(&self) -> Option<(String, String)> {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether requests go through the activator.
    pub fn set_activator_in_path(&self, in_path: bool) {
        self.in_path.store(in_path, Ordering::Release);
    }

    pub fn activator_in_path(&self) -> bool {
        self.in_path.load(Ordering::Acquire)
    }

    /// Requests the activator holds.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Wait until a request pokes (it found no ready pod); returns when it first arrived.
    pub async fn poked(&self) -> Instant {
        loop {
            self.poke.notified().await;
            if let Some(at) = self.poked_at.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return at;
            }
        }
    }

    /// When a request poked, if one did since the last call (a poke [`Revision::poked`]
    /// did not see).
    pub fn take_poke(&self) -> Option<Instant> {
        self.poked_at.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The span of the request that poked first since the autoscaler last looked: the
    /// cold start it causes is a child of it, in that request's trace.
    pub fn take_poke_span(&self) -> Option<tracing::Span> {
        self.poked_span.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn poke(&self) {
        let mut at = self.poked_at.lock().unwrap_or_else(|p| p.into_inner());
        if at.is_none() {
            *at = Some(Instant::now());
            *self.poked_span.lock().unwrap_or_else(|p| p.into_inner()) = Some(tracing::Span::current());
            drop(at);
            self.poke.notify_one();
        }
    }

    fn least_loaded(&self) -> Option<Arc<PodSlot>> {
        let pods = self.pods();
        match pods.len() {
            0 => None,
            1 => Some(pods[0].clone()),
            n => {
                let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
                (0..n).map(|i| &pods[(start + i) % n]).min_by_key(|p| p.in_flight()).cloned()
            }
        }
    }

    /// A pod for one request: straight to the least-loaded pod when the activator is out
    /// of the path, else through the activator.
    pub async fn acquire(&self) -> Result<Assigned, Refusal> {
        if !self.activator_in_path()
            && let Some(pod) = self.least_loaded()
        {
            return pod.admit().await;
        }
        self.activate().await
    }

    /// The activator: hold the request (bounded) until a pod is ready, poking the
    /// autoscaler when none is.
    pub async fn activate(&self) -> Result<Assigned, Refusal> {
        if let Some(pod) = self.least_loaded() {
            return pod.admit().await;
        }
        if self.held.fetch_add(1, Ordering::AcqRel) >= self.limits.queue_depth {
            self.held.fetch_sub(1, Ordering::AcqRel);
            self.poke();
            return Err(Refusal::ActivatorFull { depth: self.limits.queue_depth });
        }
        let _held = Held(&self.held);
        // The wait is a span of its own in the request's trace: the cold start that made it slow.
        let span = tracing::info_span!(
            "activator",
            otel.name = %format!("activator wait {}", self.name),
            otel.kind = "internal",
            faas.name = %self.name,
            faas.coldstart = true,
            otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let waited = self.hold().instrument(span.clone()).await.map(|mut assigned| {
            assigned.cold = true;
            assigned
        });
        if let Err(refusal) = &waited {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", refusal.kind());
        }
        waited
    }

    /// Wait, held, until a pod is ready, the start fails or the patience runs out.
    async fn hold(&self) -> Result<Assigned, Refusal> {
        let patience = self.limits.timeout.min(self.timeout);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(pod) = self.least_loaded() {
                return pod.admit().await;
            }
            self.poke();
            if let Some(failure) = self.failure() {
                return Err(Refusal::StartFailed(failure));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Refusal::ColdStartTimeout(patience));
            }
        }
    }
}

impl Refusal {
    /// Its `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Overloaded(_) => "overloaded",
            Refusal::ActivatorFull { .. } => "activator_overflow",
            Refusal::ColdStartTimeout(_) => "cold_start_timeout",
            Refusal::StartFailed(_) => "start_failed",
        }
    }
}

struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::InvokeFailure;
    use axum::body::Body;
    use futures::future::BoxFuture;

    struct Nothing;

    impl Pod for Nothing {
        fn serve(
            &self,
            _: http::Request<Body>,
        ) -> BoxFuture<'static, Result<http::Response<Body>, InvokeFailure>> {
            Box::pin(async { Ok(http::Response::new(Body::empty())) })
        }
    }

    fn revision(depth: usize, timeout: Duration) -> Arc<Revision> {
        Arc::new(Revision::new(
            "default".into(),
            "hello-00001".into(),
            "uid".into(),
            None,
            Duration::from_secs(300),
            0,
            PodLog::default(),
            ActivatorLimits { queue_depth: depth, timeout },
        ))
    }

    #[tokio::test]
    async fn held_requests_poke_once_and_go_when_a_pod_is_ready() {
        let revision = revision(10, Duration::from_secs(5));
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let revision = revision.clone();
                tokio::spawn(async move { revision.acquire().await.map(|a| a.pod.name.clone()) })
            })
            .collect();
        let poked = tokio::time::timeout(Duration::from_secs(5), revision.poked()).await.unwrap();
        assert!(poked.elapsed() < Duration::from_secs(5));
        while revision.held() < 3 {
            tokio::task::yield_now().await;
        }
        revision.set_pods(vec![Arc::new(PodSlot::new("pod-a".into(), Arc::new(Nothing), 0))]);
        for request in waiting {
            assert_eq!(request.await.unwrap().unwrap(), "pod-a");
        }
        assert_eq!(revision.held(), 0);
    }

    #[tokio::test]
    async fn a_full_activator_refuses_and_a_slow_start_times_out() {
        let revision = revision(1, Duration::from_millis(50));
        let first = {
            let revision = revision.clone();
            tokio::spawn(async move { revision.acquire().await.err() })
        };
        while revision.held() < 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(revision.acquire().await.err(), Some(Refusal::ActivatorFull { depth: 1 }));
        assert_eq!(first.await.unwrap(), Some(Refusal::ColdStartTimeout(Duration::from_millis(50))));
    }

    #[tokio::test]
    async fn a_failed_start_answers_held_requests() {
        let revision = revision(10, Duration::from_secs(5));
        let held = {
            let revision = revision.clone();
            tokio::spawn(async move { revision.acquire().await.err() })
        };
        while revision.held() < 1 {
            tokio::task::yield_now().await;
        }
        revision.set_failure(Some("no component".into()));
        assert_eq!(held.await.unwrap(), Some(Refusal::StartFailed("no component".into())));
    }

    #[tokio::test]
    async fn out_of_the_path_requests_spread_over_pods() {
        let revision = revision(10, Duration::from_secs(5));
        revision.set_pods(vec![
            Arc::new(PodSlot::new("a".into(), Arc::new(Nothing), 0)),
            Arc::new(PodSlot::new("b".into(), Arc::new(Nothing), 0)),
        ]);
        revision.set_activator_in_path(false);
        let first = revision.acquire().await.unwrap();
        let second = revision.acquire().await.unwrap();
        assert_ne!(first.pod.name, second.pod.name, "the least-loaded pod takes the next request");
        drop(first);
        drop(second);
        assert!(revision.pods().iter().all(|p| p.in_flight() == 0));
    }
}
