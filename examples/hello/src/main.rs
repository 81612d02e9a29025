//! `hello`: Knative's hello world as a Wasm component. Answers `Hello {TARGET}!`, where
//! `TARGET` comes from the container's `env` (default `World`).

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "World".to_string());
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("Hello {target}!\n").into())?)
}
