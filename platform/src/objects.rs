//! Create, replace, patch and delete, with Kubernetes' rules: server-set metadata,
//! optimistic concurrency on `resourceVersion`, `generation` bumped on spec changes, the
//! `status` subresource, defaults and validation. Every change is one store mutation.

use serde_json::{Value, json};

use crate::resources::{NAMESPACES, ResourceType, limits, meta, serving};
use crate::status::{Cause, Reason, StatusError};
use crate::store::{Mutation, ObjectKey, SharedStore, StoreError};

/// The kinds of patch the API takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
}

/// A patch as sent: its kind (from the content type) and body.
#[derive(Debug, Clone)]
pub struct Patch {
    pub kind: PatchKind,
    pub body: Value,
}

/// The object operations of the API, over a store.
#[derive(Clone)]
pub struct Objects {
    store: SharedStore,
}

fn store_error(err: StoreError) -> StatusError {
    match err {
        StoreError::Rejected(status) => status,
        StoreError::Backend(message) => StatusError::internal(message),
    }
}

impl Objects {
    pub fn new(store: SharedStore) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    fn key(resource: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey::new(resource.key, if resource.namespaced { namespace.unwrap_or("") } else { "" }, name)
    }

    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StatusError> {
        self.store
            .get(&Self::key(resource, namespace, name))
            .map(|o| (*o).clone())
            .ok_or_else(|| StatusError::not_found(resource.plural, resource.group, name))
    }

    /// Make sure the namespace exists (object operations in a missing namespace are 404).
    fn check_namespace(&self, resource: &ResourceType, namespace: Option<&str>) -> Result<(), StatusError> {
        match namespace {
            Some(ns) if resource.namespaced => {
                let key = ObjectKey::new(NAMESPACES.key, "", ns);
                match self.store.get(&key) {
                    Some(_) => Ok(()),
                    None => Err(StatusError::not_found(NAMESPACES.plural, NAMESPACES.group, ns)),
                }
            }
            _ => Ok(()),
        }
    }

    pub async fn create(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, StatusError> {
        check_type(resource, &mut object)?;
        let name = assign_name(&mut object)?;
        if let Some(problem) = serving::dns1035_problem(&name) {
            return Err(StatusError::invalid(
                resource.kind,
                resource.group,
                &name,
                vec![Cause::new("metadata.name", problem)],
            ));
        }
        set_namespace(resource, namespace, &mut object)?;
        self.check_namespace(resource, namespace)?;
        {
            let metadata = meta::metadata_mut(&mut object);
            for field in
                ["uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "selfLink"]
            {
                metadata.remove(field);
            }
            metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            metadata.insert("generation".into(), json!(1));
            metadata.insert("creationTimestamp".into(), json!(meta::now()));
        }
        if resource == &NAMESPACES {
            object["status"] = json!({"phase": "Active"});
        } else if resource.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        serving::set_defaults(resource, &mut object);
        check_valid(resource, &name, &object, None)?;
        limits::check_object_size(&object)?;
        if dry_run {
            return Ok(object);
        }
        let written = self
            .store
            .mutate(
                Self::key(resource, namespace, &name),
                Box::new(move |current| match current {
                    Some(_) => Err(StatusError::already_exists(resource.plural, resource.group, &name)),
                    None => Ok(Mutation::Put(object)),
                }),
            )
            .await
            .map_err(store_error)?;
        Ok(written.object.map(|o| (*o).clone()).unwrap_or_default())
    }

    /// PUT: replace the object (or its status), guarded by its `resourceVersion`.
    pub async fn replace(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, StatusError> {
        check_type(resource, &mut object)?;
        let body_name = meta::name(&object);
        if !body_name.is_empty() && body_name != name {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        set_namespace(resource, namespace, &mut object)?;
        let status_only = check_subresource(resource, subresource)?;
        let owned = name.to_string();
        self.update(
            resource,
            namespace,
            name,
            dry_run,
            move |_current| {
                let expected = meta::str_at(&object, "/metadata/resourceVersion").unwrap_or("");
                if expected.is_empty() {
                    return Err(StatusError::invalid(
                        resource.kind,
                        resource.group,
                        &owned,
                        vec![Cause::new("metadata.resourceVersion", "must be specified for an update")],
                    ));
                }
                Ok(object)
            },
            status_only,
        )
        .await
    }

    /// PATCH: apply a merge patch or a JSON patch to the current object.
    pub async fn patch(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch: Patch,
        dry_run: bool,
    ) -> Result<Value, StatusError> {
        let status_only = check_subresource(resource, subresource)?;
        let Patch { kind, body: patch } = patch;
        let json_patch = match kind {
            PatchKind::Json => Some(
                serde_json::from_value::<json_patch::Patch>(patch.clone())
                    .map_err(|e| StatusError::bad_request(format!("invalid JSON patch: {e}")))?,
            ),
            PatchKind::Merge => None,
        };
        self.update(
            resource,
            namespace,
            name,
            dry_run,
            move |current| {
                let mut patched = current.clone();
                match &json_patch {
                    Some(ops) => limits::apply_json_patch(&mut patched, &ops.0)?,
                    None => json_patch::merge(&mut patched, &patch),
                }
                // A patch that names no resourceVersion applies to whatever is current.
                if meta::str_at(&patched, "/metadata/resourceVersion").is_none_or(str::is_empty) {
                    meta::metadata_mut(&mut patched)
                        .insert("resourceVersion".into(), current["metadata"]["resourceVersion"].clone());
                }
                Ok(patched)
            },
            status_only,
        )
        .await
    }

    /// The shared tail of PUT and PATCH: `change` turns the current object into the
    /// requested one; this keeps what the server owns, checks the version, bumps the
    /// generation on a spec change, defaults and validates.
    async fn update(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        change: impl FnOnce(&Value) -> Result<Value, StatusError> + Send + 'static,
        status_only: bool,
    ) -> Result<Value, StatusError> {
        let owned = name.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let written = self
            .store
            .mutate(
                Self::key(resource, namespace, name),
                Box::new(move |current| {
                    let current = current
                        .ok_or_else(|| StatusError::not_found(resource.plural, resource.group, &owned))?;
                    let requested = change(current)?;
                    let expected = meta::str_at(&requested, "/metadata/resourceVersion").unwrap_or("");
                    let actual = meta::str_at(current, "/metadata/resourceVersion").unwrap_or("");
                    if expected != actual {
                        return Err(StatusError::conflict(resource.plural, resource.group, &owned));
                    }
                    let next = merge_update(resource, current, requested, status_only);
                    if !status_only {
                        check_valid(resource, &owned, &next, Some(current))?;
                    }
                    limits::check_object_size(&next)?;
                    if dry_run {
                        let _ = tx.send(next);
                        return Ok(Mutation::Unchanged);
                    }
                    Ok(if next == **current { Mutation::Unchanged } else { Mutation::Put(next) })
                }),
            )
            .await
            .map_err(store_error)?;
        if dry_run && let Ok(preview) = rx.await {
            return Ok(preview);
        }
        Ok(written.object.map(|o| (*o).clone()).unwrap_or_default())
    }

    pub async fn delete(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: Option<Value>,
        dry_run: bool,
    ) -> Result<Value, StatusError> {
        if resource == &NAMESPACES && name == "default" {
            return Err(StatusError::new(
                Reason::MethodNotAllowed,
                "namespace \"default\" may not be deleted",
            ));
        }
        let precondition = |field: &str| {
            options
                .as_ref()
                .and_then(|o| o.pointer(&format!("/preconditions/{field}")))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (uid, version) = (precondition("uid"), precondition("resourceVersion"));
        if dry_run {
            return self.get(resource, namespace, name);
        }
        let owned = name.to_string();
        let written = self
            .store
            .mutate(
                Self::key(resource, namespace, name),
                Box::new(move |current| {
                    let current = current
                        .ok_or_else(|| StatusError::not_found(resource.plural, resource.group, &owned))?;
                    let stale = uid.as_deref().is_some_and(|u| u != meta::uid(current))
                        || version
                            .as_deref()
                            .is_some_and(|v| Some(v) != meta::str_at(current, "/metadata/resourceVersion"));
                    if stale {
                        return Err(StatusError::conflict(resource.plural, resource.group, &owned));
                    }
                    Ok(Mutation::Delete)
                }),
            )
            .await
            .map_err(store_error)?;
        Ok(written.previous.map(|o| (*o).clone()).unwrap_or_default())
    }
}

/// `apiVersion` and `kind` must be this resource's (filled in when missing).
fn check_type(resource: &ResourceType, object: &mut Value) -> Result<(), StatusError> {
    let Some(map) = object.as_object_mut() else {
        return Err(StatusError::bad_request("the request body must be a JSON or YAML object"));
    };
    let api_version = resource.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(given) if given == api_version => {}
        Some(given) => {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({given}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(resource.kind));
        }
        Some(given) if given == resource.kind => {}
        Some(given) => {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({given}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    Ok(())
}

fn assign_name(object: &mut Value) -> Result<String, StatusError> {
    let metadata = meta::metadata_mut(object);
    if let Some(name) = metadata.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        return Ok(name.to_string());
    }
    let Some(prefix) = metadata.get("generateName").and_then(Value::as_str) else {
        return Err(StatusError::new(
            Reason::Invalid,
            "metadata.name: Required value: name or generateName is required",
        )
        .with_cause(Cause::new("metadata.name", "Required value: name or generateName is required")));
    };
    let suffix: String = uuid::Uuid::new_v4().simple().to_string().chars().take(5).collect();
    let name = format!("{prefix}{suffix}");
    metadata.insert("name".into(), json!(name));
    Ok(name)
}

fn set_namespace(
    resource: &ResourceType,
    namespace: Option<&str>,
    object: &mut Value,
) -> Result<(), StatusError> {
    let metadata = meta::metadata_mut(object);
    if !resource.namespaced {
        metadata.remove("namespace");
        return Ok(());
    }
    let Some(namespace) = namespace else {
        return Err(StatusError::bad_request(format!("{} must be created in a namespace", resource.plural)));
    };
    match metadata.get("namespace").and_then(Value::as_str) {
        Some(given) if !given.is_empty() && given != namespace => Err(StatusError::bad_request(format!(
            "the namespace of the provided object ({given}) does not match the namespace sent on the request ({namespace})"
        ))),
        _ => {
            metadata.insert("namespace".into(), json!(namespace));
            Ok(())
        }
    }
}

fn check_subresource(resource: &ResourceType, subresource: Option<&str>) -> Result<bool, StatusError> {
    match subresource {
        None => Ok(false),
        Some("status") if resource.status_subresource => Ok(true),
        Some(other) => Err(StatusError::new(
            Reason::NotFound,
            format!("{} has no subresource {other:?}", resource.plural),
        )),
    }
}

fn check_valid(
    resource: &ResourceType,
    name: &str,
    object: &Value,
    previous: Option<&Value>,
) -> Result<(), StatusError> {
    let causes = serving::validate(resource, object, previous);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(StatusError::invalid(resource.kind, resource.group, name, causes))
    }
}

/// The object an update leaves: what the server owns comes from `current`.
fn merge_update(resource: &ResourceType, current: &Value, requested: Value, status_only: bool) -> Value {
    if status_only {
        let mut next = current.clone();
        next["status"] = requested.get("status").cloned().unwrap_or(Value::Null);
        if next["status"].is_null()
            && let Some(map) = next.as_object_mut()
        {
            map.remove("status");
        }
        return next;
    }
    let mut next = requested;
    {
        let metadata = meta::metadata_mut(&mut next);
        for field in ["uid", "creationTimestamp", "namespace", "name", "generation"] {
            match current["metadata"].get(field) {
                Some(value) => metadata.insert(field.into(), value.clone()),
                None => metadata.remove(field),
            };
        }
        metadata.insert("resourceVersion".into(), current["metadata"]["resourceVersion"].clone());
    }
    if resource.status_subresource
        && let Some(map) = next.as_object_mut()
    {
        match current.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    serving::set_defaults(resource, &mut next);
    if next.get("spec") != current.get("spec") {
        meta::metadata_mut(&mut next).insert("generation".into(), json!(meta::generation(current) + 1));
    }
    next
}
