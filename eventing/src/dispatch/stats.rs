//! A trigger's counters, kept with atomics by its dispatcher and read by the platform's
//! `/metrics`, which renders them in the Prometheus text format.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds, in seconds, of the delivery latency histogram's buckets (besides `+Inf`).
/// The latency runs from the event's append to the log to the subscriber's answer, so it
/// includes any backlog and every retry: the buckets reach minutes.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// One trigger's counters. Each is updated on its own (relaxed), so a snapshot taken while
/// deliveries go on may be a few events apart from one counter to the next.
#[derive(Debug, Default)]
pub struct TriggerStats {
    delivered: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    filtered_out: AtomicU64,
    in_flight: AtomicU64,
    latency: Histogram,
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsSnapshot {
    /// Events the subscriber accepted (a 2xx answer).
    pub delivered: u64,
    /// Events lost: not accepted by the subscriber nor by a dead letter sink, dropped for
    /// their broker TTL, or not decodable from the log; and replies that could not be appended
    /// to the broker.
    pub failed: u64,
    /// Attempts that were retries, to the subscriber or to the dead letter sink.
    pub retried: u64,
    /// Events the subscriber did not accept that the dead letter sink did.
    pub dead_lettered: u64,
    /// Events the trigger's filter did not match.
    pub filtered_out: u64,
    /// Deliveries under way now (a gauge).
    pub in_flight: u64,
    /// The latency of the delivered events.
    pub latency: LatencySnapshot,
}

/// A Prometheus histogram: cumulative bucket counts, the sum and the count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencySnapshot {
    /// `(upper bound in seconds, observations at or below it)` for each of [`LATENCY_BUCKETS`],
    /// cumulative; the `+Inf` bucket is [`LatencySnapshot::count`].
    pub buckets: Vec<(f64, u64)>,
    /// The sum of the observations, in seconds.
    pub sum: f64,
    pub count: u64,
}

impl TriggerStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            delivered: get(&self.delivered),
            failed: get(&self.failed),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            filtered_out: get(&self.filtered_out),
            in_flight: get(&self.in_flight),
            latency: self.latency.snapshot(),
        }
    }

    /// A delivery accepted by the subscriber `latency` after its event was appended.
    pub(crate) fn delivered(&self, latency: Duration) {
        self.latency.observe(latency);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn filtered_out(&self) {
        self.filtered_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one delivery in flight for as long as it lives, however it ends (completed, aborted
/// or panicked).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<TriggerStats>);

impl InFlight {
    pub(crate) fn new(stats: Arc<TriggerStats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(stats)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-bucket (not cumulative) counts, the last one for `+Inf`, and the sum in nanoseconds.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        // Prometheus buckets are inclusive of their upper bound.
        let index =
            LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        // Saturating: 584 years of latency in total before it would wrap.
        let _ = self
            .sum_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| Some(sum.saturating_add(nanos)));
    }

    fn snapshot(&self) -> LatencySnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        // The count is the buckets' total, so that `+Inf` always agrees with it.
        let count = cumulative + self.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        LatencySnapshot { buckets, sum, count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let stats = TriggerStats::default();
        for millis in [1, 5, 7, 250, 251, 400_000] {
            stats.delivered(Duration::from_millis(millis));
        }
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.delivered, 6);
        let latency = snapshot.latency;
        assert_eq!(latency.count, 6);
        assert!((latency.sum - 400.514).abs() < 1e-9, "{}", latency.sum);
        let at = |bound: f64| latency.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.005), 2, "5ms is in the 5ms bucket");
        assert_eq!(at(0.01), 3);
        assert_eq!(at(0.25), 4);
        assert_eq!(at(0.5), 5);
        assert_eq!(at(300.0), 5, "400s is only in +Inf");
        assert_eq!(latency.buckets.len(), LATENCY_BUCKETS.len());
        assert!(latency.buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn counters_and_the_in_flight_gauge() {
        let stats = Arc::new(TriggerStats::default());
        stats.failed();
        stats.retried();
        stats.retried();
        stats.dead_lettered();
        stats.filtered_out();
        let first = InFlight::new(stats.clone());
        let second = InFlight::new(stats.clone());
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.failed, snapshot.retried, snapshot.dead_lettered, snapshot.filtered_out),
            (1, 2, 1, 1)
        );
        assert_eq!(snapshot.in_flight, 2);
        drop(first);
        assert_eq!(stats.snapshot().in_flight, 1);
        drop(second);
        assert_eq!(stats.snapshot().in_flight, 0);
        assert_eq!(stats.snapshot().latency.count, 0);
    }
}
