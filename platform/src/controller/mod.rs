//! Control loops in the style of kube-runtime: an idempotent `reconcile(object)` per
//! resource, driven by the store's change feed, never two reconciles of one object at once.
//!
//! Service -> Configuration + Route; Configuration -> Revision; Route -> resolved traffic;
//! Revision -> its data plane entry and autoscaler (which keeps its pods); Broker -> its address;
//! Trigger -> a dispatcher; PingSource -> a pinger. Garbage
//! collection deletes what a deleted owner owned.

mod broker;
mod children;
mod configuration;
mod destination;
mod gc;
mod pingsource;
mod queue;
mod revision;
mod route;
mod runner;
mod service;
mod trigger;

pub use runner::{Action, ReconcileError, Reconciler};

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dataplane::{ActivatorLimits, Tables};
use crate::eventing::Eventing;
use crate::objects::Objects;
use crate::runtime::oci::OciAdapter;
use crate::runtime::wasm::WasmAdapter;
use crate::scaling::Scaling;

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
    /// The container runtime, or why containers cannot run in this process.
    pub oci: Result<Arc<OciAdapter>, String>,
    /// The revisions' autoscalers.
    pub scaling: Arc<Scaling>,
    /// How the activator bounds the requests it holds.
    pub activator: ActivatorLimits,
    /// Brokers' log, triggers' dispatchers, PingSources' pingers.
    pub eventing: Arc<Eventing>,
}

/// Workers per controller: distinct objects reconcile in parallel, one object never twice.
const WORKERS: usize = 2;

/// Start every control loop.
pub fn start(context: Context, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    run(&mut tasks, &context, service::ServiceReconciler::new(context.clone()), &shutdown);
    run(&mut tasks, &context, configuration::ConfigurationReconciler::new(context.clone()), &shutdown);
    run(&mut tasks, &context, route::RouteReconciler::new(context.clone()), &shutdown);
    run(&mut tasks, &context, revision::RevisionReconciler::new(context.clone()), &shutdown);
    run(&mut tasks, &context, broker::BrokerReconciler::new(context.clone()), &shutdown);
    run(&mut tasks, &context, trigger::TriggerReconciler::new(context.clone()), &shutdown);
    run(&mut tasks, &context, pingsource::PingSourceReconciler::new(context.clone()), &shutdown);
    tasks.push(gc::spawn(context.objects.clone(), shutdown));
    tasks
}

fn run<R: Reconciler>(
    tasks: &mut Vec<JoinHandle<()>>,
    context: &Context,
    reconciler: R,
    shutdown: &CancellationToken,
) {
    tasks.extend(runner::spawn(
        context.objects.store().clone(),
        Arc::new(reconciler),
        WORKERS,
        shutdown.clone(),
    ));
}
