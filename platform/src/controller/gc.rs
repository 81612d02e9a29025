//! Garbage collection: when an owner goes, what it owned goes too (background
//! propagation, as Kubernetes does by default); a deleted namespace takes its objects.

use std::collections::HashSet;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::objects::Objects;
use crate::resources::{ALL, NAMESPACES, ResourceType, meta};
use crate::store::{EventType, ObjectKey, WatchEvent};

pub fn spawn(objects: Objects, shutdown: CancellationToken) -> JoinHandle<()> {
    let task = async move {
        let mut events = objects.store().subscribe();
        sweep(&objects).await;
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(event) if event.event_type == EventType::Deleted => collect(&objects, &event).await,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => sweep(&objects).await,
                Err(RecvError::Closed) => return,
            }
        }
    };
    tokio::spawn(task.instrument(tracing::info_span!("garbage collector")))
}

fn namespaced() -> impl Iterator<Item = &'static ResourceType> {
    ALL.iter().copied().filter(|r| r.namespaced)
}

async fn delete(objects: &Objects, resource: &'static ResourceType, key: &ObjectKey) {
    match objects.delete(resource, Some(&key.namespace), &key.name, None, false).await {
        Ok(_) => tracing::debug!(object = %key, "deleted a dependent"),
        Err(err) if err.code() == 404 => {}
        Err(err) => tracing::warn!(object = %key, error = %err, "deleting a dependent failed"),
    }
}

/// Delete the dependents of the object `event` deleted.
async fn collect(objects: &Objects, event: &WatchEvent) {
    let store = objects.store();
    if &*event.key.resource == NAMESPACES.key {
        for resource in namespaced() {
            for object in store.list(resource.key, Some(&event.key.name)).0 {
                delete(
                    objects,
                    resource,
                    &ObjectKey::new(resource.key, &event.key.name, meta::name(&object)),
                )
                .await;
            }
        }
        return;
    }
    let owner = meta::uid(&event.object);
    if owner.is_empty() {
        return;
    }
    for resource in namespaced() {
        for object in store.list(resource.key, Some(&event.key.namespace)).0 {
            if meta::is_owned_by(&object, owner) {
                delete(
                    objects,
                    resource,
                    &ObjectKey::new(resource.key, &event.key.namespace, meta::name(&object)),
                )
                .await;
            }
        }
    }
}

/// Delete whatever lost its controller while nobody was looking (a crash between an
/// owner's deletion and its dependents').
async fn sweep(objects: &Objects) {
    let store = objects.store();
    let mut uids = HashSet::new();
    for resource in ALL {
        for object in store.list(resource.key, None).0 {
            uids.insert(meta::uid(&object).to_string());
        }
    }
    for resource in namespaced() {
        for object in store.list(resource.key, None).0 {
            if let Some(owner) = meta::controller_uid(&object)
                && !uids.contains(owner)
            {
                let key = ObjectKey::new(resource.key, meta::namespace(&object), meta::name(&object));
                delete(objects, resource, &key).await;
            }
        }
    }
}
