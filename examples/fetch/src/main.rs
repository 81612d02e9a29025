//! `fetch`: calls the URL given in `?url=...` (or the `x-fetch-url` header) with outbound
//! HTTP and answers with what it got: the status as `x-fetched-status` and the body. It calls
//! with the method it was called with, passing on the body and the `ce-*` and `Content-Type`
//! headers: a POSTed CloudEvent goes on as one.
//! The host decides which URLs a guest may reach.

use wstd::http::{Body, Client, Error, Method, Request, Response, StatusCode};

fn target(request: &Request<Body>) -> Option<String> {
    if let Some(header) = request.headers().get("x-fetch-url").and_then(|v| v.to_str().ok()) {
        return Some(header.to_string());
    }
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| pair.strip_prefix("url=")).map(percent_decode)
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&raw[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let Some(url) = target(&request) else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body("say what to fetch: ?url=http://... or an x-fetch-url header\n".into())?);
    };
    // A POST (or PUT) is passed on with its body and CloudEvents headers, so that a chain of
    // fetches can end by posting an event to a broker.
    let method = request.method().clone();
    let mut outbound = Request::builder().method(method.clone()).uri(url.as_str());
    for (name, value) in request.headers() {
        if name.as_str().starts_with("ce-") || name == "content-type" {
            outbound = outbound.header(name, value);
        }
    }
    let outbound = if method == Method::GET || method == Method::HEAD {
        outbound.body(Body::empty())?
    } else {
        let mut incoming = request.into_body();
        let bytes = incoming.bytes_contents().await?.to_vec();
        outbound.body(Body::from(bytes))?
    };
    match Client::new().send(outbound).await {
        Ok(fetched) => {
            let status = fetched.status();
            let mut body = fetched.into_body();
            let bytes = body.bytes_contents().await?;
            Ok(Response::builder().header("x-fetched-status", status.as_str()).body(bytes.into())?)
        }
        Err(err) => Ok(Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(format!("fetching {url} failed: {err}\n").into())?),
    }
}
