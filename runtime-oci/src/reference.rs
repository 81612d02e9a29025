//! Image references: parsing `registry/repository[:tag][@digest]` the way Docker does, plus
//! the two facts the client needs about the registry: its address and whether it is on
//! loopback (plain HTTP).

use std::net::{Ipv4Addr, Ipv6Addr};

use oci_client::Reference;

use crate::error::OciError;

/// A parsed image reference, keeping the text it was parsed from.
#[derive(Debug, Clone)]
pub(crate) struct ImageRef {
    /// The reference as the caller wrote it.
    pub(crate) given: String,
    /// The normalised reference (`docker.io/library/` added, `latest` when untagged).
    pub(crate) inner: Reference,
}

impl ImageRef {
    /// Parses a reference. Besides what Docker accepts this takes a bracketed IPv6 registry
    /// address (`[::1]:5000/repo:tag`), which the reference grammar of `oci-spec` lacks.
    pub(crate) fn parse(reference: &str) -> Result<Self, OciError> {
        let invalid =
            |message: String| OciError::InvalidReference { reference: reference.to_owned(), message };
        let trimmed = reference.trim();
        if trimmed != reference {
            return Err(invalid("leading or trailing whitespace".to_owned()));
        }
        if reference.is_empty() {
            return Err(invalid("the reference is empty".to_owned()));
        }
        let inner = if reference.starts_with('[') {
            parse_ipv6_registry(reference).map_err(invalid)?
        } else {
            Reference::try_from(reference).map_err(|e| invalid(e.to_string().to_lowercase()))?
        };
        // `oci-spec` takes `UPPER/app` as Docker Hub's `UPPER/app`; Docker refuses it.
        if inner.repository().chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("the repository name must be lowercase".to_owned()));
        }
        Ok(Self { given: reference.to_owned(), inner })
    }

    /// The registry as written (`docker.io` for Docker Hub), used in pinned references.
    pub(crate) fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The address requests go to (`index.docker.io` for Docker Hub).
    pub(crate) fn address(&self) -> &str {
        self.inner.resolve_registry()
    }

    /// Whether the registry is on loopback and so spoken to in plain HTTP.
    pub(crate) fn is_loopback(&self) -> bool {
        is_loopback_registry(self.address())
    }

    /// `registry/repository@digest`: the reference pinned to a manifest digest.
    pub(crate) fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{}", self.registry(), self.inner.repository(), digest)
    }

    /// The same repository at `digest`.
    pub(crate) fn with_digest(&self, digest: &str) -> Reference {
        self.inner.clone_with_digest(digest.to_owned())
    }
}

/// Whether `registry` (`host`, `host:port`, `[v6]` or `[v6]:port`) names a loopback host:
/// `localhost`, 127.0.0.0/8 or ::1.
pub(crate) fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, _)) => return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
            None => return false,
        }
    } else {
        registry.split_once(':').map_or(registry, |(host, _)| host)
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// `[v6]:port/repo[:tag][@digest]`: parse the rest against a stand-in registry name, then put
/// the real address back.
fn parse_ipv6_registry(reference: &str) -> Result<Reference, String> {
    let (registry, rest) = reference
        .split_once('/')
        .ok_or_else(|| "a registry address needs a repository after it".to_owned())?;
    let (v6, port) =
        registry[1..].split_once(']').ok_or_else(|| "unclosed '[' in the registry".to_owned())?;
    v6.parse::<Ipv6Addr>().map_err(|_| format!("{v6:?} is not an ipv6 address"))?;
    if !(port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
        return Err(format!("invalid port in registry {registry:?}"));
    }
    let stand_in: Reference = format!("ipv6.invalid/{rest}")
        .parse()
        .map_err(|e: oci_client::ParseError| e.to_string().to_lowercase())?;
    let repository = stand_in.repository().to_owned();
    Ok(match (stand_in.tag(), stand_in.digest()) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry.to_owned(), repository, tag.to_owned(), digest.to_owned())
        }
        (None, Some(digest)) => Reference::with_digest(registry.to_owned(), repository, digest.to_owned()),
        (tag, None) => {
            Reference::with_tag(registry.to_owned(), repository, tag.unwrap_or("latest").to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_short_names_are_normalised() {
        let r = parse("nginx");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.address(), "index.docker.io");
        assert_eq!(r.inner.repository(), "library/nginx");
        assert_eq!(r.inner.tag(), Some("latest"));
        assert!(!r.is_loopback());
        assert_eq!(r.pinned(DIGEST), format!("docker.io/library/nginx@{DIGEST}"));
        assert_eq!(parse("user/app:v1").inner.repository(), "user/app");
        assert_eq!(parse("index.docker.io/user/app").registry(), "docker.io");
    }

    #[test]
    fn registry_with_port_tag_and_digest() {
        let r = parse("localhost:5000/fns/hello:1.0");
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.inner.repository(), "fns/hello");
        assert_eq!(r.inner.tag(), Some("1.0"));
        assert!(r.is_loopback());
        assert_eq!(r.given, "localhost:5000/fns/hello:1.0");

        let r = parse(&format!("127.0.0.1:5000/hello@{DIGEST}"));
        assert_eq!(r.inner.tag(), None);
        assert_eq!(r.inner.digest(), Some(DIGEST));
        assert_eq!(r.pinned(DIGEST), format!("127.0.0.1:5000/hello@{DIGEST}"));

        let r = parse(&format!("ghcr.io/o/r:t@{DIGEST}"));
        assert_eq!(r.inner.tag(), Some("t"));
        assert_eq!(r.inner.digest(), Some(DIGEST));
        assert!(!r.is_loopback());
    }

    #[test]
    fn localhost_without_port_is_a_registry() {
        let r = parse("localhost/hello");
        assert_eq!(r.registry(), "localhost");
        assert_eq!(r.inner.repository(), "hello");
        assert!(r.is_loopback());
    }

    #[test]
    fn ipv6_loopback_registry() {
        let r = parse("[::1]:5000/fns/hello:v2");
        assert_eq!(r.address(), "[::1]:5000");
        assert_eq!(r.inner.repository(), "fns/hello");
        assert_eq!(r.inner.tag(), Some("v2"));
        assert!(r.is_loopback());
        let r = parse(&format!("[::1]/hello@{DIGEST}"));
        assert_eq!(r.inner.digest(), Some(DIGEST));
        assert_eq!(r.pinned(DIGEST), format!("[::1]/hello@{DIGEST}"));
        assert_eq!(parse("[::1]:5000/hello").inner.tag(), Some("latest"));
        assert!(!parse("[2001:db8::1]:5000/hello").is_loopback());
    }

    #[test]
    fn loopback_detection() {
        for yes in
            ["localhost", "localhost:5000", "LOCALHOST:1", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:443"]
        {
            assert!(is_loopback_registry(yes), "{yes}");
        }
        for no in [
            "docker.io",
            "index.docker.io",
            "localhost.example.com:5000",
            "127.0.0.1.nip.io:5000",
            "128.0.0.1:5000",
            "10.0.0.1",
            "[2001:db8::1]:5000",
            "[::1",
        ] {
            assert!(!is_loopback_registry(no), "{no}");
        }
    }

    #[test]
    fn invalid_references_say_why() {
        for bad in [
            "",
            " hello",
            "Hello/World",
            "UPPER/case",
            "hello:",
            "hello@sha256:abc",
            "hello@md5:0123456789abcdef0123456789abcdef",
            "localhost:5000/",
            "[::1]:5000",
            "[zz]:5000/hello",
            "[::1]:port/hello",
            "[::1]:5000/Hello",
        ] {
            match ImageRef::parse(bad) {
                Err(OciError::InvalidReference { reference, message }) => {
                    assert_eq!(reference, bad);
                    assert!(!message.is_empty());
                }
                other => panic!("{bad:?}: expected InvalidReference, got {other:?}"),
            }
        }
    }
}
