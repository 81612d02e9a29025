//! `skiff trigger create|update|list|describe|delete`, modelled on `kn trigger`.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::delivery::DeliveryArgs;
use super::describe::Description;
use super::lifecycle::TRIGGER;
use super::sink::Sink;
use crate::cli::client::ApiClient;
use crate::cli::object::str_at;
use crate::cli::service::{DeleteArgs, DescribeArgs, ListArgs};
use crate::cli::wait::WaitArgs;

#[derive(Debug, clap::Subcommand)]
pub enum TriggerCommand {
    /// Subscribe a sink to a broker's events; waits until events flow.
    Create(CreateArgs),
    /// Change a trigger's filter, sink or delivery policy.
    Update(UpdateArgs),
    /// List triggers.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show a trigger, its filter, its sink and its conditions.
    Describe(DescribeArgs),
    /// Delete triggers.
    #[command(alias = "rm")]
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    /// The broker whose events to take.
    #[arg(short, long, default_value = "default")]
    pub broker: String,
    /// Take only events whose attribute equals the value: KEY=VALUE (repeatable; all must match).
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Where the events go: ksvc:NAME, broker:NAME, NAME (a service) or a URL.
    #[arg(short, long, value_name = "SINK")]
    pub sink: Sink,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    pub name: String,
    /// Add or change an attribute filter KEY=VALUE, or remove one with KEY- (repeatable).
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Where the events go: ksvc:NAME, broker:NAME, NAME (a service) or a URL.
    #[arg(short, long, value_name = "SINK")]
    pub sink: Option<Sink>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn run(client: &ApiClient, namespace: &str, command: &TriggerCommand) -> anyhow::Result<()> {
    match command {
        TriggerCommand::Create(args) => {
            TRIGGER.create(client, namespace, &new_trigger(args, namespace)?, &args.wait).await
        }
        TriggerCommand::Update(args) => {
            let patch = update_patch(args)?;
            TRIGGER.update(client, namespace, &args.name, &patch, &args.wait).await
        }
        TriggerCommand::List(args) => TRIGGER.list(client, namespace, args).await,
        TriggerCommand::Describe(args) => TRIGGER.describe(client, namespace, args, render).await,
        TriggerCommand::Delete(args) => TRIGGER.delete(client, namespace, args).await,
    }
}

/// The Trigger `trigger create` makes.
pub fn new_trigger(args: &CreateArgs, namespace: &str) -> anyhow::Result<Value> {
    let mut trigger = json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": args.name, "namespace": namespace},
        "spec": {"broker": args.broker, "subscriber": args.sink.destination()},
    });
    let attributes = filter_attributes(&args.filters, false)?;
    if !attributes.is_empty() {
        trigger["spec"]["filter"] = json!({"attributes": attributes});
    }
    if let Some(delivery) = args.delivery.spec() {
        trigger["spec"]["delivery"] = delivery;
    }
    Ok(trigger)
}

/// The merge patch `trigger update` sends.
pub fn update_patch(args: &UpdateArgs) -> anyhow::Result<Value> {
    let mut spec = Map::new();
    let attributes = filter_attributes(&args.filters, true)?;
    if !attributes.is_empty() {
        spec.insert("filter".into(), json!({"attributes": attributes}));
    }
    if let Some(sink) = &args.sink {
        spec.insert("subscriber".into(), sink.merge_patch());
    }
    if let Some(delivery) = args.delivery.merge_patch() {
        spec.insert("delivery".into(), delivery);
    }
    if spec.is_empty() {
        anyhow::bail!("nothing to update: give --filter, --sink or a delivery flag such as --dl-sink");
    }
    Ok(json!({"spec": spec}))
}

/// `--filter KEY=VALUE` flags as `spec.filter.attributes`; with `removals`, `KEY-` is a null that
/// takes the attribute out of a merge patch.
fn filter_attributes(flags: &[String], removals: bool) -> anyhow::Result<Map<String, Value>> {
    let mut attributes = Map::new();
    for flag in flags {
        let (key, value) = match flag.split_once('=') {
            Some((key, value)) => (key, Value::String(value.to_string())),
            None if removals && flag.len() > 1 && flag.ends_with('-') => {
                (&flag[..flag.len() - 1], Value::Null)
            }
            None if removals => {
                anyhow::bail!("--filter {flag:?}: expected KEY=VALUE, or KEY- to remove a filter")
            }
            None => anyhow::bail!("--filter {flag:?}: expected KEY=VALUE"),
        };
        if key.is_empty() {
            anyhow::bail!("--filter {flag:?}: the attribute name is empty");
        }
        if attributes.insert(key.to_string(), value).is_some() {
            anyhow::bail!("--filter {key:?} is given more than once");
        }
    }
    Ok(attributes)
}

/// `trigger describe`: like `kn trigger describe`.
pub fn render(trigger: &Value, now: OffsetDateTime) -> String {
    let broker = str_at(trigger, "/spec/broker").to_string();
    let mut description = Description::new(trigger, now, &[("Broker", broker)]);
    if let Some(attributes) = trigger.pointer("/spec/filter/attributes").and_then(Value::as_object)
        && !attributes.is_empty()
    {
        description.heading(0, "Filter");
        let fields: Vec<(&str, String)> = attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        description.block(2, &fields);
    }
    if let Some(filters) = trigger.pointer("/spec/filters").and_then(Value::as_array)
        && !filters.is_empty()
    {
        description.heading(0, "Filters");
        let fields: Vec<(&str, String)> = filters.iter().map(|f| ("-", f.to_string())).collect();
        description.block(2, &fields);
    }
    let subscriber_uri = str_at(trigger, "/status/subscriberUri");
    description.destination(0, "Sink", trigger.pointer("/spec/subscriber"), subscriber_uri);
    description.delivery(trigger);
    description.finish(trigger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    use crate::cli::{Cli, Command, parse_cli, try_parse_cli};

    fn create_args(cli: &Cli) -> &CreateArgs {
        let Command::Trigger(TriggerCommand::Create(args)) = &cli.command else {
            panic!("not create: {cli:?}")
        };
        args
    }

    #[test]
    fn create_flags_make_a_knative_trigger() {
        let cli = parse_cli(&[
            "trigger",
            "create",
            "orders",
            "--broker",
            "shop",
            "--filter",
            "type=dev.shop.order",
            "--filter",
            "source=/checkout",
            "--sink",
            "ksvc:fulfil",
            "--dl-sink",
            "http://example.com/dead",
        ]);
        assert_eq!(
            new_trigger(create_args(&cli), "default").unwrap(),
            json!({
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Trigger",
                "metadata": {"name": "orders", "namespace": "default"},
                "spec": {
                    "broker": "shop",
                    "filter": {"attributes": {"type": "dev.shop.order", "source": "/checkout"}},
                    "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "fulfil"}},
                    "delivery": {"deadLetterSink": {"uri": "http://example.com/dead"}},
                },
            })
        );
    }

    #[test]
    fn the_broker_defaults_to_default_and_a_bare_sink_is_a_service() {
        let cli = parse_cli(&["trigger", "create", "all", "--sink", "display"]);
        assert_eq!(
            new_trigger(create_args(&cli), "team-a").unwrap()["spec"],
            json!({
                "broker": "default",
                "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "display"}},
            })
        );
    }

    #[test]
    fn bad_filters_and_sinks_are_refused() {
        assert!(try_parse_cli(&["trigger", "create", "t"]).is_err(), "--sink is required");
        assert!(try_parse_cli(&["trigger", "create", "t", "--sink", "svc:x"]).is_err());
        let new = |filters: &[&str]| {
            let mut args = vec!["trigger", "create", "t", "--sink", "x"];
            for filter in filters {
                args.extend(["--filter", filter]);
            }
            new_trigger(create_args(&parse_cli(&args)), "default").map_err(|e| e.to_string())
        };
        assert_eq!(new(&["type"]).unwrap_err(), "--filter \"type\": expected KEY=VALUE");
        assert_eq!(new(&["type-"]).unwrap_err(), "--filter \"type-\": expected KEY=VALUE");
        assert_eq!(new(&["=x"]).unwrap_err(), "--filter \"=x\": the attribute name is empty");
        assert_eq!(new(&["type=a", "type=b"]).unwrap_err(), "--filter \"type\" is given more than once");
        assert_eq!(new(&["type="]).unwrap()["spec"]["filter"], json!({"attributes": {"type": ""}}));
    }

    #[test]
    fn an_update_adds_and_removes_filters_and_moves_the_sink() {
        let cli = parse_cli(&[
            "trigger",
            "update",
            "orders",
            "--filter",
            "type=dev.x",
            "--filter",
            "source-",
            "--sink",
            "broker:b2",
        ]);
        let Command::Trigger(TriggerCommand::Update(args)) = &cli.command else { panic!("not update") };
        let patch = update_patch(args).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {
                "filter": {"attributes": {"type": "dev.x", "source": null}},
                "subscriber": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "b2", "namespace": null}, "uri": null},
            }})
        );
        let mut current = json!({"spec": {"broker": "default",
            "filter": {"attributes": {"source": "/a", "subject": "s"}},
            "subscriber": {"uri": "http://example.com/"}}});
        json_patch::merge(&mut current, &patch);
        assert_eq!(
            current["spec"],
            json!({"broker": "default",
                "filter": {"attributes": {"subject": "s", "type": "dev.x"}},
                "subscriber": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "b2"}}})
        );
        let cli = parse_cli(&["trigger", "update", "orders"]);
        let Command::Trigger(TriggerCommand::Update(args)) = &cli.command else { panic!("not update") };
        assert!(update_patch(args).unwrap_err().to_string().starts_with("nothing to update"));
    }

    #[test]
    fn a_description_shows_the_filter_and_the_sink() {
        let trigger = json!({
            "metadata": {"name": "orders", "namespace": "default", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {
                "broker": "default",
                "filter": {"attributes": {"type": "dev.shop.order"}},
                "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "fulfil", "namespace": "default"}},
            },
            "status": {
                "subscriberUri": "http://fulfil.default.localhost",
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "SubscriberResolveFailed", "message": "no such service"},
                ],
            },
        });
        let text = render(&trigger, datetime!(2024-05-01 12:00:00 UTC));
        let want = "\
Name:       orders
Namespace:  default
Age:        1h
Broker:     default

Filter:
  type:  dev.shop.order

Sink:
  Name:          fulfil
  Namespace:     default
  Resource:      Service (serving.knative.dev/v1)
  Resolved URI:  http://fulfil.default.localhost

Conditions:
  OK   TYPE    AGE   REASON                    MESSAGE
  !!   Ready         SubscriberResolveFailed   no such service
";
        assert_eq!(text, want);
    }
}
