//! Registry credentials: none, one username/password, or a docker-style `config.json` with
//! an entry per registry (what `docker login` writes).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::error::OciError;

/// How to authenticate to registries.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials: public or unauthenticated registries only.
    Anonymous,
    /// The same username and password for every registry that asks.
    Basic {
        /// The username.
        username: String,
        /// The password (or access token used as a password).
        password: String,
    },
    /// A docker-style `config.json`, read when a [`RegistryClient`](crate::RegistryClient)
    /// first talks to a registry: `auths.<registry>` with `auth`
    /// (base64 `user:password`), `username`/`password`, `registrytoken` (a bearer token) or
    /// `identitytoken` (sent as a bearer token). Credential helpers (`credsStore`,
    /// `credHelpers`) are not run.
    DockerConfig(PathBuf),
}

impl Credentials {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, whichever exists first;
    /// [`Credentials::Anonymous`] when neither does.
    pub fn from_env() -> Self {
        let candidates = [
            std::env::var_os("DOCKER_CONFIG").map(|dir| PathBuf::from(dir).join("config.json")),
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json")),
        ];
        candidates.into_iter().flatten().find(|p| p.is_file()).map_or(Self::Anonymous, Self::DockerConfig)
    }

    /// The authentication to use with `registry` (an address such as `localhost:5000`).
    pub(crate) async fn auth_for(&self, registry: &str) -> Result<RegistryAuth, OciError> {
        match self {
            Self::Anonymous => Ok(RegistryAuth::Anonymous),
            Self::Basic { username, password } => Ok(RegistryAuth::Basic(username.clone(), password.clone())),
            Self::DockerConfig(path) => {
                let error = |message: String| OciError::Credentials { path: path.clone(), message };
                let text = match tokio::fs::read_to_string(path).await {
                    Ok(text) => text,
                    // A config removed after start-up means no credentials, as for docker.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
                    Err(e) => return Err(error(e.to_string().to_lowercase())),
                };
                let config = DockerConfig::parse(&text).map_err(error)?;
                config.auth_for(registry, path).map_err(error)
            }
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<redacted>").finish()
            }
            Self::DockerConfig(path) => f.debug_tuple("DockerConfig").field(path).finish(),
        }
    }
}

/// The parts of a docker `config.json` that hold credentials.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl DockerConfig {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid json: {e}"))
    }

    /// The entry for `registry`: keys may carry a scheme and a path
    /// (`https://index.docker.io/v1/`), Docker Hub goes by several names.
    pub(crate) fn auth_for(&self, registry: &str, path: &Path) -> Result<RegistryAuth, String> {
        let wanted = canonical_host(registry);
        let entry = self.auths.iter().find(|(key, _)| canonical_host(key) == wanted);
        let Some((key, entry)) = entry else {
            if self.cred_helpers.contains_key(registry) || self.creds_store.is_some() {
                tracing::debug!(
                    registry,
                    config = %path.display(),
                    "docker credential helpers are not supported; going anonymous"
                );
            }
            return Ok(RegistryAuth::Anonymous);
        };
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(auth.trim()))
                .map_err(|e| format!("auths.{key:?}.auth is not base64: {e}"))?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| format!("auths.{key:?}.auth is not utf-8 text"))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| format!("auths.{key:?}.auth does not decode to \"user:password\""))?;
            return Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
        }
        if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
            return Ok(RegistryAuth::Basic(user.clone(), password.clone()));
        }
        if let Some(token) =
            entry.registrytoken.as_ref().or(entry.identitytoken.as_ref()).filter(|t| !t.is_empty())
        {
            return Ok(RegistryAuth::Bearer(token.clone()));
        }
        Ok(RegistryAuth::Anonymous)
    }
}

/// `https://index.docker.io/v1/` -> `docker.io`; `http://localhost:5000` -> `localhost:5000`.
fn canonical_host(key: &str) -> String {
    let key = key.trim();
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or_default().to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".to_owned(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(config: &str, registry: &str) -> Result<RegistryAuth, String> {
        DockerConfig::parse(config)?.auth_for(registry, Path::new("config.json"))
    }

    fn basic(user: &str, password: &str) -> RegistryAuth {
        RegistryAuth::Basic(user.into(), password.into())
    }

    #[test]
    fn auth_field_is_base64_user_colon_password() {
        // "alice:s3cr:et" — the password may hold colons.
        let config = r#"{"auths":{"localhost:5000":{"auth":"YWxpY2U6czNjcjpldA=="}}}"#;
        assert_eq!(auth(config, "localhost:5000").unwrap(), basic("alice", "s3cr:et"));
        assert_eq!(auth(config, "localhost:5001").unwrap(), RegistryAuth::Anonymous);
        // Unpadded base64 is accepted too.
        let config = r#"{"auths":{"localhost:5000":{"auth":"YWxpY2U6czNjcjpldA"}}}"#;
        assert_eq!(auth(config, "localhost:5000").unwrap(), basic("alice", "s3cr:et"));
    }

    #[test]
    fn username_and_password_fields() {
        let config = r#"{"auths":{"https://ghcr.io":{"username":"bob","password":"pw"}}}"#;
        assert_eq!(auth(config, "ghcr.io").unwrap(), basic("bob", "pw"));
        let config = r#"{"auths":{"ghcr.io":{"auth":"","username":"bob","password":"pw"}}}"#;
        assert_eq!(auth(config, "ghcr.io").unwrap(), basic("bob", "pw"));
    }

    #[test]
    fn docker_hub_has_many_names() {
        let config = r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#;
        assert_eq!(auth(config, "index.docker.io").unwrap(), basic("u", "p"));
        assert_eq!(auth(config, "docker.io").unwrap(), basic("u", "p"));
        assert_eq!(auth(config, "quay.io").unwrap(), RegistryAuth::Anonymous);
    }

    #[test]
    fn tokens_become_bearer() {
        let config =
            r#"{"auths":{"example.com":{"identitytoken":"tok"},"other.com":{"registrytoken":"rt"}}}"#;
        assert_eq!(auth(config, "example.com").unwrap(), RegistryAuth::Bearer("tok".into()));
        assert_eq!(auth(config, "other.com").unwrap(), RegistryAuth::Bearer("rt".into()));
    }

    #[test]
    fn helpers_and_empty_configs_are_anonymous() {
        assert_eq!(auth("{}", "ghcr.io").unwrap(), RegistryAuth::Anonymous);
        let config = r#"{"auths":{"ghcr.io":{}},"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#;
        assert_eq!(auth(config, "ghcr.io").unwrap(), RegistryAuth::Anonymous);
        assert_eq!(auth(config, "gcr.io").unwrap(), RegistryAuth::Anonymous);
    }

    #[test]
    fn malformed_configs_say_what_is_wrong() {
        assert!(auth("not json", "x").unwrap_err().contains("invalid json"));
        let err = auth(r#"{"auths":{"x.io":{"auth":"***"}}}"#, "x.io").unwrap_err();
        assert!(err.contains("not base64"), "{err}");
        let err = auth(r#"{"auths":{"x.io":{"auth":"bm9jb2xvbg=="}}}"#, "x.io").unwrap_err();
        assert!(err.contains("user:password"), "{err}");
    }

    #[test]
    fn debug_redacts_the_password() {
        let creds = Credentials::Basic { username: "alice".into(), password: "hunter2".into() };
        let shown = format!("{creds:?}");
        assert!(shown.contains("alice") && !shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn docker_config_file_is_read_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let creds = Credentials::DockerConfig(path.clone());
        assert_eq!(creds.auth_for("localhost:5000").await.unwrap(), RegistryAuth::Anonymous);
        std::fs::write(&path, r#"{"auths":{"localhost:5000":{"auth":"dTpw"}}}"#).unwrap();
        assert_eq!(creds.auth_for("localhost:5000").await.unwrap(), basic("u", "p"));
        std::fs::write(&path, "{").unwrap();
        let err = creds.auth_for("localhost:5000").await.unwrap_err();
        assert!(matches!(&err, OciError::Credentials { path: p, .. } if *p == path), "{err:?}");
    }
}
