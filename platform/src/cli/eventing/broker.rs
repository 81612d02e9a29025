//! `skiff broker create|update|list|describe|delete`, modelled on `kn broker`.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::delivery::DeliveryArgs;
use super::describe::Description;
use super::lifecycle::BROKER;
use crate::cli::client::ApiClient;
use crate::cli::object::str_at;
use crate::cli::service::{DeleteArgs, DescribeArgs, ListArgs};
use crate::cli::wait::WaitArgs;

#[derive(Debug, clap::Subcommand)]
pub enum BrokerCommand {
    /// Create a broker and wait until it takes events; prints its URL.
    Create(CreateArgs),
    /// Change a broker's delivery policy.
    Update(UpdateArgs),
    /// List brokers.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show a broker, its address, delivery policy and conditions.
    Describe(DescribeArgs),
    /// Delete brokers (and the events they hold).
    #[command(alias = "rm")]
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    /// The broker class (the eventing.knative.dev/broker.class annotation); Skiff's own when left out.
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    pub name: String,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn run(client: &ApiClient, namespace: &str, command: &BrokerCommand) -> anyhow::Result<()> {
    match command {
        BrokerCommand::Create(args) => {
            BROKER.create(client, namespace, &new_broker(args, namespace), &args.wait).await
        }
        BrokerCommand::Update(args) => {
            let patch = update_patch(args)?;
            BROKER.update(client, namespace, &args.name, &patch, &args.wait).await
        }
        BrokerCommand::List(args) => BROKER.list(client, namespace, args).await,
        BrokerCommand::Describe(args) => BROKER.describe(client, namespace, args, render).await,
        BrokerCommand::Delete(args) => BROKER.delete(client, namespace, args).await,
    }
}

/// The Broker `broker create` makes.
pub fn new_broker(args: &CreateArgs, namespace: &str) -> Value {
    let mut broker = json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": args.name, "namespace": namespace},
        "spec": {},
    });
    if let Some(class) = &args.class {
        broker["metadata"]["annotations"] = json!({"eventing.knative.dev/broker.class": class});
    }
    if let Some(delivery) = args.delivery.spec() {
        broker["spec"]["delivery"] = delivery;
    }
    broker
}

/// The merge patch `broker update` sends.
pub fn update_patch(args: &UpdateArgs) -> anyhow::Result<Value> {
    match args.delivery.merge_patch() {
        Some(delivery) => Ok(json!({"spec": {"delivery": delivery}})),
        None => anyhow::bail!(
            "nothing to update: give --dl-sink, --retry, --backoff-policy, --backoff-delay or --timeout"
        ),
    }
}

/// `broker describe`: like `kn broker describe`.
pub fn render(broker: &Value, now: OffsetDateTime) -> String {
    let mut description = Description::new(broker, now, &[]);
    description.heading(0, "Address");
    match str_at(broker, "/status/address/url") {
        "" => description.block(2, &[("URL", "(none yet)".to_string())]),
        url => description.block(2, &[("URL", url.to_string())]),
    }
    description.delivery(broker);
    description.finish(broker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    use crate::cli::{Command, parse_cli, try_parse_cli};

    #[test]
    fn create_flags_make_a_knative_broker() {
        let cli = parse_cli(&[
            "broker",
            "create",
            "default",
            "--dl-sink",
            "ksvc:dead-letters",
            "--retry",
            "3",
            "--backoff-policy",
            "linear",
            "--backoff-delay",
            "PT0.5S",
            "--timeout",
            "PT10S",
            "-n",
            "team-a",
        ]);
        let Command::Broker(BrokerCommand::Create(args)) = &cli.command else {
            panic!("not create: {cli:?}")
        };
        assert!(!args.wait.no_wait);
        assert_eq!(
            new_broker(args, "team-a"),
            json!({
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Broker",
                "metadata": {"name": "default", "namespace": "team-a"},
                "spec": {"delivery": {
                    "deadLetterSink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dead-letters"}},
                    "retry": 3,
                    "backoffPolicy": "linear",
                    "backoffDelay": "PT0.5S",
                    "timeout": "PT10S",
                }},
            })
        );
        let cli = parse_cli(&["broker", "create", "b", "--class", "MTChannelBasedBroker", "--no-wait"]);
        let Command::Broker(BrokerCommand::Create(args)) = &cli.command else { panic!("not create") };
        assert!(args.wait.no_wait);
        assert_eq!(
            new_broker(args, "default"),
            json!({
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Broker",
                "metadata": {"name": "b", "namespace": "default",
                    "annotations": {"eventing.knative.dev/broker.class": "MTChannelBasedBroker"}},
                "spec": {},
            })
        );
    }

    #[test]
    fn bad_flags_fail_before_anything_is_sent() {
        assert!(try_parse_cli(&["broker", "create", "b", "--backoff-delay", "2s"]).is_err());
        assert!(try_parse_cli(&["broker", "create", "b", "--backoff-policy", "random"]).is_err());
        assert!(try_parse_cli(&["broker", "create", "b", "--dl-sink", "queue:q"]).is_err());
        assert!(try_parse_cli(&["broker", "create"]).is_err());
        let cli = parse_cli(&["broker", "update", "b"]);
        let Command::Broker(BrokerCommand::Update(args)) = &cli.command else { panic!("not update") };
        assert!(update_patch(args).unwrap_err().to_string().starts_with("nothing to update"));
    }

    #[test]
    fn an_update_patches_only_the_delivery_it_names() {
        let cli =
            parse_cli(&["broker", "update", "b", "--dl-sink", "http://example.com/dead", "--retry", "0"]);
        let Command::Broker(BrokerCommand::Update(args)) = &cli.command else { panic!("not update") };
        assert_eq!(
            update_patch(args).unwrap(),
            json!({"spec": {"delivery": {"deadLetterSink": {"uri": "http://example.com/dead", "ref": null}, "retry": 0}}})
        );
    }

    #[test]
    fn a_description_shows_the_address_and_delivery() {
        let broker = json!({
            "metadata": {"name": "default", "namespace": "default", "creationTimestamp": "2024-05-01T11:58:00Z"},
            "spec": {"delivery": {"retry": 2, "deadLetterSink": {"uri": "http://example.com/dead"}}},
            "status": {
                "address": {"url": "http://broker-ingress.localhost/default/default"},
                "deadLetterSinkUri": "http://example.com/dead",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T11:59:00Z"}],
            },
        });
        let text = render(&broker, datetime!(2024-05-01 12:00:00 UTC));
        let want = "\
Name:       default
Namespace:  default
Age:        2m

Address:
  URL:  http://broker-ingress.localhost/default/default

Delivery:
  Retry:  2
  Dead Letter Sink:
    URI:  http://example.com/dead

Conditions:
  OK   TYPE    AGE   REASON   MESSAGE
  ++   Ready   1m
";
        assert_eq!(text, want);
    }
}
