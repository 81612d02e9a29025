//! Runs the autoscaler of every revision: a task per revision that samples its request
//! metrics each second, asks the KPA ([`crate::autoscaler`]) what to run, and starts and
//! stops pods to match, for Wasm and containers alike. A request that finds no ready pod
//! pokes the task, which scales from zero at once rather than at its next tick.
//!
//! Pods are objects (`/api/v1/namespaces/{ns}/pods`), written after the pod is serving so
//! that a cold start never waits on the store. The revision's status carries
//! `actualReplicas`, `desiredReplicas`, the `Active` condition and its cold starts.

pub(crate) mod pods;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::autoscaler::{AutoscalerConfig, RevisionScaling};
use crate::dataplane::{Revision, Tables};
use crate::objects::Objects;
use crate::resources::{PODS, meta, serving};
use crate::runtime::{PodExit, RevisionSpec, Runtime};
use crate::store::{EventType, Mutation, SharedStore};

/// What a revision's autoscaler task is told from outside.
#[derive(Debug)]
enum Command {
    /// Its scaling annotations (or the cluster defaults) changed.
    Update(Box<RevisionScaling>),
    /// Someone deleted one of its pods.
    PodDeleted(String),
    /// One of its pods ended by itself (a container's process exited).
    PodExited(String, PodExit),
}

/// The autoscalers of all revisions.
pub struct Scaling {
    config: AutoscalerConfig,
    objects: Objects,
    tables: Arc<Tables>,
    /// Each running autoscaler by revision uid, with the settings it was last given.
    tasks: Mutex<HashMap<String, (mpsc::UnboundedSender<Command>, RevisionScaling)>>,
}

/// How a revision's autoscaler starts.
pub struct Start {
    pub revision: Arc<Revision>,
    pub spec: RevisionSpec,
    /// Its labels, passed on to its pods.
    pub labels: Map<String, Value>,
    pub scaling: RevisionScaling,
    /// The pods it ran before this process started (from its status), if it ran before.
    pub previous_replicas: Option<u32>,
    pub runtime: Arc<dyn Runtime>,
}

/// What a revision's task is started with.
struct TaskStart {
    start: Start,
    commands: mpsc::UnboundedSender<Command>,
}

impl Scaling {
    pub fn new(config: AutoscalerConfig, objects: Objects, tables: Arc<Tables>) -> Arc<Self> {
        Arc::new(Self { config, objects, tables, tasks: Mutex::default() })
    }

    /// The cluster defaults revisions are scaled with.
    pub fn config(&self) -> &AutoscalerConfig {
        &self.config
    }

    fn tasks(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (mpsc::UnboundedSender<Command>, RevisionScaling)>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start the autoscaler of a revision that just entered the data plane. It runs until
    /// the revision leaves it (`Revision::stopped`).
    pub fn start(self: &Arc<Self>, start: Start) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let uid = start.revision.uid.clone();
        self.tasks().insert(uid.clone(), (sender.clone(), start.scaling.clone()));
        let scaling = self.clone();
        tokio::spawn(async move {
            task::RevisionScaler::new(&scaling, TaskStart { start, commands: sender }).run(receiver).await;
            let mut tasks = scaling.tasks();
            if tasks.get(&uid).is_some_and(|(task, _)| task.is_closed()) {
                tasks.remove(&uid);
            }
        });
    }

    /// Tell a running revision's autoscaler of its scaling settings, if they changed.
    pub fn update(&self, uid: &str, scaling: RevisionScaling) {
        if let Some((task, current)) = self.tasks().get_mut(uid)
            && *current != scaling
        {
            *current = scaling.clone();
            let _ = task.send(Command::Update(Box::new(scaling)));
        }
    }

    /// Delete the pods a previous run of the process left in the store: they ran in it
    /// and are gone. Each revision's autoscaler starts its pods afresh.
    pub async fn forget_old_pods(store: &SharedStore) -> anyhow::Result<usize> {
        let (old, _) = store.list(PODS.key, None);
        for pod in &old {
            let key = pods::key(meta::namespace(pod), meta::name(pod));
            store.mutate(key, Box::new(|_| Ok(Mutation::Delete))).await?;
        }
        Ok(old.len())
    }

    /// Pass deletions of pods (`kubectl delete pod`) to their revisions' autoscalers,
    /// which replace them, until `shutdown`.
    pub async fn follow_pod_deletions(self: Arc<Self>, store: SharedStore, shutdown: CancellationToken) {
        let mut events = store.subscribe();
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(event) if &*event.key.resource == PODS.key && event.event_type == EventType::Deleted => {
                    let Some(uid) = meta::label(&event.object, serving::LABEL_REVISION_UID) else { continue };
                    if let Some((task, _)) = self.tasks().get(uid) {
                        let _ = task.send(Command::PodDeleted(event.key.name.clone()));
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }
}
