//! PingSource -> a pinger sending its event to its sink on its schedule.

use serde_json::{Value, json};
use skiff_eventing::ping::PingSpec;

use super::runner::{Action, ReconcileError, Reconciler};
use super::{Context, children, destination};
use crate::resources::meta::{self, Condition};
use crate::resources::{PINGSOURCES, ResourceType};
use crate::store::{ObjectKey, WatchEvent};

pub struct PingSourceReconciler {
    context: Context,
}

impl PingSourceReconciler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }
}

impl Reconciler for PingSourceReconciler {
    fn resource(&self) -> &'static ResourceType {
        &PINGSOURCES
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<ObjectKey> {
        destination::keys_for(&self.context, &PINGSOURCES, event, |source, key| {
            destination::refers_to(source.pointer("/spec/sink"), meta::namespace(source), key)
        })
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        let context = &self.context;
        let Some(source) = context.objects.store().get(key) else {
            context.eventing.stop_pinger(&key.namespace, &key.name);
            return Ok(Action::Await);
        };
        let namespace = meta::namespace(&source).to_string();
        let mut status = json!({"observedGeneration": meta::generation(&source)});
        let sink = source
            .pointer("/spec/sink")
            .map(|s| destination::resolve(context, &namespace, s))
            .unwrap_or_else(|| Err("the source has no sink".into()));
        let spec = PingSpec::from_json(&source["spec"]).map_err(|problems| {
            problems
                .into_iter()
                .map(|(field, message)| format!("{field}: {message}"))
                .collect::<Vec<_>>()
                .join("; ")
        });
        let conditions = match (sink, spec) {
            (Ok(uri), Ok(spec)) => {
                status["sinkUri"] = json!(uri);
                context.eventing.run_pinger(&namespace, &key.name, spec, uri);
                vec![Condition::truthy("Deployed"), Condition::truthy("SinkProvided")]
            }
            (sink, spec) => {
                context.eventing.stop_pinger(&namespace, &key.name);
                let sink_provided = match sink {
                    Ok(uri) => {
                        status["sinkUri"] = Value::String(uri);
                        Condition::truthy("SinkProvided")
                    }
                    Err(why) => Condition::falsy("SinkProvided", "NotFound", why),
                };
                let deployed = match spec {
                    Ok(_) => Condition::unknown(
                        "Deployed",
                        "WaitingForSink",
                        "The source starts once its sink resolves.",
                    ),
                    Err(why) => Condition::falsy("Deployed", "InvalidSpec", why),
                };
                vec![deployed, sink_provided]
            }
        };
        let mut all = vec![meta::summarize(&conditions)];
        all.extend(conditions);
        status["conditions"] = meta::conditions_json(&all, Some(&source));
        children::write_status(&context.objects, key.clone(), meta::uid(&source), status).await?;
        Ok(Action::Await)
    }
}
