//! `skiff source ping create|update|list|describe|delete`, modelled on `kn source ping`.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::describe::Description;
use super::lifecycle::PING_SOURCE;
use super::sink::Sink;
use crate::cli::client::ApiClient;
use crate::cli::object::str_at;
use crate::cli::service::{DeleteArgs, DescribeArgs, ListArgs};
use crate::cli::wait::WaitArgs;

/// `skiff source ...`: event sources.
#[derive(Debug, clap::Subcommand)]
pub enum SourceCommand {
    /// Sources that send an event on a cron schedule.
    #[command(subcommand, alias = "pingsource", alias = "pingsources")]
    Ping(PingCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum PingCommand {
    /// Create a ping source and wait until it is scheduled.
    Create(CreateArgs),
    /// Change a ping source's schedule, data or sink.
    Update(UpdateArgs),
    /// List ping sources.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show a ping source, its schedule, its sink and its conditions.
    Describe(DescribeArgs),
    /// Delete ping sources.
    #[command(alias = "rm")]
    Delete(DeleteArgs),
}

/// What the event a ping source sends looks like, and when.
#[derive(Debug, Default, clap::Args)]
pub struct PingArgs {
    /// The data of each event, as text.
    #[arg(short, long, conflicts_with = "data_base64")]
    pub data: Option<String>,
    /// The data of each event, base64-encoded binary.
    #[arg(long, value_name = "BASE64")]
    pub data_base64: Option<String>,
    /// The content type of the data, e.g. application/json.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// The time zone the schedule is in, e.g. Europe/Madrid (UTC when left out).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    /// When to send, as a cron schedule: "*/1 * * * *" is every minute.
    #[arg(long, value_name = "CRON")]
    pub schedule: String,
    #[command(flatten)]
    pub ping: PingArgs,
    /// Where the events go: ksvc:NAME, broker:NAME, NAME (a service) or a URL.
    #[arg(short, long, value_name = "SINK")]
    pub sink: Sink,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    pub name: String,
    /// When to send, as a cron schedule: "*/1 * * * *" is every minute.
    #[arg(long, value_name = "CRON")]
    pub schedule: Option<String>,
    #[command(flatten)]
    pub ping: PingArgs,
    /// Where the events go: ksvc:NAME, broker:NAME, NAME (a service) or a URL.
    #[arg(short, long, value_name = "SINK")]
    pub sink: Option<Sink>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn run(client: &ApiClient, namespace: &str, command: &SourceCommand) -> anyhow::Result<()> {
    let SourceCommand::Ping(command) = command;
    match command {
        PingCommand::Create(args) => {
            PING_SOURCE.create(client, namespace, &new_ping_source(args, namespace), &args.wait).await
        }
        PingCommand::Update(args) => {
            let patch = update_patch(args)?;
            PING_SOURCE.update(client, namespace, &args.name, &patch, &args.wait).await
        }
        PingCommand::List(args) => PING_SOURCE.list(client, namespace, args).await,
        PingCommand::Describe(args) => PING_SOURCE.describe(client, namespace, args, render).await,
        PingCommand::Delete(args) => PING_SOURCE.delete(client, namespace, args).await,
    }
}

/// The PingSource `source ping create` makes.
pub fn new_ping_source(args: &CreateArgs, namespace: &str) -> Value {
    let mut spec = Map::new();
    spec.insert("schedule".into(), json!(args.schedule));
    for (key, value) in args.ping.fields() {
        spec.insert(key.into(), json!(value));
    }
    spec.insert("sink".into(), args.sink.destination());
    json!({
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {"name": args.name, "namespace": namespace},
        "spec": spec,
    })
}

/// The merge patch `source ping update` sends.
pub fn update_patch(args: &UpdateArgs) -> anyhow::Result<Value> {
    let mut spec = Map::new();
    if let Some(schedule) = &args.schedule {
        spec.insert("schedule".into(), json!(schedule));
    }
    for (key, value) in args.ping.fields() {
        spec.insert(key.into(), json!(value));
    }
    // The data is one or the other: setting one form removes the other.
    if args.ping.data.is_some() {
        spec.insert("dataBase64".into(), Value::Null);
    }
    if args.ping.data_base64.is_some() {
        spec.insert("data".into(), Value::Null);
    }
    if let Some(sink) = &args.sink {
        spec.insert("sink".into(), sink.merge_patch());
    }
    if spec.is_empty() {
        anyhow::bail!(
            "nothing to update: give --schedule, --timezone, --data, --data-base64, --content-type or --sink"
        );
    }
    Ok(json!({"spec": spec}))
}

impl PingArgs {
    /// The spec fields the flags set, by their names in the spec.
    fn fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("timezone", &self.timezone),
            ("data", &self.data),
            ("dataBase64", &self.data_base64),
            ("contentType", &self.content_type),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect()
    }
}

/// `source ping describe`: like `kn source ping describe`.
pub fn render(source: &Value, now: OffsetDateTime) -> String {
    let field = |pointer: &str| str_at(source, pointer).to_string();
    let mut description = Description::new(
        source,
        now,
        &[
            ("Schedule", field("/spec/schedule")),
            ("Timezone", field("/spec/timezone")),
            ("Data", field("/spec/data")),
            ("Data (base64)", field("/spec/dataBase64")),
            ("Content Type", field("/spec/contentType")),
        ],
    );
    description.destination(0, "Sink", source.pointer("/spec/sink"), str_at(source, "/status/sinkUri"));
    description.finish(source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    use crate::cli::{Command, parse_cli, try_parse_cli};

    #[test]
    fn create_flags_make_a_knative_ping_source() {
        let cli = parse_cli(&[
            "source",
            "ping",
            "create",
            "heartbeat",
            "--schedule",
            "*/1 * * * *",
            "--timezone",
            "Europe/Madrid",
            "--data",
            "{\"beat\": true}",
            "--content-type",
            "application/json",
            "--sink",
            "broker:default",
        ]);
        let Command::Source(SourceCommand::Ping(PingCommand::Create(args))) = &cli.command else {
            panic!("not create: {cli:?}")
        };
        assert_eq!(
            new_ping_source(args, "default"),
            json!({
                "apiVersion": "sources.knative.dev/v1",
                "kind": "PingSource",
                "metadata": {"name": "heartbeat", "namespace": "default"},
                "spec": {
                    "schedule": "*/1 * * * *",
                    "timezone": "Europe/Madrid",
                    "data": "{\"beat\": true}",
                    "contentType": "application/json",
                    "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}},
                },
            })
        );
    }

    #[test]
    fn the_schedule_and_sink_are_required_and_data_is_one_form() {
        assert!(try_parse_cli(&["source", "ping", "create", "p", "--sink", "x"]).is_err());
        assert!(try_parse_cli(&["source", "ping", "create", "p", "--schedule", "* * * * *"]).is_err());
        assert!(
            try_parse_cli(&[
                "source",
                "ping",
                "create",
                "p",
                "--schedule",
                "* * * * *",
                "--sink",
                "x",
                "--data",
                "a",
                "--data-base64",
                "YQ==",
            ])
            .is_err()
        );
        let cli = parse_cli(&[
            "source",
            "ping",
            "create",
            "p",
            "--schedule",
            "0 * * * *",
            "-s",
            "http://x.example/",
        ]);
        let Command::Source(SourceCommand::Ping(PingCommand::Create(args))) = &cli.command else {
            panic!("not create")
        };
        assert_eq!(
            new_ping_source(args, "default")["spec"],
            json!({"schedule": "0 * * * *", "sink": {"uri": "http://x.example/"}})
        );
    }

    #[test]
    fn an_update_swaps_the_form_of_the_data() {
        let cli =
            parse_cli(&["source", "ping", "update", "p", "--data-base64", "AAEC", "--schedule", "0 0 * * *"]);
        let Command::Source(SourceCommand::Ping(PingCommand::Update(args))) = &cli.command else {
            panic!("not update")
        };
        assert_eq!(
            update_patch(args).unwrap(),
            json!({"spec": {"schedule": "0 0 * * *", "dataBase64": "AAEC", "data": null}})
        );
        let cli = parse_cli(&["source", "ping", "update", "p"]);
        let Command::Source(SourceCommand::Ping(PingCommand::Update(args))) = &cli.command else {
            panic!("not update")
        };
        assert!(update_patch(args).unwrap_err().to_string().starts_with("nothing to update"));
    }

    #[test]
    fn a_description_shows_the_schedule_and_the_sink() {
        let source = json!({
            "metadata": {"name": "heartbeat", "namespace": "default", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"schedule": "*/1 * * * *", "data": "hi", "sink": {"uri": "http://example.com/"}},
            "status": {"sinkUri": "http://example.com/", "conditions": [{"type": "Ready", "status": "True"}]},
        });
        let text = render(&source, datetime!(2024-05-01 12:00:00 UTC));
        let want = "\
Name:       heartbeat
Namespace:  default
Age:        1h
Schedule:   */1 * * * *
Data:       hi

Sink:
  URI:  http://example.com/

Conditions:
  OK   TYPE    AGE   REASON   MESSAGE
  ++   Ready
";
        assert_eq!(text, want);
    }
}
