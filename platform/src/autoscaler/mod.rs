//! Knative-style request-driven autoscaling (the KPA) for skiff revisions.
//!
//! - [`config`]: cluster defaults (`config-autoscaler`) and per-revision `autoscaling.knative.dev/*`
//!   annotations, resolved into a [`RevisionScaling`].
//! - [`window`]: per-second metric buckets with Knative's windowed averages.
//! - [`kpa`]: the decider, turning observed load into a desired pod count.
//! - [`scaler`]: min/max bounds, initial scale and the scale-to-zero state machine.
//!
//! Per revision: build a [`Scaler`] and an [`Autoscaler`] from its [`RevisionScaling`], take
//! [`Scaler::initial`], record one observation per second while it has pods (or queued requests),
//! call [`Scaler::activate`] when a request finds no ready pods, and every tick pass
//! [`Autoscaler::scale`]'s result to [`Scaler::decide`]. All time is passed in explicitly.

pub mod config;
pub mod kpa;
pub mod scaler;
pub mod window;

pub use config::{
    AutoscalerConfig, FieldError, Metric, RevisionScaling, parse_duration, validate_annotations,
};
pub use kpa::{Autoscaler, DeciderSpec, ScaleResult};
pub use scaler::{Activity, Decision, Scaler};
pub use window::Buckets;

use std::sync::OnceLock;

static CLUSTER_DEFAULTS: OnceLock<AutoscalerConfig> = OnceLock::new();

/// Set the cluster defaults this process runs with (once, at `skiff up`): admission
/// validates revision annotations against them.
pub fn set_cluster_defaults(config: AutoscalerConfig) {
    let _ = CLUSTER_DEFAULTS.set(config);
}

/// The cluster defaults, or Knative's (with zero initial scale allowed) before they are set.
pub fn cluster_defaults() -> &'static AutoscalerConfig {
    CLUSTER_DEFAULTS.get_or_init(AutoscalerConfig::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};

    /// Drive a decider and a scaler together, one second at a time, with pods ready one second after
    /// they are decided and a decision every `tick` seconds. `load(s)` is the concurrency in second s.
    /// Returns the pods decided for each second.
    fn simulate(scaling: &RevisionScaling, load: impl Fn(u64) -> f64, seconds: u64) -> Vec<u32> {
        let t0 = Instant::now();
        let tick = scaling.decider.tick_interval.as_secs().max(1);
        let mut kpa = Autoscaler::new(scaling.metric, scaling.decider.clone());
        let mut scaler = Scaler::new(t0, scaling, false);
        let mut pods = scaler.initial(t0).pods;
        let mut ready = 0;
        let mut out = Vec::new();
        for s in 0..seconds {
            let now = t0 + Duration::from_secs(s);
            let c = load(s);
            if c > 0.0 && ready == 0 {
                pods = scaler.activate(now).pods;
            }
            if pods > 0 || c > 0.0 {
                kpa.record(now, c, c);
            }
            if s % tick == 0 {
                let r = kpa.scale(now, ready);
                pods = scaler.decide(now, r.as_ref(), ready).pods;
            }
            out.push(pods);
            ready = pods;
        }
        out
    }

    fn scaling(annotations: Value, edit: fn(&mut RevisionScaling)) -> RevisionScaling {
        let map = annotations.as_object().cloned().unwrap_or_default();
        let mut s = RevisionScaling::from_annotations(Some(&map), 0, &AutoscalerConfig::default())
            .expect("valid annotations");
        edit(&mut s);
        s
    }

    /// First second at or after `from` with `pods` pods.
    fn first_at(trace: &[u32], from: usize, pods: u32) -> Option<usize> {
        trace.iter().enumerate().skip(from).find(|(_, p)| **p == pods).map(|(s, _)| s)
    }

    fn expect(ok: bool, msg: String) -> Result<(), String> {
        if ok { Ok(()) } else { Err(msg) }
    }

    #[test]
    fn end_to_end_table() {
        type Check = fn(&[u32]) -> Result<(), String>;
        // (name, scaling, load per second, seconds to run, check on the pods per second)
        type Case = (&'static str, RevisionScaling, fn(u64) -> f64, u64, Check);
        let cases: Vec<Case> = vec![
            (
                // Cold start at 10s, load until 39s; the stable average reaches 0 at 100s; the activator
                // (TBC 0) enters the path then, so the pod goes after the 30s grace period.
                "cold start and scale to zero after stable window and grace",
                scaling(json!({"autoscaling.knative.dev/initial-scale": "0"}), |s| {
                    s.decider.target_burst_capacity = 0.0
                }),
                |s| if (10..40).contains(&s) { 5.0 } else { 0.0 },
                200,
                |t| {
                    if t[..10].iter().any(|p| *p != 0) {
                        return Err("pods before the first request".into());
                    }
                    if t[10] != 1 || t[99] != 1 {
                        return Err(format!("want one pod from 10s to 99s, got {} / {}", t[10], t[99]));
                    }
                    match first_at(t, 11, 0) {
                        Some(130) => Ok(()),
                        other => Err(format!("scaled to zero at {other:?}, want 130s")),
                    }
                },
            ),
            (
                // With Knative's default TBC the single pod never covers the burst capacity, so the
                // activator has been in the path all along and the pod goes right after Inactive.
                "default burst capacity takes the fast path to zero",
                scaling(json!({"autoscaling.knative.dev/initial-scale": "0"}), |_| {}),
                |s| if (10..40).contains(&s) { 5.0 } else { 0.0 },
                200,
                |t| match first_at(t, 11, 0) {
                    Some(102) => Ok(()),
                    other => Err(format!("scaled to zero at {other:?}, want 102s")),
                },
            ),
            (
                "max-scale caps a burst",
                scaling(json!({"autoscaling.knative.dev/max-scale": "3"}), |_| {}),
                |s| if s < 20 { 1000.0 } else { 0.0 },
                40,
                |t| match t.iter().max() {
                    Some(3) => Ok(()),
                    other => Err(format!("peak {other:?}, want 3")),
                },
            ),
            (
                // 700 in flight for 10s (10 pods at target 70) starts a panic on one pod; the panic holds
                // 10 pods until 60s after it started, then the 2× scale-down limit applies.
                "panic never scales down",
                scaling(json!({}), |s| s.decider.target_burst_capacity = 0.0),
                |s| if s < 10 { 700.0 } else { 0.0 },
                70,
                |t| {
                    if t[0..62].iter().any(|p| *p != 10) {
                        return Err(format!("want 10 pods through 61s: {:?}", &t[0..62]));
                    }
                    expect(t[62] == 5, format!("want 5 pods at 62s, got {}", t[62]))
                },
            ),
            (
                // A 6s window with panic disabled in effect; 9 pods held for the 20s scale-down delay.
                "scale-down delay holds pods",
                scaling(
                    json!({"autoscaling.knative.dev/window": "6s",
                           "autoscaling.knative.dev/panic-window-percentage": "100",
                           "autoscaling.knative.dev/panic-threshold-percentage": "1000",
                           "autoscaling.knative.dev/scale-down-delay": "20s"}),
                    |s| s.decider.target_burst_capacity = 0.0,
                ),
                |s| if s < 10 { 630.0 } else { 0.0 },
                40,
                |t| {
                    if t[0..28].iter().any(|p| *p != 9) {
                        return Err(format!("want 9 pods through 27s: {:?}", &t[0..28]));
                    }
                    expect(t[28] == 8, format!("want 8 pods at 28s, got {}", t[28]))
                },
            ),
            (
                "scale-to-zero disabled keeps one pod",
                {
                    let mut s = scaling(json!({}), |_| {});
                    s.enable_scale_to_zero = false;
                    s
                },
                |s| if s < 5 { 50.0 } else { 0.0 },
                300,
                |t| expect(t.iter().all(|p| *p == 1), format!("want one pod throughout: {t:?}")),
            ),
        ];
        for (name, s, load, seconds, check) in cases {
            let trace = simulate(&s, load, seconds);
            if let Err(e) = check(&trace) {
                panic!("{name}: {e}");
            }
        }
    }
}
