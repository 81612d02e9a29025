//! The table of resource types: what discovery lists and what the API routes to.

/// One kind of object the API serves.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group (`v1`).
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    /// Whether `status` is only written through the `/status` subresource.
    pub status_subresource: bool,
    /// Written by the platform only: users may read, watch and delete these objects
    /// (the autoscaler replaces a deleted pod), not create or change them.
    pub managed: bool,
    /// The store's name for this resource: `{group or "core"}/{plural}`.
    pub key: &'static str,
}

impl ResourceType {
    /// `serving.knative.dev/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `ServiceList`
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The path prefix of this resource in a namespace (or cluster-wide when `namespace` is None).
    pub fn path(&self, namespace: Option<&str>) -> String {
        let root = if self.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{root}/namespaces/{ns}/{}", self.plural),
            _ => format!("{root}/{}", self.plural),
        }
    }
}

pub static NAMESPACES: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    short_names: &["ns"],
    categories: &[],
    namespaced: false,
    status_subresource: true,
    managed: false,
    key: "core/namespaces",
};

pub static SERVICES: ResourceType = ResourceType {
    group: "serving.knative.dev",
    version: "v1",
    plural: "services",
    singular: "service",
    kind: "Service",
    short_names: &["ksvc", "ksvcs"],
    categories: &["all", "knative", "serving"],
    namespaced: true,
    status_subresource: true,
    managed: false,
    key: "serving.knative.dev/services",
};

pub static CONFIGURATIONS: ResourceType = ResourceType {
    group: "serving.knative.dev",
    version: "v1",
    plural: "configurations",
    singular: "configuration",
    kind: "Configuration",
    short_names: &["config", "cfg"],
    categories: &["all", "knative", "serving"],
    namespaced: true,
    status_subresource: true,
    managed: false,
    key: "serving.knative.dev/configurations",
};

pub static REVISIONS: ResourceType = ResourceType {
    group: "serving.knative.dev",
    version: "v1",
    plural: "revisions",
    singular: "revision",
    kind: "Revision",
    short_names: &["rev"],
    categories: &["all", "knative", "serving"],
    namespaced: true,
    status_subresource: true,
    managed: false,
    key: "serving.knative.dev/revisions",
};

pub static ROUTES: ResourceType = ResourceType {
    group: "serving.knative.dev",
    version: "v1",
    plural: "routes",
    singular: "route",
    kind: "Route",
    short_names: &["rt"],
    categories: &["all", "knative", "serving"],
    namespaced: true,
    status_subresource: true,
    managed: false,
    key: "serving.knative.dev/routes",
};

/// The running units of revisions, as the autoscaler keeps them.
pub static PODS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    short_names: &["po"],
    categories: &["all"],
    namespaced: true,
    status_subresource: true,
    managed: true,
    key: "core/pods",
};

pub static BROKERS: ResourceType = ResourceType {
    group: "eventing.knative.dev",
    version: "v1",
    plural: "brokers",
    singular: "broker",
    kind: "Broker",
    short_names: &[],
    categories: &["all", "knative", "eventing"],
    namespaced: true,
    status_subresource: true,
    managed: false,
    key: "eventing.knative.dev/brokers",
};

pub static TRIGGERS: ResourceType = ResourceType {
    group: "eventing.knative.dev",
    version: "v1",
    plural: "triggers",
    singular: "trigger",
    kind: "Trigger",
    short_names: &[],
    categories: &["all", "knative", "eventing"],
    namespaced: true,
    status_subresource: true,
    managed: false,
    key: "eventing.knative.dev/triggers",
};

pub static PINGSOURCES: ResourceType = ResourceType {
    group: "sources.knative.dev",
    version: "v1",
    plural: "pingsources",
    singular: "pingsource",
    kind: "PingSource",
    short_names: &[],
    categories: &["all", "knative", "sources"],
    namespaced: true,
    status_subresource: true,
    managed: false,
    key: "sources.knative.dev/pingsources",
};

/// Every stored resource type.
pub static ALL: &[&ResourceType] =
    &[&NAMESPACES, &SERVICES, &CONFIGURATIONS, &REVISIONS, &ROUTES, &PODS, &BROKERS, &TRIGGERS, &PINGSOURCES];

/// The resource at `/apis/{group}/{version}/.../{plural}` (group empty for `/api/v1`).
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    ALL.iter().copied().find(|t| t.group == group && t.version == version && t.plural == plural)
}

/// The resource whose objects say `apiVersion: {api_version}` and `kind: {kind}`.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    ALL.iter().copied().find(|t| t.kind == kind && t.api_version() == api_version)
}
