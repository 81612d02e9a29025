//! `skiff revision list|delete`, modelled on `kn revision`.

use super::client::{ApiClient, ListOptions};
use super::get::{OutputFormat, View};
use super::kinds;

#[derive(Debug, clap::Subcommand)]
pub enum RevisionCommand {
    /// List revisions, newest first for each service.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Delete revisions.
    #[command(alias = "rm")]
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only the revisions of this service.
    #[arg(short, long)]
    pub service: Option<String>,
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// The label selector of a service's revisions.
pub fn service_selector(service: &str) -> String {
    format!("serving.knative.dev/service={service}")
}

pub async fn run(client: &ApiClient, namespace: &str, command: &RevisionCommand) -> anyhow::Result<()> {
    let revisions = kinds::lookup("revisions")?;
    match command {
        RevisionCommand::List(args) => {
            let selector = args.service.as_deref().map(service_selector);
            let options = ListOptions { label_selector: selector.as_deref(), field_selector: None };
            let view = View { kind: revisions, format: args.output, with_namespace: args.all_namespaces };
            let scope = if args.all_namespaces { None } else { Some(namespace) };
            let empty = match &args.service {
                Some(service) => format!("No revisions found for service '{service}'."),
                None => "No revisions found.".to_string(),
            };
            view.print_list(client, scope, &options, &empty).await
        }
        RevisionCommand::Delete(args) => {
            for name in &args.names {
                client.delete(revisions, namespace, name).await?;
                super::emit(&format!("Revision '{name}' deleted in namespace '{namespace}'.\n"))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_revisions_are_selected_by_label() {
        assert_eq!(service_selector("hello"), "serving.knative.dev/service=hello");
    }
}
