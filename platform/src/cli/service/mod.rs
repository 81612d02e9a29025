//! `skiff service create|update|list|describe|delete`, modelled on `kn service`.

mod describe;
mod template;
mod traffic;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::client::{ApiClient, ListOptions};
use super::get::{OutputFormat, View, document};
use super::kinds::{self, Kind};
use super::object::str_at;
use super::wait::{self, WaitArgs};
use template::{TemplateArgs, TemplateEdits};
use traffic::TrafficEdits;

/// How many times an update re-reads the service when someone else changed it in between.
const UPDATE_ATTEMPTS: usize = 5;

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Create a service (with --force, replace it if it exists).
    Create(CreateArgs),
    /// Change a service's revision template or traffic.
    Update(UpdateArgs),
    /// List services.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show a service, its traffic split and its conditions.
    Describe(DescribeArgs),
    /// Delete services.
    #[command(alias = "rm")]
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Replace the service if it already exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    pub name: String,
    #[command(flatten)]
    pub template: TemplateArgs,
    /// The traffic split, REVISION=PERCENT,... (REVISION may be a tag or @latest); must add up to 100.
    #[arg(long, value_name = "REVISION=PERCENT")]
    pub traffic: Vec<String>,
    /// Tag revisions, REVISION=TAG,... (REVISION may be @latest); a tag gets its own URL.
    #[arg(long, value_name = "REVISION=TAG")]
    pub tag: Vec<String>,
    /// Remove tags, TAG,...
    #[arg(long, value_name = "TAG")]
    pub untag: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `-o` of describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DocumentFormat {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    pub name: String,
    /// Print the object itself instead of a description.
    #[arg(short, long, value_enum)]
    pub output: Option<DocumentFormat>,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

fn services() -> anyhow::Result<&'static Kind> {
    kinds::lookup("services")
}

pub async fn run(client: &ApiClient, namespace: &str, command: &ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Create(args) => create(client, namespace, args).await,
        ServiceCommand::Update(args) => update(client, namespace, args).await,
        ServiceCommand::List(args) => {
            let view = View { kind: services()?, format: args.output, with_namespace: args.all_namespaces };
            let scope = if args.all_namespaces { None } else { Some(namespace) };
            view.print_list(client, scope, &ListOptions::default(), "No services found.").await
        }
        ServiceCommand::Describe(args) => describe(client, namespace, args).await,
        ServiceCommand::Delete(args) => {
            for name in &args.names {
                client.delete(services()?, namespace, name).await?;
                super::emit(&format!("Service '{name}' successfully deleted in namespace '{namespace}'.\n"))?;
            }
            Ok(())
        }
    }
}

/// A new Service object with the template the flags describe.
pub fn new_service(name: &str, namespace: &str, edits: &TemplateEdits) -> Value {
    let mut service = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{}]}}},
    });
    edits.apply(&mut service);
    service
}

async fn create(client: &ApiClient, namespace: &str, args: &CreateArgs) -> anyhow::Result<()> {
    let name = &args.name;
    if args.template.image.is_none() && args.template.wasm.is_none() {
        anyhow::bail!("service create needs --image (an image in a registry) or --wasm (a .wasm file)");
    }
    let mut edits = TemplateEdits::parse(&args.template, name)?;
    let kind = services()?;
    let exists = || already_exists(name, namespace);
    // Fail before uploading when the create would fail.
    if args.template.wasm.is_some()
        && !args.force
        && client.get_optional(kind, namespace, name).await?.is_some()
    {
        return Err(exists());
    }
    upload_wasm(client, name, &args.template, &mut edits).await?;
    let service = new_service(name, namespace, &edits);
    let (verb, answer) = match client.create(kind, namespace, &service).await {
        Ok(created) => ("created", created),
        Err(err) if err.is_already_exists() && args.force => {
            ("replaced", replace(client, namespace, name, |_| Ok(service.clone())).await?)
        }
        Err(err) if err.is_already_exists() => return Err(exists()),
        Err(err) => return Err(err.into()),
    };
    finish(client, namespace, &args.wait, verb, None, &answer).await
}

async fn update(client: &ApiClient, namespace: &str, args: &UpdateArgs) -> anyhow::Result<()> {
    let name = &args.name;
    let mut edits = TemplateEdits::parse(&args.template, name)?;
    let traffic = TrafficEdits::parse(&args.traffic, &args.tag, &args.untag)?;
    if args.template.wasm.is_some() {
        // Fail before uploading when there is no service to update.
        client.get(services()?, namespace, name).await?;
    }
    upload_wasm(client, name, &args.template, &mut edits).await?;
    let mut before = None;
    let answer = replace(client, namespace, name, |current| {
        before = Some(current.clone());
        edit(current, &edits, &traffic)
    })
    .await?;
    let before_latest = before.as_ref().map(|b| str_at(b, "/status/latestReadyRevisionName").to_string());
    finish(client, namespace, &args.wait, "updated", before_latest, &answer).await
}

fn already_exists(name: &str, namespace: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot create service '{name}' in namespace '{namespace}' because the service already exists \
         and no --force option was given"
    )
}

/// With `--wasm FILE`: uploads the file to the node and makes the template run it, as the
/// upload's image with `runtimeClassName: wasm`, in the same write as the other flags.
async fn upload_wasm(
    client: &ApiClient,
    service: &str,
    args: &TemplateArgs,
    edits: &mut TemplateEdits,
) -> anyhow::Result<()> {
    let Some(path) = &args.wasm else { return Ok(()) };
    let bytes = super::wasm::read_component(path).await?;
    let size = bytes.len();
    let uploaded = client
        .upload_component(service, bytes)
        .await
        .map_err(|err| anyhow::anyhow!("cannot upload {}: {err}", path.display()))?;
    let image = str_at(&uploaded, "/image");
    if image.is_empty() {
        anyhow::bail!("the server took {} but answered no image reference: {uploaded}", path.display());
    }
    eprintln!("Uploaded {} ({size} bytes) as {image}", path.display());
    edits.use_component(image);
    Ok(())
}

/// The service after the update's edits: the template, then the traffic.
fn edit(current: &Value, edits: &TemplateEdits, traffic: &TrafficEdits) -> anyhow::Result<Value> {
    let mut service = current.clone();
    edits.apply(&mut service);
    if !traffic.is_empty() {
        let targets = service.pointer("/spec/traffic").and_then(Value::as_array).cloned().unwrap_or_default();
        service["spec"]["traffic"] = Value::Array(traffic.apply(&targets)?);
    }
    Ok(service)
}

/// Reads the service, makes the new one from it, and PUTs it with the resourceVersion it read,
/// again when the server answers Conflict.
async fn replace(
    client: &ApiClient,
    namespace: &str,
    name: &str,
    mut make: impl FnMut(&Value) -> anyhow::Result<Value>,
) -> anyhow::Result<Value> {
    let kind = services()?;
    let mut attempt = 1;
    loop {
        let current = client.get(kind, namespace, name).await?;
        let mut wanted = make(&current)?;
        wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        match client.replace(kind, namespace, name, &wanted).await {
            Ok(answer) => return Ok(answer),
            Err(err) if err.is_conflict() && attempt < UPDATE_ATTEMPTS => attempt += 1,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Waits (unless told not to) and says where the service is available, in kn's words.
async fn finish(
    client: &ApiClient,
    namespace: &str,
    wait: &WaitArgs,
    verb: &str,
    latest_before: Option<String>,
    answer: &Value,
) -> anyhow::Result<()> {
    let name = str_at(answer, "/metadata/name");
    if wait.no_wait {
        return super::emit(&format!("Service '{name}' {verb} in namespace '{namespace}'.\n"));
    }
    let doing = match verb {
        "created" => "Creating",
        "replaced" => "Replacing",
        _ => "Updating",
    };
    eprintln!("{doing} service '{name}' in namespace '{namespace}':\n");
    let ready = wait::until_ready(client, namespace, name, answer, wait.timeout()).await?;
    eprintln!();
    super::emit(&ready_message(&ready, verb, latest_before.as_deref()))
}

/// `Service 'hello' created to latest revision 'hello-00001' is available at URL:` and the URL.
pub fn ready_message(service: &Value, verb: &str, latest_before: Option<&str>) -> String {
    let name = str_at(service, "/metadata/name");
    let url = str_at(service, "/status/url");
    let latest = match str_at(service, "/status/latestReadyRevisionName") {
        "" => str_at(service, "/status/latestCreatedRevisionName"),
        latest => latest,
    };
    if latest_before == Some(latest) {
        format!("Service '{name}' with latest revision '{latest}' (unchanged) is available at URL:\n{url}\n")
    } else {
        format!("Service '{name}' {verb} to latest revision '{latest}' is available at URL:\n{url}\n")
    }
}

async fn describe(client: &ApiClient, namespace: &str, args: &DescribeArgs) -> anyhow::Result<()> {
    let service = client.get(services()?, namespace, &args.name).await?;
    if let Some(format) = args.output {
        let format = match format {
            DocumentFormat::Yaml => OutputFormat::Yaml,
            DocumentFormat::Json => OutputFormat::Json,
        };
        return super::emit(&document(&service, Some(format))?);
    }
    let selector = format!("serving.knative.dev/service={}", args.name);
    let options = ListOptions { label_selector: Some(&selector), field_selector: None };
    let revisions = client.list(kinds::lookup("revisions")?, Some(namespace), &options).await?;
    let revisions = revisions["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    super::emit(&describe::render(&service, revisions, OffsetDateTime::now_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{Command, parse_cli, try_parse_cli};

    #[test]
    fn create_flags_make_a_knative_service() {
        let cli = parse_cli(&[
            "service",
            "create",
            "hello",
            "--image",
            "example.com/hello:v1",
            "--env",
            "TARGET=World",
            "--port",
            "8080",
            "--concurrency-limit",
            "4",
            "--scale-min",
            "1",
            "--revision-name",
            "v1",
            "-n",
            "team-a",
        ]);
        let Command::Service(ServiceCommand::Create(args)) = &cli.command else {
            panic!("not create: {cli:?}")
        };
        assert_eq!(cli.global.namespace, "team-a");
        assert_eq!(args.wait.wait_timeout, 120);
        let edits = TemplateEdits::parse(&args.template, &args.name).unwrap();
        assert_eq!(
            new_service(&args.name, "team-a", &edits),
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "metadata": {"name": "hello", "namespace": "team-a"},
                "spec": {"template": {
                    "spec": {
                        "containers": [{
                            "image": "example.com/hello:v1",
                            "env": [{"name": "TARGET", "value": "World"}],
                            "ports": [{"containerPort": 8080}],
                        }],
                        "containerConcurrency": 4,
                    },
                    "metadata": {"name": "hello-v1", "annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                }},
            })
        );
    }

    #[test]
    fn an_update_of_traffic_alone_leaves_the_template_alone() {
        let cli = parse_cli(&[
            "service",
            "update",
            "hello",
            "--traffic",
            "hello-00001=50,@latest=50",
            "--tag",
            "hello-00001=old",
        ]);
        let Command::Service(ServiceCommand::Update(args)) = &cli.command else {
            panic!("not update: {cli:?}")
        };
        let edits = TemplateEdits::parse(&args.template, &args.name).unwrap();
        let traffic = TrafficEdits::parse(&args.traffic, &args.tag, &args.untag).unwrap();
        let current = json!({
            "metadata": {"name": "hello", "resourceVersion": "9"},
            "spec": {"template": {"metadata": {"name": "hello-v1"}, "spec": {"containers": [{"image": "a"}]}}},
        });
        let updated = edit(&current, &edits, &traffic).unwrap();
        assert_eq!(updated["spec"]["template"], current["spec"]["template"]);
        assert_eq!(
            updated["spec"]["traffic"],
            json!([
                {"latestRevision": true, "percent": 50},
                {"tag": "old", "revisionName": "hello-00001", "latestRevision": false, "percent": 50},
            ])
        );
    }

    #[test]
    fn wasm_and_image_are_exclusive() {
        assert!(try_parse_cli(&["service", "create", "hello", "--wasm", "h.wasm", "--image", "x"]).is_err());
        assert!(try_parse_cli(&["service", "update", "hello", "--wasm", "h.wasm", "--image", "x"]).is_err());
        assert!(
            try_parse_cli(&["service", "create", "hello", "--wasm", "h.wasm", "--runtime-class", "x"])
                .is_err()
        );
        let cli = parse_cli(&["service", "update", "hello", "--wasm", "h.wasm", "--env", "TARGET=Skiff"]);
        let Command::Service(ServiceCommand::Update(args)) = &cli.command else { panic!("not update") };
        assert_eq!(args.template.wasm.as_deref(), Some(std::path::Path::new("h.wasm")));
    }

    #[test]
    fn an_uploaded_component_runs_as_wasm_with_the_other_flags() {
        let cli = parse_cli(&[
            "service",
            "create",
            "hello",
            "--wasm",
            "h.wasm",
            "--env",
            "TARGET=Skiff",
            "--scale-min",
            "1",
        ]);
        let Command::Service(ServiceCommand::Create(args)) = &cli.command else { panic!("not create") };
        let mut edits = TemplateEdits::parse(&args.template, &args.name).unwrap();
        edits.use_component("skiff.local/components/hello@sha256:ab");
        let service = new_service(&args.name, "default", &edits);
        assert_eq!(
            service["spec"]["template"],
            json!({
                "spec": {
                    "containers": [{
                        "image": "skiff.local/components/hello@sha256:ab",
                        "env": [{"name": "TARGET", "value": "Skiff"}],
                    }],
                    "runtimeClassName": "wasm",
                },
                "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
            })
        );
        let cli = parse_cli(&[
            "service",
            "update",
            "hello",
            "--image",
            "localhost:5000/hello:v1",
            "--runtime-class",
            "wasm",
        ]);
        let Command::Service(ServiceCommand::Update(args)) = &cli.command else { panic!("not update") };
        let edits = TemplateEdits::parse(&args.template, &args.name).unwrap();
        let current = json!({"metadata": {"name": "hello"}, "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        let updated = edit(&current, &edits, &TrafficEdits::default()).unwrap();
        assert_eq!(
            updated["spec"]["template"]["spec"],
            json!({"containers": [{"image": "localhost:5000/hello:v1"}], "runtimeClassName": "wasm"})
        );
    }

    #[test]
    fn ready_messages_use_kns_words() {
        let service = json!({
            "metadata": {"name": "hello"},
            "status": {"url": "http://hello.default.localhost", "latestReadyRevisionName": "hello-00002"},
        });
        assert_eq!(
            ready_message(&service, "created", None),
            "Service 'hello' created to latest revision 'hello-00002' is available at URL:\nhttp://hello.default.localhost\n"
        );
        assert_eq!(
            ready_message(&service, "updated", Some("hello-00002")),
            "Service 'hello' with latest revision 'hello-00002' (unchanged) is available at URL:\nhttp://hello.default.localhost\n"
        );
    }
}
