//! Trigger -> a dispatcher delivering its broker's matching events to its subscriber, with
//! the delivery policy of the trigger (or else of its broker).

use serde_json::{Value, json};
use skiff_eventing::dispatch::Subscription;
use skiff_eventing::filter::TriggerFilter;

use super::broker::dead_letter_sink;
use super::runner::{Action, ReconcileError, Reconciler};
use super::{Context, children, destination};
use crate::eventing::broker_key;
use crate::resources::eventing::{delivery_concurrency, delivery_of};
use crate::resources::meta::{self, Condition, ConditionStatus};
use crate::resources::{BROKERS, ResourceType, TRIGGERS};
use crate::store::{ObjectKey, WatchEvent};

pub struct TriggerReconciler {
    context: Context,
}

impl TriggerReconciler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }
}

/// Whether the trigger depends on the object at `key`: its broker, its subscriber or its sink.
fn depends_on(trigger: &Value, key: &ObjectKey) -> bool {
    let namespace = meta::namespace(trigger);
    (&*key.resource == BROKERS.key
        && trigger.pointer("/spec/broker").and_then(Value::as_str) == Some(&key.name))
        || destination::refers_to(trigger.pointer("/spec/subscriber"), namespace, key)
        || destination::refers_to(trigger.pointer("/spec/delivery/deadLetterSink"), namespace, key)
}

/// Why the trigger's broker cannot feed it, if it cannot.
fn broker_condition(broker: Option<&Value>, name: &str) -> Condition {
    let Some(broker) = broker else {
        return Condition::falsy(
            "BrokerReady",
            "BrokerDoesNotExist",
            format!("Broker {name:?} does not exist"),
        );
    };
    match meta::condition(broker, "Ready") {
        Some(ready) if ready.status == ConditionStatus::True => Condition::truthy("BrokerReady"),
        Some(ready) => Condition::new("BrokerReady", ready.status, ready.reason, ready.message),
        None => {
            Condition::unknown("BrokerReady", "BrokerUnknown", format!("Broker {name:?} is not ready yet"))
        }
    }
}

impl Reconciler for TriggerReconciler {
    fn resource(&self) -> &'static ResourceType {
        &TRIGGERS
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<ObjectKey> {
        destination::keys_for(&self.context, &TRIGGERS, event, depends_on)
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let context = &self.context;
        let Some(trigger) = context.objects.store().get(key) else {
            context.eventing.stop_trigger(&key.namespace, &key.name, true).await;
            return Ok(Action::Await);
        };
        let namespace = meta::namespace(&trigger).to_string();
        let broker_name = meta::str_at(&trigger, "/spec/broker").unwrap_or("default").to_string();
        let broker = context.objects.store().get(&ObjectKey::new(BROKERS.key, &namespace, &broker_name));
        let mut status = json!({"observedGeneration": meta::generation(&trigger)});

        let broker_ready = broker_condition(broker.as_deref(), &broker_name);
        let subscriber = trigger
            .pointer("/spec/subscriber")
            .map(|s| destination::resolve(context, &namespace, s))
            .unwrap_or_else(|| Err("the trigger has no subscriber".into()));
        let subscriber_resolved = match &subscriber {
            Ok(uri) => {
                status["subscriberUri"] = json!(uri);
                Condition::truthy("SubscriberResolved")
            }
            Err(why) => {
                Condition::falsy("SubscriberResolved", "Unable to get the Subscriber's URI", why.clone())
            }
        };
        // The trigger's delivery policy wins; without one, its broker's applies.
        let policy_owner = match (trigger.pointer("/spec/delivery").filter(|d| !d.is_null()), &broker) {
            (None, Some(broker)) => broker.as_ref(),
            _ => trigger.as_ref(),
        };
        let (sink_resolved, sink_uri) = dead_letter_sink(context, &namespace, policy_owner);
        if let Some(uri) = &sink_uri {
            status["deadLetterSinkUri"] = json!(uri);
        }

        let runnable = broker_ready.status == ConditionStatus::True
            && sink_resolved.status == ConditionStatus::True
            && subscriber.is_ok();
        let subscription_ready = if runnable {
            // Admission validated these; a failure here is a bug worth surfacing as a condition.
            let parsed = TriggerFilter::from_spec(&trigger["spec"])
                .map_err(|e| format!("{e:?}"))
                .and_then(|filter| {
                    delivery_of(policy_owner).map(|d| (filter, d)).map_err(|e| format!("{e:?}"))
                })
                .and_then(|(filter, delivery)| delivery_concurrency(&trigger).map(|c| (filter, delivery, c)));
            match parsed {
                Ok((filter, mut delivery, concurrency)) => {
                    delivery.dead_letter_sink = sink_uri;
                    context.eventing.run_trigger(
                        &namespace,
                        &key.name,
                        Subscription {
                            id: meta::uid(&trigger).to_string(),
                            name: format!("{namespace}/{}", key.name),
                            broker: broker_key(&namespace, &broker_name),
                            filter,
                            subscriber: subscriber.clone().unwrap_or_default(),
                            delivery,
                            concurrency,
                        },
                    );
                    Condition::truthy("SubscriptionReady")
                }
                Err(why) => {
                    context.eventing.stop_trigger(&namespace, &key.name, false).await;
                    Condition::falsy("SubscriptionReady", "InvalidSpec", why)
                }
            }
        } else {
            // Keep the cursor: once the trigger can run again, it picks up where it stopped.
            context.eventing.stop_trigger(&namespace, &key.name, false).await;
            Condition::unknown(
                "SubscriptionReady",
                "SubscriptionNotRunning",
                "The trigger waits for its broker, subscriber and dead letter sink.",
            )
        };
        let conditions = vec![
            broker_ready,
            sink_resolved,
            Condition::new("DependencyReady", ConditionStatus::True, "DependencyAnnotationNotProvided", ""),
            subscriber_resolved,
            subscription_ready,
        ];
        let mut all = vec![meta::summarize(&conditions)];
        all.extend(conditions);
        status["conditions"] = meta::conditions_json(&all, Some(&trigger));
        children::write_status(&context.objects, key.clone(), meta::uid(&trigger), status).await?;
        Ok(Action::Await)
    }
}
