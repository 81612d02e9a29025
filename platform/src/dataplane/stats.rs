//! Request metrics of one revision, gathered on the data path: in-flight requests as a
//! time-weighted average per reporting period (what the autoscaler scales on, as Knative's
//! queue-proxy reports it), request counts, and latency histograms for `/metrics`.
//!
//! A request costs two short uncontended lock sections and a few atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A Prometheus histogram with fixed buckets, updated with atomics.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket (`le`), the total count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut cumulative = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        let count = self.count.load(Ordering::Relaxed);
        (buckets, count, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

struct Window {
    in_flight: u32,
    /// When `in_flight` last changed or the period was last taken.
    since: Instant,
    /// Request-seconds accumulated in this period.
    area: f64,
    period_start: Instant,
    requests: u64,
}

/// One period's observation: what the autoscaler records per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Time-weighted average of requests in flight over the period.
    pub average_concurrency: f64,
    /// Requests that arrived in the period.
    pub requests: f64,
}

/// The metrics of one revision.
pub struct RequestStats {
    window: Mutex<Window>,
    /// Responses by status class: 1xx..5xx (index 0..4).
    pub responses: [AtomicU64; 5],
    pub latency: Histogram,
}

impl Default for RequestStats {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            window: Mutex::new(Window {
                in_flight: 0,
                since: now,
                area: 0.0,
                period_start: now,
                requests: 0,
            }),
            responses: Default::default(),
            latency: Histogram::default(),
        }
    }
}

impl RequestStats {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request arrived; it counts as in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let now = Instant::now();
        let mut w = self.window();
        w.area += f64::from(w.in_flight) * (now - w.since).as_secs_f64();
        w.since = now;
        w.in_flight += 1;
        w.requests += 1;
        drop(w);
        InFlight { stats: Arc::clone(self), started: now, answered: false }
    }

    fn end(&self) {
        let now = Instant::now();
        let mut w = self.window();
        w.area += f64::from(w.in_flight) * (now - w.since).as_secs_f64();
        w.since = now;
        w.in_flight = w.in_flight.saturating_sub(1);
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.window().in_flight
    }

    /// Close the current period at `now` and start the next.
    pub fn take(&self, now: Instant) -> Sample {
        let mut w = self.window();
        let now = now.max(w.since);
        w.area += f64::from(w.in_flight) * (now - w.since).as_secs_f64();
        let period = (now - w.period_start).as_secs_f64();
        let sample = Sample {
            average_concurrency: if period > 0.0 { w.area / period } else { f64::from(w.in_flight) },
            requests: w.requests as f64,
        };
        w.since = now;
        w.period_start = now;
        w.area = 0.0;
        w.requests = 0;
        sample
    }

    /// Total responses.
    pub fn total(&self) -> u64 {
        self.responses.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// A request in flight. Record its answer with [`InFlight::answered`]; dropping it ends it.
pub struct InFlight {
    stats: Arc<RequestStats>,
    started: Instant,
    answered: bool,
}

impl InFlight {
    /// The response head is out: count it by status and observe the latency.
    pub fn answered(&mut self, status: http::StatusCode) {
        if self.answered {
            return;
        }
        self.answered = true;
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.stats.responses[class].fetch_add(1, Ordering::Relaxed);
        self.stats.latency.observe(self.started.elapsed());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_weighted_by_time() {
        let stats = RequestStats::default();
        let start = stats.window().period_start;
        {
            let mut w = stats.window();
            // Two requests for the whole second and one for half of it.
            w.in_flight = 2;
            w.since = start;
            w.area = 0.5;
            w.requests = 3;
        }
        let sample = stats.take(start + Duration::from_secs(1));
        assert!((sample.average_concurrency - 2.5).abs() < 1e-9, "{sample:?}");
        assert_eq!(sample.requests, 3.0);
        // The next period starts afresh, with what is still in flight.
        let next = stats.take(start + Duration::from_secs(2));
        assert!((next.average_concurrency - 2.0).abs() < 1e-9, "{next:?}");
        assert_eq!(next.requests, 0.0);
    }

    #[test]
    fn guards_count_answers_and_end_requests() {
        let stats = Arc::new(RequestStats::default());
        {
            let mut a = stats.begin();
            let _b = stats.begin();
            assert_eq!(stats.in_flight(), 2);
            a.answered(http::StatusCode::OK);
            a.answered(http::StatusCode::OK);
        }
        assert_eq!(stats.in_flight(), 0);
        assert_eq!(stats.responses[1].load(Ordering::Relaxed), 1);
        assert_eq!(stats.total(), 1);
        let (buckets, count, _) = stats.latency.snapshot();
        assert_eq!(count, 1);
        assert_eq!(buckets.last().map(|b| b.1), Some(1));
    }
}
