//! Per-second metric buckets with Knative's windowed averaging (`aggregation.TimedFloat64Buckets`).
//!
//! Semantics kept from Knative, for a window of `n` one-second buckets ending at `now`:
//! - values recorded in the same second are summed into one bucket;
//! - seconds without a record inside the window count as zero;
//! - a gap of more than a window between two records restarts the window, and until a full window
//!   has passed since that (re)start the average is over the seconds since it only;
//! - when the last record is older than `now`, the average is over the part of the window up to the
//!   last record; once the last record is a full window old the average is 0, and after that there is
//!   no data at all (`None`, Knative's `ErrNoData`);
//! - averages are truncated to six decimals.
//!
//! Knative keeps one bucket ring per window; here one store answers any window up to the retention.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

/// Values recorded per second over a retention window, averaged over a window ending at `now`.
#[derive(Debug, Clone)]
pub struct Buckets {
    retention: Duration,
    /// The instant second 0 starts at (the first record).
    origin: Option<Instant>,
    /// (second since origin, summed value), ascending, one entry per recorded second.
    entries: VecDeque<(i64, f64)>,
}

impl Buckets {
    /// `retention` is the longest window that will be asked for (the stable window).
    pub fn new(retention: Duration) -> Self {
        Buckets { retention: retention.max(SECOND), origin: None, entries: VecDeque::new() }
    }

    /// The longest window this store answers.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Change the retention (e.g. a new stable window); data within the new retention is kept.
    pub fn set_retention(&mut self, retention: Duration) {
        self.retention = retention.max(SECOND);
        self.prune();
    }

    /// Add `value` into the one-second bucket containing `at`.
    pub fn record(&mut self, at: Instant, value: f64) {
        if !value.is_finite() {
            return;
        }
        let origin = *self.origin.get_or_insert(at);
        let sec = slot(origin, at, SECOND);
        match self.entries.back_mut() {
            Some(last) if last.0 == sec => last.1 += value,
            Some(last) if last.0 > sec => {
                // Late record: keep it if it is still within what we hold.
                if last.0 - sec > self.keep() {
                    return;
                }
                match self.entries.binary_search_by_key(&sec, |e| e.0) {
                    Ok(i) => self.entries[i].1 += value,
                    Err(i) => self.entries.insert(i, (sec, value)),
                }
            }
            _ => self.entries.push_back((sec, value)),
        }
        self.prune();
    }

    /// Average per bucket over the `window` ending at `now` (windows longer than the retention are
    /// cut to it); `None` when nothing was recorded within the window (Knative's `ErrNoData`).
    pub fn window_average(&self, now: Instant, window: Duration) -> Option<f64> {
        let origin = self.origin?;
        let &(last, _) = self.entries.back()?;
        let window = window.clamp(SECOND, self.retention);
        let buckets = ceil_secs(window);
        let now_sec = slot(origin, now, SECOND);
        let since_last = now_sec - last;
        if since_last > 0 {
            let since_last = Duration::from_secs(since_last.unsigned_abs());
            if since_last > window {
                return None;
            }
            if since_last == window {
                return Some(0.0);
            }
        }
        // The window covers seconds (start, last]; `first` is where the current run of records began.
        let start = now_sec.max(last) - buckets;
        let mut sum = 0.0;
        let mut first = last;
        let mut iter = self.entries.iter().rev().peekable();
        while let Some(&(sec, value)) = iter.next() {
            first = sec;
            if sec <= start {
                // The run reaches back past the window: the whole window counts.
                break;
            }
            sum += value;
            match iter.peek() {
                // The run restarted here: the previous record is more than a window earlier.
                Some(&&(prev, _)) if Duration::from_secs((sec - prev).unsigned_abs()) > window => break,
                Some(_) => {}
                // Nothing earlier is held, so any earlier record was more than a window before.
                None => break,
            }
        }
        let count = (last - first + 1).min(last - start).max(1);
        Some(round6(sum / count as f64))
    }

    /// Whether nothing is held at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seconds of history held behind the last record: two windows, so the start of the current
    /// run of records can always be found.
    fn keep(&self) -> i64 {
        2 * ceil_secs(self.retention) + 1
    }

    fn prune(&mut self) {
        let Some(&(last, _)) = self.entries.back() else { return };
        let keep = self.keep();
        while self.entries.front().is_some_and(|e| last - e.0 > keep) {
            self.entries.pop_front();
        }
    }
}

/// Index of the `granularity`-long slot containing `at`, counted from `origin` (may be negative).
pub(crate) fn slot(origin: Instant, at: Instant, granularity: Duration) -> i64 {
    let g = granularity.as_nanos().max(1);
    let to_i64 = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
    match at.checked_duration_since(origin) {
        Some(d) => to_i64(d.as_nanos() / g),
        None => -to_i64(origin.duration_since(at).as_nanos().div_ceil(g)),
    }
}

fn ceil_secs(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

/// Knative truncates averages to six decimals.
fn round6(x: f64) -> f64 {
    (x * 1e6).floor() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording: (second offset, value).
    type Rec = (u64, f64);

    fn run(retention: u64, recs: &[Rec], now: u64, window: u64) -> Option<f64> {
        let t0 = Instant::now();
        let mut b = Buckets::new(Duration::from_secs(retention));
        for &(s, v) in recs {
            b.record(t0 + Duration::from_secs(s), v);
        }
        b.window_average(t0 + Duration::from_secs(now), Duration::from_secs(window))
    }

    fn every_second(from: u64, to: u64, v: f64) -> Vec<Rec> {
        (from..=to).map(|s| (s, v)).collect()
    }

    #[test]
    fn window_average_table() {
        let full: Vec<Rec> = every_second(0, 59, 1.0);
        let mut burst = every_second(0, 59, 1.0);
        burst.extend(every_second(60, 65, 10.0));
        let mut gapped = every_second(0, 9, 1.0);
        gapped.push((20, 7.0));
        // (name, recordings, now, window, expected average)
        type Case = (&'static str, Vec<Rec>, u64, u64, Option<f64>);
        let cases: Vec<Case> = vec![
            ("no data", vec![], 10, 60, None),
            ("single record, partial window", vec![(0, 4.0)], 0, 60, Some(4.0)),
            ("partial window since first record", every_second(0, 9, 2.0), 9, 60, Some(2.0)),
            ("full window", full.clone(), 59, 60, Some(1.0)),
            (
                "one spike over a full window",
                {
                    let mut v = vec![(0, 60.0)];
                    v.extend(every_second(1, 59, 0.0));
                    v
                },
                59,
                60,
                Some(1.0),
            ),
            ("missing seconds count as zero", vec![(0, 6.0), (5, 6.0)], 5, 60, Some(2.0)),
            ("stale data: average up to the last record", full.clone(), 69, 60, Some(1.0)),
            ("stale data drops the oldest seconds", vec![(0, 50.0), (59, 10.0)], 69, 60, Some(0.2)),
            ("last record exactly a window ago", full.clone(), 119, 60, Some(0.0)),
            ("last record over a window ago", full.clone(), 120, 60, None),
            ("gap longer than the window restarts", vec![(0, 100.0), (70, 1.0)], 70, 60, Some(1.0)),
            ("panic sub-window", burst.clone(), 65, 6, Some(10.0)),
            ("stable window over the burst", burst.clone(), 65, 60, Some(1.9)),
            ("sub-window restarts on its own gaps", gapped.clone(), 20, 6, Some(7.0)),
            ("longer window spans the same gap", gapped.clone(), 20, 60, Some(0.809523)),
            ("same second sums", vec![(3, 2.0), (3, 3.0)], 3, 60, Some(5.0)),
            ("window longer than retention is cut", full.clone(), 59, 600, Some(1.0)),
            ("now before the last record", vec![(0, 1.0), (10, 1.0)], 5, 60, Some(2.0 / 11.0)),
        ];
        for (name, recs, now, window, want) in cases {
            let got = run(60, &recs, now, window);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{name}: got {g}, want {w}"),
                (g, w) => assert_eq!(g, w, "{name}"),
            }
        }
    }

    #[test]
    fn sub_second_times_share_a_bucket() {
        let t0 = Instant::now();
        let mut b = Buckets::new(Duration::from_secs(60));
        b.record(t0 + Duration::from_millis(100), 1.0);
        b.record(t0 + Duration::from_millis(900), 1.0);
        b.record(t0 + Duration::from_millis(1100), 4.0);
        let avg = b.window_average(t0 + Duration::from_millis(1500), Duration::from_secs(60));
        assert_eq!(avg, Some(3.0));
    }

    #[test]
    fn late_records_and_pruning() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut b = Buckets::new(Duration::from_secs(10));
        assert!(b.is_empty());
        b.record(s(5), 1.0);
        b.record(s(3), 1.0); // late, kept
        assert_eq!(b.window_average(s(5), Duration::from_secs(10)), Some(0.666666));
        for n in 6..100 {
            b.record(s(n), 1.0);
        }
        assert!(b.entries.len() <= 22, "held {} entries", b.entries.len());
        b.record(s(10), 50.0); // far too late, dropped
        assert_eq!(b.window_average(s(99), Duration::from_secs(10)), Some(1.0));
        b.set_retention(Duration::from_secs(5));
        assert_eq!(b.window_average(s(99), Duration::from_secs(60)), Some(1.0));
        assert!(!b.is_empty());
    }

    #[test]
    fn slot_table() {
        let t0 = Instant::now() + Duration::from_secs(100);
        // (offset ms from origin, may be negative; expected slot; granularity secs)
        let cases: &[(i64, i64, u64)] = &[
            (0, 0, 1),
            (999, 0, 1),
            (1000, 1, 1),
            (-1, -1, 1),
            (-1000, -1, 1),
            (-1001, -2, 1),
            (3999, 1, 2),
        ];
        for &(ms, want, g) in cases {
            let at = if ms >= 0 {
                t0 + Duration::from_millis(ms.unsigned_abs())
            } else {
                t0 - Duration::from_millis(ms.unsigned_abs())
            };
            assert_eq!(slot(t0, at, Duration::from_secs(g)), want, "{ms}ms / {g}s");
        }
    }
}
