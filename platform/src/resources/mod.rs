//! The kinds the API serves, their Knative shapes, defaults and validation.

pub mod eventing;
pub mod limits;
pub mod meta;
pub mod serving;
mod types;

pub use types::{
    ALL, BROKERS, CONFIGURATIONS, NAMESPACES, PINGSOURCES, PODS, REVISIONS, ROUTES, ResourceType, SERVICES,
    TRIGGERS, find, find_kind,
};
