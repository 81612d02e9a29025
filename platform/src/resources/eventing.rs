//! Knative Eventing's kinds: Broker and Trigger (`eventing.knative.dev/v1`) and PingSource
//! (`sources.knative.dev/v1`): their defaults and the validation Knative's webhook does, with
//! the eventing crate's parsers so that what is admitted is exactly what runs.

use serde_json::{Value, json};
use skiff_eventing::delivery::{self, DeliverySpec};
use skiff_eventing::filter::TriggerFilter;

use super::{BROKERS, PINGSOURCES, ResourceType, TRIGGERS, meta};
use crate::status::Cause;

/// The annotation naming a broker's implementation.
pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";
/// The class Skiff gives a broker that names none.
pub const DEFAULT_BROKER_CLASS: &str = "Skiff";
/// Brokers of these classes are Skiff's to run: its own, and Knative's default class, so that
/// manifests written for Knative work unchanged.
pub const BROKER_CLASSES: &[&str] = &[DEFAULT_BROKER_CLASS, "MTChannelBasedBroker"];
/// How many deliveries of one trigger may be in flight at once.
pub const DELIVERY_CONCURRENCY_ANNOTATION: &str = "skiff.dev/delivery-concurrency";
pub const DEFAULT_DELIVERY_CONCURRENCY: usize = 100;
const MAX_DELIVERY_CONCURRENCY: usize = 10_000;

pub fn set_defaults(resource: &ResourceType, object: &mut Value) {
    if resource == &BROKERS {
        if meta::annotation(object, BROKER_CLASS_ANNOTATION).is_none() {
            let metadata = meta::metadata_mut(object);
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(BROKER_CLASS_ANNOTATION.into(), json!(DEFAULT_BROKER_CLASS));
            }
        }
        if object.get("spec").is_none_or(Value::is_null) {
            object["spec"] = json!({});
        }
    } else if resource == &TRIGGERS {
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            // Knative's default: a trigger without a broker subscribes to the `default` one.
            if spec.get("broker").and_then(Value::as_str).is_none_or(str::is_empty) {
                spec.insert("broker".into(), json!("default"));
            }
        }
        default_namespace_of_ref(object, "/spec/subscriber/ref");
        default_namespace_of_ref(object, "/spec/delivery/deadLetterSink/ref");
    } else if resource == &PINGSOURCES {
        // Knative's default: every minute.
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
            && spec.get("schedule").is_none_or(Value::is_null)
        {
            spec.insert("schedule".into(), json!("* * * * *"));
        }
        default_namespace_of_ref(object, "/spec/sink/ref");
    }
    if resource == &BROKERS {
        default_namespace_of_ref(object, "/spec/delivery/deadLetterSink/ref");
    }
}

/// A reference without a namespace points into the object's own namespace.
fn default_namespace_of_ref(object: &mut Value, pointer: &str) {
    let namespace = meta::namespace(object).to_string();
    if let Some(reference) = object.pointer_mut(pointer).and_then(Value::as_object_mut)
        && reference.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty)
        && !namespace.is_empty()
    {
        reference.insert("namespace".into(), json!(namespace));
    }
}

fn causes(problems: Vec<(String, String)>, causes: &mut Vec<Cause>) {
    causes.extend(problems.into_iter().map(|(field, message)| Cause::new(field, message)));
}

fn destination(sink: Option<&Value>, path: &str, required: bool, out: &mut Vec<Cause>) {
    match sink {
        None | Some(Value::Null) if required => out.push(Cause::new(path, "missing field(s)")),
        None | Some(Value::Null) => {}
        Some(sink) => {
            let mut problems = Vec::new();
            delivery::validate_destination(sink, path, &mut problems);
            causes(problems, out);
            if let Some(reference) = sink.get("ref").and_then(Value::as_object) {
                let kind = reference.get("kind").and_then(Value::as_str).unwrap_or("");
                let api_version = reference.get("apiVersion").and_then(Value::as_str).unwrap_or("");
                if !kind.is_empty()
                    && !api_version.is_empty()
                    && super::find_kind(api_version, kind).is_none()
                {
                    out.push(Cause::new(
                        format!("{path}.ref"),
                        format!(
                            "cannot address a {kind} ({api_version}): a sink is a Service \
                             (serving.knative.dev/v1) or a Broker (eventing.knative.dev/v1)"
                        ),
                    ));
                }
            }
        }
    }
}

/// The delivery policy of a Broker or Trigger, or its problems.
pub fn delivery_of(object: &Value) -> Result<DeliverySpec, Vec<(String, String)>> {
    DeliverySpec::from_json(object.pointer("/spec/delivery"), "spec.delivery")
}

/// How many deliveries a trigger may have in flight, from its annotation.
pub fn delivery_concurrency(object: &Value) -> Result<usize, String> {
    match meta::annotation(object, DELIVERY_CONCURRENCY_ANNOTATION) {
        None => Ok(DEFAULT_DELIVERY_CONCURRENCY),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_DELIVERY_CONCURRENCY).contains(&n) => Ok(n),
            _ => Err(format!("expected an integer from 1 to {MAX_DELIVERY_CONCURRENCY}, got {raw:?}")),
        },
    }
}

/// `spec.delivery` of a Broker or Trigger, its dead letter sink included.
fn delivery_policy(object: &Value, out: &mut Vec<Cause>) {
    if let Err(problems) = delivery_of(object) {
        causes(problems, out);
    }
    let sink = object.pointer("/spec/delivery/deadLetterSink");
    destination(sink, "spec.delivery.deadLetterSink", false, out);
}

pub fn validate(resource: &ResourceType, object: &Value, previous: Option<&Value>, out: &mut Vec<Cause>) {
    if resource == &BROKERS {
        delivery_policy(object, out);
        if let Some(previous) = previous {
            let class = |o: &Value| meta::annotation(o, BROKER_CLASS_ANNOTATION).map(str::to_owned);
            if class(previous) != class(object) {
                out.push(Cause::new(
                    format!("metadata.annotations.{BROKER_CLASS_ANNOTATION}"),
                    "Immutable fields changed: a broker's class cannot change",
                ));
            }
        }
    } else if resource == &TRIGGERS {
        let Some(spec) = object.get("spec").filter(|s| s.is_object()) else {
            out.push(Cause::new("spec", "missing field(s)"));
            return;
        };
        if spec.get("broker").and_then(Value::as_str).is_none_or(str::is_empty) {
            out.push(Cause::new("spec.broker", "missing field(s)"));
        }
        if let Err(problems) = TriggerFilter::from_spec(spec) {
            causes(problems, out);
        }
        destination(spec.get("subscriber"), "spec.subscriber", true, out);
        delivery_policy(object, out);
        if let Err(why) = delivery_concurrency(object) {
            out.push(Cause::new(format!("metadata.annotations.{DELIVERY_CONCURRENCY_ANNOTATION}"), why));
        }
        if let Some(previous) = previous
            && previous.pointer("/spec/broker") != object.pointer("/spec/broker")
        {
            out.push(Cause::new("spec.broker", "Immutable fields changed: a trigger's broker cannot change"));
        }
    } else if resource == &PINGSOURCES {
        let Some(spec) = object.get("spec").filter(|s| s.is_object()) else {
            out.push(Cause::new("spec", "missing field(s)"));
            return;
        };
        if let Err(problems) = skiff_eventing::ping::PingSpec::from_json(spec) {
            causes(problems, out);
        }
        destination(spec.get("sink"), "spec.sink", true, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(resource: &ResourceType, mut object: Value) -> Vec<String> {
        set_defaults(resource, &mut object);
        let mut out = Vec::new();
        validate(resource, &object, None, &mut out);
        out.into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn a_broker_gets_skiffs_class_and_its_delivery_is_checked() {
        let mut broker = json!({"metadata": {"name": "b", "namespace": "default"}});
        set_defaults(&BROKERS, &mut broker);
        assert_eq!(meta::annotation(&broker, BROKER_CLASS_ANNOTATION), Some(DEFAULT_BROKER_CLASS));
        let bad =
            json!({"metadata": {"name": "b"}, "spec": {"delivery": {"retry": -1, "backoffDelay": "soon"}}});
        let found = problems(&BROKERS, bad);
        assert!(found.iter().any(|p| p.starts_with("spec.delivery.retry")), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("spec.delivery.backoffDelay")), "{found:?}");
    }

    #[test]
    fn a_trigger_needs_a_subscriber_and_a_valid_filter() {
        let found =
            problems(&TRIGGERS, json!({"metadata": {"name": "t"}, "spec": {"filters": [{"prefix": {}}]}}));
        assert!(found.iter().any(|p| p.starts_with("spec.subscriber")), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("spec.filters[0]")), "{found:?}");
        let found = problems(
            &TRIGGERS,
            json!({"metadata": {"name": "t"}, "spec": {"subscriber": {"ref": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}}}}),
        );
        assert!(found.iter().any(|p| p.contains("cannot address a ConfigMap")), "{found:?}");
        let good = json!({"metadata": {"name": "t", "namespace": "ns"}, "spec": {"subscriber": {"uri": "http://example.com/"}}});
        assert_eq!(problems(&TRIGGERS, good), Vec::<String>::new());
    }

    #[test]
    fn a_triggers_broker_defaults_and_cannot_change() {
        let mut trigger = json!({"metadata": {"name": "t", "namespace": "ns"},
            "spec": {"subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "s"}}}});
        set_defaults(&TRIGGERS, &mut trigger);
        assert_eq!(trigger.pointer("/spec/broker"), Some(&json!("default")));
        assert_eq!(trigger.pointer("/spec/subscriber/ref/namespace"), Some(&json!("ns")));
        let mut moved = trigger.clone();
        moved["spec"]["broker"] = json!("other");
        let mut out = Vec::new();
        validate(&TRIGGERS, &moved, Some(&trigger), &mut out);
        assert!(out.iter().any(|c| c.field == "spec.broker"), "{out:?}");
    }

    #[test]
    fn delivery_concurrency_is_bounded() {
        let with = |v: &str| json!({"metadata": {"annotations": {DELIVERY_CONCURRENCY_ANNOTATION: v}}});
        assert_eq!(delivery_concurrency(&json!({})), Ok(DEFAULT_DELIVERY_CONCURRENCY));
        assert_eq!(delivery_concurrency(&with("8")), Ok(8));
        assert!(delivery_concurrency(&with("0")).is_err());
        assert!(delivery_concurrency(&with("lots")).is_err());
    }
}
