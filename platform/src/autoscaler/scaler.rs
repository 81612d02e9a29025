//! Scale bounds and the scale-to-zero state machine of one revision (Knative's KPA reconciler:
//! `pkg/reconciler/autoscaling/kpa/kpa.go` and `scaler.go`).
//!
//! Each call mirrors one Knative reconcile: the decider's desired scale is bounded by min/max scale
//! (and by the initial scale until it has been reached), scale-to-zero is gated by the PodAutoscaler's
//! Active condition, and the condition is then recomputed from the ready pods.
//!
//! Scale to zero, as in Knative: a desired scale of 0 keeps one pod until the revision has been
//! Active for a stable window; then it turns Inactive (activator into the path) and its pods go once
//! it has been Inactive for max(grace period, retention period), or earlier, once the retention
//! period has passed and the activator has been in the path for the grace period (the grace period is
//! an upper bound, the retention period a lower one). skiff's activator switch is synchronous, so
//! the activator is in the path as soon as a decision says so.

use std::time::{Duration, Instant};

use super::config::RevisionScaling;
use super::kpa::ScaleResult;

/// How long a revision may stay Activating with nothing wanted before it is scaled back to zero:
/// Knative's default progress deadline (600s) plus its activation timeout buffer (30s).
pub const DEFAULT_ACTIVATION_TIMEOUT: Duration = Duration::from_secs(630);

/// The PodAutoscaler's Active condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Unknown: pods are being brought up (or the revision is new).
    Activating,
    /// True: enough pods are ready.
    Active,
    /// False: the revision is idle; the activator holds requests.
    Inactive,
}

/// What to run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Pods to run now.
    pub pods: u32,
    pub activity: Activity,
    /// The activator must stay in the request path (no ready pods, excess burst capacity below
    /// zero, scaling to zero, or target-burst-capacity -1).
    pub activator_in_path: bool,
    /// Ask again by then: a stable window, grace, retention or activation period runs out.
    pub recheck_after: Option<Duration>,
}

/// Per-revision scaling state between decisions.
#[derive(Debug, Clone)]
pub struct Scaler {
    scaling: RevisionScaling,
    activity: Activity,
    /// When `activity` last changed (the condition's transition time).
    activity_since: Instant,
    /// The revision has reached its initial scale (Knative's ScaleTargetInitialized).
    initialized: bool,
    /// Pods last decided (the Deployment's replicas).
    pods: u32,
    /// The decider's latest desired scale; `None` until it has data (Knative's -1).
    desired: Option<u32>,
    /// The decider's latest excess burst capacity.
    excess_burst_capacity: i64,
    /// Since when the activator has been in the path without interruption.
    in_path_since: Option<Instant>,
    activation_timeout: Duration,
}

impl Scaler {
    /// `scaling` from config.rs; `initialized` = the revision has reached its initial scale before
    /// (it ran before a restart). A new revision starts Activating with its initial scale; an
    /// initialized one starts from zero pods, Inactive (or Activating towards min-scale). Use
    /// [`Scaler::restore`] when the pods it ran before are known.
    pub fn new(now: Instant, scaling: &RevisionScaling, initialized: bool) -> Self {
        let mut s = Scaler {
            scaling: scaling.clone(),
            activity: Activity::Activating,
            activity_since: now,
            initialized,
            pods: if initialized { 0 } else { scaling.initial_scale },
            desired: None,
            excess_burst_capacity: 0,
            in_path_since: None,
            activation_timeout: DEFAULT_ACTIVATION_TIMEOUT,
        };
        if initialized && s.bounds().0 == 0 {
            s.activity = Activity::Inactive;
        }
        s
    }

    /// An initialized revision that runs `last_pods` (e.g. it kept running across a restart).
    pub fn restore(now: Instant, scaling: &RevisionScaling, last_pods: u32) -> Self {
        let mut s = Scaler::new(now, scaling, true);
        s.pods = last_pods;
        if last_pods > 0 {
            s.activity = Activity::Active;
        }
        s
    }

    /// Replace the revision's scaling settings; state is kept.
    pub fn update(&mut self, scaling: &RevisionScaling) {
        self.scaling = scaling.clone();
    }

    /// Override [`DEFAULT_ACTIVATION_TIMEOUT`].
    pub fn set_activation_timeout(&mut self, timeout: Duration) {
        self.activation_timeout = timeout;
    }

    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// Pods last decided.
    pub fn pods(&self) -> u32 {
        self.pods
    }

    /// Whether the initial scale has been reached.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// The first decision, before any metric: initial-scale (or min-scale when larger) for a new revision.
    pub fn initial(&mut self, now: Instant) -> Decision {
        self.reconcile(now, 0)
    }

    /// A request arrived with no ready pods (the activator's poke): scale up at once to
    /// max(1, activation-scale, min-scale) within max-scale. Does nothing to a revision the decider
    /// already wants pods for, and never lowers the pods.
    pub fn activate(&mut self, now: Instant) -> Decision {
        if self.desired.is_none_or(|d| d == 0) {
            self.desired = Some(self.scaling.activation_scale.max(1).max(self.pods));
        }
        self.reconcile(now, 0)
    }

    /// One tick: `kpa` is the decider's result (`None` = no data: its last result stands, as in
    /// Knative), `ready_pods` what runs now.
    pub fn decide(&mut self, now: Instant, kpa: Option<&ScaleResult>, ready_pods: u32) -> Decision {
        if let Some(r) = kpa {
            self.desired = Some(r.desired);
            self.excess_burst_capacity = r.excess_burst_capacity;
        }
        self.reconcile(now, ready_pods)
    }

    /// (min, max) scale; min-scale does not apply to an unreachable revision; max 0 = unbounded.
    fn bounds(&self) -> (u32, u32) {
        let min = if self.scaling.decider.reachable { self.scaling.min_scale } else { 0 };
        (min, self.scaling.max_scale)
    }

    /// One Knative reconcile: `scaler.scale`, the activator mode, then `computeActiveCondition`.
    fn reconcile(&mut self, now: Instant, ready: u32) -> Decision {
        // Without data the scale is left alone, unless the revision is activating.
        let mut zero_wanted = false;
        let want = if self.desired.is_none() && self.activity != Activity::Activating {
            None
        } else {
            let (mut min, max) = self.bounds();
            let initial = self.scaling.initial_scale;
            if initial > 1 && !self.initialized {
                min = min.max(initial);
            }
            // Knative's applyBounds; an unknown scale (-1) is lifted to min.
            let mut bounded = self.desired.map_or(min, |d| d.max(min));
            if max != 0 {
                bounded = bounded.min(max);
            }
            zero_wanted = bounded == 0 && self.scaling.enable_scale_to_zero;
            let (want, apply) = self.handle_scale_to_zero(now, bounded);
            if apply && let Some(w) = want {
                self.pods = w;
            }
            want
        };

        // Decided on the Active condition as it was before this reconcile, as Knative does.
        let activator_in_path = ready == 0
            || want == Some(0)
            || self.excess_burst_capacity < 0
            || self.scaling.decider.target_burst_capacity < 0.0
            || (want.is_none() && self.activity == Activity::Inactive);
        self.in_path_since = if activator_in_path { Some(self.in_path_since.unwrap_or(now)) } else { None };

        self.compute_activity(now, want, ready);

        let in_state = now.saturating_duration_since(self.activity_since);
        let recheck_after = match self.activity {
            Activity::Active if zero_wanted => {
                Some(self.scaling.decider.stable_window.saturating_sub(in_state))
            }
            Activity::Activating if zero_wanted => Some(self.activation_timeout.saturating_sub(in_state)),
            Activity::Inactive if self.pods > 0 => self.zero_wait(now),
            _ => None,
        };
        Decision { pods: self.pods, activity: self.activity, activator_in_path, recheck_after }
    }

    /// Knative's handleScaleToZero: (scale to report, whether to apply it); `None` = unknown (-1).
    fn handle_scale_to_zero(&self, now: Instant, desired: u32) -> (Option<u32>, bool) {
        if desired != 0 {
            return (Some(desired), true);
        }
        if !self.scaling.enable_scale_to_zero {
            return (Some(1), true);
        }
        let in_state = now.saturating_duration_since(self.activity_since);
        match self.activity {
            // Stuck activating with nothing wanted: give up after the activation timeout.
            Activity::Activating if in_state >= self.activation_timeout => (Some(0), true),
            Activity::Activating => (None, false),
            // Active for a stable window: report 0 so the revision turns Inactive; pods stay.
            Activity::Active if in_state >= self.scaling.decider.stable_window => (Some(0), false),
            // Otherwise keep one pod for the rest of the stable window.
            Activity::Active => (Some(1), true),
            Activity::Inactive => (Some(0), self.zero_wait(now).is_some_and(|d| d.is_zero())),
        }
    }

    /// While Inactive: how long until the pods may go (zero = now); `None` = never.
    fn zero_wait(&self, now: Instant) -> Option<Duration> {
        if !self.scaling.enable_scale_to_zero || self.activity != Activity::Inactive {
            return None;
        }
        let grace = self.scaling.scale_to_zero_grace_period;
        let retention = self.scaling.scale_to_zero_pod_retention_period;
        let inactive_for = now.saturating_duration_since(self.activity_since);
        if inactive_for >= grace.max(retention) {
            return Some(Duration::ZERO);
        }
        if inactive_for < retention {
            return Some(retention - inactive_for);
        }
        // Fast path: the activator has already been in the path for the grace period.
        let in_path_for = self.in_path_since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        Some(grace.saturating_sub(in_path_for))
    }

    /// Knative's computeActiveCondition.
    fn compute_activity(&mut self, now: Instant, want: Option<u32>, ready: u32) {
        let (min, _) = self.bounds();
        let min_ready = if self.initialized { min.max(1) } else { min.max(self.scaling.initial_scale) };
        if ready >= min_ready {
            self.initialized = true;
        }
        let wants_pods = want.is_some_and(|w| w > 0);
        let was_inactive = self.activity == Activity::Inactive;
        let next = if want == Some(0) || min_ready == 0 || (!wants_pods && was_inactive) {
            Activity::Inactive
        } else if ready < min_ready {
            Activity::Activating
        } else {
            Activity::Active
        };
        if next != self.activity {
            self.activity = next;
            self.activity_since = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::AutoscalerConfig;
    use super::*;
    use serde_json::{Map, Value, json};

    /// Don't check `recheck_after` on this step.
    const ANY: Option<u64> = Some(u64::MAX);

    #[derive(Clone, Copy)]
    enum Start {
        New,
        Initialized,
        Restore(u32),
    }

    #[derive(Clone, Copy)]
    enum Step {
        Initial,
        Activate,
        /// The decider's desired scale (`None` = no data), its excess burst capacity, ready pods.
        Tick(Option<u32>, i64, u32),
    }

    use Activity::{Activating as Ing, Active as On, Inactive as Off};
    use Step::{Activate, Initial, Tick};

    struct Case {
        name: &'static str,
        annotations: Value,
        edit: fn(&mut RevisionScaling),
        start: Start,
        /// (second, step, pods, activity, activator in path, recheck secs)
        steps: Vec<(u64, Step, u32, Activity, bool, Option<u64>)>,
    }

    fn scaling(annotations: &Value, config: &AutoscalerConfig) -> RevisionScaling {
        let map: Map<String, Value> = annotations.as_object().cloned().unwrap_or_default();
        RevisionScaling::from_annotations(Some(&map), 0, config).expect("valid annotations")
    }

    fn keep(_: &mut RevisionScaling) {}

    fn no_tbc(s: &mut RevisionScaling) {
        s.decider.target_burst_capacity = 0.0;
    }

    #[test]
    fn scaler_table() {
        let cases = vec![
            Case {
                name: "initial-scale 0: no pods, Inactive, activator in path",
                annotations: json!({"autoscaling.knative.dev/initial-scale": "0"}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![(0, Initial, 0, Off, true, None), (2, Tick(None, 0, 0), 0, Off, true, None)],
            },
            Case {
                name: "activation from zero: one pod, Activating until ready",
                annotations: json!({"autoscaling.knative.dev/initial-scale": "0"}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![
                    (0, Initial, 0, Off, true, None),
                    (5, Activate, 1, Ing, true, None),
                    (6, Tick(Some(1), 0, 0), 1, Ing, true, None),
                    (8, Tick(Some(1), 0, 1), 1, On, false, None),
                ],
            },
            Case {
                name: "activation-scale 3",
                annotations: json!({"autoscaling.knative.dev/initial-scale": "0",
                                    "autoscaling.knative.dev/activation-scale": "3"}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![
                    (0, Initial, 0, Off, true, None),
                    (5, Activate, 3, Ing, true, None),
                    (7, Tick(Some(3), 0, 3), 3, On, false, None),
                ],
            },
            Case {
                name: "activation respects min and max scale",
                annotations: json!({"autoscaling.knative.dev/activation-scale": "5",
                                    "autoscaling.knative.dev/max-scale": "4"}),
                edit: no_tbc,
                start: Start::Initialized,
                steps: vec![(0, Initial, 0, Off, true, None), (1, Activate, 4, Ing, true, None)],
            },
            Case {
                name: "no traffic: zero only after a stable window Active plus the grace period",
                annotations: json!({}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![
                    (0, Initial, 1, Ing, true, Some(630)),
                    (2, Tick(Some(0), 0, 1), 1, On, false, Some(60)),
                    (30, Tick(Some(0), 0, 1), 1, On, false, Some(32)),
                    (62, Tick(Some(0), 0, 1), 1, Off, true, Some(30)),
                    (80, Tick(Some(0), 0, 1), 1, Off, true, Some(12)),
                    (92, Tick(None, 0, 1), 0, Off, true, None),
                    (94, Tick(None, 0, 0), 0, Off, true, None),
                ],
            },
            Case {
                name: "traffic returning during the grace period reactivates",
                annotations: json!({}),
                edit: no_tbc,
                start: Start::Restore(1),
                steps: vec![
                    (60, Tick(Some(0), 0, 1), 1, Off, true, Some(30)),
                    (70, Tick(Some(2), 0, 1), 2, On, false, None),
                ],
            },
            Case {
                name: "activator already in path for the grace period: zero right after Inactive",
                annotations: json!({}),
                edit: keep,
                start: Start::New,
                steps: vec![
                    (0, Initial, 1, Ing, true, Some(630)),
                    (2, Tick(Some(0), -111, 1), 1, On, true, Some(60)),
                    (62, Tick(Some(0), -111, 1), 1, Off, true, Some(0)),
                    (62, Tick(Some(0), -111, 1), 0, Off, true, None),
                ],
            },
            Case {
                name: "retention period keeps the last pod",
                annotations: json!({"autoscaling.knative.dev/scale-to-zero-pod-retention-period": "90s"}),
                edit: no_tbc,
                start: Start::Restore(1),
                steps: vec![
                    (60, Tick(Some(0), 0, 1), 1, Off, true, Some(90)),
                    (100, Tick(Some(0), 0, 1), 1, Off, true, Some(50)),
                    (149, Tick(None, 0, 1), 1, Off, true, Some(1)),
                    (150, Tick(None, 0, 1), 0, Off, true, None),
                ],
            },
            Case {
                name: "retention is a lower bound even on the fast path",
                annotations: json!({"autoscaling.knative.dev/scale-to-zero-pod-retention-period": "10s"}),
                edit: |s| s.decider.target_burst_capacity = -1.0,
                start: Start::Restore(1),
                steps: vec![
                    (0, Tick(Some(1), -1, 1), 1, On, true, None),
                    (60, Tick(Some(0), -1, 1), 1, Off, true, Some(10)),
                    (66, Tick(Some(0), -1, 1), 1, Off, true, Some(4)),
                    (70, Tick(Some(0), -1, 1), 0, Off, true, None),
                ],
            },
            Case {
                name: "min-scale keeps pods",
                annotations: json!({"autoscaling.knative.dev/min-scale": "2"}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![
                    (0, Initial, 2, Ing, true, None),
                    (2, Tick(Some(0), 0, 2), 2, On, false, None),
                    (200, Tick(Some(0), 0, 2), 2, On, false, None),
                    (202, Tick(Some(5), 0, 2), 5, On, false, None),
                    (204, Tick(None, 0, 5), 5, On, false, None),
                ],
            },
            Case {
                name: "max-scale caps bursts",
                annotations: json!({"autoscaling.knative.dev/max-scale": "3"}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![
                    (0, Initial, 1, Ing, true, ANY),
                    (2, Tick(Some(10), 0, 1), 3, On, false, None),
                    (4, Tick(Some(1000), 0, 3), 3, On, false, None),
                ],
            },
            Case {
                name: "scale-to-zero disabled: never below one pod",
                annotations: json!({"autoscaling.knative.dev/initial-scale": "0"}),
                edit: |s| {
                    s.enable_scale_to_zero = false;
                    s.decider.target_burst_capacity = 0.0;
                },
                start: Start::Restore(3),
                steps: vec![
                    (2, Tick(Some(0), 0, 3), 1, On, false, None),
                    (200, Tick(Some(0), 0, 1), 1, On, false, None),
                    (400, Tick(None, 0, 1), 1, On, false, None),
                ],
            },
            Case {
                name: "unreachable: min-scale ignored, straight down to one pod, then zero",
                annotations: json!({"autoscaling.knative.dev/min-scale": "3"}),
                edit: |s| {
                    s.decider.reachable = false;
                    s.decider.target_burst_capacity = 0.0;
                },
                start: Start::Restore(10),
                steps: vec![
                    (2, Tick(Some(0), 0, 10), 1, On, false, Some(58)),
                    (60, Tick(Some(0), 0, 1), 1, Off, true, Some(30)),
                    (90, Tick(Some(0), 0, 1), 0, Off, true, None),
                ],
            },
            Case {
                name: "reachable: min-scale holds",
                annotations: json!({"autoscaling.knative.dev/min-scale": "3"}),
                edit: no_tbc,
                start: Start::Restore(10),
                steps: vec![(2, Tick(Some(0), 0, 10), 3, On, false, None)],
            },
            Case {
                name: "initial-scale 3 holds until reached",
                annotations: json!({"autoscaling.knative.dev/initial-scale": "3"}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![
                    (0, Initial, 3, Ing, true, None),
                    (2, Tick(Some(1), 0, 2), 3, Ing, false, None),
                    (4, Tick(Some(1), 0, 3), 3, On, false, None),
                    (6, Tick(Some(1), 0, 3), 1, On, false, None),
                ],
            },
            Case {
                name: "activation that never gets ready times out to zero",
                annotations: json!({"autoscaling.knative.dev/initial-scale": "0"}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![
                    (0, Initial, 0, Off, true, None),
                    (10, Activate, 1, Ing, true, None),
                    (12, Tick(Some(0), 0, 0), 1, Ing, true, Some(628)),
                    (640, Tick(Some(0), 0, 0), 0, Off, true, None),
                ],
            },
            Case {
                name: "restart without data keeps the pods",
                annotations: json!({}),
                edit: no_tbc,
                start: Start::Restore(4),
                steps: vec![
                    (2, Tick(None, 0, 4), 4, On, false, None),
                    (4, Tick(None, 0, 4), 4, On, false, None),
                ],
            },
            Case {
                name: "restart of an initialized revision at zero, with min-scale",
                annotations: json!({"autoscaling.knative.dev/min-scale": "2"}),
                edit: no_tbc,
                start: Start::Initialized,
                steps: vec![(0, Initial, 2, Ing, true, None), (2, Tick(None, 0, 2), 2, On, false, None)],
            },
            Case {
                name: "activate does not lower a revision already scaling up",
                annotations: json!({}),
                edit: no_tbc,
                start: Start::New,
                steps: vec![
                    (0, Initial, 1, Ing, true, ANY),
                    (2, Tick(Some(5), 0, 0), 5, Ing, true, None),
                    (3, Activate, 5, Ing, true, None),
                ],
            },
        ];

        let config = AutoscalerConfig::default();
        for c in cases {
            let mut s = scaling(&c.annotations, &config);
            (c.edit)(&mut s);
            let t0 = Instant::now();
            let mut scaler = match c.start {
                Start::New => Scaler::new(t0, &s, false),
                Start::Initialized => Scaler::new(t0, &s, true),
                Start::Restore(p) => Scaler::restore(t0, &s, p),
            };
            for (i, &(at, step, pods, activity, in_path, recheck)) in c.steps.iter().enumerate() {
                let now = t0 + Duration::from_secs(at);
                let d = match step {
                    Initial => scaler.initial(now),
                    Activate => scaler.activate(now),
                    Tick(desired, ebc, ready) => {
                        let r = desired.map(|desired| ScaleResult {
                            desired,
                            excess_burst_capacity: ebc,
                            panicking: false,
                            stable_value: 0.0,
                            panic_value: 0.0,
                        });
                        scaler.decide(now, r.as_ref(), ready)
                    }
                };
                let ctx = format!("{} — step {i} at {at}s: {d:?}", c.name);
                assert_eq!((d.pods, d.activity, d.activator_in_path), (pods, activity, in_path), "{ctx}");
                if recheck != ANY {
                    assert_eq!(d.recheck_after, recheck.map(Duration::from_secs), "{ctx}");
                }
            }
        }
    }

    #[test]
    fn update_changes_bounds() {
        let config = AutoscalerConfig::default();
        let s = scaling(&json!({}), &config);
        let t0 = Instant::now();
        let mut scaler = Scaler::restore(t0, &s, 2);
        let idle = ScaleResult {
            desired: 2,
            excess_burst_capacity: 0,
            panicking: false,
            stable_value: 0.0,
            panic_value: 0.0,
        };
        assert_eq!(scaler.decide(t0, Some(&idle), 2).pods, 2);
        let capped = scaling(&json!({"autoscaling.knative.dev/max-scale": "1"}), &config);
        scaler.update(&capped);
        assert_eq!(scaler.decide(t0 + Duration::from_secs(2), None, 2).pods, 1);
        assert!(scaler.is_initialized());
        assert_eq!((scaler.activity(), scaler.pods()), (Activity::Active, 1));
    }

    #[test]
    fn activation_timeout_is_configurable() {
        let config = AutoscalerConfig::default();
        let s = scaling(&json!({"autoscaling.knative.dev/initial-scale": "0"}), &config);
        let t0 = Instant::now();
        let mut scaler = Scaler::new(t0, &s, false);
        scaler.set_activation_timeout(Duration::from_secs(20));
        scaler.initial(t0);
        scaler.activate(t0);
        let zero = ScaleResult {
            desired: 0,
            excess_burst_capacity: 0,
            panicking: false,
            stable_value: 0.0,
            panic_value: 0.0,
        };
        let d = scaler.decide(t0 + Duration::from_secs(20), Some(&zero), 0);
        assert_eq!((d.pods, d.activity), (0, Activity::Inactive));
    }
}
