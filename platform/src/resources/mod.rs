//! The kinds the API serves, their Knative shapes, defaults and validation.

pub mod meta;
pub mod serving;
mod types;

pub use types::{
    ALL, CONFIGURATIONS, NAMESPACES, PODS, REVISIONS, ROUTES, ResourceType, SERVICES, find, find_kind,
};
