//! State: every object of the API, kept durably, with a change feed.
//!
//! The [`Store`] trait is the seam where a distributed backend (etcd) can replace the
//! embedded default, [`RedbStore`]. Objects are JSON documents addressed by
//! [`ObjectKey`]; every change is one transaction and gets the next `resourceVersion`.
//! Reads are served from memory; writes are acknowledged only once they are on disk.

mod history;
mod redb;

pub use self::redb::RedbStore;
pub use history::Expired;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::status::StatusError;

/// Where an object lives: its resource (`serving.knative.dev/services`), namespace
/// (empty for cluster-scoped objects) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub resource: Arc<str>,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Self {
        Self { resource: Arc::from(resource), namespace: namespace.to_string(), name: name.to_string() }
    }

    pub(crate) fn encode(&self) -> String {
        format!("{}/{}/{}", self.resource, self.namespace, self.name)
    }

    pub(crate) fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.rsplitn(3, '/');
        let name = parts.next()?;
        let namespace = parts.next()?;
        let resource = parts.next()?;
        Some(Self::new(resource, namespace, name))
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.resource, self.name)
        } else {
            write!(f, "{} {}/{}", self.resource, self.namespace, self.name)
        }
    }
}

/// An object as stored: shared, immutable.
pub type Object = Arc<Value>;

/// What a mutation decides to do with the object it was shown.
#[derive(Debug)]
pub enum Mutation {
    /// Write this object (create or replace). The store sets `metadata.resourceVersion`.
    Put(Value),
    /// Remove the object.
    Delete,
    /// Leave everything as it is.
    Unchanged,
}

/// A read-modify-write step run atomically by the store against the current object.
pub type MutateFn = Box<dyn FnOnce(Option<&Object>) -> Result<Mutation, StatusError> + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, in `resourceVersion` order.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub resource_version: u64,
    pub event_type: EventType,
    pub key: ObjectKey,
    /// The object after the change; for a deletion, the last state with the deletion's version.
    pub object: Object,
}

/// The outcome of a mutation: the object as written (`None` when deleted or absent).
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Option<Object>,
    /// The state before the mutation, as the mutation saw it.
    pub previous: Option<Object>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rejected(#[from] StatusError),
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// The state backend of the platform.
pub trait Store: Send + Sync + 'static {
    /// The object at `key`, if any.
    fn get(&self, key: &ObjectKey) -> Option<Object>;

    /// Every object of `resource`, in one namespace or all of them, in key order, with the
    /// `resourceVersion` the list is consistent with.
    fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Object>, u64);

    /// As [`Store::list`], with each object's JSON encoding (for answering lists without
    /// encoding every object again).
    fn list_json(&self, resource: &str, namespace: Option<&str>) -> (Vec<(Object, bytes::Bytes)>, u64);

    /// Run `mutate` against the current object at `key` and commit what it decides,
    /// durably, before resolving.
    fn mutate(&self, key: ObjectKey, mutate: MutateFn) -> BoxFuture<'static, Result<Written, StoreError>>;

    /// The latest committed `resourceVersion`.
    fn resource_version(&self) -> u64;

    /// A feed of every change committed from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>>;

    /// The changes committed after `resource_version` that are still remembered.
    fn events_since(&self, resource_version: u64) -> Result<Vec<Arc<WatchEvent>>, Expired>;
}

pub type SharedStore = Arc<dyn Store>;
