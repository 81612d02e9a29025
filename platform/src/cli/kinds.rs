//! The kinds the CLI knows: the names a user types (`ksvc`, `revisions`, `ns`) and where each
//! kind lives in the REST API, from the API's own table of kinds.

/// The CLI addresses the same kinds the API serves: one table, in [`crate::resources`].
pub use crate::resources::ResourceType as Kind;

/// Every kind the CLI can name. The first match of a name wins.
static KINDS: &[&Kind] = crate::resources::ALL;

impl Kind {
    /// The name kubectl prints before an object's name: `service.serving.knative.dev`, `namespace`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }

    /// The collection: in `namespace`, or across all namespaces when `namespace` is `None`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        self.path(namespace)
    }

    /// One object of this kind.
    pub fn object_path(&self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.collection_path(Some(namespace)))
    }

    fn answers_to(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let qualified = |base: &str| !self.group.is_empty() && name == format!("{base}.{}", self.group);
        name == self.plural
            || name == self.singular
            || name == self.kind.to_ascii_lowercase()
            || self.short_names.contains(&name.as_str())
            || qualified(self.plural)
            || qualified(self.singular)
    }
}

/// The kind a user means by `name`: plural, singular, short name, or `plural.group`.
pub fn lookup(name: &str) -> anyhow::Result<&'static Kind> {
    KINDS.iter().copied().find(|k| k.answers_to(name)).ok_or_else(|| {
        let known: Vec<&str> = KINDS.iter().map(|k| k.plural).collect();
        anyhow::anyhow!("unknown kind {name:?}: known kinds are {}", known.join(", "))
    })
}

/// The kind of an object that says `apiVersion: {api_version}` and `kind: {kind}`.
pub fn for_object(api_version: &str, kind: &str) -> anyhow::Result<&'static Kind> {
    KINDS.iter().copied().find(|k| k.kind == kind && k.api_version() == api_version).ok_or_else(|| {
        let known: Vec<String> = KINDS.iter().map(|k| format!("{}/{}", k.api_version(), k.kind)).collect();
        anyhow::anyhow!(
            "unknown kind {kind:?} in apiVersion {api_version:?}: known kinds are {}",
            known.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_name_finds_its_kind() {
        let cases = [
            ("ksvc", "Service"),
            ("service", "Service"),
            ("services", "Service"),
            ("Service", "Service"),
            ("services.serving.knative.dev", "Service"),
            ("revision", "Revision"),
            ("revisions", "Revision"),
            ("rev", "Revision"),
            ("route", "Route"),
            ("routes", "Route"),
            ("rt", "Route"),
            ("configuration", "Configuration"),
            ("configurations", "Configuration"),
            ("config", "Configuration"),
            ("cfg", "Configuration"),
            ("namespace", "Namespace"),
            ("namespaces", "Namespace"),
            ("ns", "Namespace"),
        ];
        for (name, want) in cases {
            assert_eq!(lookup(name).unwrap().kind, want, "{name}");
        }
    }

    #[test]
    fn an_unknown_name_is_named_in_the_error() {
        let err = lookup("pods-of-doom").unwrap_err().to_string();
        assert!(err.contains("\"pods-of-doom\""), "{err}");
        assert!(err.contains("services"), "{err}");
    }

    #[test]
    fn objects_map_to_kinds_by_api_version_and_kind() {
        assert_eq!(for_object("serving.knative.dev/v1", "Revision").unwrap().plural, "revisions");
        assert_eq!(for_object("v1", "Namespace").unwrap().plural, "namespaces");
        let err = for_object("serving.knative.dev/v1alpha1", "Service").unwrap_err().to_string();
        assert!(err.contains("v1alpha1"), "{err}");
        assert!(for_object("apps/v1", "Deployment").is_err());
    }

    #[test]
    fn paths_follow_the_kubernetes_layout() {
        let services = lookup("ksvc").unwrap();
        assert_eq!(
            services.object_path("default", "hello"),
            "/apis/serving.knative.dev/v1/namespaces/default/services/hello"
        );
        assert_eq!(services.collection_path(None), "/apis/serving.knative.dev/v1/services");
        let namespaces = lookup("ns").unwrap();
        assert_eq!(namespaces.object_path("ignored", "team-a"), "/api/v1/namespaces/team-a");
        assert_eq!(namespaces.collection_path(Some("ignored")), "/api/v1/namespaces");
        assert_eq!(services.qualified(), "service.serving.knative.dev");
        assert_eq!(namespaces.qualified(), "namespace");
    }
}
