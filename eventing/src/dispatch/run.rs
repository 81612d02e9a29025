//! A dispatcher's task: read the broker's log from the trigger's cursor, start deliveries up to
//! the concurrency, and commit the cursor as they finish.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::{self, JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::Subscription;
use super::deliver::{Context, deliver};
use super::progress::Progress;
use super::stats::InFlight;
use crate::codec;
use crate::log::{Entry, LogError};

/// The longest a finished delivery waits for its cursor to be committed while the trigger is
/// busy. An idle trigger commits at once.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(20);
/// How long to wait before trying the log again after it failed.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// The fewest and the most entries one read of the log takes.
const MIN_BATCH: usize = 32;
const MAX_BATCH: usize = 512;

/// Where a trigger starts, as [`super::Dispatcher::start`] found it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start {
    /// At its cursor.
    Resume(u64),
    /// A new trigger, at this offset (the broker's next when it was created), once that is
    /// committed as its cursor.
    New(u64),
    /// The log could not say: ask it again.
    Unknown,
}

pub(super) struct Runner {
    pub(super) ctx: Arc<Context>,
    pub(super) id: String,
    pub(super) broker: String,
    pub(super) subscription: watch::Receiver<Arc<Subscription>>,
    pub(super) start: Start,
}

/// What is under way.
struct State {
    progress: Progress,
    tasks: JoinSet<()>,
    /// The offset each delivery task delivers.
    offsets: HashMap<task::Id, u64>,
    /// The cursor as last committed.
    durable: u64,
    /// The commit under way, and the cursor it writes.
    commit: Option<JoinHandle<(u64, Result<(), LogError>)>>,
    /// The earliest the next commit may start.
    next_commit: Instant,
}

impl Runner {
    /// Deliver until `stop` says how long in-flight deliveries may still take (or is dropped).
    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<Duration>) {
        let Some(cursor) = self.initial_cursor(&mut stop).await else {
            return;
        };
        let mut state = State {
            progress: Progress::new(cursor),
            tasks: JoinSet::new(),
            offsets: HashMap::new(),
            durable: cursor,
            commit: None,
            next_commit: Instant::now(),
        };
        let mut sub = self.subscription.borrow_and_update().clone();
        let mut subscribed = true;
        let mut appended = self.ctx.log.subscribe(&self.broker);
        let mut watching = true;
        let mut read_again = Instant::now();
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        tracing::debug!(trigger = %sub.name, broker = %self.broker, cursor, "dispatching");

        let grace = loop {
            // Work that does not wait comes first, so that a long read of events the filter
            // drops still notices a stop, finished deliveries and commits.
            match stop.try_recv() {
                Ok(grace) => break grace,
                Err(oneshot::error::TryRecvError::Closed) => break Duration::ZERO,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            while let Some(joined) = state.tasks.try_join_next_with_id() {
                state.finished(joined, &self.ctx, &sub);
            }
            if state.commit.as_ref().is_some_and(JoinHandle::is_finished)
                && let Some(commit) = state.commit.take()
            {
                state.committed(commit.await, &sub);
            }
            if !Arc::ptr_eq(&self.subscription.borrow_and_update(), &sub) {
                sub = self.subscription.borrow().clone();
            }

            let limit = sub.concurrency.max(1);
            while state.progress.in_flight() < limit
                && let Some(entry) = state.progress.take()
            {
                state.begin(entry, &self.ctx, &sub);
            }

            let end = *appended.borrow_and_update();
            let now = Instant::now();
            let caught_up = state.progress.next_read() >= end;
            let idle = caught_up && state.progress.in_flight() == 0 && state.progress.buffered() == 0;
            let cursor = state.progress.cursor();
            if state.commit.is_none() && cursor > state.durable && (idle || now >= state.next_commit) {
                state.commit = Some(self.commit(cursor));
                state.next_commit = now + COMMIT_INTERVAL;
            }

            let wants_read =
                !caught_up && state.progress.buffered() == 0 && state.progress.in_flight() < limit;
            if wants_read && now >= read_again {
                let from = state.progress.next_read();
                match self.read(from, (limit * 2).clamp(MIN_BATCH, MAX_BATCH)).await {
                    // Committed before `end` was published, yet not there: removed by retention
                    // or with the broker.
                    Ok(entries) if entries.is_empty() => state.progress.skip_to(end),
                    Ok(entries) => state.progress.push(entries),
                    Err(err) => {
                        tracing::error!(
                            trigger = %sub.name, broker = %self.broker, offset = from,
                            "reading the broker's event log failed: {err}"
                        );
                        read_again = now + RETRY_INTERVAL;
                    }
                }
                continue;
            }

            let commit_due = (state.commit.is_none() && cursor > state.durable).then_some(state.next_commit);
            let read_due = wants_read.then_some(read_again);
            let wake = commit_due.into_iter().chain(read_due).min();
            if let Some(at) = wake {
                timer.as_mut().reset(at);
            }
            tokio::select! {
                biased;
                grace = &mut stop => break grace.unwrap_or_default(),
                Some(joined) = state.tasks.join_next_with_id() => state.finished(joined, &self.ctx, &sub),
                done = async {
                    match state.commit.as_mut() {
                        Some(commit) => commit.await,
                        None => std::future::pending().await,
                    }
                }, if state.commit.is_some() => {
                    state.commit = None;
                    state.committed(done, &sub);
                }
                () = &mut timer, if wake.is_some() => {}
                changed = appended.changed(), if watching => watching = changed.is_ok(),
                changed = self.subscription.changed(), if subscribed => subscribed = changed.is_ok(),
            }
        };
        self.shutdown(state, grace, &sub).await;
    }

    /// The cursor to start from; for a new trigger, once it is durable. None when stopped first.
    async fn initial_cursor(&mut self, stop: &mut oneshot::Receiver<Duration>) -> Option<u64> {
        loop {
            let at = match self.start {
                Start::Resume(cursor) => return Some(cursor),
                Start::New(at) => at,
                Start::Unknown => match self.ctx.log.cursor(&self.id) {
                    Ok(Some(cursor)) => return Some(cursor),
                    Ok(None) => {
                        self.start = Start::New(self.ctx.log.next_offset(&self.broker));
                        continue;
                    }
                    Err(err) => {
                        tracing::error!(trigger = %self.id, "reading the trigger's cursor failed: {err}");
                        if stopped_within(stop, RETRY_INTERVAL).await {
                            return None;
                        }
                        continue;
                    }
                },
            };
            let written = tokio::select! {
                biased;
                _ = &mut *stop => return None,
                written = self.ctx.log.set_cursor(&self.id, at) => written,
            };
            match written {
                Ok(()) => return Some(at),
                Err(err) => {
                    tracing::error!(trigger = %self.id, cursor = at, "writing the trigger's first cursor failed: {err}");
                    if stopped_within(stop, RETRY_INTERVAL).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Commit `cursor` in the background.
    fn commit(&self, cursor: u64) -> JoinHandle<(u64, Result<(), LogError>)> {
        let (log, id) = (self.ctx.log.clone(), self.id.clone());
        tokio::spawn(async move { (cursor, log.set_cursor(&id, cursor).await) }.in_current_span())
    }

    /// Up to `max` entries from `from` on, read off the async threads (a read may touch the disk).
    async fn read(&self, from: u64, max: usize) -> Result<Vec<Entry>, LogError> {
        let (log, broker) = (self.ctx.log.clone(), self.broker.clone());
        task::spawn_blocking(move || log.read(&broker, from, max))
            .await
            .map_err(|err| LogError::Storage(format!("reading the log: {err}")))?
    }

    /// Let deliveries under way finish for up to `grace`, abandon the rest (they are delivered
    /// again after a restart), and commit the cursor as far as deliveries finished.
    async fn shutdown(self, mut state: State, grace: Duration, sub: &Subscription) {
        if !grace.is_zero() && !state.tasks.is_empty() {
            let _ = tokio::time::timeout(grace, async {
                while let Some(joined) = state.tasks.join_next_with_id().await {
                    state.finished(joined, &self.ctx, sub);
                }
            })
            .await;
        }
        while let Some(joined) = state.tasks.try_join_next_with_id() {
            state.finished(joined, &self.ctx, sub);
        }
        state.tasks.abort_all();
        while let Some(joined) = state.tasks.join_next_with_id().await {
            state.finished(joined, &self.ctx, sub);
        }
        if let Some(commit) = state.commit.take() {
            state.committed(commit.await, sub);
        }
        let cursor = state.progress.cursor();
        if cursor > state.durable {
            match self.ctx.log.set_cursor(&self.id, cursor).await {
                Ok(()) => state.durable = cursor,
                Err(err) => tracing::error!(
                    trigger = %sub.name, cursor,
                    "committing the cursor on stop failed; events from {} on will be delivered again: {err}",
                    state.durable
                ),
            }
        }
        tracing::debug!(
            trigger = %sub.name, cursor = state.durable, abandoned = state.progress.in_flight(),
            "stopped dispatching"
        );
    }
}

impl State {
    /// Start delivering `entry`, or finish it at once when it is not a valid event or the
    /// filter does not match.
    fn begin(&mut self, entry: Entry, ctx: &Arc<Context>, sub: &Arc<Subscription>) {
        let event = match codec::from_bytes(&entry.event) {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(
                    trigger = %sub.name, broker = %sub.broker, offset = entry.offset,
                    "skipping a log entry that is not a valid event: {err}"
                );
                ctx.stats.failed();
                return;
            }
        };
        if !sub.filter.matches(&event) {
            ctx.stats.filtered_out();
            return;
        }
        let in_flight = InFlight::new(ctx.stats.clone());
        let span =
            tracing::debug_span!("deliver", trigger = %sub.name, offset = entry.offset, event_id = %event.id);
        let (ctx, sub) = (ctx.clone(), sub.clone());
        let appended_at = entry.appended_at;
        let handle = self.tasks.spawn(
            async move {
                let _in_flight = in_flight;
                deliver(&ctx, &sub, appended_at, event).await;
            }
            .instrument(span),
        );
        self.offsets.insert(handle.id(), entry.offset);
        self.progress.start(entry.offset);
    }

    /// A delivery task ended. Aborted ones (on stop) stay unfinished.
    fn finished(&mut self, joined: Result<(task::Id, ()), JoinError>, ctx: &Context, sub: &Subscription) {
        let id = match &joined {
            Ok((id, ())) => *id,
            Err(err) => err.id(),
        };
        let Some(offset) = self.offsets.remove(&id) else {
            return;
        };
        match joined {
            Ok(_) => self.progress.finish(offset),
            Err(err) if err.is_panic() => {
                // A bug; going round again would likely panic again, and hold the cursor back.
                tracing::error!(trigger = %sub.name, offset, "a delivery panicked; the event is lost: {err}");
                ctx.stats.failed();
                self.progress.finish(offset);
            }
            Err(_) => {}
        }
    }

    /// A commit ended.
    fn committed(&mut self, done: Result<(u64, Result<(), LogError>), JoinError>, sub: &Subscription) {
        match done {
            Ok((cursor, Ok(()))) => self.durable = self.durable.max(cursor),
            Ok((cursor, Err(err))) => {
                tracing::error!(trigger = %sub.name, cursor, "committing the trigger's cursor failed: {err}");
                self.next_commit = Instant::now() + RETRY_INTERVAL;
            }
            Err(err) => {
                tracing::error!(trigger = %sub.name, "committing the trigger's cursor failed: {err}");
                self.next_commit = Instant::now() + RETRY_INTERVAL;
            }
        }
    }
}

/// Wait `wait`; true when `stop` came (or went) meanwhile.
async fn stopped_within(stop: &mut oneshot::Receiver<Duration>, wait: Duration) -> bool {
    tokio::select! {
        _ = stop => true,
        () = tokio::time::sleep(wait) => false,
    }
}
