//! `skiff pod list`: the running units of revisions, as `kubectl get pods` shows them.

use super::client::{ApiClient, ListOptions};
use super::get::{OutputFormat, View};
use super::kinds;
use crate::resources::serving::{LABEL_REVISION, LABEL_SERVICE};

#[derive(Debug, clap::Subcommand)]
pub enum PodCommand {
    /// List pods, with their revision and runtime.
    #[command(alias = "ls")]
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only the pods of this service.
    #[arg(short, long)]
    pub service: Option<String>,
    /// Only the pods of this revision.
    #[arg(short, long)]
    pub revision: Option<String>,
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// The label selector for `--service` and `--revision`.
fn selector(args: &ListArgs) -> Option<String> {
    let parts: Vec<String> = [(LABEL_SERVICE, &args.service), (LABEL_REVISION, &args.revision)]
        .into_iter()
        .filter_map(|(label, value)| value.as_ref().map(|v| format!("{label}={v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

pub async fn run(client: &ApiClient, namespace: &str, command: &PodCommand) -> anyhow::Result<()> {
    let PodCommand::List(args) = command;
    let pods = kinds::lookup("pods")?;
    let selector = selector(args);
    let options = ListOptions { label_selector: selector.as_deref(), field_selector: None };
    let view = View { kind: pods, format: args.output, with_namespace: args.all_namespaces };
    let scope = if args.all_namespaces { None } else { Some(namespace) };
    let empty = match (&args.service, &args.revision) {
        (_, Some(revision)) => format!("No pods found for revision '{revision}' (it may be scaled to zero)."),
        (Some(service), None) => format!("No pods found for service '{service}' (it may be scaled to zero)."),
        (None, None) => "No pods found.".to_string(),
    };
    view.print_list(client, scope, &options, &empty).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_a_label_selector() {
        let args = |service: Option<&str>, revision: Option<&str>| ListArgs {
            service: service.map(str::to_string),
            revision: revision.map(str::to_string),
            output: None,
            all_namespaces: false,
        };
        assert_eq!(selector(&args(None, None)), None);
        assert_eq!(selector(&args(Some("hello"), None)).unwrap(), "serving.knative.dev/service=hello");
        assert_eq!(
            selector(&args(Some("hello"), Some("hello-00001"))).unwrap(),
            "serving.knative.dev/service=hello,serving.knative.dev/revision=hello-00001"
        );
    }
}
