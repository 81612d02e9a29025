//! The delivery flags of brokers and triggers: Knative's `spec.delivery` (retries, backoff,
//! timeout, dead-letter sink).

use serde_json::{Map, Value, json};

use super::sink::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackoffPolicy {
    Linear,
    Exponential,
}

impl BackoffPolicy {
    fn as_str(self) -> &'static str {
        match self {
            BackoffPolicy::Linear => "linear",
            BackoffPolicy::Exponential => "exponential",
        }
    }
}

/// Flags that set `spec.delivery`.
#[derive(Debug, Default, clap::Args)]
pub struct DeliveryArgs {
    /// Where events go that cannot be delivered: ksvc:NAME, broker:NAME or a URL.
    #[arg(long, value_name = "SINK")]
    pub dl_sink: Option<Sink>,
    /// How many times to retry a failed delivery.
    #[arg(long, value_name = "N")]
    pub retry: Option<u32>,
    /// How the wait between retries grows.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub backoff_policy: Option<BackoffPolicy>,
    /// The wait before the first retry, an ISO 8601 duration such as PT0.2S.
    #[arg(long, value_name = "DURATION", value_parser = iso8601_duration)]
    pub backoff_delay: Option<String>,
    /// How long one delivery attempt may take, an ISO 8601 duration such as PT10S.
    #[arg(long, value_name = "DURATION", value_parser = iso8601_duration)]
    pub timeout: Option<String>,
}

/// An ISO 8601 duration as the broker reads it, kept as written.
fn iso8601_duration(raw: &str) -> Result<String, String> {
    skiff_eventing::delivery::parse_iso8601_duration(raw).map(|_| raw.to_string())
}

impl DeliveryArgs {
    /// `spec.delivery` of a new object; `None` when no flag says anything about it.
    pub fn spec(&self) -> Option<Value> {
        self.fields(Sink::destination)
    }

    /// A merge patch of an existing `spec.delivery`: what the flags name changes, the rest stays.
    pub fn merge_patch(&self) -> Option<Value> {
        self.fields(Sink::merge_patch)
    }

    fn fields(&self, destination: fn(&Sink) -> Value) -> Option<Value> {
        let mut delivery = Map::new();
        if let Some(sink) = &self.dl_sink {
            delivery.insert("deadLetterSink".into(), destination(sink));
        }
        if let Some(retry) = self.retry {
            delivery.insert("retry".into(), json!(retry));
        }
        if let Some(policy) = self.backoff_policy {
            delivery.insert("backoffPolicy".into(), json!(policy.as_str()));
        }
        if let Some(delay) = &self.backoff_delay {
            delivery.insert("backoffDelay".into(), json!(delay));
        }
        if let Some(timeout) = &self.timeout {
            delivery.insert("timeout".into(), json!(timeout));
        }
        (!delivery.is_empty()).then_some(Value::Object(delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked_and_kept_as_written() {
        assert_eq!(iso8601_duration("PT0.2S"), Ok("PT0.2S".to_string()));
        assert!(iso8601_duration("200ms").is_err());
    }

    #[test]
    fn only_the_flags_given_make_the_delivery() {
        assert_eq!(DeliveryArgs::default().spec(), None);
        let args = DeliveryArgs {
            dl_sink: Some(Sink::Service("dls".into())),
            retry: Some(3),
            backoff_policy: Some(BackoffPolicy::Linear),
            backoff_delay: Some("PT1S".into()),
            timeout: None,
        };
        assert_eq!(
            args.spec(),
            Some(json!({
                "deadLetterSink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dls"}},
                "retry": 3,
                "backoffPolicy": "linear",
                "backoffDelay": "PT1S",
            }))
        );
        assert_eq!(
            args.merge_patch().unwrap()["deadLetterSink"],
            json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dls",
                "namespace": null}, "uri": null})
        );
    }
}
