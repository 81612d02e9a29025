//! `skiff get`: objects as tables (kn's columns), or as YAML, JSON or names.

use std::collections::HashMap;

use anyhow::Context as _;
use serde_json::Value;
use time::OffsetDateTime;

use super::client::{ApiClient, ListOptions};
use super::kinds::{self, Kind};
use super::object::{conditions_summary, label, name, namespace, ready_and_reason, str_at};
use super::table::{Table, age};

/// How `get` prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
    /// The table with more columns.
    Wide,
    /// `service.serving.knative.dev/hello`, one a line.
    Name,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// What to get: services (ksvc), revisions (rev), routes (rt), configurations (cfg), namespaces (ns),
    /// pods (po), brokers, triggers, pingsources.
    pub kind: String,
    /// One object by name; every object when left out.
    pub name: Option<String>,
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only objects whose labels match, e.g. `serving.knative.dev/service=hello`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

pub async fn run(client: &ApiClient, namespace: &str, args: &GetArgs) -> anyhow::Result<()> {
    let kind = kinds::lookup(&args.kind)?;
    if let Some(name) = &args.name {
        if args.all_namespaces {
            anyhow::bail!("a resource cannot be retrieved by name across all namespaces");
        }
        let object = client.get(kind, namespace, name).await?;
        let view = View { kind, format: args.output, with_namespace: false };
        return view.print_one(client, object).await;
    }
    let scope = if args.all_namespaces { None } else { Some(namespace) };
    let options = ListOptions { label_selector: args.selector.as_deref(), field_selector: None };
    let view = View { kind, format: args.output, with_namespace: args.all_namespaces && kind.namespaced };
    view.print_list(client, scope, &options, &no_resources_message(kind, scope)).await
}

/// kubectl's words for an empty answer.
fn no_resources_message(kind: &Kind, scope: Option<&str>) -> String {
    match scope {
        Some(ns) if kind.namespaced => format!("No resources found in {ns} namespace."),
        _ => "No resources found".to_string(),
    }
}

/// What a listing looks like: the kind's columns, in a format, with or without a NAMESPACE column.
pub struct View {
    pub kind: &'static Kind,
    pub format: Option<OutputFormat>,
    pub with_namespace: bool,
}

impl View {
    /// Lists and prints; `empty` goes to stderr when there is nothing to show in a table.
    pub async fn print_list(
        &self,
        client: &ApiClient,
        scope: Option<&str>,
        options: &ListOptions<'_>,
        empty: &str,
    ) -> anyhow::Result<()> {
        let mut list = client.list(self.kind, scope, options).await?;
        match self.format {
            Some(OutputFormat::Json | OutputFormat::Yaml) => super::emit(&document(&list, self.format)?),
            _ => {
                let mut items = match list.get_mut("items").map(Value::take) {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                if items.is_empty() {
                    eprintln!("{empty}");
                    return Ok(());
                }
                if self.kind.kind == "Revision" {
                    sort_revisions(&mut items);
                }
                self.print_objects(client, scope, &items).await
            }
        }
    }

    async fn print_one(&self, client: &ApiClient, object: Value) -> anyhow::Result<()> {
        match self.format {
            Some(OutputFormat::Json | OutputFormat::Yaml) => super::emit(&document(&object, self.format)?),
            _ => {
                let scope = namespace(&object).to_string();
                self.print_objects(client, Some(&scope), &[object]).await
            }
        }
    }

    async fn print_objects(
        &self,
        client: &ApiClient,
        scope: Option<&str>,
        objects: &[Value],
    ) -> anyhow::Result<()> {
        if self.format == Some(OutputFormat::Name) {
            let names: String =
                objects.iter().map(|o| format!("{}/{}\n", self.kind.qualified(), name(o))).collect();
            return super::emit(&names);
        }
        let mut context = Context { now: OffsetDateTime::now_utc(), traffic: HashMap::new() };
        if self.kind.kind == "Revision" {
            context.traffic = traffic_by_revision(client, scope).await;
        }
        let wide = self.format == Some(OutputFormat::Wide);
        super::emit(&render(self.kind, objects, &context, wide, self.with_namespace))
    }
}

/// An object or a list as pretty JSON or YAML.
pub fn document(object: &Value, format: Option<OutputFormat>) -> anyhow::Result<String> {
    if format == Some(OutputFormat::Yaml) {
        serde_yaml::to_string(object).context("cannot write the object as YAML")
    } else {
        Ok(serde_json::to_string_pretty(object)? + "\n")
    }
}

/// kn lists revisions by service, newest generation first.
pub fn sort_revisions(items: &mut [Value]) {
    items.sort_by(|a, b| {
        let key = |o: &Value| (namespace(o).to_string(), label(o, "serving.knative.dev/service").to_string());
        let generation =
            |o: &Value| label(o, "serving.knative.dev/configurationGeneration").parse::<i64>().ok();
        key(a).cmp(&key(b)).then_with(|| generation(b).cmp(&generation(a))).then_with(|| name(a).cmp(name(b)))
    });
}

/// What cells need besides the object itself.
pub struct Context {
    pub now: OffsetDateTime,
    /// `(namespace, revision)` -> its share of its service's traffic.
    pub traffic: HashMap<(String, String), Share>,
}

/// A revision's traffic percent and tags, summed over the targets that name it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Share {
    pub percent: i64,
    pub tags: Vec<String>,
}

async fn traffic_by_revision(client: &ApiClient, scope: Option<&str>) -> HashMap<(String, String), Share> {
    let Ok(kind) = kinds::lookup("services") else { return HashMap::new() };
    match client.list(kind, scope, &ListOptions::default()).await {
        Ok(list) => index_traffic(list["items"].as_array().map(Vec::as_slice).unwrap_or_default()),
        Err(_) => HashMap::new(),
    }
}

/// Who gets which share of traffic, from the services' `status.traffic`.
pub fn index_traffic(services: &[Value]) -> HashMap<(String, String), Share> {
    let mut index: HashMap<(String, String), Share> = HashMap::new();
    for service in services {
        let Some(targets) = service.pointer("/status/traffic").and_then(Value::as_array) else { continue };
        for target in targets {
            let revision = str_at(target, "/revisionName");
            if revision.is_empty() {
                continue;
            }
            let share = index.entry((namespace(service).to_string(), revision.to_string())).or_default();
            share.percent += target["percent"].as_i64().unwrap_or(0);
            let tag = str_at(target, "/tag");
            if !tag.is_empty() {
                share.tags.push(tag.to_string());
            }
        }
    }
    index
}

type Cell = fn(&Value, &Context) -> String;

struct Column {
    header: &'static str,
    wide_only: bool,
    cell: Cell,
}

const fn col(header: &'static str, cell: Cell) -> Column {
    Column { header, wide_only: false, cell }
}

const fn wide(header: &'static str, cell: Cell) -> Column {
    Column { header, wide_only: true, cell }
}

fn cell_name(o: &Value, _: &Context) -> String {
    name(o).to_string()
}
fn cell_age(o: &Value, c: &Context) -> String {
    age(o, c.now)
}
fn cell_url(o: &Value, _: &Context) -> String {
    str_at(o, "/status/url").to_string()
}
fn cell_conditions(o: &Value, _: &Context) -> String {
    conditions_summary(o)
}
fn cell_ready(o: &Value, _: &Context) -> String {
    ready_and_reason(o).0
}
fn cell_reason(o: &Value, _: &Context) -> String {
    ready_and_reason(o).1
}
fn cell_latest_ready(o: &Value, _: &Context) -> String {
    str_at(o, "/status/latestReadyRevisionName").to_string()
}
fn cell_latest_created(o: &Value, _: &Context) -> String {
    str_at(o, "/status/latestCreatedRevisionName").to_string()
}
fn cell_template_image(o: &Value, _: &Context) -> String {
    str_at(o, "/spec/template/spec/containers/0/image").to_string()
}
fn cell_revision_image(o: &Value, _: &Context) -> String {
    str_at(o, "/spec/containers/0/image").to_string()
}
fn cell_revision_service(o: &Value, _: &Context) -> String {
    label(o, "serving.knative.dev/service").to_string()
}
fn cell_revision_generation(o: &Value, _: &Context) -> String {
    label(o, "serving.knative.dev/configurationGeneration").to_string()
}
fn share<'a>(o: &Value, c: &'a Context) -> Option<&'a Share> {
    c.traffic.get(&(namespace(o).to_string(), name(o).to_string()))
}
fn cell_revision_traffic(o: &Value, c: &Context) -> String {
    share(o, c).filter(|s| s.percent > 0).map(|s| format!("{}%", s.percent)).unwrap_or_default()
}
fn cell_revision_tags(o: &Value, c: &Context) -> String {
    share(o, c).map(|s| s.tags.join(",")).unwrap_or_default()
}
fn cell_route_traffic(o: &Value, _: &Context) -> String {
    let targets =
        o.pointer("/status/traffic").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let parts: Vec<String> = targets
        .iter()
        .map(|t| {
            let revision = str_at(t, "/revisionName");
            let tag = str_at(t, "/tag");
            let percent = t["percent"].as_i64().unwrap_or(0);
            if tag.is_empty() {
                format!("{revision}={percent}%")
            } else {
                format!("{revision}#{tag}={percent}%")
            }
        })
        .collect();
    parts.join(",")
}
fn cell_phase(o: &Value, _: &Context) -> String {
    match str_at(o, "/status/phase") {
        "" => "Active".to_string(),
        phase => phase.to_string(),
    }
}

static SERVICE_COLUMNS: &[Column] = &[
    col("NAME", cell_name),
    col("URL", cell_url),
    col("LATEST", cell_latest_ready),
    wide("LATESTCREATED", cell_latest_created),
    wide("IMAGE", cell_template_image),
    col("AGE", cell_age),
    col("CONDITIONS", cell_conditions),
    col("READY", cell_ready),
    col("REASON", cell_reason),
];

static REVISION_COLUMNS: &[Column] = &[
    col("NAME", cell_name),
    col("SERVICE", cell_revision_service),
    col("TRAFFIC", cell_revision_traffic),
    col("TAGS", cell_revision_tags),
    col("GENERATION", cell_revision_generation),
    wide("IMAGE", cell_revision_image),
    col("AGE", cell_age),
    col("CONDITIONS", cell_conditions),
    col("READY", cell_ready),
    col("REASON", cell_reason),
];

static ROUTE_COLUMNS: &[Column] = &[
    col("NAME", cell_name),
    col("URL", cell_url),
    wide("TRAFFIC", cell_route_traffic),
    col("AGE", cell_age),
    col("CONDITIONS", cell_conditions),
    col("READY", cell_ready),
    col("REASON", cell_reason),
];

static CONFIGURATION_COLUMNS: &[Column] = &[
    col("NAME", cell_name),
    col("LATESTCREATED", cell_latest_created),
    col("LATESTREADY", cell_latest_ready),
    wide("IMAGE", cell_template_image),
    col("AGE", cell_age),
    col("CONDITIONS", cell_conditions),
    col("READY", cell_ready),
    col("REASON", cell_reason),
];

static NAMESPACE_COLUMNS: &[Column] =
    &[col("NAME", cell_name), col("STATUS", cell_phase), col("AGE", cell_age)];

fn cell_pod_ready(o: &Value, _: &Context) -> String {
    let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array);
    let statuses = statuses.map(Vec::as_slice).unwrap_or_default();
    format!("{}/{}", statuses.iter().filter(|c| c["ready"] == true).count(), statuses.len())
}
fn cell_pod_status(o: &Value, _: &Context) -> String {
    // A container waiting to be restarted says why, as kubectl does.
    match str_at(o, "/status/containerStatuses/0/state/waiting/reason") {
        "" => str_at(o, "/status/phase").to_string(),
        waiting => waiting.to_string(),
    }
}
fn cell_pod_restarts(o: &Value, _: &Context) -> String {
    o.pointer("/status/containerStatuses/0/restartCount").and_then(Value::as_u64).unwrap_or(0).to_string()
}
fn cell_pod_runtime(o: &Value, _: &Context) -> String {
    str_at(o, "/spec/runtimeClassName").to_string()
}
fn cell_pod_ip(o: &Value, _: &Context) -> String {
    str_at(o, "/status/podIP").to_string()
}

static POD_COLUMNS: &[Column] = &[
    col("NAME", cell_name),
    col("REVISION", cell_pod_revision),
    col("READY", cell_pod_ready),
    col("STATUS", cell_pod_status),
    col("RESTARTS", cell_pod_restarts),
    col("RUNTIME", cell_pod_runtime),
    wide("IP", cell_pod_ip),
    col("AGE", cell_age),
];

fn cell_pod_revision(o: &Value, _: &Context) -> String {
    label(o, "serving.knative.dev/revision").to_string()
}

fn cell_address_url(o: &Value, _: &Context) -> String {
    str_at(o, "/status/address/url").to_string()
}
fn cell_trigger_broker(o: &Value, _: &Context) -> String {
    str_at(o, "/spec/broker").to_string()
}
fn cell_trigger_sink(o: &Value, _: &Context) -> String {
    super::eventing::sink_label(o.pointer("/spec/subscriber"))
}
fn cell_subscriber_uri(o: &Value, _: &Context) -> String {
    str_at(o, "/status/subscriberUri").to_string()
}
fn cell_schedule(o: &Value, _: &Context) -> String {
    str_at(o, "/spec/schedule").to_string()
}
fn cell_source_sink(o: &Value, _: &Context) -> String {
    super::eventing::sink_label(o.pointer("/spec/sink"))
}
fn cell_sink_uri(o: &Value, _: &Context) -> String {
    str_at(o, "/status/sinkUri").to_string()
}

static BROKER_COLUMNS: &[Column] = &[
    col("NAME", cell_name),
    col("URL", cell_address_url),
    col("AGE", cell_age),
    col("CONDITIONS", cell_conditions),
    col("READY", cell_ready),
    col("REASON", cell_reason),
];

static TRIGGER_COLUMNS: &[Column] = &[
    col("NAME", cell_name),
    col("BROKER", cell_trigger_broker),
    col("SINK", cell_trigger_sink),
    wide("URI", cell_subscriber_uri),
    col("AGE", cell_age),
    col("CONDITIONS", cell_conditions),
    col("READY", cell_ready),
    col("REASON", cell_reason),
];

static PINGSOURCE_COLUMNS: &[Column] = &[
    col("NAME", cell_name),
    col("SCHEDULE", cell_schedule),
    col("SINK", cell_source_sink),
    wide("URI", cell_sink_uri),
    col("AGE", cell_age),
    col("CONDITIONS", cell_conditions),
    col("READY", cell_ready),
    col("REASON", cell_reason),
];

/// Any kind without columns of its own.
static GENERIC_COLUMNS: &[Column] =
    &[col("NAME", cell_name), col("AGE", cell_age), col("READY", cell_ready), col("REASON", cell_reason)];

fn columns(kind: &Kind) -> &'static [Column] {
    match kind.kind {
        "Service" => SERVICE_COLUMNS,
        "Revision" => REVISION_COLUMNS,
        "Route" => ROUTE_COLUMNS,
        "Configuration" => CONFIGURATION_COLUMNS,
        "Namespace" => NAMESPACE_COLUMNS,
        "Pod" => POD_COLUMNS,
        "Broker" => BROKER_COLUMNS,
        "Trigger" => TRIGGER_COLUMNS,
        "PingSource" => PINGSOURCE_COLUMNS,
        _ => GENERIC_COLUMNS,
    }
}

/// The table of `objects` with the columns of their kind.
pub fn render(kind: &Kind, objects: &[Value], context: &Context, wide: bool, with_namespace: bool) -> String {
    let columns: Vec<&Column> = columns(kind).iter().filter(|c| wide || !c.wide_only).collect();
    let namespace_header = with_namespace.then_some("NAMESPACE");
    let mut table = Table::new(namespace_header.into_iter().chain(columns.iter().map(|c| c.header)));
    for object in objects {
        let namespace_cell = with_namespace.then(|| namespace(object).to_string());
        table.push(
            namespace_cell.into_iter().chain(columns.iter().map(|c| (c.cell)(object, context))).collect(),
        );
    }
    table.render(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn context() -> Context {
        Context { now: datetime!(2024-05-01 12:00:00 UTC), traffic: HashMap::new() }
    }

    fn revision(name: &str, generation: &str, created: &str) -> Value {
        json!({
            "metadata": {
                "name": name, "namespace": "default", "creationTimestamp": created,
                "labels": {"serving.knative.dev/service": "hello", "serving.knative.dev/configurationGeneration": generation},
            },
            "spec": {"containers": [{"image": "example.com/hello:v1"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Active", "status": "False", "reason": "NoTraffic"}]},
        })
    }

    #[test]
    fn pods_render_like_kubectl_get_pods() {
        let pod = json!({
            "metadata": {"name": "hello-00001-deployment-abcde", "creationTimestamp": "2024-05-01T11:59:00Z",
                "labels": {"serving.knative.dev/revision": "hello-00001"}},
            "spec": {"runtimeClassName": "oci"},
            "status": {"phase": "Running", "podIP": "10.88.0.2", "containerStatuses": [
                {"ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
        });
        let kind = kinds::lookup("po").unwrap();
        let text = render(kind, &[pod], &context(), true, false);
        let row = text.lines().nth(1).unwrap();
        for cell in ["hello-00001", "0/1", "CrashLoopBackOff", "2", "oci", "10.88.0.2", "1m"] {
            assert!(row.contains(cell), "{cell} in {text}");
        }
    }

    #[test]
    fn services_render_with_kns_columns() {
        let service = json!({
            "metadata": {"name": "hello", "namespace": "default", "creationTimestamp": "2024-05-01T11:59:55Z"},
            "status": {
                "url": "http://hello.default.localhost",
                "latestReadyRevisionName": "hello-00001",
                "conditions": [
                    {"type": "ConfigurationsReady", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "RoutesReady", "status": "True"},
                ],
            },
        });
        let kind = kinds::lookup("ksvc").unwrap();
        assert_eq!(
            render(kind, &[service], &context(), false, false),
            "NAME    URL                              LATEST        AGE   CONDITIONS   READY   REASON\n\
             hello   http://hello.default.localhost   hello-00001   5s    3 OK / 3     True\n"
        );
    }

    #[test]
    fn revisions_show_their_share_of_traffic_and_tags() {
        let services = [json!({
            "metadata": {"name": "hello", "namespace": "default"},
            "status": {"traffic": [
                {"revisionName": "hello-00002", "percent": 80, "latestRevision": true},
                {"revisionName": "hello-00001", "percent": 20, "tag": "old"},
                {"revisionName": "hello-00002", "percent": 0, "tag": "new"},
            ]},
        })];
        let mut context = context();
        context.traffic = index_traffic(&services);
        assert_eq!(
            context.traffic[&("default".to_string(), "hello-00002".to_string())],
            Share { percent: 80, tags: vec!["new".into()] }
        );
        let mut revisions = vec![
            revision("hello-00001", "1", "2024-05-01T10:00:00Z"),
            revision("hello-00002", "2", "2024-05-01T11:00:00Z"),
        ];
        sort_revisions(&mut revisions);
        let kind = kinds::lookup("rev").unwrap();
        let text = render(kind, &revisions, &context, false, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAMESPACE   NAME          SERVICE   TRAFFIC   TAGS   GENERATION   AGE   CONDITIONS   READY   REASON"
        );
        assert_eq!(
            lines[1],
            "default     hello-00002   hello     80%       new    2            1h    1 OK / 2     True"
        );
        assert_eq!(
            lines[2],
            "default     hello-00001   hello     20%       old    1            2h    1 OK / 2     True"
        );
    }

    #[test]
    fn wide_adds_columns_and_unknown_kinds_get_generic_ones() {
        let kind = kinds::lookup("rev").unwrap();
        let text = render(kind, &[revision("hello-00001", "1", "")], &context(), true, false);
        assert!(text.lines().next().unwrap().contains("IMAGE"), "{text}");
        assert!(text.contains("example.com/hello:v1"), "{text}");
        let channel = Kind {
            group: "messaging.knative.dev",
            version: "v1",
            kind: "Channel",
            plural: "channels",
            singular: "channel",
            short_names: &[],
            categories: &[],
            namespaced: true,
            status_subresource: true,
            managed: false,
            key: "messaging.knative.dev/channels",
        };
        let text = render(&channel, &[json!({"metadata": {"name": "default"}})], &context(), false, false);
        assert_eq!(text, "NAME      AGE   READY     REASON\ndefault         Unknown\n");
    }

    #[test]
    fn eventing_kinds_render_with_kns_columns() {
        let ready = json!([{"type": "Ready", "status": "True"}, {"type": "Addressable", "status": "True"}]);
        let broker = json!({
            "metadata": {"name": "default", "creationTimestamp": "2024-05-01T11:58:00Z"},
            "status": {"address": {"url": "http://broker-ingress.localhost/default/default"}, "conditions": ready},
        });
        assert_eq!(
            render(kinds::lookup("brokers").unwrap(), &[broker], &context(), false, false),
            "NAME      URL                                               AGE   CONDITIONS   READY   REASON\n\
             default   http://broker-ingress.localhost/default/default   2m    2 OK / 2     True\n"
        );
        let trigger = json!({
            "metadata": {"name": "orders", "creationTimestamp": "2024-05-01T11:58:00Z"},
            "spec": {"broker": "default", "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "fulfil"}}},
            "status": {"subscriberUri": "http://fulfil.default.localhost", "conditions": ready},
        });
        assert_eq!(
            render(kinds::lookup("trigger").unwrap(), &[trigger], &context(), true, false),
            "NAME     BROKER    SINK          URI                               AGE   CONDITIONS   READY   REASON\n\
             orders   default   ksvc:fulfil   http://fulfil.default.localhost   2m    2 OK / 2     True\n"
        );
        let source = json!({
            "metadata": {"name": "heartbeat", "creationTimestamp": "2024-05-01T11:58:00Z"},
            "spec": {"schedule": "*/1 * * * *", "sink": {"uri": "http://example.com/"}},
        });
        assert_eq!(
            render(kinds::lookup("pingsources").unwrap(), &[source], &context(), false, false),
            "NAME        SCHEDULE      SINK                  AGE   CONDITIONS   READY     REASON\n\
             heartbeat   */1 * * * *   http://example.com/   2m                 Unknown\n"
        );
    }

    #[test]
    fn empty_answers_use_kubectls_words() {
        let services = kinds::lookup("ksvc").unwrap();
        assert_eq!(no_resources_message(services, Some("team-a")), "No resources found in team-a namespace.");
        assert_eq!(no_resources_message(kinds::lookup("ns").unwrap(), Some("default")), "No resources found");
    }

    #[test]
    fn documents_print_as_yaml_or_json() {
        let object = json!({"kind": "Service", "metadata": {"name": "hello"}});
        assert_eq!(
            document(&object, Some(OutputFormat::Yaml)).unwrap(),
            "kind: Service\nmetadata:\n  name: hello\n"
        );
        assert!(
            document(&object, Some(OutputFormat::Json)).unwrap().starts_with("{\n  \"kind\": \"Service\"")
        );
    }
}
