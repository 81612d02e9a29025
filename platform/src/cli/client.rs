//! A small client of the management API: Kubernetes REST paths, bearer token, and errors
//! that carry the server's own `Status` message.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde_json::Value;

use super::connection::Connection;
use super::kinds::Kind;

/// What went wrong talking to the API. Display is what the user reads after `Error: `.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with a `Status` (or at least an error code).
    #[error("{message}")]
    Status { code: u16, reason: String, message: String },
    #[error("cannot reach the skiff API at {server} (is `skiff up` running?): {detail}")]
    Unreachable { server: String, detail: String },
    #[error("{method} {path}: {detail}")]
    Transport { method: Method, path: String, detail: String },
}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { code: 404, .. })
    }

    /// A stale `resourceVersion` on a replace.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Status { code: 409, reason, .. } if reason != "AlreadyExists")
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, ApiError::Status { code: 409, reason, .. } if reason == "AlreadyExists")
    }

    /// The error a non-success response stands for: its `Status`, or a description of what came back.
    fn from_response(method: &Method, path: &str, status: StatusCode, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        match parsed {
            Some(status_object) if status_object["kind"] == "Status" => {
                Self::from_status_object(&status_object, status.as_u16())
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let reason = status.canonical_reason().unwrap_or("Unknown").replace(' ', "");
                let message = if text.is_empty() {
                    format!("the server answered {status} to {method} {path}")
                } else {
                    let text: String = text.chars().take(300).collect();
                    format!("the server answered {status} to {method} {path}: {text}")
                };
                ApiError::Status { code: status.as_u16(), reason, message }
            }
        }
    }

    /// The error a `Status` object (from a response or a watch `ERROR` event) stands for.
    pub fn from_status_object(status_object: &Value, fallback_code: u16) -> Self {
        let code =
            status_object["code"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(fallback_code);
        let reason = status_object["reason"].as_str().unwrap_or("Unknown").to_string();
        let message = match status_object["message"].as_str() {
            Some(message) if !message.is_empty() => message.to_string(),
            _ => format!("the server failed the request: {reason} ({code})"),
        };
        ApiError::Status { code, reason, message }
    }
}

/// One line of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED` or `ERROR`.
    pub kind: String,
    pub object: Value,
}

/// Newline-delimited watch events as they arrive.
pub struct WatchStream {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: BytesMut,
}

impl WatchStream {
    /// The next event; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, ApiError>> {
        loop {
            if let Some(line) = take_line(&mut self.buffer) {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(parse_event(&line));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(err)) => {
                    return Some(Err(ApiError::Transport {
                        method: Method::GET,
                        path: "watch".into(),
                        detail: error_chain(&err),
                    }));
                }
                None if self.buffer.iter().all(u8::is_ascii_whitespace) => return None,
                None => {
                    let rest = self.buffer.split().freeze();
                    return Some(parse_event(&rest));
                }
            }
        }
    }
}

fn take_line(buffer: &mut BytesMut) -> Option<bytes::Bytes> {
    let end = buffer.iter().position(|b| *b == b'\n')?;
    let line = buffer.split_to(end).freeze();
    buffer.advance(1);
    Some(line)
}

fn parse_event(line: &[u8]) -> Result<WatchEvent, ApiError> {
    let bad = |detail: String| ApiError::Transport { method: Method::GET, path: "watch".into(), detail };
    let mut value: Value = serde_json::from_slice(line)
        .map_err(|err| bad(format!("the watch sent a line that is not JSON: {err}")))?;
    let kind = value["type"].as_str().ok_or_else(|| bad("the watch sent an event without a type".into()))?;
    let kind = kind.to_string();
    let object = value.get_mut("object").map(Value::take).unwrap_or(Value::Null);
    Ok(WatchEvent { kind, object })
}

/// `a: b: c` from an error and its sources, the way a user reads it on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// The innermost error: `Connection refused (os error 111)` rather than the layers around it.
fn root_cause(err: &dyn std::error::Error) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Selectors a list or watch narrows its answer with.
#[derive(Debug, Default, Clone)]
pub struct ListOptions<'a> {
    pub label_selector: Option<&'a str>,
    pub field_selector: Option<&'a str>,
}

/// The management API at one base URL, with an optional bearer token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        let server = &connection.server;
        let base = server.trim_end_matches('/').to_string();
        let https = base.starts_with("https://");
        if !https && !base.starts_with("http://") {
            anyhow::bail!("--server {server:?} is not an https:// URL");
        }
        // reqwest is built without a bundled TLS provider: make sure the process has one.
        skiff_runtime_oci::install_crypto_provider();
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(pem) = &connection.ca_pem {
            // As kubectl: a certificate authority given is the only one trusted.
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("the API's certificate authority is not PEM: {e}"))?;
            builder = builder.tls_certs_only(certs);
        }
        if connection.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build()?;
        let token = connection.token.as_ref().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        // kubectl's rule: a bearer token never goes over plain http.
        let token = if https { token } else { None };
        Ok(Self { http, base, token })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, method: Method, path: &str, request: RequestBuilder) -> Result<Value, ApiError> {
        let response = request.send().await.map_err(|err| self.transport_error(&method, path, &err))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| self.transport_error(&method, path, &err))?;
        if !status.is_success() {
            return Err(ApiError::from_response(&method, path, status, &body));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|err| ApiError::Transport {
            method,
            path: path.to_string(),
            detail: format!("the server answered with something that is not JSON: {err}"),
        })
    }

    fn transport_error(&self, method: &Method, path: &str, err: &reqwest::Error) -> ApiError {
        if err.is_connect() {
            ApiError::Unreachable { server: self.base.clone(), detail: root_cause(err) }
        } else {
            ApiError::Transport { method: method.clone(), path: path.to_string(), detail: error_chain(err) }
        }
    }

    pub async fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let path = kind.object_path(namespace, name);
        self.send(Method::GET, &path, self.request(Method::GET, &path)).await
    }

    /// Like [`ApiClient::get`], with `None` for an object that does not exist.
    pub async fn get_optional(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        match self.get(kind, namespace, name).await {
            Ok(object) => Ok(Some(object)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// A `{Kind}List` in `namespace`, or across all namespaces when it is `None`.
    pub async fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        options: &ListOptions<'_>,
    ) -> Result<Value, ApiError> {
        let path = kind.collection_path(namespace);
        let request = self.request(Method::GET, &path).query(&selector_query(options));
        self.send(Method::GET, &path, request).await
    }

    pub async fn create(&self, kind: &Kind, namespace: &str, object: &Value) -> Result<Value, ApiError> {
        let path = kind.collection_path(Some(namespace));
        self.send(Method::POST, &path, self.request(Method::POST, &path).json(object)).await
    }

    /// PUT: the object must carry the `metadata.resourceVersion` it was read at.
    pub async fn replace(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        object: &Value,
    ) -> Result<Value, ApiError> {
        let path = kind.object_path(namespace, name);
        self.send(Method::PUT, &path, self.request(Method::PUT, &path).json(object)).await
    }

    /// PATCH with a JSON merge patch (RFC 7386).
    pub async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let path = kind.object_path(namespace, name);
        let request = self
            .request(Method::PATCH, &path)
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .body(patch.to_string());
        self.send(Method::PATCH, &path, request).await
    }

    pub async fn delete(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let path = kind.object_path(namespace, name);
        self.send(Method::DELETE, &path, self.request(Method::DELETE, &path)).await
    }

    /// `POST /skiff/v1/components?name=NAME`: keeps a `.wasm` file on the node and answers
    /// `{"image": "skiff.local/components/NAME@sha256:...", "digest": ..., "size": ...}`.
    pub async fn upload_component(&self, name: &str, bytes: Vec<u8>) -> Result<Value, ApiError> {
        let path = "/skiff/v1/components";
        let request = self
            .request(Method::POST, path)
            .query(&[("name", name)])
            .header(header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        self.send(Method::POST, path, request).await
    }

    /// `GET .../revisions/{name}/log[?tailLines=N]`: the text the revision's pod wrote.
    pub async fn revision_log(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        tail: Option<usize>,
    ) -> Result<String, ApiError> {
        let path = format!("{}/log", kind.object_path(namespace, name));
        let mut request = self.request(Method::GET, &path);
        if let Some(tail) = tail {
            request = request.query(&[("tailLines", tail)]);
        }
        let response = request.send().await.map_err(|err| self.transport_error(&Method::GET, &path, &err))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| self.transport_error(&Method::GET, &path, &err))?;
        if !status.is_success() {
            return Err(ApiError::from_response(&Method::GET, &path, status, &body));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `?watch=true` on a collection, from `resource_version` on when given.
    pub async fn watch(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        options: &ListOptions<'_>,
        resource_version: Option<&str>,
    ) -> Result<WatchStream, ApiError> {
        let path = kind.collection_path(namespace);
        let mut query = selector_query(options);
        query.push(("watch", "true"));
        if let Some(rv) = resource_version.filter(|rv| !rv.is_empty()) {
            query.push(("resourceVersion", rv));
        }
        let request = self.request(Method::GET, &path).query(&query);
        let response = request.send().await.map_err(|err| self.transport_error(&Method::GET, &path, &err))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(ApiError::from_response(&Method::GET, &path, status, &body));
        }
        Ok(WatchStream { body: response.bytes_stream().boxed(), buffer: BytesMut::new() })
    }
}

fn selector_query<'a>(options: &ListOptions<'a>) -> Vec<(&'static str, &'a str)> {
    let mut query = Vec::new();
    if let Some(selector) = options.label_selector.filter(|s| !s.is_empty()) {
        query.push(("labelSelector", selector));
    }
    if let Some(selector) = options.field_selector.filter(|s| !s.is_empty()) {
        query.push(("fieldSelector", selector));
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_body_becomes_the_servers_message() {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "services.serving.knative.dev \"hello\" not found", "reason": "NotFound", "code": 404,
        });
        let err =
            ApiError::from_response(&Method::GET, "/x", StatusCode::NOT_FOUND, body.to_string().as_bytes());
        assert_eq!(err.to_string(), "services.serving.knative.dev \"hello\" not found");
        assert!(err.is_not_found());
        assert!(!err.is_conflict());
    }

    #[test]
    fn conflict_and_already_exists_are_told_apart() {
        let status = |reason: &str| json!({"kind": "Status", "status": "Failure", "message": "m", "reason": reason, "code": 409});
        let conflict = ApiError::from_status_object(&status("Conflict"), 0);
        let exists = ApiError::from_status_object(&status("AlreadyExists"), 0);
        assert!(conflict.is_conflict() && !conflict.is_already_exists());
        assert!(exists.is_already_exists() && !exists.is_conflict());
    }

    #[test]
    fn a_body_that_is_not_a_status_is_described() {
        let err = ApiError::from_response(&Method::GET, "/nope", StatusCode::NOT_FOUND, b"");
        assert_eq!(err.to_string(), "the server answered 404 Not Found to GET /nope");
        assert!(err.is_not_found());
        let err = ApiError::from_response(&Method::POST, "/x", StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!(err.to_string(), "the server answered 502 Bad Gateway to POST /x: upstream down");
    }

    #[test]
    fn watch_lines_split_on_newlines_even_across_chunks() {
        let mut buffer = BytesMut::from(&b"{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n{\"type\":\"MOD"[..]);
        let line = take_line(&mut buffer).unwrap();
        assert_eq!(parse_event(&line).unwrap(), WatchEvent { kind: "ADDED".into(), object: json!({"a": 1}) });
        assert!(take_line(&mut buffer).is_none());
        buffer.extend_from_slice(b"IFIED\",\"object\":{}}\n");
        let line = take_line(&mut buffer).unwrap();
        assert_eq!(parse_event(&line).unwrap().kind, "MODIFIED");
        assert!(parse_event(b"not json").is_err());
    }

    #[test]
    fn servers_are_urls_and_tokens_need_https() {
        let connection = |server: &str, token: Option<&str>| Connection {
            server: server.into(),
            token: token.map(str::to_string),
            ..Default::default()
        };
        let client = ApiClient::new(&connection("https://127.0.0.1:8081/", Some("t"))).unwrap();
        assert_eq!((client.base.as_str(), client.token.as_deref()), ("https://127.0.0.1:8081", Some("t")));
        assert_eq!(ApiClient::new(&connection("https://h", Some(" \n"))).unwrap().token, None);
        assert_eq!(ApiClient::new(&connection("http://h", Some("t"))).unwrap().token, None);
        assert!(ApiClient::new(&connection("127.0.0.1:8081", None)).is_err());
    }
}
