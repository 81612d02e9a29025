//! Where events go, as `--sink` and `--dl-sink` spell it (kn's syntax), and as Knative's
//! `Destination` (`{ref: {apiVersion, kind, name}}` or `{uri}`) holds it.

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

const SERVICE_API_VERSION: &str = "serving.knative.dev/v1";
const BROKER_API_VERSION: &str = "eventing.knative.dev/v1";

/// One destination of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// `ksvc:NAME`, or a bare `NAME`: a Knative Service in the object's namespace.
    Service(String),
    /// `broker:NAME`: a Broker in the object's namespace.
    Broker(String),
    /// `http://...` or `https://...`, as written.
    Uri(String),
}

/// Why a `--sink` value names no destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    #[error("the sink is empty: {SINK_FORMS}")]
    Empty,
    #[error("{given:?} is not a sink: unknown prefix {prefix:?}; {SINK_FORMS}")]
    UnknownPrefix { given: String, prefix: String },
    #[error(
        "{given:?} is not a sink: {name:?} is not a valid name (lower-case letters, digits, '-' and '.')"
    )]
    BadName { given: String, name: String },
    #[error("{given:?} is not a sink: {why}")]
    BadUri { given: String, why: String },
}

/// The forms a sink takes, for error messages.
const SINK_FORMS: &str = "a sink is ksvc:NAME, broker:NAME, NAME (a service) or an http:// or https:// URL";

impl FromStr for Sink {
    type Err = SinkError;

    fn from_str(given: &str) -> Result<Self, SinkError> {
        if given.is_empty() {
            return Err(SinkError::Empty);
        }
        let lower = given.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return check_uri(given).map(|()| Sink::Uri(given.to_string()));
        }
        let (prefix, name) = match given.split_once(':') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, given),
        };
        let name_ok = |name: &str| {
            if is_object_name(name) {
                Ok(name.to_string())
            } else {
                Err(SinkError::BadName { given: given.to_string(), name: name.to_string() })
            }
        };
        match prefix.map(str::to_ascii_lowercase).as_deref() {
            None | Some("ksvc") => name_ok(name).map(Sink::Service),
            Some("broker") => name_ok(name).map(Sink::Broker),
            Some(other) => {
                Err(SinkError::UnknownPrefix { given: given.to_string(), prefix: other.to_string() })
            }
        }
    }
}

/// An absolute http(s) URL with a host.
fn check_uri(given: &str) -> Result<(), SinkError> {
    let bad = |why: String| SinkError::BadUri { given: given.to_string(), why };
    let url = reqwest::Url::parse(given).map_err(|err| bad(format!("not a URL ({err})")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("the URL has no host".to_string()));
    }
    Ok(())
}

/// A Kubernetes object name (a DNS-1123 subdomain): `[a-z0-9]` at both ends, `[-.a-z0-9]` between.
fn is_object_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-' || *b == b'.')
}

impl Sink {
    /// The Knative `Destination` of a new object.
    pub fn destination(&self) -> Value {
        match self {
            Sink::Service(name) => json!({"ref": reference(SERVICE_API_VERSION, "Service", name)}),
            Sink::Broker(name) => json!({"ref": reference(BROKER_API_VERSION, "Broker", name)}),
            Sink::Uri(uri) => json!({"uri": uri}),
        }
    }

    /// A JSON merge patch that makes an existing `Destination` this one: the other form and a
    /// namespace the old `ref` had are removed (the server fills in the object's own namespace).
    pub fn merge_patch(&self) -> Value {
        let mut patch = self.destination();
        match self {
            Sink::Service(_) | Sink::Broker(_) => {
                patch["ref"]["namespace"] = Value::Null;
                patch["uri"] = Value::Null;
            }
            Sink::Uri(_) => patch["ref"] = Value::Null,
        }
        patch
    }
}

fn reference(api_version: &str, kind: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name})
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::Service(name) => write!(f, "ksvc:{name}"),
            Sink::Broker(name) => write!(f, "broker:{name}"),
            Sink::Uri(uri) => f.write_str(uri),
        }
    }
}

/// A `Destination` in the sink syntax, the way lists show it: `ksvc:hello`, `broker:default`,
/// the URI, or `kind:name` for a reference to another kind; a `uri` next to a `ref` (a path
/// relative to it) is appended. Empty when there is no destination.
pub fn label(destination: Option<&Value>) -> String {
    let Some(destination) = destination else { return String::new() };
    let uri = destination.get("uri").and_then(Value::as_str).unwrap_or("");
    let Some(reference) = destination.get("ref").filter(|r| r.is_object()) else {
        return uri.to_string();
    };
    let field = |key: &str| reference.get(key).and_then(Value::as_str).unwrap_or("");
    let name = field("name");
    let mut label = match (field("apiVersion"), field("kind")) {
        (SERVICE_API_VERSION, "Service") => format!("ksvc:{name}"),
        (BROKER_API_VERSION, "Broker") => format!("broker:{name}"),
        (_, kind) => format!("{}:{name}", kind.to_ascii_lowercase()),
    };
    if !uri.is_empty() {
        label.push_str(&format!(" ({uri})"));
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Sink, String> {
        raw.parse::<Sink>().map_err(|e| e.to_string())
    }

    #[test]
    fn kns_sink_forms_parse() {
        assert_eq!(parse("ksvc:hello"), Ok(Sink::Service("hello".into())));
        assert_eq!(parse("KSVC:hello"), Ok(Sink::Service("hello".into())));
        assert_eq!(parse("hello"), Ok(Sink::Service("hello".into())));
        assert_eq!(parse("broker:default"), Ok(Sink::Broker("default".into())));
        assert_eq!(parse("http://example.com/events"), Ok(Sink::Uri("http://example.com/events".into())));
        assert_eq!(parse("https://example.com"), Ok(Sink::Uri("https://example.com".into())));
        assert_eq!(
            parse("http://hello.default.localhost:8080/x?y=1"),
            Ok(Sink::Uri("http://hello.default.localhost:8080/x?y=1".into()))
        );
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        assert_eq!(
            parse("channel:c"),
            Err(
                "\"channel:c\" is not a sink: unknown prefix \"channel\"; a sink is ksvc:NAME, broker:NAME, \
                 NAME (a service) or an http:// or https:// URL"
                    .into()
            )
        );
        assert!(parse("").unwrap_err().starts_with("the sink is empty"));
        assert!(parse("ksvc:").unwrap_err().contains("\"\" is not a valid name"));
        assert!(parse("ksvc:Hello").unwrap_err().contains("\"Hello\" is not a valid name"));
        assert!(parse("ksvc:a:b").unwrap_err().contains("\"a:b\" is not a valid name"));
        assert!(parse("hello world").unwrap_err().contains("not a valid name"));
        assert!(parse("-x").unwrap_err().contains("not a valid name"));
        assert!(parse("http:/x").unwrap_err().contains("unknown prefix \"http\""));
        assert!(parse("ftp://example.com").unwrap_err().contains("unknown prefix \"ftp\""));
        assert!(parse("http://").unwrap_err().contains("not a URL"));
    }

    #[test]
    fn sinks_become_knative_destinations() {
        assert_eq!(
            Sink::Service("hello".into()).destination(),
            json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello"}})
        );
        assert_eq!(
            Sink::Broker("b".into()).destination(),
            json!({"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "b"}})
        );
        assert_eq!(Sink::Uri("http://x/".into()).destination(), json!({"uri": "http://x/"}));
    }

    #[test]
    fn a_patch_replaces_the_whole_destination() {
        let mut destination = json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "name": "old", "namespace": "default"}});
        json_patch::merge(&mut destination, &Sink::Uri("http://x/".into()).merge_patch());
        assert_eq!(destination, json!({"uri": "http://x/"}));
        json_patch::merge(&mut destination, &Sink::Broker("b".into()).merge_patch());
        assert_eq!(destination, Sink::Broker("b".into()).destination());
    }

    #[test]
    fn labels_read_back_as_sinks() {
        for sink in ["ksvc:hello", "broker:default", "http://example.com/x"] {
            let parsed: Sink = sink.parse().unwrap();
            assert_eq!(parsed.to_string(), sink);
            assert_eq!(label(Some(&parsed.destination())), sink);
        }
        let other = json!({"ref": {"apiVersion": "messaging.knative.dev/v1", "kind": "Channel", "name": "c"},
            "uri": "/path"});
        assert_eq!(label(Some(&other)), "channel:c (/path)");
        assert_eq!(label(None), "");
    }
}
