//! `skiff logs SERVICE`: what the running revisions of a service wrote (stdout, stderr and the
//! host's own lines about them), each line prefixed with its revision, newest revision first.

use super::client::{ApiClient, ListOptions};
use super::get::sort_revisions;
use super::kinds;
use super::object::{label, name};
use super::revision::service_selector;

const SERVICE_LABEL: &str = "serving.knative.dev/service";

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The service whose logs to show.
    pub service: String,
    /// Only this revision's log.
    #[arg(short, long, value_name = "REVISION")]
    pub revision: Option<String>,
    /// Only the last N lines of each revision's log.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

pub async fn run(client: &ApiClient, namespace: &str, args: &LogsArgs) -> anyhow::Result<()> {
    let service = &args.service;
    let revisions = revisions_of(client, namespace, args).await?;
    let kind = kinds::lookup("revisions")?;
    let mut shown = 0;
    for revision in &revisions {
        match client.revision_log(kind, namespace, revision, args.tail).await {
            Ok(text) => {
                shown += 1;
                super::emit(&prefixed(revision, &text))?;
            }
            // No running pod: nothing to show for this one.
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err.into()),
        }
    }
    if shown == 0 {
        match &args.revision {
            Some(revision) => anyhow::bail!(
                "revision '{revision}' of service '{service}' has no running pod, so there is no log to show \
                 (it may have scaled to zero)"
            ),
            None => anyhow::bail!(
                "service '{service}' has no running revision in namespace '{namespace}', so there are no logs \
                 to show (its revisions may have scaled to zero)"
            ),
        }
    }
    Ok(())
}

/// The revisions to show, newest first: the one `--revision` names, or all of the service's.
async fn revisions_of(client: &ApiClient, namespace: &str, args: &LogsArgs) -> anyhow::Result<Vec<String>> {
    let service = &args.service;
    let kind = kinds::lookup("revisions")?;
    if let Some(revision) = &args.revision {
        let Some(object) = client.get_optional(kind, namespace, revision).await? else {
            anyhow::bail!("revision '{revision}' not found in namespace '{namespace}'");
        };
        if label(&object, SERVICE_LABEL) != service {
            anyhow::bail!("revision '{revision}' is not a revision of service '{service}'");
        }
        return Ok(vec![revision.clone()]);
    }
    let selector = service_selector(service);
    let options = ListOptions { label_selector: Some(&selector), field_selector: None };
    let mut list = client.list(kind, Some(namespace), &options).await?;
    let mut items = match list.get_mut("items").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(items)) => items,
        _ => Vec::new(),
    };
    if items.is_empty() {
        if client.get_optional(kinds::lookup("services")?, namespace, service).await?.is_none() {
            anyhow::bail!("service '{service}' not found in namespace '{namespace}'");
        }
        anyhow::bail!("service '{service}' has no revisions yet");
    }
    sort_revisions(&mut items);
    Ok(items.iter().map(|r| name(r).to_string()).collect())
}

/// Every line of `text` with `[REVISION] ` in front.
fn prefixed(revision: &str, text: &str) -> String {
    text.lines().map(|line| format!("[{revision}] {line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_names_its_revision() {
        let text = "2024-05-01T12:00:00Z stdout hi\n2024-05-01T12:00:01Z stderr oops\n";
        assert_eq!(
            prefixed("hello-00001", text),
            "[hello-00001] 2024-05-01T12:00:00Z stdout hi\n[hello-00001] 2024-05-01T12:00:01Z stderr oops\n"
        );
        assert_eq!(prefixed("hello-00001", ""), "");
    }
}
