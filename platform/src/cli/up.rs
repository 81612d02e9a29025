//! `skiff up`: the flags of the whole platform in one process.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::api::InflightLimits;
use crate::autoscaler::{self, AutoscalerConfig};
use crate::dataplane::ActivatorLimits;
use crate::security::TlsFiles;
use crate::server::UpOptions;
use skiff_runtime_oci::container::RuntimeKind;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the state lives.
    #[arg(long, value_name = "DIR", env = "SKIFF_DATA_DIR", default_value = "./.skiff")]
    pub data_dir: PathBuf,
    /// The data plane listener: services answer here.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = parse_addr)]
    pub listen: SocketAddr,
    /// The management API listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081", value_parser = parse_addr)]
    pub api_listen: SocketAddr,
    /// The domain services answer under: http://{name}.{namespace}.{domain}.
    #[arg(long, value_name = "DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// A file holding the bearer token the API requires (instead of SKIFF_TOKEN). Without
    /// either, the API requires the token in {data-dir}/token, made on the first start.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The API's TLS certificate (PEM, the chain); without it, skiff signs one with a CA of
    /// its own in {data-dir}/pki and puts that CA in {data-dir}/kubeconfig.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Another name the API answers to (repeatable): it goes in the generated certificate,
    /// and requests whose Host names anything but the listen address, localhost, loopback
    /// or one of these are refused.
    #[arg(long = "api-host", value_name = "NAME")]
    pub api_hosts: Vec<String>,
    /// API requests served at once (watches and followed logs aside); more get 429.
    #[arg(long, value_name = "N", default_value_t = InflightLimits::default().requests)]
    pub max_requests_inflight: usize,
    /// Watches (and followed logs) open at once on the API; more get 429.
    #[arg(long, value_name = "N", default_value_t = InflightLimits::default().watches)]
    pub max_watches: usize,
    /// Autoscaler defaults as Knative's `config-autoscaler` ConfigMap: a YAML file holding
    /// the ConfigMap or just its `data` (`stable-window: 60s`, `enable-scale-to-zero: "true"`, ...).
    #[arg(long, value_name = "FILE")]
    pub autoscaler_config: Option<PathBuf>,
    /// One autoscaler default, as a key of `config-autoscaler` (repeatable; wins over the file):
    /// `--autoscaler stable-window=6s --autoscaler scale-to-zero-grace-period=2s`.
    #[arg(long = "autoscaler", value_name = "KEY=VALUE")]
    pub autoscaler: Vec<String>,
    /// Requests the activator holds per revision while it has no ready capacity; more get 503.
    #[arg(long, value_name = "N", default_value_t = ActivatorLimits::default().queue_depth)]
    pub activator_queue_depth: usize,
    /// The longest the activator holds a request waiting for a pod (never longer than the
    /// revision's timeoutSeconds): `60s`, `500ms`.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub activator_timeout: Duration,
    /// The OCI runtime containers run under: runc or crun (Debian's packages).
    #[arg(long, value_name = "RUNTIME", default_value = "runc", value_parser = parse_oci_runtime)]
    pub oci_runtime: RuntimeKind,
    /// How long a broker keeps an event, delivered or not (Kafka-style retention): `24h`, `168h`.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub event_retention: Duration,
    /// The most event bytes a broker keeps; the oldest go first beyond it.
    #[arg(long, value_name = "BYTES", default_value_t = skiff_eventing::log::Retention::default().max_bytes)]
    pub event_retention_bytes: u64,
    /// Where to export traces over OTLP (instead of OTEL_EXPORTER_OTLP_ENDPOINT):
    /// `http://127.0.0.1:4318` (http/protobuf) or `http://127.0.0.1:4317` (grpc). Without
    /// either, nothing is exported and tracing costs nothing.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The OTLP protocol, `grpc` or `http/protobuf` (instead of OTEL_EXPORTER_OTLP_PROTOCOL).
    #[arg(long, value_name = "PROTOCOL", value_parser = parse_protocol)]
    pub otlp_protocol: Option<skiff_tracing::Protocol>,
    /// The fraction of new traces to sample, 0 to 1, following the caller's decision when a
    /// request carries one (instead of OTEL_TRACES_SAMPLER/OTEL_TRACES_SAMPLER_ARG).
    #[arg(long, value_name = "RATIO", value_parser = parse_ratio)]
    pub trace_sample_ratio: Option<f64>,
    /// The service name the platform's own spans carry (instead of OTEL_SERVICE_NAME;
    /// default `skiff`).
    #[arg(long, value_name = "NAME")]
    pub service_name: Option<String>,
}

fn parse_protocol(raw: &str) -> Result<skiff_tracing::Protocol, String> {
    raw.parse().map_err(|_| format!("{raw:?}: expected grpc or http/protobuf"))
}

fn parse_ratio(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{raw:?}: expected a number from 0 to 1")),
    }
}

fn parse_oci_runtime(raw: &str) -> Result<RuntimeKind, String> {
    raw.parse::<RuntimeKind>().map_err(|e| e.to_string())
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    autoscaler::parse_duration(raw)
}

/// The autoscaler defaults from `--autoscaler-config` and `--autoscaler`.
fn autoscaler_config(file: Option<&Path>, flags: &[String]) -> anyhow::Result<AutoscalerConfig> {
    let mut config = AutoscalerConfig::default();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the autoscaler config {}", file.display()))?;
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", file.display()))?;
        let data = doc.get("data").unwrap_or(&doc);
        let Some(map) = data.as_mapping() else {
            anyhow::bail!("{}: expected a map of config-autoscaler keys (or a ConfigMap)", file.display());
        };
        for (key, value) in map {
            let key = key.as_str().unwrap_or_default();
            let value = match value {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                serde_yaml::Value::Number(n) => n.to_string(),
                other => anyhow::bail!("{}: {key}: {other:?} is not a scalar", file.display()),
            };
            config.set(key, &value).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        }
    }
    for flag in flags {
        let Some((key, value)) = flag.split_once('=') else {
            anyhow::bail!("--autoscaler {flag:?}: expected KEY=VALUE, e.g. stable-window=60s");
        };
        config.set(key.trim(), value.trim()).map_err(|e| anyhow::anyhow!("--autoscaler {flag}: {e}"))?;
    }
    config.validate().map_err(|e| anyhow::anyhow!("autoscaler config: {e}"))?;
    Ok(config)
}

/// `127.0.0.1:8080`, `[::1]:8080` or `localhost:8080`.
fn parse_addr(raw: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = raw.parse() {
        return Ok(addr);
    }
    raw.to_socket_addrs()
        .map_err(|err| format!("{raw:?} is not HOST:PORT: {err}"))?
        .next()
        .ok_or_else(|| format!("{raw:?} resolves to no address"))
}

impl UpArgs {
    /// The server's options; the token comes from `--token-file`, else from `--token`/SKIFF_TOKEN.
    pub fn options(&self, token: Option<&str>) -> anyhow::Result<UpOptions> {
        let token = match &self.token_file {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the token file {}", file.display()))?;
                let token = text.trim();
                if token.is_empty() {
                    anyhow::bail!("the token file {} is empty", file.display());
                }
                Some((token.to_string(), file.display().to_string()))
            }
            None => token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| (t.to_string(), "the SKIFF_TOKEN (or --token) given to skiff up".to_string())),
        };
        for host in &self.api_hosts {
            if host.is_empty() || host.contains(['/', ':', ' ']) {
                anyhow::bail!("--api-host {host:?}: expected a DNS name such as skiff.example.com");
            }
        }
        if self.max_requests_inflight == 0 || self.max_watches == 0 {
            anyhow::bail!("--max-requests-inflight and --max-watches must be at least 1");
        }
        if self.activator_queue_depth == 0 {
            anyhow::bail!("--activator-queue-depth must be at least 1");
        }
        Ok(UpOptions {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            api_listen: self.api_listen,
            domain: self.domain.clone(),
            token,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
                _ => None,
            },
            api_hosts: self.api_hosts.clone(),
            api_inflight: InflightLimits { requests: self.max_requests_inflight, watches: self.max_watches },
            autoscaler: autoscaler_config(self.autoscaler_config.as_deref(), &self.autoscaler)?,
            activator: ActivatorLimits {
                queue_depth: self.activator_queue_depth,
                timeout: self.activator_timeout,
            },
            oci_runtime: self.oci_runtime,
            event_retention: skiff_eventing::log::Retention {
                max_age: self.event_retention,
                max_bytes: self.event_retention_bytes,
            },
            telemetry: skiff_tracing::TelemetryOptions {
                service_name: self.service_name.clone(),
                endpoint: self.otlp_endpoint.clone(),
                protocol: self.otlp_protocol,
                sampler_ratio: self.trace_sample_ratio,
                log_filter: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(token_file: Option<PathBuf>) -> UpArgs {
        UpArgs {
            data_dir: "./.skiff".into(),
            listen: "127.0.0.1:8080".parse().unwrap(),
            api_listen: "127.0.0.1:8081".parse().unwrap(),
            domain: "localhost".into(),
            token_file,
            tls_cert: None,
            tls_key: None,
            api_hosts: Vec::new(),
            max_requests_inflight: 600,
            max_watches: 1000,
            autoscaler_config: None,
            autoscaler: Vec::new(),
            activator_queue_depth: 10,
            activator_timeout: Duration::from_secs(60),
            oci_runtime: RuntimeKind::Runc,
            event_retention: Duration::from_secs(24 * 3600),
            event_retention_bytes: 1 << 30,
            otlp_endpoint: None,
            otlp_protocol: None,
            trace_sample_ratio: None,
            service_name: None,
        }
    }

    #[test]
    fn autoscaler_defaults_come_from_a_configmap_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config-autoscaler.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  stable-window: 30s\n  enable-scale-to-zero: \"false\"\n",
        )
        .unwrap();
        let flags = vec!["stable-window=6s".to_string()];
        let config = autoscaler_config(Some(&file), &flags).unwrap();
        assert_eq!(config.stable_window, Duration::from_secs(6));
        assert!(!config.enable_scale_to_zero);
        let err = autoscaler_config(None, &["stable-window".to_string()]).unwrap_err();
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
        assert!(autoscaler_config(None, &["no-such-key=1".to_string()]).is_err());
    }

    #[test]
    fn the_token_file_wins_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  s3cret\n").unwrap();
        let token = |options: UpOptions| options.token.map(|(token, _)| token);
        assert_eq!(token(args(Some(file)).options(Some("from-env")).unwrap()).as_deref(), Some("s3cret"));
        assert_eq!(token(args(None).options(Some("from-env")).unwrap()).as_deref(), Some("from-env"));
        assert_eq!(args(None).options(Some(" ")).unwrap().token, None);
        let missing = dir.path().join("missing");
        assert!(args(Some(missing)).options(None).is_err());
    }

    #[test]
    fn addresses_may_name_a_host() {
        assert_eq!(parse_addr("0.0.0.0:9000").unwrap(), "0.0.0.0:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(parse_addr("localhost:9000").unwrap().port(), 9000);
        assert!(parse_addr("nonsense").is_err());
    }
}
