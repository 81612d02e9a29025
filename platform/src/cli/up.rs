//! `skiff up`: the flags of the whole platform in one process.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;

use anyhow::Context as _;

use crate::server::UpOptions;

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
    /// A file holding the bearer token the API requires (instead of SKIFF_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
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
                Some(token.to_string())
            }
            None => token.map(str::trim).filter(|t| !t.is_empty()).map(str::to_string),
        };
        Ok(UpOptions {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            api_listen: self.api_listen,
            domain: self.domain.clone(),
            token,
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
        }
    }

    #[test]
    fn the_token_file_wins_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  s3cret\n").unwrap();
        assert_eq!(args(Some(file)).options(Some("from-env")).unwrap().token.as_deref(), Some("s3cret"));
        assert_eq!(args(None).options(Some("from-env")).unwrap().token.as_deref(), Some("from-env"));
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
