//! Control loops in the style of kube-runtime: an idempotent `reconcile(object)` per
//! resource, driven by the store's change feed, never two reconciles of one object at once.
//!
//! Service -> Configuration + Route; Configuration -> Revision; Route -> resolved traffic;
//! Revision -> its runtime status. Garbage collection deletes what a deleted owner owned.

mod children;
mod configuration;
mod gc;
mod queue;
mod revision;
mod route;
mod runner;
mod service;

pub use runner::{Action, ReconcileError, Reconciler};

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dataplane::Tables;
use crate::objects::Objects;
use crate::runtime::wasm::WasmAdapter;

/// What the reconcilers share.
#[derive(Clone)]
pub struct Context {
    pub objects: Objects,
    /// Services answer at `{name}.{namespace}.{domain}`.
    pub domain: String,
    /// The data plane's routes and running revisions.
    pub tables: Arc<Tables>,
    /// The Wasm runtime.
    pub wasm: Arc<WasmAdapter>,
}

/// Start every control loop.
pub fn start(context: Context, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let store = context.objects.store().clone();
    let mut tasks = Vec::new();
    tasks.extend(runner::spawn(
        store.clone(),
        Arc::new(service::ServiceReconciler::new(context.clone())),
        2,
        shutdown.clone(),
    ));
    tasks.extend(runner::spawn(
        store.clone(),
        Arc::new(configuration::ConfigurationReconciler::new(context.clone())),
        2,
        shutdown.clone(),
    ));
    tasks.extend(runner::spawn(
        store.clone(),
        Arc::new(route::RouteReconciler::new(context.clone())),
        2,
        shutdown.clone(),
    ));
    tasks.extend(runner::spawn(
        store.clone(),
        Arc::new(revision::RevisionReconciler::new(context.clone())),
        2,
        shutdown.clone(),
    ));
    tasks.push(gc::spawn(context.objects.clone(), shutdown));
    tasks
}
