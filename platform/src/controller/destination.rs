//! Resolving a Knative `Destination` (`ref` and/or `uri`) to the URI events are sent to, as
//! Knative's resolver does: an addressable's `status.address.url`, with `uri` as a path
//! relative to it; or `uri` alone.

use serde_json::Value;

use super::Context;
use crate::resources::{BROKERS, ResourceType, SERVICES, find_kind, meta};
use crate::store::{ObjectKey, WatchEvent};

/// The URI, or why it cannot be resolved (yet).
pub fn resolve(context: &Context, namespace: &str, destination: &Value) -> Result<String, String> {
    let uri = destination.get("uri").and_then(Value::as_str).filter(|u| !u.is_empty());
    let Some(reference) = destination.get("ref").filter(|r| r.is_object()) else {
        return uri
            .map(str::to_owned)
            .ok_or_else(|| "the destination names neither a ref nor a uri".to_owned());
    };
    let kind = reference["kind"].as_str().unwrap_or("");
    let api_version = reference["apiVersion"].as_str().unwrap_or("");
    let name = reference["name"].as_str().unwrap_or("");
    let namespace = reference["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(namespace);
    let resource = find_kind(api_version, kind)
        .filter(|r| *r == &SERVICES || *r == &BROKERS)
        .ok_or_else(|| format!("{kind} ({api_version}) is not addressable: use a Service or a Broker"))?;
    let Some(object) = context.objects.store().get(&ObjectKey::new(resource.key, namespace, name)) else {
        return Err(format!("{kind} {namespace}/{name} does not exist"));
    };
    let Some(base) = meta::str_at(&object, "/status/address/url").filter(|u| !u.is_empty()) else {
        return Err(format!("{kind} {namespace}/{name} has no address yet"));
    };
    Ok(match uri {
        Some(path) if !path.contains("://") => {
            format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
        }
        _ => base.to_string(),
    })
}

/// Whether a change to the object at `key` may change what `destination` resolves to.
pub fn refers_to(destination: Option<&Value>, namespace: &str, key: &ObjectKey) -> bool {
    let Some(reference) = destination.and_then(|d| d.get("ref")) else { return false };
    let kind = reference["kind"].as_str().unwrap_or("");
    let api_version = reference["apiVersion"].as_str().unwrap_or("");
    let ref_namespace = reference["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(namespace);
    find_kind(api_version, kind).is_some_and(|r| r.key == &*key.resource)
        && reference["name"].as_str() == Some(key.name.as_str())
        && ref_namespace == key.namespace
}

/// The objects of `dependent` a change concerns: the changed object itself when it is one,
/// else, when a Service or Broker changed, those in its namespace that `depends(object, key)`.
pub fn keys_for(
    context: &Context,
    dependent: &'static ResourceType,
    event: &WatchEvent,
    depends: impl Fn(&Value, &ObjectKey) -> bool,
) -> Vec<ObjectKey> {
    let key = &event.key;
    if &*key.resource == dependent.key {
        return vec![key.clone()];
    }
    if &*key.resource != SERVICES.key && &*key.resource != BROKERS.key {
        return Vec::new();
    }
    let (objects, _) = context.objects.store().list(dependent.key, Some(&key.namespace));
    objects
        .iter()
        .filter(|object| depends(object, key))
        .map(|object| ObjectKey::new(dependent.key, meta::namespace(object), meta::name(object)))
        .collect()
}
