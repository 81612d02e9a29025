//! Broker -> its address on the broker ingress and its dead letter sink; a deleted broker's
//! events are dropped from the log.

use serde_json::{Value, json};

use super::runner::{Action, ReconcileError, Reconciler};
use super::{Context, children, destination};
use crate::eventing::unsupported_class;
use crate::resources::meta::{self, Condition, ConditionStatus};
use crate::resources::{BROKERS, ResourceType};
use crate::store::{ObjectKey, WatchEvent};

pub struct BrokerReconciler {
    context: Context,
}

impl BrokerReconciler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }
}

/// `DeadLetterSinkResolved`, and the sink's URI when there is one.
pub fn dead_letter_sink(context: &Context, namespace: &str, object: &Value) -> (Condition, Option<String>) {
    match object.pointer("/spec/delivery/deadLetterSink").filter(|s| !s.is_null()) {
        None => (
            Condition::new(
                "DeadLetterSinkResolved",
                ConditionStatus::True,
                "DeadLetterSinkNotConfigured",
                "No dead letter sink is configured.",
            ),
            None,
        ),
        Some(sink) => match destination::resolve(context, namespace, sink) {
            Ok(uri) => (Condition::truthy("DeadLetterSinkResolved"), Some(uri)),
            Err(why) => (
                Condition::falsy("DeadLetterSinkResolved", "Unable to get the dead letter sink's URI", why),
                None,
            ),
        },
    }
}

impl Reconciler for BrokerReconciler {
    fn resource(&self) -> &'static ResourceType {
        &BROKERS
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<ObjectKey> {
        destination::keys_for(&self.context, &BROKERS, event, |broker, key| {
            // A dead letter sink's address may have changed.
            destination::refers_to(
                broker.pointer("/spec/delivery/deadLetterSink"),
                meta::namespace(broker),
                key,
            )
        })
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let context = &self.context;
        let Some(broker) = context.objects.store().get(key) else {
            context.eventing.delete_broker(&key.namespace, &key.name).await;
            return Ok(Action::Await);
        };
        let namespace = meta::namespace(&broker);
        let mut status = json!({"observedGeneration": meta::generation(&broker)});
        let conditions = match unsupported_class(&broker) {
            Some(class) => vec![Condition::falsy(
                "IngressReady",
                "UnsupportedBrokerClass",
                format!("Skiff runs brokers of class Skiff or MTChannelBasedBroker, not {class:?}"),
            )],
            None => {
                let url = context.eventing.broker_url(namespace, &key.name);
                status["address"] = json!({"url": url});
                let (sink, sink_uri) = dead_letter_sink(context, namespace, &broker);
                if let Some(uri) = sink_uri {
                    status["deadLetterSinkUri"] = json!(uri);
                }
                vec![
                    Condition::truthy("Addressable"),
                    sink,
                    Condition::truthy("FilterReady"),
                    Condition::truthy("IngressReady"),
                    Condition::truthy("TriggerChannelReady"),
                ]
            }
        };
        let mut all = vec![meta::summarize(&conditions)];
        all.extend(conditions);
        status["conditions"] = meta::conditions_json(&all, Some(&broker));
        children::write_status(&context.objects, key.clone(), meta::uid(&broker), status).await?;
        Ok(Action::Await)
    }
}
