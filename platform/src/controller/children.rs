//! Writing what a reconciler owns: children kept as desired, and status.

use serde_json::Value;

use super::runner::ReconcileError;
use crate::objects::Objects;
use crate::resources::{ResourceType, meta, serving};
use crate::store::{Mutation, ObjectKey};

/// A child as it stands after [`ensure`].
pub enum Child {
    Current(Value),
    /// An object of that name exists but belongs to someone else.
    NotOwned,
}

/// Labels and annotations that tools add to what a user applies, never copied to children.
const NOT_INHERITED: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// `metadata.labels`/`annotations` of `object`, without the ones not passed on.
pub fn inherited(object: &Value, field: &str) -> serde_json::Map<String, Value> {
    let mut map = object["metadata"][field].as_object().cloned().unwrap_or_default();
    for key in NOT_INHERITED {
        map.remove(*key);
    }
    map
}

/// Make the child `desired` (of `resource`, owned by `owner_uid`) exist as desired:
/// create it, or replace its spec, labels, annotations and owner references.
pub async fn ensure(
    objects: &Objects,
    resource: &'static ResourceType,
    mut desired: Value,
    owner_uid: &str,
) -> Result<Child, ReconcileError> {
    let (namespace, name) = (meta::namespace(&desired).to_string(), meta::name(&desired).to_string());
    serving::set_defaults(resource, &mut desired);
    let current = objects.store().get(&ObjectKey::new(resource.key, &namespace, &name));
    let Some(current) = current else {
        // Should someone create it meanwhile (AlreadyExists), the retry sees it.
        return objects
            .create(resource, Some(&namespace), desired, false)
            .await
            .map(Child::Current)
            .map_err(Into::into);
    };
    if !meta::is_owned_by(&current, owner_uid) {
        return Ok(Child::NotOwned);
    }
    let same = ["labels", "annotations", "ownerReferences"]
        .iter()
        .all(|field| current["metadata"].get(*field) == desired["metadata"].get(*field))
        && current.get("spec") == desired.get("spec");
    if same {
        return Ok(Child::Current((*current).clone()));
    }
    let mut next = (*current).clone();
    for field in ["labels", "annotations", "ownerReferences"] {
        match desired["metadata"].get(field) {
            Some(value) => meta::metadata_mut(&mut next).insert(field.into(), value.clone()),
            None => meta::metadata_mut(&mut next).remove(field),
        };
    }
    next["spec"] = desired["spec"].clone();
    let replaced = objects.replace(resource, Some(&namespace), &name, None, next, false).await?;
    Ok(Child::Current(replaced))
}

/// Set `status` on the object at `key` if it is still the one with `uid` and the status changed.
pub async fn write_status(
    objects: &Objects,
    key: ObjectKey,
    uid: &str,
    status: Value,
) -> Result<(), ReconcileError> {
    write_status_keeping(objects, key, uid, status, |_, _| {}).await
}

/// As [`write_status`], with `keep(current, status)` run against the object as it stands at
/// the write, to carry over the parts of its status someone else owns.
pub async fn write_status_keeping(
    objects: &Objects,
    key: ObjectKey,
    uid: &str,
    mut status: Value,
    keep: impl FnOnce(&Value, &mut Value) + Send + 'static,
) -> Result<(), ReconcileError> {
    let uid = uid.to_string();
    objects
        .store()
        .mutate(
            key,
            Box::new(move |current| {
                let Some(current) = current.filter(|c| meta::uid(c) == uid) else {
                    return Ok(Mutation::Unchanged);
                };
                keep(current, &mut status);
                if current.get("status") == Some(&status) {
                    return Ok(Mutation::Unchanged);
                }
                let mut next = (**current).clone();
                next["status"] = status;
                Ok(Mutation::Put(next))
            }),
        )
        .await?;
    Ok(())
}
