//! Which outbound requests a guest may make: its own platform's services and brokers always (sent to
//! the ingress, whatever DNS says of `*.localhost`), other hosts only when the revision's
//! allow-list names them. Every allowed request carries the caller's trace context.

use std::net::SocketAddr;

use http::header::HOST;
use http::{HeaderValue, Request, Uri};
use skiff_runtime_wasm::{AllowList, OutboundPolicy};

pub struct PlatformOutbound {
    /// Services answer at `*.{domain}`.
    domain: String,
    /// Where the data plane listens.
    ingress: SocketAddr,
    allow: AllowList,
}

impl PlatformOutbound {
    pub fn new(domain: &str, ingress: SocketAddr, allow: AllowList) -> Self {
        Self { domain: domain.to_ascii_lowercase(), ingress, allow }
    }

    fn is_platform_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        // `{name}.{namespace}.{domain}`: at least two labels before the domain; and the
        // brokers' ingress, `broker-ingress.{domain}`.
        host.strip_suffix(&self.domain).and_then(|rest| rest.strip_suffix('.')).is_some_and(|rest| {
            rest == "broker-ingress"
                || (rest.split('.').count() >= 2 && rest.split('.').all(|l| !l.is_empty()))
        })
    }
}

impl OutboundPolicy for PlatformOutbound {
    fn check(&self, request: &mut Request<()>) -> Result<(), String> {
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or_default();
        if self.is_platform_host(host) && uri.scheme_str() != Some("https") {
            let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let rewritten: Uri = format!("http://{}{path}", self.ingress)
                .parse()
                .map_err(|e| format!("cannot route {uri} to the ingress: {e}"))?;
            *request.uri_mut() = rewritten;
            let host =
                HeaderValue::from_str(&authority).map_err(|e| format!("bad host {authority:?}: {e}"))?;
            request.headers_mut().insert(HOST, host);
        } else if !self.allow.allows(&uri) {
            return Err(format!(
                "outbound request to {uri} denied: the host is not in the annotation {} of this revision",
                super::spec::ALLOWED_OUTBOUND_HOSTS
            ));
        }
        skiff_tracing::inject_span(&tracing::Span::current(), request.headers_mut());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> PlatformOutbound {
        PlatformOutbound::new(
            "localhost",
            "127.0.0.1:8080".parse().unwrap(),
            AllowList::new(allow.iter().copied()).unwrap(),
        )
    }

    #[test]
    fn platform_services_go_to_the_ingress_with_their_host() {
        let mut request = Request::get("http://hello.default.localhost/greet?x=1").body(()).unwrap();
        policy(&[]).check(&mut request).unwrap();
        assert_eq!(request.uri(), "http://127.0.0.1:8080/greet?x=1");
        assert_eq!(request.headers()[HOST], "hello.default.localhost");
        let mut event = Request::post("http://broker-ingress.localhost/default/default").body(()).unwrap();
        policy(&[]).check(&mut event).unwrap();
        assert_eq!(event.uri(), "http://127.0.0.1:8080/default/default");
        assert_eq!(event.headers()[HOST], "broker-ingress.localhost");
    }

    #[test]
    fn other_hosts_need_the_allow_list() {
        let mut denied = Request::get("http://example.com/").body(()).unwrap();
        let err = policy(&[]).check(&mut denied).unwrap_err();
        assert!(err.contains("skiff.dev/allowed-outbound-hosts"), "{err}");
        let mut allowed = Request::get("http://example.com/").body(()).unwrap();
        policy(&["example.com"]).check(&mut allowed).unwrap();
        assert_eq!(allowed.uri(), "http://example.com/");
        // `localhost` itself is not a platform service.
        let mut bare = Request::get("http://localhost:9000/").body(()).unwrap();
        assert!(policy(&[]).check(&mut bare).is_err());
    }
}
