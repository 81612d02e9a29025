//! Where a request points: `/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/{sub}`.

use crate::resources::{self, ResourceType};
use crate::status::{Reason, StatusError};

/// A request path resolved to a resource type and, as far as given, an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: &'static ResourceType,
    /// The namespace of the path; `None` for cluster-wide lists and cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub fn not_found() -> StatusError {
    StatusError::new(Reason::NotFound, "the server could not find the requested resource")
}

/// Resolve `path` (without the query).
pub fn parse(path: &str) -> Result<Target, StatusError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found()),
    };
    let lookup = |plural: &str| resources::find(group, version, plural);
    let target = |resource, namespace: Option<&str>, name: Option<&&str>, sub: Option<&&str>| Target {
        resource,
        namespace: namespace.map(str::to_string),
        name: name.map(|n| n.to_string()),
        subresource: sub.map(|s| s.to_string()),
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => {
            if let Some(resource) = lookup(plural).filter(|r| r.namespaced) {
                return Ok(target(resource, Some(ns), tail.first(), tail.get(1)));
            }
            // `/api/v1/namespaces/{name}/status`: a subresource of a namespace.
            match (lookup("namespaces"), tail) {
                (Some(resource), []) => Ok(target(resource, None, Some(ns), Some(plural))),
                _ => Err(not_found()),
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            let resource = lookup(plural).ok_or_else(not_found)?;
            if resource.namespaced && !tail.is_empty() {
                return Err(not_found());
            }
            Ok(target(resource, None, tail.first(), tail.get(1)))
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{NAMESPACES, SERVICES};

    #[test]
    fn resolves_the_kubernetes_shapes() {
        let t = parse("/apis/serving.knative.dev/v1/namespaces/default/services/hello").unwrap();
        assert_eq!(t.resource, &SERVICES);
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("hello"));
        let t = parse("/apis/serving.knative.dev/v1/namespaces/default/services/hello/status").unwrap();
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse("/apis/serving.knative.dev/v1/services").unwrap();
        assert_eq!((t.namespace, t.name), (None, None));
        let t = parse("/api/v1/namespaces/default").unwrap();
        assert_eq!(t.resource, &NAMESPACES);
        assert_eq!(t.name.as_deref(), Some("default"));
        let t = parse("/api/v1/namespaces/default/status").unwrap();
        assert_eq!(t.subresource.as_deref(), Some("status"));
        assert_eq!(parse("/api/v1/namespaces").unwrap().name, None);
    }

    #[test]
    fn unknown_resources_are_404() {
        for path in [
            "/apis/serving.knative.dev/v1/namespaces/default/widgets",
            "/apis/nope.dev/v1/services",
            "/apis/serving.knative.dev/v1/services/hello",
            "/api/v1/namespaces/default/services/a/b/c",
            "/healthz",
        ] {
            assert_eq!(parse(path).unwrap_err().code(), 404, "{path}");
        }
    }
}
