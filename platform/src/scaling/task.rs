//! One revision's autoscaler: samples, decides, and starts and stops its pods.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::pods::{self, ScaleStatus};
use super::{Command, Scaling, TaskStart};
use crate::autoscaler::{Activity, Autoscaler, Decision, RevisionScaling, Scaler};
use crate::dataplane::{PodSlot, Revision};
use crate::resources::REVISIONS;
use crate::resources::meta::{self, Condition};
use crate::runtime::{RevisionSpec, Runtime, RuntimeError};
use crate::store::ObjectKey;

/// How often request metrics are sampled: the autoscaler's buckets are one second wide.
const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// How long after a failed start (or a pod that ended by itself) another is tried, at
/// first; each failure in a row doubles it, up to [`MAX_RETRY_AFTER`] (Kubernetes'
/// CrashLoopBackOff, from 1 s rather than 10 s).
const RETRY_START_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// A revision whose pods have run this long without a failure is healthy again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

pub struct RevisionScaler {
    scaling: Arc<Scaling>,
    revision: Arc<Revision>,
    spec: RevisionSpec,
    labels: Map<String, Value>,
    runtime: Arc<dyn Runtime>,
    settings: RevisionScaling,
    kpa: Autoscaler,
    scaler: Scaler,
    /// Ready pods, in start order.
    pods: Vec<Arc<PodSlot>>,
    desired: u32,
    activity: Activity,
    reachable: bool,
    failure: Option<(Instant, RuntimeError)>,
    /// Failures (failed starts, pods that ended by themselves) in a row.
    failures_in_row: u32,
    /// Names of pods that ended by themselves, to restart under the same name, with how
    /// often each was restarted.
    restart: Vec<String>,
    restarts: std::collections::HashMap<String, u32>,
    /// To pass pod exits back to this task.
    commands: mpsc::UnboundedSender<Command>,
    cold_starts: u64,
    last_cold_start_ms: Option<f64>,
    /// While a cold start is applied: the span of the request that caused it.
    cold_span: Option<tracing::Span>,
    written: Option<ScaleStatus>,
    last_decision: Instant,
    recheck_at: Option<Instant>,
}

impl RevisionScaler {
    pub fn new(scaling: &Arc<Scaling>, task: TaskStart) -> Self {
        let TaskStart { start, commands } = task;
        let now = Instant::now();
        let reachable = scaling.tables.is_routed(&start.revision.namespace, &start.revision.name);
        let mut settings = start.scaling;
        settings.decider.reachable = reachable;
        Self {
            kpa: Autoscaler::new(settings.metric, settings.decider.clone()),
            // A revision that ran before this process did gets back what it ran, within bounds.
            scaler: match start.previous_replicas {
                Some(previous) if previous > 0 => Scaler::restore(now, &settings, previous),
                Some(_) => Scaler::new(now, &settings, true),
                None => Scaler::new(now, &settings, false),
            },
            scaling: scaling.clone(),
            revision: start.revision,
            spec: start.spec,
            labels: start.labels,
            runtime: start.runtime,
            settings,
            pods: Vec::new(),
            desired: 0,
            activity: Activity::Inactive,
            reachable,
            failure: None,
            failures_in_row: 0,
            restart: Vec::new(),
            restarts: std::collections::HashMap::new(),
            commands,
            cold_starts: 0,
            last_cold_start_ms: None,
            cold_span: None,
            written: None,
            last_decision: now,
            recheck_at: None,
        }
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let now = Instant::now();
        let first = self.scaler.initial(now);
        self.apply(first, None).await;
        let mut ticker = tokio::time::interval(SAMPLE_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        ticker.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = self.revision.stopped.cancelled() => break,
                at = self.revision.poked() => self.on_poke(at).await,
                Some(command) = commands.recv() => self.on_command(command).await,
                _ = ticker.tick() => self.on_tick().await,
            }
        }
        self.stop_all().await;
    }

    /// A request found no ready pod: scale from zero now.
    async fn on_poke(&mut self, at: Instant) {
        // Taken whatever happens: a kept span would hold the poking request's trace open.
        let poker = self.revision.take_poke_span();
        if !self.pods.is_empty() || self.backing_off(Instant::now()) {
            return;
        }
        let decision = self.scaler.activate(Instant::now());
        self.cold_span = poker;
        self.apply(decision, Some(at)).await;
        self.cold_span = None;
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Update(settings) => {
                let mut settings = *settings;
                settings.decider.reachable = self.reachable;
                self.kpa.update(settings.metric, settings.decider.clone());
                self.scaler.update(&settings);
                self.settings = settings;
                self.decide(Instant::now()).await;
            }
            Command::PodExited(name, exit) => {
                let Some(index) = self.pods.iter().position(|p| p.name == name) else { return };
                let pod = self.pods.remove(index);
                self.revision.set_pods(self.pods.clone());
                tracing::warn!(revision = %self.revision.name, pod = %name, reason = %exit.reason, "{}", exit.message);
                self.revision.log.push(
                    skiff_runtime_wasm::LogStream::Host,
                    format!("pod {name} ended: {} ({}); restarting it", exit.message, exit.reason),
                );
                retire(pod, Duration::ZERO);
                let restarts = self.restarts.entry(name.clone()).or_insert(0);
                *restarts += 1;
                let object = pods::crashed(&self.spec, &self.labels, &name, *restarts, &exit);
                pods::create(&self.scaling.objects, object).await;
                self.restart.push(name);
                self.failed(RuntimeError::new(crate::runtime::intern_reason(exit.reason), exit.message));
                self.reapply().await;
            }
            Command::PodDeleted(name) => {
                self.restart.retain(|n| *n != name);
                let Some(index) = self.pods.iter().position(|p| p.name == name) else { return };
                let pod = self.pods.remove(index);
                self.revision.set_pods(self.pods.clone());
                tracing::info!(revision = %self.revision.name, pod = %name, "pod deleted; replacing it");
                retire(pod, self.revision.timeout);
                self.reapply().await;
            }
        }
    }

    /// Bring the pods back to the last decision (one went away).
    async fn reapply(&mut self) {
        let decision = Decision {
            pods: self.desired,
            activity: self.activity,
            activator_in_path: self.revision.activator_in_path(),
            recheck_after: None,
        };
        self.apply(decision, None).await;
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        if self.failures_in_row > 0
            && !self.pods.is_empty()
            && self.failure.as_ref().is_none_or(|(at, _)| now.duration_since(*at) >= HEALTHY_AFTER)
        {
            self.failures_in_row = 0;
            self.failure = None;
            self.revision.set_health(None);
            self.write_status().await;
        }
        let sample = self.revision.stats.take(now);
        self.kpa.record(now, sample.average_concurrency, sample.requests);
        if let Some(at) = self.revision.take_poke() {
            self.on_poke(at).await;
        }
        let due = now.duration_since(self.last_decision) >= self.scaling.config.tick_interval
            || self.recheck_at.is_some_and(|at| now >= at)
            || (self.desired as usize > self.pods.len() && !self.backing_off(now));
        if due {
            self.decide(now).await;
        }
    }

    fn backing_off(&self, now: Instant) -> bool {
        let wait = RETRY_START_AFTER
            .saturating_mul(1 << self.failures_in_row.saturating_sub(1).min(16))
            .min(MAX_RETRY_AFTER);
        self.failure.as_ref().is_some_and(|(at, _)| now.duration_since(*at) < wait)
    }

    /// A failure: requests held now get `err`, the next start waits longer.
    fn failed(&mut self, err: RuntimeError) {
        self.failures_in_row += 1;
        self.revision.set_health(Some((err.reason.to_string(), err.message.clone())));
        if self.pods.is_empty() {
            self.revision.set_failure(Some(err.message.clone()));
        }
        self.failure = Some((Instant::now(), err));
    }

    async fn decide(&mut self, now: Instant) {
        self.last_decision = now;
        let reachable = self.scaling.tables.is_routed(&self.revision.namespace, &self.revision.name);
        if reachable != self.reachable {
            self.reachable = reachable;
            self.settings.decider.reachable = reachable;
            self.kpa.update(self.settings.metric, self.settings.decider.clone());
            self.scaler.update(&self.settings);
        }
        let ready = self.pods.len() as u32;
        let result = self.kpa.scale(now, ready);
        if let Some(result) = &result {
            self.revision.gauges.set_observed(
                result.stable_value,
                result.panic_value,
                result.excess_burst_capacity,
            );
            self.revision.gauges.panicking.store(result.panicking, std::sync::atomic::Ordering::Relaxed);
        }
        let decision = self.scaler.decide(now, result.as_ref(), ready);
        self.apply(decision, None).await;
    }

    /// Make the pods match `decision`. `cold_since` is when the request that woke a
    /// revision at zero arrived.
    async fn apply(&mut self, decision: Decision, cold_since: Option<Instant>) {
        let now = Instant::now();
        tracing::debug!(
            revision = %self.revision.name,
            ready = self.pods.len(),
            want = decision.pods,
            activity = ?decision.activity,
            activator_in_path = decision.activator_in_path,
            "scale decision"
        );
        self.recheck_at = decision.recheck_after.map(|after| now + after);
        self.desired = decision.pods;
        self.activity = decision.activity;
        self.revision.gauges.desired.store(u64::from(self.desired), std::sync::atomic::Ordering::Relaxed);
        let want = self.desired as usize;
        let mut created = Vec::new();
        if want > self.pods.len() && !self.backing_off(now) {
            let cold = self.pods.is_empty();
            while self.pods.len() < want {
                // The first pod of a cold start shows in the trace of the request that woke it.
                let span = match self.cold_span.take().filter(|_| cold && self.pods.is_empty()) {
                    Some(parent) => tracing::info_span!(
                        parent: &parent,
                        "cold start",
                        otel.name = %format!("cold start {}", self.revision.name),
                        otel.kind = "internal",
                        faas.name = %self.revision.service.as_deref().unwrap_or(&self.revision.name),
                        faas.coldstart = true,
                        otel.status_code = tracing::field::Empty,
                        error.type = tracing::field::Empty,
                    ),
                    None => tracing::Span::none(),
                };
                let started = self.start_pod().instrument(span.clone()).await;
                if let Err(err) = &started {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", err.reason);
                }
                match started {
                    Ok(slot) => {
                        created.push(slot.name.clone());
                        self.pods.push(slot);
                        // Requests go as soon as one pod is ready, not when all are.
                        self.revision.set_pods(self.pods.clone());
                    }
                    Err(err) => {
                        tracing::warn!(revision = %self.revision.name, reason = err.reason, "starting a pod: {}", err.message);
                        self.failed(err);
                        break;
                    }
                }
            }
            // A cold start is a request waking a revision at zero, not its first pods.
            if let Some(since) = cold_since.filter(|_| cold && !self.pods.is_empty()) {
                let took = since.elapsed();
                self.cold_starts += 1;
                self.last_cold_start_ms = Some(took.as_secs_f64() * 1e3);
                self.revision.gauges.cold_starts.observe(took);
                tracing::info!(revision = %self.revision.name, pods = self.pods.len(), elapsed_us = took.as_micros() as u64, "cold start");
            }
            if !created.is_empty() {
                self.failure = None;
            }
        } else if want < self.pods.len() {
            // Keep the busiest pods; retire the idlest once their requests are done.
            self.pods.sort_by_key(|p| std::cmp::Reverse(p.in_flight()));
            let retired = self.pods.split_off(want);
            self.revision.set_pods(self.pods.clone());
            for pod in retired {
                pods::delete(&self.scaling.objects, &self.revision.namespace, &pod.name).await;
                retire(pod, self.revision.timeout);
            }
        }
        self.revision.set_activator_in_path(decision.activator_in_path || self.pods.is_empty());
        let started = meta::now();
        for name in created {
            let restarts = self.restarts.get(&name).copied().unwrap_or(0);
            let address = self.pods.iter().find(|p| p.name == name).and_then(|p| p.pod.address());
            let object = pods::with_address(&self.spec, &self.labels, &name, &started, restarts, address);
            pods::create(&self.scaling.objects, object).await;
        }
        self.write_status().await;
    }

    async fn start_pod(&mut self) -> Result<Arc<PodSlot>, RuntimeError> {
        let name = self.restart.pop().unwrap_or_else(|| pods::new_name(&self.revision.name));
        let pod = match self.runtime.start_pod(&self.spec, &name, self.revision.log.clone()).await {
            Ok(pod) => pod,
            Err(err) => {
                // The same pod is tried again.
                if self.restarts.contains_key(&name) {
                    self.restart.push(name);
                }
                return Err(err);
            }
        };
        // Should it end by itself, this task hears of it.
        let (exited, commands, watched) = (pod.exited(), self.commands.clone(), name.clone());
        tokio::spawn(async move {
            let exit = exited.await;
            let _ = commands.send(Command::PodExited(watched, exit));
        });
        Ok(Arc::new(PodSlot::new(name, pod, self.revision.container_concurrency)))
    }

    async fn write_status(&mut self) {
        let active = match (&self.failure, self.pods.len(), self.activity) {
            (_, 1.., _) => Condition::truthy("Active"),
            (Some((_, err)), 0, _) => Condition::falsy("Active", err.reason, err.message.clone()),
            (None, 0, Activity::Activating) => {
                Condition::unknown("Active", "Activating", "Pods are starting for queued requests.")
            }
            (None, 0, _) if self.desired > 0 => {
                Condition::unknown("Active", "Activating", "Pods are starting.")
            }
            (None, 0, _) => Condition::falsy("Active", "NoTraffic", "The target is not receiving traffic."),
        };
        let status = ScaleStatus {
            actual: self.pods.len() as u32,
            desired: self.desired,
            active,
            cold_starts: self.cold_starts,
            last_cold_start_ms: self.last_cold_start_ms,
        };
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let key = ObjectKey::new(REVISIONS.key, &self.revision.namespace, &self.revision.name);
        pods::write_status(&self.scaling.objects, key, self.revision.uid.clone(), status.clone()).await;
        self.written = Some(status);
    }

    /// The revision left the data plane: stop its pods and remove their objects.
    async fn stop_all(&mut self) {
        self.revision.set_pods(Vec::new());
        for pod in std::mem::take(&mut self.pods) {
            pods::delete(&self.scaling.objects, &self.revision.namespace, &pod.name).await;
            retire(pod, self.revision.timeout);
        }
    }
}

/// Stop a pod that takes no new requests once those it has are done (or `patience` is up).
fn retire(pod: Arc<PodSlot>, patience: Duration) {
    tokio::spawn(async move {
        let deadline = Instant::now() + patience;
        while pod.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pod.pod.stop().await;
    });
}
