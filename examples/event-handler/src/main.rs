//! `event-handler`: takes a CloudEvent in binary mode (`ce-*` headers, data in the body)
//! and replies with a new one: type `{type}.reply`, source `/skiff/examples/event-handler`,
//! and the data it got wrapped as `{"received": ...}`.

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (Some(id), Some(kind), Some(_source)) = (header("ce-id"), header("ce-type"), header("ce-source")) else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body("expected a binary-mode CloudEvent: ce-id, ce-type and ce-source headers\n".into())?);
    };
    let spec = header("ce-specversion").unwrap_or_else(|| "1.0".into());
    let mut body = request.into_body();
    let data = body.str_contents().await?.to_string();
    let received = if data.trim_start().starts_with(['{', '[']) { data } else { format!("{data:?}") };
    Ok(Response::builder()
        .header("ce-specversion", spec)
        .header("ce-id", format!("{id}-reply"))
        .header("ce-type", format!("{kind}.reply"))
        .header("ce-source", "/skiff/examples/event-handler")
        .header("content-type", "application/json")
        .body(format!("{{\"received\":{received}}}").into())?)
}
