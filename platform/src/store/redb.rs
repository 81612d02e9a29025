//! The embedded store: one redb file, group commit, an in-memory read view.
//!
//! Writers send their mutation to one writer thread. It drains whatever is queued, runs
//! the mutations one after another inside a single write transaction, commits it durably
//! and only then publishes the changes and answers each caller. Concurrent writers so
//! share one fsync without ever being told "done" before their change is on disk.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use super::history::{Expired, History};
use super::{EventType, MutateFn, Mutation, Object, ObjectKey, Store, StoreError, WatchEvent, Written};
use crate::status::StatusError;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RESOURCE_VERSION: &str = "resource_version";
/// How many mutations one transaction takes at most.
const MAX_BATCH: usize = 1024;
/// How many past changes a watch can resume from.
const HISTORY: usize = 100_000;

struct Request {
    key: ObjectKey,
    mutate: MutateFn,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// An object and the JSON it was stored as, so that lists are written without encoding.
#[derive(Clone)]
struct Entry {
    object: Object,
    json: Bytes,
}

struct View {
    objects: BTreeMap<ObjectKey, Entry>,
    history: History,
    resource_version: u64,
}

struct Shared {
    view: RwLock<View>,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

/// [`Store`] on a redb file.
pub struct RedbStore {
    shared: Arc<Shared>,
    /// `None` only while dropping: closing it stops the writer.
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<thread::JoinHandle<()>>,
}

impl RedbStore {
    /// Open (or create) the store at `path` and load every object into the read view.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| backend("opening", path, e))?;
        let (objects, resource_version) = load(&db).map_err(|e| backend("reading", path, e))?;
        let shared = Arc::new(Shared {
            view: RwLock::new(View {
                objects,
                history: History::new(HISTORY, resource_version),
                resource_version,
            }),
            events: broadcast::channel(65_536).0,
        });
        let (requests, queue) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = thread::Builder::new()
            .name("skiff-store-writer".into())
            .spawn(move || writer(db, queue, writer_shared))
            .map_err(|e| StoreError::Backend(format!("starting the store writer: {e}")))?;
        Ok(Self { shared, requests: Some(requests), writer: Some(writer) })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.shared.view.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn backend(what: &str, path: &Path, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what} {}: {err}", path.display()))
}

fn load(db: &Database) -> Result<(BTreeMap<ObjectKey, Entry>, u64), Box<dyn std::error::Error>> {
    // Make sure both tables exist, so that a fresh file reads like an empty one.
    let txn = db.begin_write()?;
    txn.open_table(OBJECTS)?;
    txn.open_table(META)?;
    txn.commit()?;

    let txn = db.begin_read()?;
    let table = txn.open_table(OBJECTS)?;
    let mut objects = BTreeMap::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let key = ObjectKey::decode(key.value()).ok_or_else(|| format!("bad key {:?}", key.value()))?;
        let json = Bytes::copy_from_slice(value.value());
        let object: Value = serde_json::from_slice(&json)?;
        objects.insert(key, Entry { object: Arc::new(object), json });
    }
    let meta = txn.open_table(META)?;
    let resource_version = meta.get(RESOURCE_VERSION)?.map(|v| v.value()).unwrap_or(0);
    Ok((objects, resource_version))
}

impl Store for RedbStore {
    fn get(&self, key: &ObjectKey) -> Option<Object> {
        self.read().objects.get(key).map(|entry| entry.object.clone())
    }

    fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Object>, u64) {
        let (items, version) = self.list_json(resource, namespace);
        (items.into_iter().map(|(object, _)| object).collect(), version)
    }

    fn list_json(&self, resource: &str, namespace: Option<&str>) -> (Vec<(Object, Bytes)>, u64) {
        let view = self.read();
        let start = ObjectKey::new(resource, namespace.unwrap_or(""), "");
        let items = view
            .objects
            .range((Bound::Included(&start), Bound::Unbounded))
            .take_while(|(key, _)| {
                &*key.resource == resource && namespace.is_none_or(|ns| key.namespace == ns)
            })
            .map(|(_, entry)| (entry.object.clone(), entry.json.clone()))
            .collect();
        (items, view.resource_version)
    }

    fn mutate(&self, key: ObjectKey, mutate: MutateFn) -> BoxFuture<'static, Result<Written, StoreError>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.requests.as_ref().map(|requests| requests.send(Request { key, mutate, reply }));
        async move {
            match sent {
                Some(Ok(())) => {}
                _ => return Err(StoreError::Backend("the store writer has stopped".into())),
            }
            answer.await.map_err(|_| StoreError::Backend("the store writer has stopped".into()))?
        }
        .boxed()
    }

    fn resource_version(&self) -> u64 {
        self.read().resource_version
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.shared.events.subscribe()
    }

    fn events_since(&self, resource_version: u64) -> Result<Vec<Arc<WatchEvent>>, Expired> {
        self.read().history.since(resource_version)
    }
}

impl Drop for RedbStore {
    /// Let the writer finish what is queued and close the file, so that it can be opened again.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn writer(db: Database, queue: mpsc::Receiver<Request>, shared: Arc<Shared>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&db, batch, &shared);
    }
}

struct Outcome {
    reply: oneshot::Sender<Result<Written, StoreError>>,
    result: Result<Written, StoreError>,
}

fn commit_batch(db: &Database, batch: Vec<Request>, shared: &Shared) {
    let mut resource_version = shared.view.read().unwrap_or_else(|p| p.into_inner()).resource_version;
    let mut overlay: HashMap<ObjectKey, Option<Entry>> = HashMap::new();
    let mut events = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());

    let applied = (|| -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(OBJECTS)?;
            let mut meta = txn.open_table(META)?;
            for Request { key, mutate, reply } in batch {
                let current = match overlay.get(&key) {
                    Some(pending) => pending.as_ref().map(|entry| entry.object.clone()),
                    None => shared
                        .view
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .objects
                        .get(&key)
                        .map(|entry| entry.object.clone()),
                };
                let decided =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mutate(current.as_ref())))
                        .unwrap_or_else(|_| {
                            Err(StatusError::internal(format!("mutation of {key} panicked")))
                        });
                let result = match decided {
                    Err(err) => Err(StoreError::Rejected(err)),
                    Ok(Mutation::Unchanged) => Ok(Written { object: current.clone(), previous: current }),
                    Ok(Mutation::Put(mut object)) => {
                        resource_version += 1;
                        set_resource_version(&mut object, resource_version);
                        let bytes =
                            serde_json::to_vec(&object).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
                        table.insert(key.encode().as_str(), bytes.as_slice())?;
                        let object = Arc::new(object);
                        let event_type =
                            if current.is_some() { EventType::Modified } else { EventType::Added };
                        events.push(event(resource_version, event_type, &key, object.clone()));
                        overlay.insert(key, Some(Entry { object: object.clone(), json: Bytes::from(bytes) }));
                        Ok(Written { object: Some(object), previous: current })
                    }
                    Ok(Mutation::Delete) => match &current {
                        None => Ok(Written { object: None, previous: None }),
                        Some(last) => {
                            resource_version += 1;
                            table.remove(key.encode().as_str())?;
                            let mut tombstone = (**last).clone();
                            set_resource_version(&mut tombstone, resource_version);
                            events.push(event(
                                resource_version,
                                EventType::Deleted,
                                &key,
                                Arc::new(tombstone),
                            ));
                            overlay.insert(key, None);
                            Ok(Written { object: None, previous: current })
                        }
                    },
                };
                outcomes.push(Outcome { reply, result });
            }
            meta.insert(RESOURCE_VERSION, resource_version)?;
        }
        if events.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(())
    })();

    if let Err(err) = applied {
        let message = format!("committing to the store failed: {err}");
        tracing::error!("{message}");
        for outcome in outcomes {
            let result = match outcome.result {
                Err(rejected) => Err(rejected),
                Ok(_) => Err(StoreError::Backend(message.clone())),
            };
            let _ = outcome.reply.send(result);
        }
        return;
    }

    {
        let mut view = shared.view.write().unwrap_or_else(|p| p.into_inner());
        for (key, object) in overlay {
            match object {
                Some(entry) => view.objects.insert(key, entry),
                None => view.objects.remove(&key),
            };
        }
        view.resource_version = resource_version;
        for event in &events {
            view.history.push(event.clone());
        }
    }
    for event in events {
        // No subscribers is fine: nobody is watching.
        let _ = shared.events.send(event);
    }
    for outcome in outcomes {
        let _ = outcome.reply.send(outcome.result);
    }
}

fn event(resource_version: u64, event_type: EventType, key: &ObjectKey, object: Object) -> Arc<WatchEvent> {
    Arc::new(WatchEvent { resource_version, event_type, key: key.clone(), object })
}

fn set_resource_version(object: &mut Value, resource_version: u64) {
    if let Some(map) = object.as_object_mut() {
        let metadata = map.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("resourceVersion".into(), Value::String(resource_version.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Reason;
    use serde_json::json;

    fn put(value: Value) -> MutateFn {
        Box::new(move |_| Ok(Mutation::Put(value)))
    }

    #[tokio::test]
    async fn writes_survive_reopening_with_their_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let key = ObjectKey::new("serving.knative.dev/services", "default", "hello");
        {
            let store = RedbStore::open(&path).unwrap();
            let written =
                store.mutate(key.clone(), put(json!({"metadata": {"name": "hello"}}))).await.unwrap();
            assert_eq!(written.object.unwrap()["metadata"]["resourceVersion"], "1");
            store.mutate(key.clone(), put(json!({"metadata": {"name": "hello"}, "v": 2}))).await.unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let object = store.get(&key).unwrap();
        assert_eq!(object["v"], 2);
        assert_eq!(object["metadata"]["resourceVersion"], "2");
        assert_eq!(store.resource_version(), 2);
    }

    #[tokio::test]
    async fn concurrent_writers_share_commits_and_get_distinct_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("s.redb")).unwrap());
        let mut events = store.subscribe();
        let writes = (0..200).map(|i| {
            let key = ObjectKey::new("r", "ns", &format!("o{i}"));
            store.mutate(key, put(json!({"metadata": {}})))
        });
        let results = futures::future::join_all(writes).await;
        let mut versions: Vec<String> = results
            .into_iter()
            .map(|r| r.unwrap().object.unwrap()["metadata"]["resourceVersion"].as_str().unwrap().to_string())
            .collect();
        versions.sort();
        versions.dedup();
        assert_eq!(versions.len(), 200);
        let (items, rv) = store.list("r", Some("ns"));
        assert_eq!(items.len(), 200);
        assert_eq!(rv, 200);
        assert_eq!(events.recv().await.unwrap().resource_version, 1);
    }

    #[tokio::test]
    async fn a_rejected_mutation_writes_nothing_and_others_still_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb")).unwrap();
        let rejected = store.mutate(
            ObjectKey::new("r", "ns", "a"),
            Box::new(|_| Err(StatusError::new(Reason::Conflict, "no"))),
        );
        let accepted = store.mutate(ObjectKey::new("r", "ns", "b"), put(json!({})));
        let (rejected, accepted) = tokio::join!(rejected, accepted);
        assert!(matches!(rejected, Err(StoreError::Rejected(e)) if e.reason == Reason::Conflict));
        assert!(accepted.is_ok());
        assert!(store.get(&ObjectKey::new("r", "ns", "a")).is_none());
        assert_eq!(store.resource_version(), 1);
    }

    #[tokio::test]
    async fn deletion_publishes_the_last_state_and_history_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb")).unwrap();
        let key = ObjectKey::new("r", "ns", "a");
        store.mutate(key.clone(), put(json!({"spec": 1}))).await.unwrap();
        store.mutate(key.clone(), Box::new(|_| Ok(Mutation::Delete))).await.unwrap();
        let events = store.events_since(1).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, EventType::Deleted);
        assert_eq!(events[0].object["spec"], 1);
        assert_eq!(events[0].object["metadata"]["resourceVersion"], "2");
        assert!(store.get(&key).is_none());
    }
}
