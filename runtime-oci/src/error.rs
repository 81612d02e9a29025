//! What can go wrong talking to a registry, in terms a revision's status can report: each
//! variant names the reference or registry and carries the registry's own message.

use std::error::Error as _;
use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};

/// An error resolving, pulling or pushing an image.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference does not parse as `registry/repository[:tag][@digest]`.
    #[error("invalid image reference {reference:?}: {message}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it is invalid.
        message: String,
    },
    /// The registry has no such repository, tag or digest.
    #[error("{reference} not found: {message}")]
    NotFound {
        /// The reference as given.
        reference: String,
        /// The registry's message (for example `manifest unknown`).
        message: String,
    },
    /// The registry refused the credentials, or wanted some and got none.
    #[error("registry {registry} refused access: {message}")]
    Unauthorized {
        /// The registry address.
        registry: String,
        /// The registry's message (for example `authentication required`).
        message: String,
    },
    /// The registry could not be reached (connection refused, DNS, TLS, timeout).
    #[error("registry {registry} is unreachable: {message}")]
    Unreachable {
        /// The registry address.
        registry: String,
        /// What the connection attempt said.
        message: String,
    },
    /// The image is not a Wasm artifact: neither its config nor its layers say Wasm.
    #[error("{reference} is not a wasm component (media types: {})", media_types.join(", "))]
    NotWasm {
        /// The reference as given.
        reference: String,
        /// The config and layer media types the image has.
        media_types: Vec<String>,
    },
    /// The image says Wasm, or the bytes to push were meant to be Wasm, but they are not a
    /// usable Wasm binary.
    #[error("{reference} holds no usable wasm: {message}")]
    InvalidWasm {
        /// The reference as given.
        reference: String,
        /// What is wrong with the bytes.
        message: String,
    },
    /// A docker-style `config.json` could not be read or parsed.
    #[error("cannot read registry credentials from {}: {message}", path.display())]
    Credentials {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The registry answered something this client does not understand or accept (digest
    /// mismatch, malformed manifest, unexpected status).
    #[error("registry protocol error: {0}")]
    Protocol(String),
}

/// Where an `oci-client` error happened: the reference as given and the registry address.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) reference: &'a str,
    pub(crate) registry: &'a str,
}

impl Context<'_> {
    pub(crate) fn not_found(&self, message: impl Into<String>) -> OciError {
        OciError::NotFound { reference: self.reference.to_owned(), message: message.into() }
    }

    pub(crate) fn unauthorized(&self, message: impl Into<String>) -> OciError {
        OciError::Unauthorized { registry: self.registry.to_owned(), message: message.into() }
    }

    pub(crate) fn protocol(&self, message: impl std::fmt::Display) -> OciError {
        OciError::Protocol(format!("{}: {message}", self.reference))
    }

    /// Maps an `oci-client` error onto [`OciError`], keeping the registry's message.
    pub(crate) fn map(&self, err: OciDistributionError) -> OciError {
        match err {
            OciDistributionError::RegistryError { envelope, .. } => self.map_envelope(&envelope, None),
            OciDistributionError::ServerError { code, message, .. } => self.map_status(code, &message),
            OciDistributionError::UnauthorizedError { .. } => self.unauthorized("authentication required"),
            OciDistributionError::AuthenticationFailure(message) => {
                self.unauthorized(registry_message(&message).unwrap_or(message))
            }
            OciDistributionError::ImageManifestNotFoundError(message) => self.not_found(message),
            OciDistributionError::RequestError(e) => self.map_reqwest(&e),
            OciDistributionError::DigestError(e) => self.protocol(format!("digest verification failed: {e}")),
            other => self.protocol(lower_first(&other.to_string())),
        }
    }

    fn map_status(&self, code: u16, body: &str) -> OciError {
        if let Ok(envelope) = serde_json::from_str::<OciEnvelope>(body) {
            return self.map_envelope(&envelope, Some(code));
        }
        let message =
            if body.trim().is_empty() { format!("http status {code}") } else { body.trim().to_owned() };
        match code {
            401 | 403 => self.unauthorized(message),
            404 => self.not_found(message),
            _ => self.protocol(format!("http status {code}: {message}")),
        }
    }

    fn map_envelope(&self, envelope: &OciEnvelope, status: Option<u16>) -> OciError {
        let message = envelope_message(envelope);
        let has = |codes: &[OciErrorCode]| envelope.errors.iter().any(|e| codes.contains(&e.code));
        if has(&[OciErrorCode::Unauthorized, OciErrorCode::Denied]) || matches!(status, Some(401 | 403)) {
            self.unauthorized(message)
        } else if has(&[
            OciErrorCode::ManifestUnknown,
            OciErrorCode::NameUnknown,
            OciErrorCode::BlobUnknown,
            OciErrorCode::NotFound,
        ]) || status == Some(404)
        {
            self.not_found(message)
        } else if has(&[OciErrorCode::NameInvalid, OciErrorCode::TagInvalid]) {
            OciError::InvalidReference { reference: self.reference.to_owned(), message }
        } else {
            self.protocol(message)
        }
    }

    fn map_reqwest(&self, e: &reqwest::Error) -> OciError {
        match e.status().map(|s| s.as_u16()) {
            Some(401 | 403) => self.unauthorized("authentication required"),
            Some(404) => self.not_found("not found"),
            _ if e.is_connect() || e.is_timeout() => {
                OciError::Unreachable { registry: self.registry.to_owned(), message: error_chain(e) }
            }
            _ => self.protocol(error_chain(e)),
        }
    }
}

/// The messages of a registry's error envelope, or the codes where a message is missing.
pub(crate) fn envelope_message(envelope: &OciEnvelope) -> String {
    let messages: Vec<String> = envelope
        .errors
        .iter()
        .map(|e| {
            if e.message.is_empty() {
                serde_json::to_value(&e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_lowercase))
                    .unwrap_or_else(|| format!("{:?}", e.code).to_lowercase())
            } else {
                e.message.clone()
            }
        })
        .collect();
    if messages.is_empty() { "the registry gave no reason".to_owned() } else { messages.join("; ") }
}

/// The message of a registry error body, if the body is an error envelope.
pub(crate) fn registry_message(body: &str) -> Option<String> {
    serde_json::from_str::<OciEnvelope>(body).ok().map(|e| envelope_message(&e))
}

/// An error and its sources, joined: `error sending request: tcp connect error: Connection refused`.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![lower_first(&e.to_string())];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context { reference: "localhost:5000/hello:1", registry: "localhost:5000" }
    }

    #[test]
    fn manifest_unknown_is_not_found_with_the_registry_message() {
        let body =
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"1"}}]}"#;
        let err = ctx().map(OciDistributionError::RegistryError {
            envelope: serde_json::from_str(body).unwrap(),
            url: "http://localhost:5000/v2/hello/manifests/1".into(),
        });
        assert!(
            matches!(&err, OciError::NotFound { message, .. } if message == "manifest unknown"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "localhost:5000/hello:1 not found: manifest unknown");
    }

    #[test]
    fn server_errors_map_by_status_and_envelope() {
        let body =
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        let err =
            ctx().map(OciDistributionError::ServerError { code: 401, url: "u".into(), message: body.into() });
        assert!(matches!(&err, OciError::Unauthorized { message, registry }
            if message == "authentication required" && registry == "localhost:5000"));
        let err =
            ctx().map(OciDistributionError::ServerError { code: 404, url: "u".into(), message: "".into() });
        assert!(matches!(err, OciError::NotFound { .. }));
        let err = ctx().map(OciDistributionError::ServerError {
            code: 500,
            url: "u".into(),
            message: "boom".into(),
        });
        assert!(matches!(&err, OciError::Protocol(m) if m.contains("500") && m.contains("boom")), "{err:?}");
    }

    #[test]
    fn envelope_without_message_uses_the_code() {
        let envelope: OciEnvelope = serde_json::from_str(r#"{"errors":[{"code":"DENIED"}]}"#).unwrap();
        assert_eq!(envelope_message(&envelope), "denied");
    }
}
