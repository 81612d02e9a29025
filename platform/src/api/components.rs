//! Deploying a Wasm function with nothing but its `.wasm` file.
//!
//! - `POST /skiff/v1/components[?name=NAME]` keeps the bytes and answers with the image
//!   reference to use: `{"image": "skiff.local/components/NAME@sha256:...", "digest": ...}`.
//! - `PUT /apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}/wasm` keeps the bytes
//!   and creates the Service (or points its template at the new component, which makes a
//!   new revision), with `runtimeClassName: wasm`. One request from file to URL.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::path::Target;
use super::{ApiState, json_response, read_body_limited};
use crate::blobs;
use crate::objects::{Patch, PatchKind};
use crate::resources::{SERVICES, serving};
use crate::status::{Cause, Reason, StatusError};

/// The subresource of a Service that takes a component.
pub const SUBRESOURCE: &str = "wasm";

/// Components may be larger than API objects.
pub const MAX_COMPONENT_BYTES: usize = 100 * 1024 * 1024;

async fn keep(state: &ApiState, body: Body) -> Result<(String, usize), StatusError> {
    let bytes = read_body_limited(body, MAX_COMPONENT_BYTES).await?;
    if bytes.is_empty() {
        return Err(StatusError::bad_request("the request body is empty: send the .wasm file as the body"));
    }
    let blobs = state.blobs.clone();
    let size = bytes.len();
    let digest = tokio::task::spawn_blocking(move || blobs.put(&bytes))
        .await
        .map_err(|e| StatusError::internal(e.to_string()))?
        .map_err(|e| StatusError::internal(format!("storing the component: {e}")))?;
    Ok((digest, size))
}

#[derive(serde::Deserialize)]
pub(super) struct UploadParams {
    name: Option<String>,
}

pub(super) async fn upload(
    State(state): State<ApiState>,
    Query(params): Query<UploadParams>,
    body: Body,
) -> Response {
    let name = params.name.unwrap_or_else(|| "component".into());
    if let Some(problem) = serving::dns1035_problem(&name) {
        return StatusError::bad_request(format!("name: {problem}")).into_response();
    }
    match keep(&state, body).await {
        Ok((digest, size)) => json_response(
            StatusCode::CREATED,
            &json!({"image": blobs::local_image(&name, &digest), "digest": format!("sha256:{digest}"), "size": size}),
        ),
        Err(err) => err.into_response(),
    }
}

/// `PUT .../services/{name}/wasm`
pub(super) async fn deploy(
    state: &ApiState,
    method: &Method,
    target: &Target,
    _headers: &HeaderMap,
    body: Body,
) -> Result<Response, StatusError> {
    let (Some(name), Some(namespace)) = (target.name.as_deref(), target.namespace.as_deref()) else {
        return Err(super::path::not_found());
    };
    if target.resource != &SERVICES {
        return Err(StatusError::new(
            Reason::NotFound,
            format!("{} has no subresource \"wasm\"", target.resource.plural),
        ));
    }
    if method != Method::PUT {
        return Err(StatusError::new(Reason::MethodNotAllowed, "send the .wasm file with PUT"));
    }
    if let Some(problem) = serving::dns1035_problem(name) {
        return Err(StatusError::invalid(
            "Service",
            SERVICES.group,
            name,
            vec![Cause::new("metadata.name", problem)],
        ));
    }
    let (digest, _) = keep(state, body).await?;
    let image = blobs::local_image(name, &digest);
    let objects = &state.objects;
    match objects.get(&SERVICES, Some(namespace), name) {
        Err(err) if err.reason == Reason::NotFound => {
            let service = json!({
                "apiVersion": SERVICES.api_version(),
                "kind": SERVICES.kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"template": {"spec": {"runtimeClassName": "wasm", "containers": [{"image": image}]}}},
            });
            let created = objects.create(&SERVICES, Some(namespace), service, false).await?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        Err(err) => Err(err),
        Ok(current) => {
            // Point the template at the new component and keep the rest of the container.
            let mut containers = current
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if containers.is_empty() {
                containers.push(json!({}));
            }
            containers[0]["image"] = json!(image);
            // A revision name given earlier cannot be reused for new code: drop it.
            let patch = json!({"spec": {"template": {
                "metadata": {"name": null},
                "spec": {"runtimeClassName": "wasm", "containers": containers},
            }}});
            let updated = objects
                .patch(
                    &SERVICES,
                    Some(namespace),
                    name,
                    None,
                    Patch { kind: PatchKind::Merge, body: patch },
                    false,
                )
                .await?;
            Ok(json_response(StatusCode::OK, &updated))
        }
    }
}
