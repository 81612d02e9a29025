//! What `create`, `update`, `list`, `describe` and `delete` do for every eventing kind: write
//! the object, wait for it to become Ready with progress shown, and say so in kn's words.

use serde_json::Value;
use time::OffsetDateTime;

use crate::cli::client::{ApiClient, ListOptions};
use crate::cli::get::{OutputFormat, View, document};
use crate::cli::kinds::{self, Kind};
use crate::cli::object::str_at;
use crate::cli::service::{DeleteArgs, DescribeArgs, DocumentFormat, ListArgs};
use crate::cli::wait::{self, WaitArgs};

/// One eventing kind as its commands speak of it.
pub struct Noun {
    /// The plural the API serves it under (`brokers`).
    plural: &'static str,
    /// Where the URI the object sends to or takes events at is, and what to call it.
    address: (&'static str, &'static str),
}

pub const BROKER: Noun = Noun { plural: "brokers", address: ("URL", "/status/address/url") };
pub const TRIGGER: Noun = Noun { plural: "triggers", address: ("Subscriber URI", "/status/subscriberUri") };
pub const PING_SOURCE: Noun = Noun { plural: "pingsources", address: ("Sink URI", "/status/sinkUri") };

impl Noun {
    pub fn kind(&self) -> anyhow::Result<&'static Kind> {
        kinds::lookup(self.plural)
    }

    /// `broker`, `ping source`.
    fn word(&self) -> anyhow::Result<String> {
        Ok(wait::noun(self.kind()?))
    }

    /// `Broker`, `Ping source`.
    fn title(&self) -> anyhow::Result<String> {
        let word = self.word()?;
        let mut chars = word.chars();
        Ok(chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default())
    }

    /// POSTs `object` and waits for it to become ready.
    pub async fn create(
        &self,
        client: &ApiClient,
        namespace: &str,
        object: &Value,
        wait: &WaitArgs,
    ) -> anyhow::Result<()> {
        let name = str_at(object, "/metadata/name");
        let created = match client.create(self.kind()?, namespace, object).await {
            Ok(created) => created,
            Err(err) if err.is_already_exists() => anyhow::bail!(
                "cannot create {word} '{name}' in namespace '{namespace}' because the {word} already exists",
                word = self.word()?
            ),
            Err(err) => return Err(err.into()),
        };
        self.finish(client, namespace, wait, "created", &created).await
    }

    /// Changes the object with a JSON merge patch and waits for it to become ready.
    pub async fn update(
        &self,
        client: &ApiClient,
        namespace: &str,
        name: &str,
        patch: &Value,
        wait: &WaitArgs,
    ) -> anyhow::Result<()> {
        let updated = client.merge_patch(self.kind()?, namespace, name, patch).await?;
        self.finish(client, namespace, wait, "updated", &updated).await
    }

    /// Unless told not to, waits with progress on stderr; then says what happened, and where
    /// the object's address is once it is ready.
    async fn finish(
        &self,
        client: &ApiClient,
        namespace: &str,
        wait: &WaitArgs,
        verb: &str,
        answer: &Value,
    ) -> anyhow::Result<()> {
        let name = str_at(answer, "/metadata/name");
        let title = self.title()?;
        let done = format!("{title} '{name}' {verb} in namespace '{namespace}'.\n");
        if wait.no_wait {
            return crate::cli::emit(&done);
        }
        let doing = if verb == "created" { "Creating" } else { "Updating" };
        eprintln!("{doing} {} '{name}' in namespace '{namespace}':\n", self.word()?);
        // The object is written either way: say so, since creating it again would fail.
        let ready = wait::until_kind_ready(client, self.kind()?, namespace, name, answer, wait.timeout())
            .await
            .map_err(|err| {
                err.context(format!(
                    "{title} '{name}' {verb} in namespace '{namespace}', but it is not ready"
                ))
            })?;
        eprintln!();
        crate::cli::emit(&(done + &self.address_line(&ready)))
    }

    /// `URL: http://...`, or nothing when the object has no address.
    pub fn address_line(&self, object: &Value) -> String {
        let (label, pointer) = self.address;
        match str_at(object, pointer) {
            "" => String::new(),
            address => format!("{label}: {address}\n"),
        }
    }

    pub async fn list(&self, client: &ApiClient, namespace: &str, args: &ListArgs) -> anyhow::Result<()> {
        let view = View { kind: self.kind()?, format: args.output, with_namespace: args.all_namespaces };
        let scope = if args.all_namespaces { None } else { Some(namespace) };
        let empty = format!("No {}s found.", self.word()?);
        view.print_list(client, scope, &ListOptions::default(), &empty).await
    }

    /// Prints the object as `render` describes it, or as YAML or JSON with `-o`.
    pub async fn describe(
        &self,
        client: &ApiClient,
        namespace: &str,
        args: &DescribeArgs,
        render: fn(&Value, OffsetDateTime) -> String,
    ) -> anyhow::Result<()> {
        let object = client.get(self.kind()?, namespace, &args.name).await?;
        let text = match args.output {
            Some(DocumentFormat::Yaml) => document(&object, Some(OutputFormat::Yaml))?,
            Some(DocumentFormat::Json) => document(&object, Some(OutputFormat::Json))?,
            None => render(&object, OffsetDateTime::now_utc()),
        };
        crate::cli::emit(&text)
    }

    pub async fn delete(&self, client: &ApiClient, namespace: &str, args: &DeleteArgs) -> anyhow::Result<()> {
        for name in &args.names {
            client.delete(self.kind()?, namespace, name).await?;
            crate::cli::emit(&format!(
                "{} '{name}' successfully deleted in namespace '{namespace}'.\n",
                self.title()?
            ))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nouns_name_their_kinds() {
        assert_eq!(BROKER.kind().unwrap().kind, "Broker");
        assert_eq!(TRIGGER.kind().unwrap().kind, "Trigger");
        assert_eq!(PING_SOURCE.kind().unwrap().kind, "PingSource");
        assert_eq!(PING_SOURCE.title().unwrap(), "Ping source");
        assert_eq!(BROKER.word().unwrap(), "broker");
    }

    #[test]
    fn the_address_line_names_what_the_address_is() {
        let broker =
            json!({"status": {"address": {"url": "http://broker-ingress.localhost/default/default"}}});
        assert_eq!(BROKER.address_line(&broker), "URL: http://broker-ingress.localhost/default/default\n");
        assert_eq!(TRIGGER.address_line(&json!({})), "");
        let source = json!({"status": {"sinkUri": "http://hello.default.localhost"}});
        assert_eq!(PING_SOURCE.address_line(&source), "Sink URI: http://hello.default.localhost\n");
    }
}
