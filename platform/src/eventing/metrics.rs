//! Eventing's figures in Prometheus' text format: events each broker accepted, and per trigger
//! what was delivered, retried, dead-lettered or lost, and how long delivery took.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::Eventing;

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(eventing: &Eventing) -> String {
    let mut out = String::new();
    let mut accepted: Vec<(String, String, u64)> = eventing
        .accepted
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|(key, count)| {
            let (namespace, name) = key.split_once('/')?;
            Some((namespace.to_string(), name.to_string(), count.load(Ordering::Relaxed)))
        })
        .collect();
    accepted.sort();
    let _ = writeln!(
        out,
        "# HELP skiff_broker_events_accepted_total Events a broker accepted (answered 202) since the process started.\n\
         # TYPE skiff_broker_events_accepted_total counter"
    );
    for (namespace, name, count) in &accepted {
        let _ = writeln!(
            out,
            "skiff_broker_events_accepted_total{{namespace=\"{}\",broker=\"{}\"}} {count}",
            escape(namespace),
            escape(name)
        );
    }

    let mut triggers: Vec<_> = {
        let dispatchers = eventing.dispatchers.lock().unwrap_or_else(|p| p.into_inner());
        dispatchers
            .iter()
            .map(|((namespace, name), dispatcher)| {
                let subscription = dispatcher.subscription();
                let broker = subscription.broker.split_once('/').map_or("", |(_, b)| b).to_string();
                (namespace.clone(), name.clone(), broker, dispatcher.stats().snapshot())
            })
            .collect()
    };
    triggers.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let labels = |(namespace, name, broker, _): &(String, String, String, _)| {
        format!(
            "namespace=\"{}\",trigger=\"{}\",broker=\"{}\"",
            escape(namespace),
            escape(name),
            escape(broker)
        )
    };
    type Field = fn(&skiff_eventing::dispatch::StatsSnapshot) -> u64;
    let counters: [(&str, &str, &str, Field); 6] = [
        ("skiff_trigger_events_delivered_total", "counter", "Events the subscriber accepted (2xx).", |s| {
            s.delivered
        }),
        ("skiff_trigger_events_retried_total", "counter", "Delivery attempts that were retries.", |s| {
            s.retried
        }),
        (
            "skiff_trigger_events_dead_lettered_total",
            "counter",
            "Events sent to the dead letter sink after failing.",
            |s| s.dead_lettered,
        ),
        (
            "skiff_trigger_events_failed_total",
            "counter",
            "Events that could be delivered neither to the subscriber nor to a dead letter sink.",
            |s| s.failed,
        ),
        ("skiff_trigger_events_filtered_total", "counter", "Events the trigger's filter passed over.", |s| {
            s.filtered_out
        }),
        ("skiff_trigger_deliveries_in_flight", "gauge", "Deliveries under way.", |s| s.in_flight),
    ];
    for (name, kind, help, field) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for trigger in &triggers {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(trigger), field(&trigger.3));
        }
    }
    let name = "skiff_trigger_delivery_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From the broker accepting an event to its subscriber accepting it.\n# TYPE {name} histogram"
    );
    for trigger in &triggers {
        let labels = labels(trigger);
        let latency = &trigger.3.latency;
        for (bound, cumulative) in &latency.buckets {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", latency.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", latency.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", latency.count);
    }
    out
}
