//! Outbound HTTP from guests: the [`OutboundPolicy`] seam, the [`AllowList`] policy, and
//! the `wasi:http` hook that applies a policy to every request a guest sends.
//!
//! The syntax of allow-lists is documented on [`AllowList`].

use std::fmt;
use std::sync::Arc;

use http::uri::Scheme;
use http_body_util::BodyExt;
use tracing::Instrument;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::log::{LogStream, PodLog};

/// Decides on every outbound HTTP request a guest makes.
///
/// The request is given without its body (the body streams from the guest after the
/// decision). `check` may rewrite it: change the URI (for example to route a platform
/// URL to the ingress address; the `host` header keeps the URL's authority), add headers
/// (for example `traceparent`, with `skiff_tracing::inject_span(&tracing::Span::current(),
/// request.headers_mut())`: `check` runs inside the request's client span).
///
/// Closures `Fn(&mut http::Request<()>) -> Result<(), String>` are policies too.
pub trait OutboundPolicy: Send + Sync + 'static {
    /// Allows (possibly rewriting) or refuses an outbound request before it is sent.
    /// `Err(message)` refuses it: the guest gets the `wasi:http` error
    /// `HTTP-request-denied` and the message is written to the pod log.
    fn check(&self, request: &mut http::Request<()>) -> Result<(), String>;
}

impl<F> OutboundPolicy for F
where
    F: Fn(&mut http::Request<()>) -> Result<(), String> + Send + Sync + 'static,
{
    fn check(&self, request: &mut http::Request<()>) -> Result<(), String> {
        self(request)
    }
}

/// An [`OutboundPolicy`] allowing the hosts that match one of its patterns and refusing
/// everything else.
///
/// # Syntax
///
/// In the spirit of Spin's `allowed_outbound_hosts`, each pattern is
/// `[scheme://]host[:port]`:
///
/// | Pattern | Allows |
/// |---|---|
/// | `*` | everything (any scheme, host and port) |
/// | `api.example.com` | `http://api.example.com:80` and `https://api.example.com:443` |
/// | `*.example.com` | any subdomain of `example.com` (not `example.com` itself), default ports |
/// | `https://api.example.com` | only HTTPS, port 443 |
/// | `http://localhost:8080` | only that scheme, host and port |
/// | `http://127.0.0.1:*` | any port on that address, plain HTTP |
/// | `*://api.example.com:*` | any scheme (`http` or `https`) and any port on that host |
/// | `[::1]:8080` | IPv6 literals go in brackets |
///
/// * The scheme is `http`, `https` or `*`; without one, both `http` and `https` match.
/// * Without a port, only the scheme's default port matches (80 for `http`, 443 for
///   `https`); `*` matches any port.
/// * The host is a name or an IP literal, compared case-insensitively; `*` matches any
///   host and a leading `*.` any subdomain. No other wildcards, no paths.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    rules: Vec<Rule>,
}

/// A pattern of an [`AllowList`] that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed outbound host {pattern:?}: {reason}")]
pub struct AllowListError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    scheme: SchemeRule,
    host: HostRule,
    port: PortRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemeRule {
    Any,
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Subdomain(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    Any,
    SchemeDefault,
    Exact(u16),
}

impl AllowList {
    /// Parses the patterns; an empty list refuses everything.
    pub fn new<I, S>(patterns: I) -> Result<Self, AllowListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let rules = patterns.into_iter().map(|p| Rule::parse(p.as_ref())).collect::<Result<_, _>>()?;
        Ok(AllowList { rules })
    }

    /// A list refusing every outbound request.
    pub fn deny_all() -> Self {
        AllowList::default()
    }

    /// A list allowing every outbound request (the pattern `*`).
    pub fn allow_all() -> Self {
        AllowList { rules: vec![Rule { scheme: SchemeRule::Any, host: HostRule::Any, port: PortRule::Any }] }
    }

    /// Whether a URI matches one of the patterns.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(target) = Target::of(uri) else { return false };
        self.rules.iter().any(|rule| rule.matches(&target))
    }
}

impl OutboundPolicy for AllowList {
    fn check(&self, request: &mut http::Request<()>) -> Result<(), String> {
        if self.allows(request.uri()) {
            return Ok(());
        }
        let shown = Target::of(request.uri())
            .map(|t| format!("{}://{}:{}", t.scheme, t.host, t.port))
            .unwrap_or_else(|| request.uri().to_string());
        Err(format!("{shown} is not an allowed outbound host"))
    }
}

/// The parts of a URI an allow-list looks at.
struct Target {
    scheme: &'static str,
    host: String,
    port: u16,
}

impl Target {
    fn of(uri: &http::Uri) -> Option<Target> {
        let (scheme, default_port) = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("http") => ("http", 80),
            s if s.eq_ignore_ascii_case("https") => ("https", 443),
            _ => return None,
        };
        let host = uri.host()?.to_ascii_lowercase();
        Some(Target { scheme, host, port: uri.port_u16().unwrap_or(default_port) })
    }
}

impl Rule {
    fn parse(pattern: &str) -> Result<Rule, AllowListError> {
        let error =
            |reason: &str| AllowListError { pattern: pattern.to_string(), reason: reason.to_string() };
        let text = pattern.trim();
        let text = text.strip_suffix('/').unwrap_or(text);
        if text.is_empty() {
            return Err(error("it is empty"));
        }
        if text == "*" {
            return Ok(Rule { scheme: SchemeRule::Any, host: HostRule::Any, port: PortRule::Any });
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = match scheme.to_ascii_lowercase().as_str() {
                    "http" => SchemeRule::Http,
                    "https" => SchemeRule::Https,
                    "*" => SchemeRule::Any,
                    _ => return Err(error("the scheme must be http, https or *")),
                };
                (scheme, rest)
            }
            None => (SchemeRule::Any, text),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err(error("only scheme, host and port are allowed, no path or user"));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (ip, after) = bracketed.split_once(']').ok_or_else(|| error("unclosed [ in the host"))?;
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(error("the bracketed host is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| error("expected :port after the ]"))?),
            };
            (HostRule::Exact(format!("[{}]", ip.to_ascii_lowercase())), port)
        } else {
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            (parse_host(host).map_err(&error)?, port)
        };
        let port = match port {
            None => PortRule::SchemeDefault,
            Some("*") => PortRule::Any,
            Some(p) => PortRule::Exact(p.parse().map_err(|_| error("the port must be a number or *"))?),
        };
        Ok(Rule { scheme, host, port })
    }

    fn matches(&self, target: &Target) -> bool {
        let scheme = match self.scheme {
            SchemeRule::Any => true,
            SchemeRule::Http => target.scheme == "http",
            SchemeRule::Https => target.scheme == "https",
        };
        let host = match &self.host {
            HostRule::Any => true,
            HostRule::Exact(h) => *h == target.host,
            HostRule::Subdomain(suffix) => {
                target.host.len() > suffix.len() && target.host.ends_with(suffix.as_str())
            }
        };
        let port = match self.port {
            PortRule::Any => true,
            PortRule::Exact(p) => p == target.port,
            PortRule::SchemeDefault => target.port == if target.scheme == "https" { 443 } else { 80 },
        };
        scheme && host && port
    }
}

fn parse_host(host: &str) -> Result<HostRule, &'static str> {
    if host == "*" {
        return Ok(HostRule::Any);
    }
    let (rule, name): (fn(String) -> HostRule, &str) = match host.strip_prefix("*.") {
        Some(rest) => (|s| HostRule::Subdomain(format!(".{s}")), rest),
        None => (HostRule::Exact, host),
    };
    if name.is_empty() {
        return Err("the host is empty");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_') {
        return Err(
            "the host may only hold letters, digits, '-', '_' and '.', with an optional leading '*.'",
        );
    }
    Ok(rule(name.to_ascii_lowercase()))
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for rule in &self.rules {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            let scheme = match rule.scheme {
                SchemeRule::Any => "*",
                SchemeRule::Http => "http",
                SchemeRule::Https => "https",
            };
            let host = match &rule.host {
                HostRule::Any => "*".to_string(),
                HostRule::Exact(h) => h.clone(),
                HostRule::Subdomain(s) => format!("*{s}"),
            };
            match rule.port {
                PortRule::Any => write!(f, "{scheme}://{host}:*")?,
                PortRule::SchemeDefault => write!(f, "{scheme}://{host}")?,
                PortRule::Exact(p) => write!(f, "{scheme}://{host}:{p}")?,
            }
        }
        Ok(())
    }
}

/// The `wasi:http` hooks of one request's store: every outbound request goes through the
/// pod's policy, in a client span, before wasmtime's default sender.
pub(crate) struct OutboundHooks {
    pub(crate) policy: Arc<dyn OutboundPolicy>,
    pub(crate) log: PodLog,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn is_supported_scheme(&mut self, scheme: &Scheme) -> bool {
        *scheme == Scheme::HTTP || *scheme == Scheme::HTTPS
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let (parts, body) = request.into_parts();
        let mut head = http::Request::from_parts(parts, ());
        let method = head.method().clone();
        let span = tracing::info_span!(
            "outbound",
            otel.name = %skiff_tracing::conventions::client_span_name(method.as_str(), None),
            otel.kind = "client",
            "http.request.method" = %method,
            "server.address" = head.uri().host().unwrap_or_default(),
            "url.scheme" = head.uri().scheme_str().unwrap_or_default(),
            "http.response.status_code" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        );
        let original_uri = head.uri().clone();
        if let Err(message) = span.in_scope(|| self.policy.check(&mut head)) {
            span.record("error.type", "denied");
            tracing::warn!(parent: &span, uri = %original_uri, "outbound request refused: {message}");
            self.log.push(LogStream::Host, format!("outbound request to {original_uri} refused: {message}"));
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let (parts, ()) = head.into_parts();
        let request = http::Request::from_parts(parts, body);
        let in_span = span.clone();
        Box::new(
            async move {
                match wasmtime_wasi_http::default_send_request(request, options).await {
                    Ok((response, io)) => {
                        in_span.record("http.response.status_code", response.status().as_u16());
                        let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(io);
                        Ok((response.map(BodyExt::boxed_unsync), io))
                    }
                    Err(error) => {
                        in_span.record("error.type", "send");
                        tracing::debug!("outbound request failed: {error}");
                        Err(error)
                    }
                }
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(patterns: &[&str], uri: &str) -> bool {
        AllowList::new(patterns).unwrap().allows(&uri.parse().unwrap())
    }

    #[test]
    fn bare_host_allows_both_schemes_on_default_ports() {
        assert!(allows(&["api.example.com"], "http://api.example.com/x"));
        assert!(allows(&["api.example.com"], "https://API.example.com/x"));
        assert!(!allows(&["api.example.com"], "http://api.example.com:8080/x"));
        assert!(!allows(&["api.example.com"], "http://other.example.com/"));
    }

    #[test]
    fn wildcards() {
        assert!(allows(&["*.example.com"], "https://a.b.example.com/"));
        assert!(!allows(&["*.example.com"], "https://example.com/"));
        assert!(!allows(&["*.example.com"], "https://badexample.com/"));
        assert!(allows(&["*"], "http://anything:1234/"));
        assert!(allows(&["http://127.0.0.1:*"], "http://127.0.0.1:5555/"));
        assert!(!allows(&["http://127.0.0.1:*"], "https://127.0.0.1:5555/"));
        assert!(allows(&["*://h:*"], "https://h:1/"));
    }

    #[test]
    fn scheme_and_port_are_exact_when_given() {
        assert!(allows(&["http://host:8080"], "http://host:8080/p?q"));
        assert!(!allows(&["http://host:8080"], "https://host:8080/"));
        assert!(!allows(&["http://host:8080"], "http://host/"));
        assert!(allows(&["https://host"], "https://host:443/"));
        assert!(allows(&["[::1]:8080"], "http://[::1]:8080/"));
        assert!(!allows(&[], "http://host/"));
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in ["", "ftp://x", "http://x/path", "x:port", "a*b.com", "[::1", "user@host"] {
            assert!(AllowList::new([bad]).is_err(), "{bad:?} should not parse");
        }
        let err = AllowList::new(["ftp://x"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid allowed outbound host \"ftp://x\": the scheme must be http, https or *"
        );
    }

    #[test]
    fn refusal_names_the_target() {
        let list = AllowList::new(["example.com"]).unwrap();
        let mut request = http::Request::get("http://127.0.0.1:9/x").body(()).unwrap();
        assert_eq!(
            list.check(&mut request).unwrap_err(),
            "http://127.0.0.1:9 is not an allowed outbound host"
        );
        let mut request = http::Request::get("http://example.com/x").body(()).unwrap();
        assert_eq!(list.check(&mut request), Ok(()));
        assert_eq!(list.to_string(), "*://example.com");
    }
}
