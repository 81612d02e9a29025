//! `skiff event send`, modelled on kn-plugin-event's `kn event send`: one CloudEvent in binary
//! mode to a broker (at its `status.address.url`) or to any URL.
//!
//! Broker URLs are `http://broker-ingress.{domain}/{namespace}/{name}`, without a port, and
//! names under `localhost` do not resolve everywhere (glibc leaves them to `/etc/hosts`), so
//! the event goes to the data plane's address (`--data-plane`) with the URL's host as `Host`.
//! A `--to` URL goes straight to its host, unless the host is under `localhost` or does not
//! resolve: then it goes to the data plane too.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use reqwest::Url;
use serde_json::Value;
use skiff_eventing::codec::{self, Event};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::lifecycle::BROKER;
use crate::cli::client::ApiClient;
use crate::cli::object::{condition, str_at};

/// How long one send may take, connecting included.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of an error response's body an error message shows.
const MAX_BODY_SHOWN: usize = 2000;

#[derive(Debug, clap::Subcommand)]
pub enum EventCommand {
    /// Send a CloudEvent (binary mode) to a broker or a URL.
    Send(SendArgs),
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The broker to send to, in the namespace of -n.
    #[arg(short, long, default_value = "default", conflicts_with = "to")]
    pub broker: String,
    /// Send to this URL instead of a broker.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// The event's type attribute.
    #[arg(short, long = "type", value_name = "TYPE", default_value = "dev.skiff.cli.event")]
    pub type_: String,
    /// The event's source attribute (a URI-reference).
    #[arg(short, long, default_value = "skiff-cli")]
    pub source: String,
    /// The event's id attribute; a random UUID when left out.
    #[arg(long)]
    pub id: Option<String>,
    /// The event's data.
    #[arg(short, long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// A file holding the event's data (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
    /// The data's content type (datacontenttype); application/json when the data is JSON,
    /// text/plain otherwise.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Another attribute NAME=VALUE (repeatable): an extension, or subject, time or dataschema.
    #[arg(short, long = "extension", value_name = "NAME=VALUE")]
    pub extensions: Vec<String>,
    /// Where the data plane listens (`skiff up --listen`): broker URLs are reached there.
    #[arg(long, value_name = "ADDR", env = "SKIFF_DATA_PLANE", default_value = "127.0.0.1:8080")]
    pub data_plane: String,
}

pub async fn run(client: &ApiClient, namespace: &str, command: &EventCommand) -> anyhow::Result<()> {
    let EventCommand::Send(args) = command;
    send(client, namespace, args).await
}

/// Where the event goes and how to reach it.
struct Target {
    url: Url,
    /// What messages call it: `broker 'default'`, or the URL.
    label: String,
    via_data_plane: bool,
}

async fn send(client: &ApiClient, namespace: &str, args: &SendArgs) -> anyhow::Result<()> {
    let data = read_data(args).await?;
    let id = args.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let time = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let event = build_event(args, id, time, data)?;
    let target = target(client, namespace, args).await?;
    let http = http_client(&target, &args.data_plane).await?;
    let (headers, body) = codec::encode_binary(&event);
    let response = http.post(target.url.clone()).headers(headers).body(body).send().await.map_err(|err| {
        let err = anyhow::Error::new(err);
        if target.via_data_plane {
            err.context(format!(
                "cannot send to {} through the data plane at {} (is `skiff up` running? --data-plane or \
                 SKIFF_DATA_PLANE say where it listens)",
                target.label, args.data_plane
            ))
        } else {
            err.context(format!("cannot send to {}", target.label))
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("{}", rejection(&event.id, &target.label, status, &body));
    }
    crate::cli::emit(&format!("Event '{}' sent to {} ({status})\n", event.id, target.label))
}

/// The data from `--data` or `--data-file`; none when it is empty.
async fn read_data(args: &SendArgs) -> anyhow::Result<Option<Bytes>> {
    let data = match (&args.data, &args.data_file) {
        (Some(data), _) => Bytes::from(data.clone()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            use tokio::io::AsyncReadExt as _;
            let mut data = Vec::new();
            tokio::io::stdin().read_to_end(&mut data).await.context("cannot read the data from stdin")?;
            Bytes::from(data)
        }
        (None, Some(path)) => Bytes::from(
            tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))?,
        ),
        (None, None) => return Ok(None),
    };
    Ok((!data.is_empty()).then_some(data))
}

/// The event the flags describe, checked against the CloudEvents spec.
fn build_event(args: &SendArgs, id: String, time: String, data: Option<Bytes>) -> anyhow::Result<Event> {
    let mut event = Event::new(id, args.source.clone(), args.type_.clone());
    event.time = Some(time);
    for flag in &args.extensions {
        let Some((name, value)) = flag.split_once('=') else {
            anyhow::bail!("--extension {flag:?}: expected NAME=VALUE");
        };
        let value = value.to_string();
        match name {
            "subject" => event.subject = Some(value),
            "time" => event.time = Some(value),
            "dataschema" => event.dataschema = Some(value),
            "specversion" => anyhow::bail!("--extension specversion: skiff sends CloudEvents 1.0"),
            "id" | "source" | "type" | "datacontenttype" => {
                let flag = if name == "datacontenttype" { "content-type" } else { name };
                anyhow::bail!("--extension {name}: use --{flag}");
            }
            _ => {
                if event.extensions.insert(name.to_string(), value).is_some() {
                    anyhow::bail!("--extension {name:?} is given more than once");
                }
            }
        }
    }
    event.datacontenttype = match (&args.content_type, &data) {
        (Some(content_type), _) => Some(content_type.clone()),
        (None, Some(data)) if serde_json::from_slice::<Value>(data).is_ok() => {
            Some("application/json".into())
        }
        (None, Some(_)) => Some("text/plain".into()),
        (None, None) => None,
    };
    event.data = data;
    event.validate()?;
    Ok(event)
}

/// The broker's URL, or `--to`.
async fn target(client: &ApiClient, namespace: &str, args: &SendArgs) -> anyhow::Result<Target> {
    if let Some(to) = &args.to {
        let url = parse_url(to).with_context(|| format!("--to {to:?}"))?;
        let via_data_plane = match url.host_str() {
            Some(host) if is_under_localhost(host) => true,
            Some(host) => {
                let port = url.port_or_known_default().unwrap_or(80);
                tokio::net::lookup_host((host, port)).await.is_err()
            }
            None => true,
        };
        return Ok(Target { url, label: to.clone(), via_data_plane });
    }
    let broker = client.get(BROKER.kind()?, namespace, &args.broker).await?;
    let address = str_at(&broker, "/status/address/url");
    if address.is_empty() {
        let why = condition(&broker, "Ready")
            .filter(|ready| !ready.is_true())
            .map(|ready| format!(": {}", ready.one_line()))
            .unwrap_or_default();
        anyhow::bail!("broker '{}' in namespace '{namespace}' has no address yet{why}", args.broker);
    }
    let url = parse_url(address).with_context(|| format!("the address of broker '{}'", args.broker))?;
    Ok(Target { url, label: format!("broker '{}'", args.broker), via_data_plane: true })
}

fn parse_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw).map_err(|err| anyhow::anyhow!("{raw:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        anyhow::bail!("{raw:?} is not an http:// or https:// URL");
    }
    Ok(url)
}

/// A name under `localhost`: loopback's (RFC 6761), but not every resolver knows it.
fn is_under_localhost(host: &str) -> bool {
    host.trim_end_matches('.').to_ascii_lowercase().ends_with(".localhost")
}

/// A client that, for a target behind the data plane, reaches the URL's host at the data
/// plane's address: the request keeps its URL, so `Host` names the broker ingress or service.
/// A port in the URL wins over the data plane's.
async fn http_client(target: &Target, data_plane: &str) -> anyhow::Result<reqwest::Client> {
    skiff_runtime_oci::install_crypto_provider();
    let mut builder =
        reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(SEND_TIMEOUT);
    if target.via_data_plane
        && let Some(host) = target.url.host_str()
    {
        let address = tokio::net::lookup_host(data_plane)
            .await
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| {
                anyhow::anyhow!("--data-plane {data_plane:?} is not an address HOST:PORT that resolves")
            })?;
        builder = builder.resolve(host, address).no_proxy();
    }
    Ok(builder.build()?)
}

/// The error of a refused event: the status and the body, as plain text.
fn rejection(id: &str, target: &str, status: reqwest::StatusCode, body: &str) -> String {
    let body = body.trim();
    let mut message = format!("event '{id}' was not accepted: {target} answered {status}");
    if !body.is_empty() {
        let shown: String = body.chars().take(MAX_BODY_SHOWN).collect();
        message.push_str(": ");
        message.push_str(&shown);
        if shown.len() < body.len() {
            message.push_str("...");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{Command, parse_cli, try_parse_cli};

    fn args(flags: &[&str]) -> SendArgs {
        let cli = parse_cli(&[&["event", "send"], flags].concat());
        let Command::Event(EventCommand::Send(args)) = cli.command else { panic!("not send") };
        args
    }

    fn event(flags: &[&str], data: Option<&str>) -> anyhow::Result<Event> {
        let data = data.map(|d| Bytes::from(d.to_string()));
        build_event(&args(flags), "id-1".into(), "2024-05-01T12:00:00Z".into(), data)
    }

    #[test]
    fn the_defaults_make_a_valid_event_for_the_default_broker() {
        let args = args(&[]);
        assert_eq!(args.broker, "default");
        assert_eq!(args.to, None);
        if std::env::var_os("SKIFF_DATA_PLANE").is_none() {
            assert_eq!(args.data_plane, "127.0.0.1:8080");
        }
        let event = event(&[], None).unwrap();
        assert_eq!((event.type_.as_str(), event.source.as_str()), ("dev.skiff.cli.event", "skiff-cli"));
        assert_eq!((event.id.as_str(), event.time.as_deref()), ("id-1", Some("2024-05-01T12:00:00Z")));
        assert_eq!((event.data, event.datacontenttype), (None, None));
    }

    #[test]
    fn the_event_goes_out_in_binary_mode() {
        let event = event(
            &["--type", "dev.shop.order", "--source", "/checkout", "-e", "region=eu", "-e", "subject=o-1"],
            Some("{\"order\": 1}"),
        )
        .unwrap();
        let (headers, body) = codec::encode_binary(&event);
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(header("ce-specversion"), "1.0");
        assert_eq!(header("ce-id"), "id-1");
        assert_eq!(header("ce-type"), "dev.shop.order");
        assert_eq!(header("ce-source"), "/checkout");
        assert_eq!(header("ce-subject"), "o-1");
        assert_eq!(header("ce-region"), "eu");
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(body, Bytes::from_static(b"{\"order\": 1}"));
    }

    #[test]
    fn the_content_type_is_guessed_unless_given() {
        assert_eq!(event(&[], Some("hello")).unwrap().datacontenttype.as_deref(), Some("text/plain"));
        let event = event(&["--content-type", "application/xml"], Some("<a/>")).unwrap();
        assert_eq!(event.datacontenttype.as_deref(), Some("application/xml"));
    }

    #[test]
    fn bad_attributes_are_refused_before_sending() {
        let err = |flags: &[&str]| event(flags, None).unwrap_err().to_string();
        assert_eq!(err(&["-e", "region"]), "--extension \"region\": expected NAME=VALUE");
        assert_eq!(err(&["-e", "type=x"]), "--extension type: use --type");
        assert_eq!(err(&["-e", "datacontenttype=x"]), "--extension datacontenttype: use --content-type");
        assert!(err(&["-e", "myExt=x"]).contains("capitals are not allowed"), "{}", err(&["-e", "myExt=x"]));
        assert!(err(&["-e", "a=1", "-e", "a=2"]).contains("more than once"));
        assert!(err(&["--type", ""]).contains("type"));
        assert!(err(&["-e", "time=yesterday"]).contains("time"));
    }

    #[test]
    fn broker_and_to_are_one_or_the_other() {
        let try_parse = |flags: &[&str]| try_parse_cli(&[&["event", "send"], flags].concat());
        assert!(try_parse(&["--broker", "b", "--to", "http://x/"]).is_err());
        assert!(try_parse(&["--data", "a", "--data-file", "f"]).is_err());
        let to = args(&["--to", "http://hello.default.localhost/"]);
        assert_eq!(to.to.as_deref(), Some("http://hello.default.localhost/"));
    }

    #[test]
    fn urls_under_localhost_go_through_the_data_plane() {
        assert!(is_under_localhost("broker-ingress.localhost"));
        assert!(is_under_localhost("Hello.Default.LOCALHOST."));
        assert!(!is_under_localhost("localhost"));
        assert!(!is_under_localhost("notlocalhost"));
        assert!(!is_under_localhost("example.com"));
        assert!(parse_url("http://broker-ingress.localhost/default/default").is_ok());
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("/default/default").is_err());
    }

    #[test]
    fn a_rejection_shows_the_status_and_the_body() {
        assert_eq!(
            rejection(
                "e1",
                "broker 'b'",
                reqwest::StatusCode::BAD_REQUEST,
                "invalid CloudEvent: type: empty\n"
            ),
            "event 'e1' was not accepted: broker 'b' answered 400 Bad Request: invalid CloudEvent: type: empty"
        );
        assert_eq!(
            rejection("e1", "http://x/", reqwest::StatusCode::NOT_FOUND, ""),
            "event 'e1' was not accepted: http://x/ answered 404 Not Found"
        );
    }
}
