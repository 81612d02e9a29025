//! The KPA decider (Knative's `pkg/autoscaler/scaling/autoscaler.go`): turns a revision's observed
//! concurrency or request rate into a desired pod count, with panic mode, scale rate limits,
//! activation scale, scale-down delay and excess burst capacity.
//!
//! Feed it one observation per second with [`Autoscaler::record`] while the revision has pods or
//! requests are waiting for it (zeros included: an idle second is data), and call
//! [`Autoscaler::scale`] every tick.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::{Metric, TARGET_MIN};
use super::window::{Buckets, slot};

/// The decider's parameters for one revision (Knative's `DeciderSpec`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeciderSpec {
    /// Per-pod target after utilisation.
    pub target_value: f64,
    /// Per-pod capacity.
    pub total_value: f64,
    /// Burst headroom to keep; 0 = none, -1 = activator always in path.
    pub target_burst_capacity: f64,
    /// Panic threshold as a ratio of desired to ready pods, e.g. 2.0.
    pub panic_threshold: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub stable_window: Duration,
    pub panic_window: Duration,
    pub activation_scale: u32,
    pub scale_down_delay: Duration,
    /// The revision has traffic routed to it.
    pub reachable: bool,
    /// How often `scale` runs; the scale-down-delay window is kept in slots of this size.
    pub tick_interval: Duration,
}

impl Default for DeciderSpec {
    /// Knative's defaults for a revision with containerConcurrency 0.
    fn default() -> Self {
        DeciderSpec {
            target_value: 70.0,
            total_value: 100.0,
            target_burst_capacity: 211.0,
            panic_threshold: 2.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            stable_window: Duration::from_secs(60),
            panic_window: Duration::from_secs(6),
            activation_scale: 1,
            scale_down_delay: Duration::ZERO,
            reachable: true,
            tick_interval: Duration::from_secs(2),
        }
    }
}

/// One decision of the decider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleResult {
    pub desired: u32,
    /// Spare capacity beyond the target burst capacity; negative means the activator must buffer.
    pub excess_burst_capacity: i64,
    pub panicking: bool,
    /// Metric averaged over the stable window.
    pub stable_value: f64,
    /// Metric averaged over the panic window.
    pub panic_value: f64,
}

/// Per-revision decider state: the metric buckets, panic state and scale-down-delay window.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    metric: Metric,
    spec: DeciderSpec,
    concurrency: Buckets,
    rps: Buckets,
    panic_since: Option<Instant>,
    max_panic_pods: u32,
    delay: Option<MaxWindow>,
}

impl Autoscaler {
    pub fn new(metric: Metric, spec: DeciderSpec) -> Self {
        let delay = MaxWindow::for_spec(&spec);
        Autoscaler {
            metric,
            concurrency: Buckets::new(spec.stable_window),
            rps: Buckets::new(spec.stable_window),
            spec,
            panic_since: None,
            max_panic_pods: 0,
            delay,
        }
    }

    /// A decider taking over a revision that already runs `ready_pods` (e.g. after a restart): as in
    /// Knative it starts in panic mode when more than one pod runs, so it does not scale down before
    /// it has collected a stable window of data.
    pub fn resume(metric: Metric, spec: DeciderSpec, now: Instant, ready_pods: u32) -> Self {
        let mut a = Autoscaler::new(metric, spec);
        if ready_pods > 1 {
            a.panic_since = Some(now);
        }
        a.max_panic_pods = ready_pods;
        a
    }

    /// Reconfigure; collected data and panic state are kept.
    pub fn update(&mut self, metric: Metric, spec: DeciderSpec) {
        if spec.stable_window != self.spec.stable_window {
            self.concurrency.set_retention(spec.stable_window);
            self.rps.set_retention(spec.stable_window);
        }
        if spec.scale_down_delay != self.spec.scale_down_delay
            || spec.tick_interval != self.spec.tick_interval
        {
            self.delay = MaxWindow::for_spec(&spec);
        }
        self.metric = metric;
        self.spec = spec;
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn spec(&self) -> &DeciderSpec {
        &self.spec
    }

    /// One second's observation: the time-weighted average concurrency of that second and the
    /// number of requests that arrived in it.
    pub fn record(&mut self, at: Instant, average_concurrency: f64, requests: f64) {
        self.concurrency.record(at, average_concurrency);
        self.rps.record(at, requests);
    }

    /// Knative's `Scale()`: `None` when there is no data in the stable window (`ErrNoData`).
    pub fn scale(&mut self, now: Instant, ready_pods: u32) -> Option<ScaleResult> {
        let spec = &self.spec;
        let buckets = match self.metric {
            Metric::Concurrency => &self.concurrency,
            Metric::Rps => &self.rps,
        };
        let stable_value = buckets.window_average(now, spec.stable_window)?;
        let panic_value = buckets.window_average(now, spec.panic_window).unwrap_or(0.0);

        // Use 1 when there are no pods, so the rates still allow growth.
        let ready = f64::from(ready_pods.max(1));
        let target = spec.target_value.max(TARGET_MIN);
        // Ceil/floor so a conservative rate still moves by at least one pod.
        let max_scale_up = (spec.max_scale_up_rate * ready).ceil();
        let max_scale_down = if spec.reachable { (ready / spec.max_scale_down_rate).floor() } else { 0.0 };

        let dspc = (stable_value / target).ceil();
        let dppc = (panic_value / target).ceil();
        // Float-to-int casts saturate, so absurd inputs cannot wrap.
        let mut desired_stable = dspc.max(max_scale_down).min(max_scale_up) as u32;
        let mut desired_panic = dppc.max(max_scale_down).min(max_scale_up) as u32;
        let activation = spec.activation_scale;
        if activation > 1 {
            if dspc > 0.0 && activation > desired_stable {
                desired_stable = activation;
            }
            if dppc > 0.0 && activation > desired_panic {
                desired_panic = activation;
            }
        }

        let over_threshold = dppc / ready >= spec.panic_threshold;
        match self.panic_since {
            // Start panicking, or extend the panic while still over the threshold.
            _ if over_threshold => self.panic_since = Some(now),
            // Stop once the surge has been in the stable window for a whole window.
            Some(since) if since + spec.stable_window < now => {
                self.panic_since = None;
                self.max_panic_pods = 0;
            }
            _ => {}
        }

        let mut desired = desired_stable;
        if self.panic_since.is_some() {
            // Provision for the larger of the two, and never scale down while panicking.
            desired = desired.max(desired_panic).max(self.max_panic_pods);
            self.max_panic_pods = desired;
        }

        if let Some(delay) = &mut self.delay {
            delay.record(now, desired);
            desired = delay.current().unwrap_or(desired);
        }

        // Excess burst capacity is based on the panic value, to avoid knee-jerk activator moves.
        let tbc = spec.target_burst_capacity;
        let excess_burst_capacity = if tbc == 0.0 {
            0
        } else if tbc > 0.0 {
            (f64::from(ready_pods) * spec.total_value - tbc - panic_value).floor() as i64
        } else {
            -1
        };

        Some(ScaleResult {
            desired,
            excess_burst_capacity,
            panicking: self.panic_since.is_some(),
            stable_value,
            panic_value,
        })
    }
}

/// Maximum of the values recorded over a trailing window of whole ticks (Knative's
/// `max.TimeWindow`), kept as a descending monotonic queue.
#[derive(Debug, Clone)]
struct MaxWindow {
    slots: i64,
    granularity: Duration,
    origin: Option<Instant>,
    /// (slot, value) with strictly decreasing values and increasing slots.
    maxima: VecDeque<(i64, u32)>,
}

impl MaxWindow {
    /// The scale-down-delay window of `spec`, if it has one.
    fn for_spec(spec: &DeciderSpec) -> Option<MaxWindow> {
        if spec.scale_down_delay.is_zero() {
            return None;
        }
        let granularity = spec.tick_interval.max(Duration::from_secs(1));
        let slots = spec.scale_down_delay.as_nanos().div_ceil(granularity.as_nanos());
        Some(MaxWindow {
            slots: i64::try_from(slots).unwrap_or(i64::MAX).max(1),
            granularity,
            origin: None,
            maxima: VecDeque::new(),
        })
    }

    fn record(&mut self, now: Instant, value: u32) {
        let origin = *self.origin.get_or_insert(now);
        let index = slot(origin, now, self.granularity);
        // A smaller, older value can never be the maximum again.
        while self.maxima.back().is_some_and(|&(_, v)| v <= value) {
            self.maxima.pop_back();
        }
        while self.maxima.front().is_some_and(|&(i, _)| index - i >= self.slots) {
            self.maxima.pop_front();
        }
        let mut value = value;
        if let Some(&(i, v)) = self.maxima.back()
            && i == index
        {
            value = value.max(v);
            self.maxima.pop_back();
        }
        self.maxima.push_back((index, value));
    }

    fn current(&self) -> Option<u32> {
        self.maxima.front().map(|&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DeciderSpec {
        DeciderSpec {
            target_value: 10.0,
            total_value: 10.0,
            target_burst_capacity: 0.0,
            ..DeciderSpec::default()
        }
    }

    /// Record `value` for every second in `from..=to`.
    fn fill(a: &mut Autoscaler, t0: Instant, from: u64, to: u64, value: f64) {
        for s in from..=to {
            a.record(t0 + Duration::from_secs(s), value, value);
        }
    }

    struct Case {
        name: &'static str,
        spec: DeciderSpec,
        metric: Metric,
        /// (from, to, value) recordings.
        data: Vec<(u64, u64, f64)>,
        now: u64,
        ready: u32,
        want_desired: Option<u32>,
        want_panicking: bool,
    }

    #[test]
    fn scale_table() {
        let base = spec();
        let cases = vec![
            Case {
                name: "no data",
                spec: base.clone(),
                metric: Metric::Concurrency,
                data: vec![],
                now: 10,
                ready: 1,
                want_desired: None,
                want_panicking: false,
            },
            Case {
                name: "stable: ceil(observed / target)",
                spec: base.clone(),
                metric: Metric::Concurrency,
                data: vec![(0, 59, 45.0)],
                now: 59,
                ready: 5,
                want_desired: Some(5),
                want_panicking: false,
            },
            Case {
                name: "rps metric",
                spec: base.clone(),
                metric: Metric::Rps,
                data: vec![(0, 59, 21.0)],
                now: 59,
                ready: 3,
                want_desired: Some(3),
                want_panicking: false,
            },
            Case {
                name: "max scale-up rate",
                spec: DeciderSpec { max_scale_up_rate: 2.0, ..base.clone() },
                metric: Metric::Concurrency,
                data: vec![(0, 59, 100.0)],
                now: 59,
                ready: 3,
                want_desired: Some(6),
                want_panicking: true,
            },
            Case {
                name: "scale-up rate grows by at least one pod",
                spec: DeciderSpec { max_scale_up_rate: 1.1, ..base.clone() },
                metric: Metric::Concurrency,
                data: vec![(0, 59, 30.0)],
                now: 59,
                ready: 2,
                want_desired: Some(3),
                want_panicking: false,
            },
            Case {
                name: "max scale-down rate",
                spec: base.clone(),
                metric: Metric::Concurrency,
                data: vec![(0, 59, 0.0)],
                now: 59,
                ready: 10,
                want_desired: Some(5),
                want_panicking: false,
            },
            Case {
                name: "unreachable scales straight down",
                spec: DeciderSpec { reachable: false, ..base.clone() },
                metric: Metric::Concurrency,
                data: vec![(0, 59, 0.0)],
                now: 59,
                ready: 10,
                want_desired: Some(0),
                want_panicking: false,
            },
            Case {
                name: "one pod may go to zero",
                spec: base.clone(),
                metric: Metric::Concurrency,
                data: vec![(0, 59, 0.0)],
                now: 59,
                ready: 1,
                want_desired: Some(0),
                want_panicking: false,
            },
            Case {
                name: "activation scale bumps a small non-zero demand",
                spec: DeciderSpec { activation_scale: 3, ..base.clone() },
                metric: Metric::Concurrency,
                data: vec![(0, 59, 1.0)],
                now: 59,
                ready: 3,
                want_desired: Some(3),
                want_panicking: false,
            },
            Case {
                name: "activation scale leaves zero demand alone",
                spec: DeciderSpec { activation_scale: 3, ..base.clone() },
                metric: Metric::Concurrency,
                data: vec![(0, 59, 0.0)],
                now: 59,
                ready: 1,
                want_desired: Some(0),
                want_panicking: false,
            },
            Case {
                name: "panic: burst in the panic window",
                spec: base.clone(),
                metric: Metric::Concurrency,
                data: vec![(0, 53, 10.0), (54, 59, 100.0)],
                now: 59,
                ready: 2,
                want_desired: Some(10),
                want_panicking: true,
            },
            Case {
                name: "stale data still scales on the last window",
                spec: base.clone(),
                metric: Metric::Concurrency,
                data: vec![(0, 59, 20.0)],
                now: 70,
                ready: 2,
                want_desired: Some(2),
                want_panicking: false,
            },
        ];
        for c in cases {
            let t0 = Instant::now();
            let mut a = Autoscaler::new(c.metric, c.spec.clone());
            for &(from, to, v) in &c.data {
                fill(&mut a, t0, from, to, v);
            }
            let r = a.scale(t0 + Duration::from_secs(c.now), c.ready);
            assert_eq!(r.map(|r| r.desired), c.want_desired, "{}: {r:?}", c.name);
            assert_eq!(r.is_some_and(|r| r.panicking), c.want_panicking, "{}: {r:?}", c.name);
        }
    }

    #[test]
    fn excess_burst_capacity_table() {
        // (tbc, ready, total, panic-window concurrency, expected EBC)
        let cases: &[(f64, u32, f64, f64, i64)] = &[
            (0.0, 3, 10.0, 5.0, 0),
            (-1.0, 3, 10.0, 5.0, -1),
            (211.0, 3, 100.0, 10.0, 79),
            (211.0, 1, 100.0, 0.0, -111),
            (211.0, 0, 100.0, 0.0, -211),
            (5.5, 2, 10.0, 3.0, 11),
        ];
        for &(tbc, ready, total, load, want) in cases {
            let t0 = Instant::now();
            let spec = DeciderSpec { target_burst_capacity: tbc, total_value: total, ..spec() };
            let mut a = Autoscaler::new(Metric::Concurrency, spec);
            fill(&mut a, t0, 0, 59, load);
            let r = a.scale(t0 + Duration::from_secs(59), ready).expect("data");
            assert_eq!(r.excess_burst_capacity, want, "tbc {tbc} ready {ready}");
        }
    }

    /// Step through ticks: (second, concurrency recorded for the preceding seconds, ready, desired, panicking).
    fn run_ticks(a: &mut Autoscaler, t0: Instant, steps: &[(u64, f64, u32, u32, bool)], name: &str) {
        let mut recorded_to = 0;
        for &(at, load, ready, want, panicking) in steps {
            fill(a, t0, recorded_to, at, load);
            recorded_to = at + 1;
            let r = a.scale(t0 + Duration::from_secs(at), ready).expect("data");
            assert_eq!((r.desired, r.panicking), (want, panicking), "{name} at {at}s: {r:?}");
        }
    }

    #[test]
    fn panic_never_scales_down_and_ends_after_a_stable_window() {
        let t0 = Instant::now();
        let mut a = Autoscaler::new(Metric::Concurrency, spec());
        run_ticks(
            &mut a,
            t0,
            &[
                (0, 10.0, 1, 1, false),
                // The panic window jumps to 7× the target on one pod.
                (2, 100.0, 1, 7, true),
                // Load drops: no scale-down while panicking.
                (4, 0.0, 10, 7, true),
                (30, 0.0, 10, 7, true),
                (62, 0.0, 10, 7, true),
                // 60s after the last over-threshold tick the panic ends; the rate limit halves the pods.
                (63, 0.0, 10, 5, false),
            ],
            "panic",
        );
    }

    #[test]
    fn panic_is_extended_while_over_threshold() {
        let t0 = Instant::now();
        let mut a = Autoscaler::new(Metric::Concurrency, spec());
        run_ticks(
            &mut a,
            t0,
            &[
                (0, 100.0, 1, 10, true),
                (40, 100.0, 5, 10, true),
                (100, 0.0, 10, 10, true),
                (101, 0.0, 10, 5, false),
            ],
            "extended",
        );
    }

    #[test]
    fn resume_starts_in_panic_with_running_pods() {
        let t0 = Instant::now();
        let mut a = Autoscaler::resume(Metric::Concurrency, spec(), t0, 4);
        fill(&mut a, t0, 0, 2, 0.0);
        let r = a.scale(t0 + Duration::from_secs(2), 4).expect("data");
        assert_eq!((r.desired, r.panicking), (4, true));
        let mut b = Autoscaler::resume(Metric::Concurrency, spec(), t0, 1);
        fill(&mut b, t0, 0, 2, 0.0);
        let r = b.scale(t0 + Duration::from_secs(2), 1).expect("data");
        assert_eq!((r.desired, r.panicking), (0, false));
    }

    #[test]
    fn scale_down_delay_holds_the_maximum() {
        let t0 = Instant::now();
        let spec = DeciderSpec {
            stable_window: Duration::from_secs(6),
            panic_window: Duration::from_secs(6),
            max_scale_down_rate: 1000.0,
            scale_down_delay: Duration::from_secs(10),
            ..spec()
        };
        let mut a = Autoscaler::new(Metric::Concurrency, spec);
        fill(&mut a, t0, 0, 5, 50.0);
        assert_eq!(a.scale(t0 + Duration::from_secs(5), 5).map(|r| r.desired), Some(5));
        // Undelayed desired: 4 at 7s, 2 at 9s, 0 from 11s; each is held for five 2s ticks.
        let steps: &[(u64, u32)] = &[(7, 5), (9, 5), (11, 5), (13, 5), (15, 4), (17, 2), (19, 0)];
        for &(at, want) in steps {
            fill(&mut a, t0, at - 1, at, 0.0);
            let r = a.scale(t0 + Duration::from_secs(at), 5).expect("data");
            assert_eq!(r.desired, want, "at {at}s: {r:?}");
        }
    }

    #[test]
    fn max_window_table() {
        // (tick secs, delay secs, [(second, value)], expected current after each record)
        type Case<'a> = (u64, u64, &'a [(u64, u32)], &'a [u32]);
        let cases: &[Case] = &[
            (2, 10, &[(0, 5), (2, 3), (4, 1)], &[5, 5, 5]),
            (2, 10, &[(0, 5), (2, 3), (10, 1)], &[5, 5, 3]),
            (2, 10, &[(0, 5), (2, 3), (12, 1)], &[5, 5, 1]),
            (2, 10, &[(0, 1), (2, 3), (4, 2)], &[1, 3, 3]),
            (2, 4, &[(0, 1), (1, 4), (1, 2)], &[1, 4, 4]),
            (1, 3, &[(0, 9), (1, 1), (2, 1), (3, 2), (4, 1)], &[9, 9, 9, 2, 2]),
        ];
        for &(tick, delay, recs, wants) in cases {
            let t0 = Instant::now();
            let spec = DeciderSpec {
                tick_interval: Duration::from_secs(tick),
                scale_down_delay: Duration::from_secs(delay),
                ..spec()
            };
            let mut w = MaxWindow::for_spec(&spec).expect("delay set");
            for (&(s, v), &want) in recs.iter().zip(wants) {
                w.record(t0 + Duration::from_secs(s), v);
                assert_eq!(w.current(), Some(want), "tick {tick} delay {delay} at {s}s");
            }
        }
        assert!(MaxWindow::for_spec(&spec()).is_none());
    }

    #[test]
    fn update_keeps_data() {
        let t0 = Instant::now();
        let mut a = Autoscaler::new(Metric::Concurrency, spec());
        fill(&mut a, t0, 0, 59, 30.0);
        a.update(
            Metric::Rps,
            DeciderSpec { target_value: 5.0, stable_window: Duration::from_secs(30), ..spec() },
        );
        let r = a.scale(t0 + Duration::from_secs(59), 6).expect("data kept");
        assert_eq!(r.desired, 6);
        assert_eq!(a.metric(), Metric::Rps);
        assert_eq!(a.spec().stable_window, Duration::from_secs(30));
    }
}
