//! `GET /metrics`: the data plane's and the autoscaler's figures per revision, in
//! Prometheus' text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::Tables;
use super::revision::Revision;
use super::stats::Histogram;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn labels(revision: &Revision) -> String {
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!(
        "namespace=\"{}\",service=\"{}\",revision=\"{}\"",
        escape(&revision.namespace),
        escape(revision.service.as_deref().unwrap_or("")),
        escape(&revision.name)
    )
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
    }

    fn histogram(&mut self, name: &str, labels: &str, histogram: &Histogram) {
        let (buckets, count, sum) = histogram.snapshot();
        for (bound, cumulative) in buckets {
            let _ = writeln!(self.out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(self.out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(self.out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(self.out, "{name}_count{{{labels}}} {count}");
    }
}

/// The metrics of every revision in the data plane.
pub fn render(tables: &Tables) -> String {
    let revisions = tables.revisions();
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let each = |f: &mut Family, name: &str, kind: &str, help: &str, value: &dyn Fn(&Revision) -> String| {
        f.header(name, kind, help);
        for revision in &revisions {
            f.sample(name, &labels(revision), value(revision));
        }
    };
    f.header("skiff_requests_total", "counter", "Requests answered, by status class.");
    for revision in &revisions {
        let labels = labels(revision);
        for (i, n) in revision.stats.responses.iter().enumerate() {
            let code = format!("{labels},code_class=\"{}xx\"", i + 1);
            f.sample("skiff_requests_total", &code, n.load(Ordering::Relaxed));
        }
    }
    f.header(
        "skiff_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response head, activator and queue included.",
    );
    for revision in &revisions {
        f.histogram("skiff_request_duration_seconds", &labels(revision), &revision.stats.latency);
    }
    each(&mut f, "skiff_requests_in_flight", "gauge", "Requests in flight now.", &|r| {
        r.stats.in_flight().to_string()
    });
    each(
        &mut f,
        "skiff_activator_held_requests",
        "gauge",
        "Requests the activator holds for capacity.",
        &|r| r.held().to_string(),
    );
    each(
        &mut f,
        "skiff_activator_in_path",
        "gauge",
        "1 when requests go through the activator (no pods, or too little burst capacity).",
        &|r| u8::from(r.activator_in_path()).to_string(),
    );
    each(&mut f, "skiff_revision_ready_pods", "gauge", "Pods ready to serve.", &|r| {
        r.pods().len().to_string()
    });
    each(&mut f, "skiff_revision_desired_pods", "gauge", "Pods the autoscaler wants.", &|r| {
        r.gauges.desired.load(Ordering::Relaxed).to_string()
    });
    each(&mut f, "skiff_autoscaler_panic_mode", "gauge", "1 while the autoscaler panics.", &|r| {
        u8::from(r.gauges.panicking.load(Ordering::Relaxed)).to_string()
    });
    each(
        &mut f,
        "skiff_autoscaler_stable_value",
        "gauge",
        "The scaling metric averaged over the stable window.",
        &|r| r.gauges.observed().0.to_string(),
    );
    each(
        &mut f,
        "skiff_autoscaler_panic_value",
        "gauge",
        "The scaling metric averaged over the panic window.",
        &|r| r.gauges.observed().1.to_string(),
    );
    each(
        &mut f,
        "skiff_autoscaler_excess_burst_capacity",
        "gauge",
        "Capacity beyond the target burst capacity; negative puts the activator in the path.",
        &|r| r.gauges.observed().2.to_string(),
    );
    f.header("skiff_cold_starts_total", "counter", "Scale-ups from zero pods.");
    for revision in &revisions {
        f.sample("skiff_cold_starts_total", &labels(revision), revision.gauges.cold_starts.snapshot().1);
    }
    f.header(
        "skiff_cold_start_duration_seconds",
        "histogram",
        "From the first held request to the first ready pod, per cold start.",
    );
    for revision in &revisions {
        f.histogram("skiff_cold_start_duration_seconds", &labels(revision), &revision.gauges.cold_starts);
    }
    out
}
