//! What a runtime is told about a revision.

use std::time::Duration;

use serde_json::Value;

use super::{RuntimeError, parse_quantity};
use crate::resources::meta;
use crate::resources::serving::{DEFAULT_TIMEOUT_SECONDS, LABEL_SERVICE};

/// The annotation listing the hosts a Wasm revision may call, in the syntax of
/// `skiff_runtime_wasm::AllowList` (comma separated), e.g. `https://api.example.com, *.example.org`.
pub const ALLOWED_OUTBOUND_HOSTS: &str = "skiff.dev/allowed-outbound-hosts";

/// A revision, as a runtime needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionSpec {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The owning service's name, if any.
    pub service: Option<String>,
    pub image: String,
    pub runtime_class: Option<String>,
    pub env: Vec<(String, String)>,
    /// `resources.limits.memory` in bytes.
    pub memory_limit: Option<u64>,
    pub timeout: Duration,
    /// `containerConcurrency`: 0 is unlimited.
    pub container_concurrency: u32,
    /// From the annotation [`ALLOWED_OUTBOUND_HOSTS`].
    pub allowed_outbound_hosts: Vec<String>,
    /// The image pinned by digest at the first start (`status.containerStatuses[0].imageDigest`).
    pub pinned_image: Option<String>,
    /// The sha256 of the component's bytes, once known (`status.componentDigest`): the key of
    /// the blob store and the compile cache, so a restart needs no registry.
    pub component_digest: Option<String>,
    /// The container's `command` (replaces the image's ENTRYPOINT) and `args` (its CMD).
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// `ports[0].containerPort`: where the container listens, 8080 by default, as Knative.
    pub port: u16,
    /// `resources.limits.cpu` in millicores.
    pub cpu_limit_millis: Option<u64>,
    /// `readinessProbe`, when it names an HTTP GET or a TCP socket.
    pub readiness: Option<Probe>,
}

/// How a container's readiness is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `httpGet`: a GET of `path` answered 2xx or 3xx.
    Http { path: String, port: Option<u16> },
    /// `tcpSocket`: a TCP connection accepted.
    Tcp { port: Option<u16> },
}

/// The default container port, as Knative's.
pub const DEFAULT_PORT: u16 = 8080;

/// `500m`, `1`, `0.25`: a CPU quantity in millicores.
fn parse_cpu(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let millis = match raw.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok()?,
        None => raw.parse::<f64>().ok()? * 1000.0,
    };
    (millis.is_finite() && millis >= 1.0).then_some(millis.round() as u64)
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| items.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect())
}

fn probe(container: &Value) -> Option<Probe> {
    let probe = container.get("readinessProbe")?;
    let port = |v: &Value| v["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    if let Some(get) = probe.get("httpGet") {
        let path = get["path"].as_str().unwrap_or("/").to_string();
        return Some(Probe::Http { path, port: port(get) });
    }
    probe.get("tcpSocket").map(|tcp| Probe::Tcp { port: port(tcp) })
}

impl RevisionSpec {
    pub fn from_revision(revision: &Value) -> Result<Self, RuntimeError> {
        let container = revision.pointer("/spec/containers/0").unwrap_or(&Value::Null);
        let mut env = Vec::new();
        for var in container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().unwrap_or_default().to_string();
            match var.get("value") {
                Some(value) => env.push((name, value.as_str().unwrap_or_default().to_string())),
                None if var.get("valueFrom").is_some() => {
                    return Err(RuntimeError::new(
                        "UnsupportedEnv",
                        format!("env {name}: valueFrom is not supported, give a value"),
                    ));
                }
                None => env.push((name, String::new())),
            }
        }
        let memory_limit = match container.pointer("/resources/limits/memory") {
            None | Some(Value::Null) => None,
            Some(raw) => {
                let text = raw.as_str().map(str::to_string).unwrap_or_else(|| raw.to_string());
                Some(parse_quantity(&text).ok_or_else(|| {
                    RuntimeError::new(
                        "InvalidResources",
                        format!("resources.limits.memory {text:?} is not a quantity"),
                    )
                })?)
            }
        };
        let allowed_outbound_hosts = meta::annotation(revision, ALLOWED_OUTBOUND_HOSTS)
            .map(|list| {
                list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
            })
            .unwrap_or_default();
        let cpu_limit_millis = match container.pointer("/resources/limits/cpu") {
            None | Some(Value::Null) => None,
            Some(raw) => {
                let text = raw.as_str().map(str::to_string).unwrap_or_else(|| raw.to_string());
                Some(parse_cpu(&text).ok_or_else(|| {
                    RuntimeError::new(
                        "InvalidResources",
                        format!("resources.limits.cpu {text:?} is not a quantity"),
                    )
                })?)
            }
        };
        let port = container
            .pointer("/ports/0/containerPort")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_PORT);
        Ok(Self {
            command: strings(&container["command"]),
            args: strings(&container["args"]),
            working_dir: container["workingDir"].as_str().map(str::to_string),
            port,
            cpu_limit_millis,
            readiness: probe(container),
            namespace: meta::namespace(revision).to_string(),
            name: meta::name(revision).to_string(),
            uid: meta::uid(revision).to_string(),
            service: meta::label(revision, LABEL_SERVICE).map(str::to_string),
            image: container["image"].as_str().unwrap_or_default().to_string(),
            runtime_class: revision
                .pointer("/spec/runtimeClassName")
                .and_then(Value::as_str)
                .map(str::to_string),
            env,
            memory_limit,
            timeout: Duration::from_secs(
                revision
                    .pointer("/spec/timeoutSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(DEFAULT_TIMEOUT_SECONDS as u64),
            ),
            container_concurrency: revision
                .pointer("/spec/containerConcurrency")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(u32::MAX as u64) as u32,
            allowed_outbound_hosts,
            pinned_image: revision
                .pointer("/status/containerStatuses/0/imageDigest")
                .and_then(Value::as_str)
                .map(str::to_string),
            component_digest: revision
                .pointer("/status/componentDigest")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_revision_reads_into_a_spec() {
        let revision = json!({
            "metadata": {"name": "hello-00001", "namespace": "default", "uid": "u",
                "labels": {"serving.knative.dev/service": "hello"},
                "annotations": {"skiff.dev/allowed-outbound-hosts": "https://api.example.com, *.example.org"}},
            "spec": {"runtimeClassName": "wasm", "timeoutSeconds": 5, "containerConcurrency": 4,
                "containers": [{"image": "skiff.local/components/hello@sha256:00",
                    "env": [{"name": "TARGET", "value": "Skiff"}],
                    "resources": {"limits": {"memory": "64Mi"}}}]},
        });
        let spec = RevisionSpec::from_revision(&revision).unwrap();
        assert_eq!(spec.service.as_deref(), Some("hello"));
        assert_eq!(spec.env, vec![("TARGET".to_string(), "Skiff".to_string())]);
        assert_eq!(spec.memory_limit, Some(64 << 20));
        assert_eq!(spec.timeout, Duration::from_secs(5));
        assert_eq!(spec.container_concurrency, 4);
        assert_eq!(spec.allowed_outbound_hosts, vec!["https://api.example.com", "*.example.org"]);
        assert_eq!(spec.runtime_class.as_deref(), Some("wasm"));
    }

    #[test]
    fn container_fields_read_as_knative_means_them() {
        let revision = json!({"spec": {"containers": [{
            "image": "registry.local/app:v1",
            "command": ["/server"], "args": ["--verbose"], "workingDir": "/srv",
            "ports": [{"containerPort": 9000}],
            "resources": {"limits": {"cpu": "500m"}},
            "readinessProbe": {"httpGet": {"path": "/healthz"}},
        }]}});
        let spec = RevisionSpec::from_revision(&revision).unwrap();
        assert_eq!(spec.command, Some(vec!["/server".to_string()]));
        assert_eq!(spec.args, Some(vec!["--verbose".to_string()]));
        assert_eq!(spec.working_dir.as_deref(), Some("/srv"));
        assert_eq!(spec.port, 9000);
        assert_eq!(spec.cpu_limit_millis, Some(500));
        assert_eq!(spec.readiness, Some(Probe::Http { path: "/healthz".into(), port: None }));
        let plain = RevisionSpec::from_revision(&json!({"spec": {"containers": [{"image": "x"}]}})).unwrap();
        assert_eq!((plain.port, plain.command, plain.readiness), (DEFAULT_PORT, None, None));
        assert_eq!(parse_cpu("2"), Some(2000));
        assert_eq!(parse_cpu("0.25"), Some(250));
        assert_eq!(parse_cpu("lots"), None);
    }

    #[test]
    fn bad_memory_is_a_reason() {
        let revision =
            json!({"spec": {"containers": [{"image": "x", "resources": {"limits": {"memory": "lots"}}}]}});
        assert_eq!(RevisionSpec::from_revision(&revision).unwrap_err().reason, "InvalidResources");
    }
}
