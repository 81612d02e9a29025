//! The API's bearer token (`{data-dir}/token`) and a kubeconfig (`{data-dir}/kubeconfig`)
//! that carries the server's URL, the CA to trust and the token, as kubectl reads it.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;

pub const TOKEN_FILE: &str = "token";
pub const KUBECONFIG_FILE: &str = "kubeconfig";

/// What a client needs to reach this API.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub token: String,
    /// Where the token came from, for the 401 message (`{data-dir}/token`, `--token-file`, ...).
    pub token_source: String,
}

impl Credentials {
    /// The token given (`--token-file`, `SKIFF_TOKEN`), else the data directory's, made on
    /// the first start: 32 random bytes as hex.
    pub fn load_or_generate(data_dir: &Path, given: Option<(String, String)>) -> anyhow::Result<Self> {
        if let Some((token, source)) = given {
            return Ok(Self { token, token_source: source });
        }
        let path = data_dir.join(TOKEN_FILE);
        let source = path.display().to_string();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let token = text.trim().to_string();
            if !token.is_empty() {
                make_owner_only(&path)?;
                return Ok(Self { token, token_source: source });
            }
        }
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)
            .context("reading random bytes for the API token")?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, format!("{token}\n").as_bytes())?;
        Ok(Self { token, token_source: source })
    }

    /// `{data-dir}/kubeconfig`: cluster, user and context `skiff`.
    pub fn write_kubeconfig(
        &self,
        data_dir: &Path,
        server: &str,
        ca_pem: Option<&str>,
    ) -> anyhow::Result<PathBuf> {
        let mut cluster = serde_json::json!({"server": server});
        if let Some(ca) = ca_pem {
            cluster["certificate-authority-data"] =
                base64::engine::general_purpose::STANDARD.encode(ca).into();
        }
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "skiff", "cluster": cluster}],
            "users": [{"name": "skiff", "user": {"token": self.token}}],
            "contexts": [{"name": "skiff", "context": {"cluster": "skiff", "user": "skiff", "namespace": "default"}}],
            "current-context": "skiff",
            "preferences": {},
        });
        let path = data_dir.join(KUBECONFIG_FILE);
        let text = serde_yaml::to_string(&config).context("writing the kubeconfig")?;
        write_private(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// Write `bytes` to `path` readable by its owner only (0600), replacing it whole.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

fn make_owner_only(path: &Path) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = Credentials::load_or_generate(dir.path(), None).unwrap();
        assert_eq!(first.token.len(), 64);
        let again = Credentials::load_or_generate(dir.path(), None).unwrap();
        assert_eq!(first.token, again.token);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let given =
            Credentials::load_or_generate(dir.path(), Some(("t".into(), "--token-file x".into()))).unwrap();
        assert_eq!(given.token, "t");
        let path = first.write_kubeconfig(dir.path(), "https://127.0.0.1:8081", Some("PEM")).unwrap();
        let config: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(config["current-context"].as_str(), Some("skiff"));
        assert_eq!(config["users"][0]["user"]["token"].as_str(), Some(first.token.as_str()));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
