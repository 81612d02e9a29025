//! Bearer tokens: every request but a health check carries the API's token.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use axum::response::IntoResponse;

use super::ApiState;
use crate::status::{Reason, StatusError};

/// Health endpoints stay open so that probes need no secret.
const OPEN_PATHS: &[&str] = &["/livez", "/readyz", "/healthz"];

pub(super) async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let expected = &state.token;
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => next.run(request).await,
        Some(_) => StatusError::new(
            Reason::Unauthorized,
            format!("the bearer token is not valid: the token is in {}", state.token_source),
        )
        .into_response(),
        None => StatusError::new(
            Reason::Unauthorized,
            format!(
                "this API requires a bearer token (Authorization: Bearer TOKEN): the token is in {}; \
                 kubectl and skiff read it from the kubeconfig beside it",
                state.token_source
            ),
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
