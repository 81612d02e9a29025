//! Waiting for a changed object (a Service, a Broker, ...) to become Ready: follow its watch
//! stream (polling when the watch fails), show condition changes on stderr, fail at once when
//! Ready turns False.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::client::{ApiClient, ApiError, ListOptions};
use super::kinds::{self, Kind};
use super::object::{Condition, conditions, int_at, name, str_at};

const POLL_EVERY: Duration = Duration::from_millis(250);

/// Flags of the commands that change an object and then wait for it.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Return once the change is accepted, without waiting for the object to become ready.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the object to become ready, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub wait_timeout: u64,
}

impl WaitArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.wait_timeout)
    }
}

/// Where an object stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    /// Ready is False at the current generation: `{reason}: {message}`, empty when it says neither.
    Failed(String),
    Pending,
}

/// Ready once the controller has seen the latest spec (`observedGeneration == generation`) and
/// said Ready=True about it; failed once it said Ready=False and no other condition is still
/// Unknown (a route that waits for a revision still being made is not a failure yet).
pub fn judge(object: &Value) -> Verdict {
    if !is_observed(object) {
        return Verdict::Pending;
    }
    let all = conditions(object);
    let settled = all.iter().all(|c| c.is_true() || c.is_false());
    match all.iter().find(|c| c.type_ == "Ready") {
        Some(ready) if ready.is_true() => Verdict::Ready,
        Some(ready) if ready.is_false() && settled => {
            Verdict::Failed(match (ready.reason.as_str(), ready.message.as_str()) {
                (reason, "") => reason.to_string(),
                ("", message) => message.to_string(),
                (reason, message) => format!("{reason}: {message}"),
            })
        }
        _ => Verdict::Pending,
    }
}

fn is_observed(object: &Value) -> bool {
    match int_at(object, "/metadata/generation") {
        Some(generation) => int_at(object, "/status/observedGeneration") == Some(generation),
        None => true,
    }
}

/// What messages call an object of `kind`: its kind in lower-case words (`service`, `ping source`).
pub fn noun(kind: &Kind) -> String {
    let mut noun = String::new();
    for (i, c) in kind.kind.char_indices() {
        if c.is_uppercase() && i > 0 {
            noun.push(' ');
        }
        noun.extend(c.to_lowercase());
    }
    noun
}

/// Waits until the service is Ready; `start` is what the create or update answered.
pub async fn until_ready(
    client: &ApiClient,
    namespace: &str,
    service_name: &str,
    start: &Value,
    timeout: Duration,
) -> anyhow::Result<Value> {
    until_kind_ready(client, kinds::lookup("services")?, namespace, service_name, start, timeout).await
}

/// Waits until the object of `kind` is Ready; `start` is what the create or update answered.
pub async fn until_kind_ready(
    client: &ApiClient,
    kind: &'static Kind,
    namespace: &str,
    name: &str,
    start: &Value,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let mut waiter = Waiter { client, kind, namespace, name, last: start.clone(), shown: HashMap::new() };
    if let Some(done) = waiter.observe(start)? {
        return Ok(done);
    }
    let resource_version = str_at(start, "/metadata/resourceVersion").to_string();
    match tokio::time::timeout(timeout, waiter.follow(&resource_version)).await {
        Ok(outcome) => outcome,
        Err(_) => anyhow::bail!("{}", timeout_message(&noun(kind), name, timeout, &waiter.last)),
    }
}

struct Waiter<'a> {
    client: &'a ApiClient,
    kind: &'static Kind,
    namespace: &'a str,
    name: &'a str,
    /// The object as last seen.
    last: Value,
    /// Condition type -> the line last shown for it.
    shown: HashMap<String, String>,
}

impl Waiter<'_> {
    /// Shows what changed; `Some` when the object is ready, an error when it failed.
    fn observe(&mut self, object: &Value) -> anyhow::Result<Option<Value>> {
        self.last = object.clone();
        if is_observed(object) {
            for line in progress_lines(&mut self.shown, &conditions(object)) {
                eprintln!("  {line}");
            }
        }
        match judge(object) {
            Verdict::Ready => Ok(Some(object.clone())),
            Verdict::Failed(why) if why.is_empty() => anyhow::bail!("the {} is not ready", noun(self.kind)),
            Verdict::Failed(why) => anyhow::bail!("{why}"),
            Verdict::Pending => Ok(None),
        }
    }

    fn deleted(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "{} '{}' was deleted while waiting for it to become ready",
            noun(self.kind),
            self.name
        )
    }

    async fn follow(&mut self, resource_version: &str) -> anyhow::Result<Value> {
        if let Some(done) = self.watch(resource_version).await? {
            return Ok(done);
        }
        self.poll().await
    }

    /// Follows the watch stream; `None` when it failed or ended without an answer.
    async fn watch(&mut self, resource_version: &str) -> anyhow::Result<Option<Value>> {
        let field_selector = format!("metadata.name={}", self.name);
        let options = ListOptions { label_selector: None, field_selector: Some(&field_selector) };
        let Ok(mut stream) =
            self.client.watch(self.kind, Some(self.namespace), &options, Some(resource_version)).await
        else {
            return Ok(None);
        };
        // Whatever happened before the watch started.
        if let Some(done) = self.get_and_observe().await? {
            return Ok(Some(done));
        }
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { return Ok(None) };
            if event.kind == "ERROR" {
                return Ok(None);
            }
            if name(&event.object) != self.name {
                continue;
            }
            if event.kind == "DELETED" {
                return Err(self.deleted());
            }
            if let Some(done) = self.observe(&event.object)? {
                return Ok(Some(done));
            }
        }
        Ok(None)
    }

    async fn poll(&mut self) -> anyhow::Result<Value> {
        loop {
            if let Some(done) = self.get_and_observe().await? {
                return Ok(done);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn get_and_observe(&mut self) -> anyhow::Result<Option<Value>> {
        match self.client.get(self.kind, self.namespace, self.name).await {
            Ok(object) => self.observe(&object),
            Err(err) if err.is_not_found() => Err(self.deleted()),
            Err(err @ ApiError::Status { .. }) => Err(err.into()),
            // A hiccup of the connection: look again next time.
            Err(_) => Ok(None),
        }
    }
}

/// Lines for the conditions whose status, reason or message changed since last shown.
pub fn progress_lines(shown: &mut HashMap<String, String>, now: &[Condition]) -> Vec<String> {
    let mut lines = Vec::new();
    for condition in now {
        let line = condition.one_line();
        if shown.get(&condition.type_) != Some(&line) {
            shown.insert(condition.type_.clone(), line.clone());
            lines.push(line);
        }
    }
    lines
}

/// What the wait was for and where the object (a `noun`) was when time ran out.
pub fn timeout_message(noun: &str, name: &str, timeout: Duration, last: &Value) -> String {
    let generation = int_at(last, "/metadata/generation");
    let observed = int_at(last, "/status/observedGeneration");
    let mut message = format!(
        "timed out after {}s waiting for {noun} '{name}' to become ready \
         (status.observedGeneration equal to metadata.generation and Ready True)",
        timeout.as_secs()
    );
    if let Some(generation) = generation {
        let observed = observed.map_or_else(|| "none".to_string(), |o| o.to_string());
        message.push_str(&format!("; generation {generation}, observedGeneration {observed}"));
    }
    let last_conditions: Vec<String> = conditions(last).iter().map(Condition::one_line).collect();
    if last_conditions.is_empty() {
        message.push_str("; no conditions reported");
    } else {
        message.push_str("; last conditions: ");
        message.push_str(&last_conditions.join("; "));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(generation: i64, observed: i64, ready: &str, reason: &str, message: &str) -> Value {
        json!({
            "metadata": {"name": "hello", "generation": generation},
            "status": {
                "observedGeneration": observed,
                "conditions": [
                    {"type": "ConfigurationsReady", "status": ready},
                    {"type": "Ready", "status": ready, "reason": reason, "message": message},
                ],
            },
        })
    }

    #[test]
    fn ready_needs_the_current_generation_observed() {
        assert_eq!(judge(&service(2, 2, "True", "", "")), Verdict::Ready);
        assert_eq!(judge(&service(2, 1, "True", "", "")), Verdict::Pending);
        assert_eq!(judge(&service(2, 2, "Unknown", "RevisionMissing", "")), Verdict::Pending);
        assert_eq!(judge(&json!({"metadata": {"generation": 1}})), Verdict::Pending);
    }

    #[test]
    fn ready_false_fails_only_at_the_current_generation() {
        assert_eq!(
            judge(&service(1, 1, "False", "RevisionFailed", "image not found")),
            Verdict::Failed("RevisionFailed: image not found".into())
        );
        assert_eq!(judge(&service(2, 1, "False", "RevisionFailed", "old news")), Verdict::Pending);
        let mut settling = service(1, 1, "False", "RevisionMissing", "no ready revision yet");
        settling["status"]["conditions"][0]["status"] = json!("Unknown");
        assert_eq!(judge(&settling), Verdict::Pending);
        assert_eq!(judge(&service(1, 1, "False", "", "")), Verdict::Failed(String::new()));
    }

    #[test]
    fn progress_shows_only_what_changed() {
        let mut shown = HashMap::new();
        let first = conditions(&service(1, 1, "Unknown", "RevisionMissing", "waiting"));
        assert_eq!(
            progress_lines(&mut shown, &first),
            ["ConfigurationsReady: Unknown", "Ready: Unknown RevisionMissing waiting"]
        );
        assert!(progress_lines(&mut shown, &first).is_empty());
        let ready = conditions(&service(1, 1, "True", "", ""));
        assert_eq!(progress_lines(&mut shown, &ready), ["ConfigurationsReady: True", "Ready: True"]);
    }

    #[test]
    fn nouns_are_kinds_in_lower_case_words() {
        assert_eq!(noun(kinds::lookup("ksvc").unwrap()), "service");
        assert_eq!(noun(kinds::lookup("pingsources").unwrap()), "ping source");
    }

    #[test]
    fn a_timeout_says_what_it_waited_for_and_what_it_saw() {
        let message = timeout_message(
            "service",
            "hello",
            Duration::from_secs(120),
            &service(3, 2, "Unknown", "Deploying", ""),
        );
        assert!(
            message.starts_with("timed out after 120s waiting for service 'hello' to become ready"),
            "{message}"
        );
        assert!(message.contains("generation 3, observedGeneration 2"), "{message}");
        assert!(
            message.ends_with("last conditions: ConfigurationsReady: Unknown; Ready: Unknown Deploying"),
            "{message}"
        );
    }
}
