//! The management API: Kubernetes REST conventions over the store.
//!
//! Discovery, CRUD with optimistic concurrency, merge and JSON patches, list across
//! namespaces, label and field selectors, watch streams, Tables for kubectl, and errors
//! as `Status` objects.

mod auth;
mod components;
mod discovery;
mod guard;
mod logs;
mod openapi;
mod path;
mod selector;
mod table;
mod watch;

pub use guard::{HostPolicy, InflightLimits};
pub use selector::{FieldSelector, LabelSelector};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::blobs::BlobStore;
use crate::dataplane::Tables;
use crate::objects::{Objects, Patch, PatchKind};
use crate::resources::ResourceType;
use crate::status::{Reason, StatusError};
use crate::store::{Object, SharedStore};

/// Request bodies larger than this are refused with 413 (kube-apiserver's 3 MiB); the
/// object they hold is bounded again once encoded (`resources::limits`).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    objects: Objects,
    blobs: BlobStore,
    tables: Arc<Tables>,
    token: Arc<str>,
    /// Where the token is kept, for the 401's message.
    token_source: Arc<str>,
    hosts: Arc<HostPolicy>,
    inflight: Arc<guard::Inflight>,
    inflight_limits: InflightLimits,
    server_address: String,
    shutdown: CancellationToken,
    eventing: Option<Arc<crate::eventing::Eventing>>,
}

impl ApiState {
    pub fn new(
        store: SharedStore,
        blobs: BlobStore,
        tables: Arc<Tables>,
        credentials: &crate::security::Credentials,
        hosts: HostPolicy,
        server_address: String,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            objects: Objects::new(store),
            blobs,
            tables,
            token: Arc::from(credentials.token.as_str()),
            token_source: Arc::from(credentials.token_source.as_str()),
            hosts: Arc::new(hosts),
            inflight: Arc::default(),
            inflight_limits: InflightLimits::default(),
            server_address,
            shutdown,
            eventing: None,
        }
    }

    /// Serve at most so many requests and watches at once.
    pub fn with_inflight_limits(mut self, limits: InflightLimits) -> Self {
        self.inflight_limits = limits;
        self
    }

    /// Show eventing's figures in `/metrics` too.
    pub fn with_eventing(mut self, eventing: Arc<crate::eventing::Eventing>) -> Self {
        self.eventing = Some(eventing);
        self
    }
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/api",
            get(|State(s): State<ApiState>| async move {
                json_response(StatusCode::OK, &discovery::core_versions(&s.server_address))
            }),
        )
        .route("/apis", get(|| async { json_response(StatusCode::OK, &discovery::group_list()) }))
        .route("/version", get(|| async { json_response(StatusCode::OK, &discovery::version()) }))
        .route("/openapi/v3", get(|| async { json_response(StatusCode::OK, &openapi::root()) }))
        .route("/skiff/v1/components", axum::routing::post(components::upload))
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .fallback(resources)
        // Outermost last: trace, host, token, media type, then the in-flight bound.
        .layer(middleware::from_fn_with_state(state.clone(), guard::limit_inflight))
        .layer(middleware::from_fn(guard::check_content_type))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(middleware::from_fn_with_state(state.clone(), guard::check_host))
        .layer(middleware::from_fn(trace_request))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(state): State<ApiState>) -> Response {
    let mut text = crate::dataplane::metrics::render(&state.tables);
    if let Some(eventing) = &state.eventing {
        text.push_str(&eventing.render_metrics());
    }
    ([(axum::http::header::CONTENT_TYPE, crate::dataplane::metrics::CONTENT_TYPE)], text).into_response()
}

/// One SERVER span per request, continuing the caller's trace.
async fn trace_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = route_template(request.uri().path());
    let span = tracing::info_span!(
        "api request",
        otel.name = %skiff_tracing::conventions::server_span_name(method.as_str(), Some(&route)),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    skiff_tracing::set_parent_from_headers(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// The path with names replaced by placeholders, for span names that stay few.
fn route_template(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut out = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| segments[p]);
        let placeholder = match (segments.first(), i) {
            (Some(&"apis"), 1) => Some("{group}"),
            (Some(&"apis"), 2) | (Some(&"api"), 1) => Some("{version}"),
            _ if previous == Some("namespaces") => Some("{namespace}"),
            _ if i >= 2 && segments[i - 2] == "namespaces" => Some("{resource}"),
            _ => None,
        };
        out.push(placeholder.map(str::to_string).unwrap_or_else(|| segment.to_string()));
    }
    let mut route = format!("/{}", out.join("/"));
    // `/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}`
    if segments.len() >= 7 && segments[0] == "apis" {
        route = format!(
            "/{}/{{name}}{}",
            out[..6].join("/"),
            if segments.len() > 7 { "/{subresource}" } else { "" }
        );
    }
    route
}

pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

impl IntoResponse for StatusError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_status())
    }
}

type Params = HashMap<String, String>;

fn flag(params: &Params, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true" || v == "1" || v.is_empty())
}

async fn resources(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&state, &method, &uri, &headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, StatusError> {
    let path = uri.path();
    if let Some(doc) = discovery_document(path) {
        return match *method {
            Method::GET => Ok(json_response(StatusCode::OK, &doc)),
            _ => Err(method_not_allowed(method)),
        };
    }
    let target = path::parse(path)?;
    let params: Params = Query::try_from_uri(uri).map(|Query(p)| p).unwrap_or_default();
    match target.subresource.as_deref() {
        Some(components::SUBRESOURCE) => {
            return components::deploy(state, method, &target, headers, body).await;
        }
        Some(logs::SUBRESOURCE) if method == Method::GET => {
            return logs::revision_log(state, &target, &params);
        }
        _ => {}
    }
    if target.resource.managed && matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        return Err(StatusError::new(
            Reason::MethodNotAllowed,
            format!(
                "{} are created and changed by skiff's autoscaler, not through the API; \
                 delete one to have it replaced, or change the revision's scale annotations",
                target.resource.plural
            ),
        ));
    }
    let dry_run = params.get("dryRun").is_some_and(|v| v == "All");
    let objects = &state.objects;
    let resource = target.resource;
    let namespace = target.namespace.as_deref();
    let created = |v: Value| json_response(StatusCode::CREATED, &v);
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    match (method.clone(), target.name.as_deref()) {
        (Method::GET, None) if flag(&params, "watch") => watch(state, resource, namespace, &params, headers),
        (Method::GET, None) => list(state, resource, namespace, &params, headers),
        (Method::GET, Some(name)) => {
            let object = objects.get(resource, namespace, name)?;
            Ok(match table_request(headers, &params) {
                Some(include) => ok(table::render(resource, &[&object], 0, &include)),
                None => ok(object),
            })
        }
        (Method::POST, None) => {
            let object = decode(headers, body).await?;
            objects.create(resource, namespace, object, dry_run).await.map(created)
        }
        (Method::PUT, Some(name)) => {
            let object = decode(headers, body).await?;
            objects
                .replace(resource, namespace, name, target.subresource.as_deref(), object, dry_run)
                .await
                .map(ok)
        }
        (Method::PATCH, Some(name)) => {
            let kind = patch_kind(headers)?;
            let patch = Patch { kind, body: decode(headers, body).await? };
            objects
                .patch(resource, namespace, name, target.subresource.as_deref(), patch, dry_run)
                .await
                .map(ok)
        }
        (Method::DELETE, Some(name)) => {
            let options = read_body(body).await?;
            let options = if options.is_empty() { None } else { Some(parse_json(&options)?) };
            objects.delete(resource, namespace, name, options, dry_run).await.map(ok)
        }
        _ => Err(method_not_allowed(method)),
    }
}

fn method_not_allowed(method: &Method) -> StatusError {
    StatusError::new(
        Reason::MethodNotAllowed,
        format!("the server does not allow this method on the requested resource: {method}"),
    )
}

fn discovery_document(path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", version] => discovery::resource_list("", version),
        ["apis", group] => discovery::group(group),
        ["apis", group, version] => discovery::resource_list(group, version),
        ["openapi", "v3", "api", version] => openapi::group_version("", version),
        ["openapi", "v3", "apis", group, version] => openapi::group_version(group, version),
        _ => None,
    }
}

fn table_request(headers: &HeaderMap, params: &Params) -> Option<String> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    table::wanted(accept).then(|| params.get("includeObject").cloned().unwrap_or_else(|| "Metadata".into()))
}

fn selectors(params: &Params) -> Result<(LabelSelector, FieldSelector), StatusError> {
    Ok((
        LabelSelector::parse(params.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        FieldSelector::parse(params.get("fieldSelector").map(String::as_str).unwrap_or(""))?,
    ))
}

fn list(
    state: &ApiState,
    resource: &'static ResourceType,
    namespace: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, StatusError> {
    let (labels, fields) = selectors(params)?;
    let (items, version) = state.objects.store().list_json(resource.key, namespace);
    let matching: Vec<&(Object, bytes::Bytes)> =
        items.iter().filter(|(o, _)| labels.matches(o) && fields.matches(o)).collect();
    if let Some(include) = table_request(headers, params) {
        let objects: Vec<&Value> = matching.iter().map(|(o, _)| &**o).collect();
        return Ok(json_response(StatusCode::OK, &table::render(resource, &objects, version, &include)));
    }
    // The stored encodings, joined: a list of thousands costs a copy, not an encode.
    let head = format!(
        r#"{{"apiVersion":"{}","kind":"{}","metadata":{{"resourceVersion":"{version}"}},"items":["#,
        resource.api_version(),
        resource.list_kind()
    );
    let size = head.len() + matching.iter().map(|(_, json)| json.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    for (i, (_, json)) in matching.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json);
    }
    body.extend_from_slice(b"]}");
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn watch(
    state: &ApiState,
    resource: &'static ResourceType,
    namespace: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, StatusError> {
    let (labels, fields) = selectors(params)?;
    let since = match params.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .map_err(|_| StatusError::bad_request(format!("invalid resourceVersion {raw:?}")))?,
        ),
    };
    let timeout = params.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).map(Duration::from_secs);
    let request = watch::WatchRequest {
        resource,
        namespace: namespace.map(str::to_string),
        labels,
        fields,
        since,
        timeout,
        table: table_request(headers, params),
    };
    Ok(watch::respond(state.objects.store().clone(), request, state.shutdown.clone()))
}

/// Bodies past the limit are still read (and thrown away) up to this much, so that the
/// client, still sending, sees the 413 rather than a reset connection.
const DRAIN_LIMIT_BYTES: usize = 256 * 1024 * 1024;

fn too_large(limit: usize) -> StatusError {
    StatusError::new(
        Reason::RequestEntityTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

/// The body, at most `limit` bytes (413 past it).
async fn read_body_limited(body: Body, limit: usize) -> Result<bytes::Bytes, StatusError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut collected = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|err| StatusError::bad_request(format!("reading the request body failed: {err}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_LIMIT_BYTES.max(limit) {
            return Err(too_large(limit));
        }
        if seen <= limit {
            collected.extend_from_slice(&data);
        }
    }
    if seen > limit { Err(too_large(limit)) } else { Ok(collected.freeze()) }
}

async fn read_body(body: Body) -> Result<bytes::Bytes, StatusError> {
    read_body_limited(body, MAX_BODY_BYTES).await
}

fn parse_json(bytes: &[u8]) -> Result<Value, StatusError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StatusError::bad_request(format!("the body of the request could not be decoded as JSON: {e}"))
    })
}

fn content_type(headers: &HeaderMap) -> &str {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json")
}

/// The request body as a JSON value, from JSON or YAML.
async fn decode(headers: &HeaderMap, body: Body) -> Result<Value, StatusError> {
    let bytes = read_body(body).await?;
    if content_type(headers).contains("yaml") {
        serde_yaml::from_slice(&bytes).map_err(|e| {
            StatusError::bad_request(format!("the body of the request could not be decoded as YAML: {e}"))
        })
    } else {
        parse_json(&bytes)
    }
}

fn patch_kind(headers: &HeaderMap) -> Result<PatchKind, StatusError> {
    let content_type = content_type(headers);
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/json-patch+json" => Ok(PatchKind::Json),
        _ => Err(StatusError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format ({media}) - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_hide_names() {
        assert_eq!(
            route_template("/apis/serving.knative.dev/v1/namespaces/default/services/hello"),
            "/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}"
        );
        assert_eq!(
            route_template("/apis/serving.knative.dev/v1/namespaces/default/services"),
            "/apis/{group}/{version}/namespaces/{namespace}/{resource}"
        );
        assert_eq!(route_template("/api/v1/namespaces/x"), "/api/{version}/namespaces/{namespace}");
        assert_eq!(route_template("/readyz"), "/readyz");
    }

    #[test]
    fn patch_kinds_follow_the_content_type() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/merge-patch+json".parse().unwrap());
        assert_eq!(patch_kind(&headers).unwrap(), PatchKind::Merge);
        headers.insert(header::CONTENT_TYPE, "application/strategic-merge-patch+json".parse().unwrap());
        assert_eq!(patch_kind(&headers).unwrap_err().code(), 415);
    }
}
