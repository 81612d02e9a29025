//! The Knative Trigger dispatcher: delivers a broker's events to one trigger's subscriber.
//!
//! A [`Dispatcher`] reads its broker's [`EventLog`] from the trigger's cursor, skips the events
//! its filter does not match, and POSTs the others to the subscriber in binary mode (with
//! `Prefer: reply`), at most [`Subscription::concurrency`] at once, in no particular order
//! across events. Delivery is at-least-once, as in Knative:
//!
//! * An answer in 2xx delivers the event. A CloudEvent in that answer is a reply: it goes back
//!   to the broker one broker TTL down (or is dropped when none is left, to break loops). Any
//!   other body is discarded.
//! * No answer (refused, reset, timed out), 404, 408, 409, 429 and 5xx are retried with backoff
//!   as the trigger's [`DeliverySpec`](crate::delivery::DeliverySpec) says; then, as for any other
//!   status, the event goes to the dead letter sink with Knative's `knativeerror*` extensions,
//!   or is dropped without one.
//! * The cursor committed to the log is always the smallest offset whose delivery has not
//!   finished, committed in batches (every [`COMMIT_INTERVAL`] at most while busy, at once when
//!   idle). Whatever happens to the process, every event from the cursor on is delivered again
//!   after a restart: some twice, none lost.
//!
//! Every attempt is an OpenTelemetry client span (`send {trigger}`, or `dead-letter {trigger}`
//! to the sink), a child of the trace context the event carries, whose context the request
//! propagates in `traceparent`.

mod deliver;
mod progress;
mod run;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::delivery::DeliverySpec;
use crate::filter::TriggerFilter;
use crate::log::EventLog;
use crate::sender::Sender;

pub use run::COMMIT_INTERVAL;
pub use stats::{LATENCY_BUCKETS, LatencySnapshot, StatsSnapshot, TriggerStats};

/// One trigger's subscription, as the platform resolved it.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Stable and unique: the trigger's cursor key in the log (the platform passes the trigger's
    /// uid).
    pub id: String,
    /// `"namespace/name"` of the trigger, for metrics, spans and logs.
    pub name: String,
    /// The broker's log key (`"namespace/name"`).
    pub broker: String,
    pub filter: TriggerFilter,
    /// The resolved subscriber URI (`http://...`).
    pub subscriber: String,
    /// Retries, backoff, timeout and the resolved dead letter sink.
    pub delivery: DeliverySpec,
    /// The most deliveries of this trigger in flight at once; 0 counts as 1.
    pub concurrency: usize,
}

/// Delivers one trigger's events until stopped or dropped (dropping aborts at once, like
/// [`Dispatcher::stop`] without the final commit).
pub struct Dispatcher {
    subscription: watch::Sender<Arc<Subscription>>,
    stats: Arc<TriggerStats>,
    stop: Option<oneshot::Sender<Duration>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subscription = self.subscription.borrow();
        f.debug_struct("Dispatcher")
            .field("trigger", &subscription.name)
            .field("id", &subscription.id)
            .field("broker", &subscription.broker)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Start delivering, on the current Tokio runtime (panics outside one).
    ///
    /// A subscription with no cursor in the log yet starts at the broker's next offset now
    /// (events accepted before the trigger existed are not delivered, as in Knative), and
    /// writes that cursor durably before anything else. One with a cursor resumes there.
    pub fn start(log: EventLog, sender: Arc<dyn Sender>, subscription: Subscription) -> Self {
        let start = match log.cursor(&subscription.id) {
            Ok(Some(cursor)) => run::Start::Resume(cursor),
            Ok(None) => run::Start::New(log.next_offset(&subscription.broker)),
            Err(err) => {
                tracing::error!(
                    trigger = %subscription.name, "reading the trigger's cursor failed (will retry): {err}"
                );
                run::Start::Unknown
            }
        };
        let stats = Arc::new(TriggerStats::default());
        let span = tracing::debug_span!("dispatcher", trigger = %subscription.name);
        let (id, broker) = (subscription.id.clone(), subscription.broker.clone());
        let (subscriptions, receiver) = watch::channel(Arc::new(subscription));
        let runner = run::Runner {
            ctx: Arc::new(deliver::Context { log, sender, stats: stats.clone() }),
            id,
            broker,
            subscription: receiver,
            start,
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(runner.run(stopped).instrument(span));
        Dispatcher { subscription: subscriptions, stats, stop: Some(stop), task: Some(task) }
    }

    /// Change the subscription in place: its name, filter, subscriber, delivery and concurrency
    /// apply to deliveries started from now on. The id and the broker are the dispatcher's for
    /// life (a Knative Trigger's broker is immutable): a different one is ignored with a warning;
    /// stop this dispatcher and start another instead.
    pub fn update(&self, mut subscription: Subscription) {
        let current = self.subscription.borrow().clone();
        if subscription.id != current.id || subscription.broker != current.broker {
            tracing::warn!(
                trigger = %current.name,
                "a dispatcher's trigger id and broker cannot change: keeping {} on {}",
                current.id, current.broker
            );
            subscription.id = current.id.clone();
            subscription.broker = current.broker.clone();
        }
        self.subscription.send_replace(Arc::new(subscription));
    }

    /// The subscription as last given.
    pub fn subscription(&self) -> Subscription {
        self.subscription.borrow().as_ref().clone()
    }

    pub fn stats(&self) -> Arc<TriggerStats> {
        self.stats.clone()
    }

    /// Stop: no new deliveries, those in flight abandoned (they are delivered again after a
    /// restart), and the cursor committed as far as deliveries finished.
    pub async fn stop(self) {
        self.drain(Duration::ZERO).await;
    }

    /// Stop starting deliveries, give those in flight up to `grace` to finish, then stop as
    /// [`Dispatcher::stop`] does.
    pub async fn drain(mut self, grace: Duration) {
        if let Some(stop) = self.stop.take() {
            // The task only ends on its own by panicking, which awaiting it reports.
            let _ = stop.send(grace);
        }
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
        {
            tracing::error!(trigger = %self.subscription.borrow().name, "the dispatcher failed: {err}");
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
