//! The API's TLS: a certificate authority kept in `{data-dir}/pki` and a serving certificate
//! it signs afresh on every start (for `localhost`, `127.0.0.1`, `::1`, the listen address
//! and every `--api-host`), or a certificate and key the user gives.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};

use super::credentials::write_private;

/// The CA's subject: the same on every start, so a kept CA key signs for the kept CA cert.
const CA_NAME: &str = "skiff-ca";
/// The CA lives ten years; a serving certificate one, and is renewed on every start.
const CA_DAYS: i64 = 3650;
const SERVING_DAYS: i64 = 365;

/// Where the user's own certificate and key are (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the API listener serves, and the CA a client should trust (PEM; `None` when the
/// user's certificate is to be checked against the system's roots).
pub struct ServingTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub ca_pem: Option<String>,
}

impl ServingTls {
    /// The user's certificate when given, else one signed by the data directory's CA.
    pub fn load_or_generate(
        pki_dir: &Path,
        user: Option<&TlsFiles>,
        names: &[String],
        addresses: &[IpAddr],
    ) -> anyhow::Result<Self> {
        skiff_runtime_oci::install_crypto_provider();
        let (chain_pem, key_pem, ca_pem) = match user {
            Some(files) => {
                let chain = std::fs::read_to_string(&files.cert)
                    .with_context(|| format!("reading the TLS certificate {}", files.cert.display()))?;
                let key = std::fs::read_to_string(&files.key)
                    .with_context(|| format!("reading the TLS key {}", files.key.display()))?;
                (chain, key, None)
            }
            None => {
                std::fs::create_dir_all(pki_dir)
                    .with_context(|| format!("creating {}", pki_dir.display()))?;
                let ca = CertificateAuthority::load_or_create(pki_dir)?;
                let (cert, key) = ca.sign_serving(names, addresses)?;
                write_private(&pki_dir.join("server.crt"), cert.as_bytes())?;
                write_private(&pki_dir.join("server.key"), key.as_bytes())?;
                (cert, key, Some(ca.cert_pem))
            }
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .context("the TLS certificate is not PEM")?;
        anyhow::ensure!(!chain.is_empty(), "the TLS certificate file holds no certificate");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .context("the TLS key is not a PEM private key")?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the TLS certificate and key do not go together")?;
        // HTTP/1.1 only: kubectl and every other client speak it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_pem })
    }
}

struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(CA_DAYS);
    Ok(params)
}

impl CertificateAuthority {
    fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path)
                .with_context(|| format!("reading the API's CA {}", cert_path.display()))?;
            let key_pem = std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading the API's CA key {}", key_path.display()))?;
            let key = KeyPair::from_pem(&key_pem)
                .with_context(|| format!("{} is not a private key", key_path.display()))?;
            return Ok(Self { cert_pem, issuer: Issuer::new(ca_params()?, key) });
        }
        let key = KeyPair::generate().context("generating the API's CA key")?;
        let params = ca_params()?;
        let cert = params.self_signed(&key).context("signing the API's CA")?;
        let cert_pem = cert.pem();
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_private(&cert_path, cert_pem.as_bytes())?;
        Ok(Self { cert_pem, issuer: Issuer::new(params, key) })
    }

    /// A serving certificate and its key (PEM), for these names and addresses.
    fn sign_serving(&self, names: &[String], addresses: &[IpAddr]) -> anyhow::Result<(String, String)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "skiff-api");
        let mut sans: Vec<SanType> = Vec::new();
        for name in names {
            let san = SanType::DnsName(
                name.as_str().try_into().with_context(|| format!("{name:?} is not a DNS name"))?,
            );
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        for address in addresses {
            let san = SanType::IpAddress(*address);
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(SERVING_DAYS);
        let key = KeyPair::generate().context("generating the API's serving key")?;
        let cert = params.signed_by(&key, &self.issuer).context("signing the API's serving certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_ca_signs_again_and_the_user_may_bring_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string(), "api.example".to_string()];
        let addresses: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let first = ServingTls::load_or_generate(dir.path(), None, &names, &addresses).unwrap();
        let again = ServingTls::load_or_generate(dir.path(), None, &names, &addresses).unwrap();
        assert_eq!(first.ca_pem, again.ca_pem, "the CA is kept across starts");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("ca.key")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let files = TlsFiles { cert: dir.path().join("server.crt"), key: dir.path().join("server.key") };
        let user = ServingTls::load_or_generate(dir.path(), Some(&files), &[], &[]).unwrap();
        assert!(user.ca_pem.is_none());
        let bad = TlsFiles { cert: dir.path().join("server.crt"), key: dir.path().join("ca.key") };
        assert!(ServingTls::load_or_generate(dir.path(), Some(&bad), &[], &[]).is_err());
    }
}
