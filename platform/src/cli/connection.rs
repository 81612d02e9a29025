//! How the CLI finds the API, the way kubectl does: `--kubeconfig`, else `KUBECONFIG`, else
//! the kubeconfig `skiff up` wrote in the default data directory (`$SKIFF_DATA_DIR` or
//! `./.skiff`); `--server`, `--token`, `--certificate-authority` and
//! `--insecure-skip-tls-verify` override what it says.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use serde_yaml::Value;

/// What the command line says about the connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionArgs {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub server: Option<String>,
    pub token: Option<String>,
    pub certificate_authority: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
}

/// Where the API is and how to talk to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub server: String,
    pub token: Option<String>,
    /// PEM of the CA that signs the API's certificate; `None` trusts the system's roots.
    pub ca_pem: Option<String>,
    pub insecure: bool,
}

/// The kubeconfig `skiff up` writes into its data directory.
fn default_kubeconfig() -> PathBuf {
    let data_dir =
        std::env::var_os("SKIFF_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("./.skiff"));
    data_dir.join(crate::security::KUBECONFIG_FILE)
}

impl ConnectionArgs {
    pub fn resolve(&self) -> anyhow::Result<Connection> {
        let explicit = self.kubeconfig.clone().or_else(|| {
            std::env::var_os("KUBECONFIG")
                .and_then(|list| std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()))
        });
        let mut connection = match (&explicit, &self.server) {
            (Some(path), _) => read_kubeconfig(path, self.context.as_deref())?,
            (None, Some(_)) => {
                let default = default_kubeconfig();
                match default.exists() {
                    true => read_kubeconfig(&default, self.context.as_deref())?,
                    false => Connection::default(),
                }
            }
            (None, None) => {
                let default = default_kubeconfig();
                if !default.exists() {
                    anyhow::bail!(
                        "no kubeconfig at {}: start the platform with `skiff up` (it writes one there), \
                         or say where the API is with --kubeconfig, KUBECONFIG or --server",
                        default.display()
                    );
                }
                read_kubeconfig(&default, self.context.as_deref())?
            }
        };
        if let Some(server) = &self.server {
            connection.server = server.clone();
        }
        if let Some(token) = self.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            connection.token = Some(token.to_string());
        }
        if let Some(ca) = &self.certificate_authority {
            connection.ca_pem = Some(
                std::fs::read_to_string(ca)
                    .with_context(|| format!("reading the certificate authority {}", ca.display()))?,
            );
        }
        connection.insecure |= self.insecure_skip_tls_verify;
        Ok(connection)
    }
}

/// The current (or named) context's server, CA and token.
fn read_kubeconfig(path: &Path, context: Option<&str>) -> anyhow::Result<Connection> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    let config: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("the kubeconfig {} is not YAML", path.display()))?;
    let bad = |what: String| anyhow::anyhow!("the kubeconfig {}: {what}", path.display());
    let context_name = match context {
        Some(name) => name.to_string(),
        None => config["current-context"]
            .as_str()
            .ok_or_else(|| bad("it has no current-context (pass --context)".into()))?
            .to_string(),
    };
    let named = |list: &str, name: &str, field: &str| -> anyhow::Result<Value> {
        config[list]
            .as_sequence()
            .and_then(|items| items.iter().find(|item| item["name"].as_str() == Some(name)))
            .map(|item| item[field].clone())
            .ok_or_else(|| bad(format!("no {list} entry named {name:?}")))
    };
    let context = named("contexts", &context_name, "context")?;
    let cluster_name = context["cluster"]
        .as_str()
        .ok_or_else(|| bad(format!("context {context_name:?} names no cluster")))?;
    let cluster = named("clusters", cluster_name, "cluster")?;
    let relative = |file: &str| -> PathBuf {
        let file = Path::new(file);
        match file.is_absolute() {
            true => file.to_path_buf(),
            false => path.parent().unwrap_or(Path::new(".")).join(file),
        }
    };
    let ca_pem =
        match (cluster["certificate-authority-data"].as_str(), cluster["certificate-authority"].as_str()) {
            (Some(data), _) => Some(
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(data.trim())
                        .map_err(|e| bad(format!("certificate-authority-data is not base64: {e}")))?,
                )
                .map_err(|_| bad("certificate-authority-data is not PEM".into()))?,
            ),
            (None, Some(file)) => Some(std::fs::read_to_string(relative(file)).with_context(|| {
                format!("reading the certificate authority {file} of {}", path.display())
            })?),
            (None, None) => None,
        };
    let mut token = None;
    if let Some(user_name) = context["user"].as_str() {
        let user = named("users", user_name, "user")?;
        token = match (user["token"].as_str(), user["tokenFile"].as_str()) {
            (Some(token), _) => Some(token.trim().to_string()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(relative(file))
                    .with_context(|| format!("reading the token file {file} of {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
    }
    Ok(Connection {
        server: cluster["server"]
            .as_str()
            .ok_or_else(|| bad(format!("cluster {cluster_name:?} has no server")))?
            .to_string(),
        token,
        ca_pem,
        insecure: cluster["insecure-skip-tls-verify"].as_bool().unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_is_read_as_kubectl_reads_it_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = crate::security::Credentials { token: "t0k".into(), token_source: "x".into() };
        let path = credentials.write_kubeconfig(dir.path(), "https://127.0.0.1:9", Some("PEM\n")).unwrap();
        let args = ConnectionArgs { kubeconfig: Some(path.clone()), ..Default::default() };
        let connection = args.resolve().unwrap();
        assert_eq!(
            connection,
            Connection {
                server: "https://127.0.0.1:9".into(),
                token: Some("t0k".into()),
                ca_pem: Some("PEM\n".into()),
                insecure: false
            }
        );
        let args = ConnectionArgs {
            kubeconfig: Some(path),
            server: Some("https://other:1".into()),
            token: Some("mine".into()),
            insecure_skip_tls_verify: true,
            ..Default::default()
        };
        let connection = args.resolve().unwrap();
        assert_eq!(
            (connection.server.as_str(), connection.token.as_deref()),
            ("https://other:1", Some("mine"))
        );
        assert!(connection.insecure);
        let missing = ConnectionArgs { kubeconfig: Some(dir.path().join("nope")), ..Default::default() };
        assert!(missing.resolve().unwrap_err().to_string().contains("nope"));
        let wrong = ConnectionArgs {
            kubeconfig: Some(dir.path().join("kubeconfig")),
            context: Some("other".into()),
            ..Default::default()
        };
        assert!(wrong.resolve().unwrap_err().to_string().contains("other"));
    }
}
