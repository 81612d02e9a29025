//! `echo`: answers with the request's body, streamed back, and its headers, each as
//! `x-echo-{name}`; `x-echo-method` and `x-echo-path` say what was asked.

use wstd::http::{Body, Error, HeaderName, HeaderValue, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (parts, body) = request.into_parts();
    let mut response = Response::builder()
        .header("x-echo-method", parts.method.as_str())
        .header("x-echo-path", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    for (name, value) in &parts.headers {
        if let Ok(echoed) = HeaderName::from_bytes(format!("x-echo-{name}").as_bytes()) {
            response = response.header(echoed, HeaderValue::from_bytes(value.as_bytes())?);
        }
    }
    Ok(response.body(body)?)
}
