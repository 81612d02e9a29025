//! The durable per-broker event log: one redb file, group commit, a cursor per trigger.
//!
//! Every broker (`"namespace/name"`) has its own sequence of offsets, starting at 0, gapless and
//! never reused, even across [`EventLog::delete_broker`] and [`EventLog::compact`]. The log stores
//! events as opaque bytes with the time they were appended.
//!
//! All writes (appends, cursors, deletions, compaction) go to one writer thread. It takes
//! whatever is queued, applies it in a single write transaction, commits it durably (fsync) and
//! only then answers each caller and wakes the subscribers. Concurrent appenders so share one
//! commit, and an append that returned `Ok` survives a crash of the process at any point. Reads
//! go straight to redb's snapshots and never wait for the writer.
//!
//! When the last commit served several requests, the writer waits a little (up to half a commit,
//! at most 1 ms) for the callers it just answered, so that they share the next commit instead of
//! alternating with the others in half-sized ones. Commits save redb's allocator state ("quick
//! repair"): reopening after a crash takes milliseconds rather than a walk of the whole file.
//!
//! Retention ([`EventLog::compact`]) is Kafka's and the Knative Kafka broker's: entries older than
//! the maximum age, and the oldest entries beyond the maximum size, are dropped whether or not
//! every trigger has delivered them, so that a stuck trigger cannot fill the disk. Triggers it
//! overtakes are reported in [`CompactStats::overtaken`]; their next [`EventLog::read`] simply
//! starts at the oldest entry left.
//!
//! Layout: `entries` maps (broker id, offset) to the append time (Unix nanoseconds, 8 bytes
//! little-endian) followed by the event; `brokers` maps a broker's name to its id, first and next
//! offsets and the size of its entries; `cursors` maps a trigger to its cursor.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};

const ENTRIES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("entries");
const BROKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("brokers");
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";
const FORMAT: u64 = 1;

/// How many requests one transaction takes at most.
const MAX_BATCH_REQUESTS: usize = 4096;
/// How many bytes of events one transaction takes at most (more if a single append is larger).
const MAX_BATCH_BYTES: usize = 64 << 20;
/// The longest the writer waits for more requests before committing.
const MAX_LINGER: Duration = Duration::from_millis(1);
/// The bytes in front of every stored event: its append time.
const STAMP_LEN: usize = 8;

/// Why the log could not do something.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogError {
    #[error("event log storage error: {0}")]
    Storage(String),
    #[error("the event log is corrupt: {0}")]
    Corrupt(String),
    #[error("the event log has stopped")]
    Stopped,
}

fn storage(err: impl Into<redb::Error>) -> LogError {
    LogError::Storage(err.into().to_string())
}

/// How long entries are kept, per broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for Retention {
    /// 24 hours and 1 GiB (of event bytes) per broker.
    fn default() -> Self {
        Self { max_age: Duration::from_secs(24 * 3600), max_bytes: 1 << 30 }
    }
}

/// One event in a broker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub appended_at: OffsetDateTime,
    pub event: Bytes,
}

/// What [`EventLog::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Brokers that lost entries.
    pub brokers: usize,
    pub entries_removed: u64,
    /// Event bytes removed.
    pub bytes_removed: u64,
    /// Triggers whose cursor was behind what was removed, with how many of their undelivered
    /// entries went.
    pub overtaken: Vec<(String, u64)>,
}

/// A broker's log as committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BrokerMeta {
    id: u64,
    /// The oldest offset still stored (== `next` when empty).
    first: u64,
    next: u64,
    /// The size of the stored events.
    bytes: u64,
}

impl BrokerMeta {
    fn encode(&self) -> [u8; 32] {
        let mut out = [0; 32];
        for (chunk, value) in out.chunks_exact_mut(8).zip([self.id, self.first, self.next, self.bytes]) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Some(Self { id: word(0), first: word(1), next: word(2), bytes: word(3) })
    }
}

enum Op {
    Append {
        broker: String,
        events: Vec<Bytes>,
    },
    SetCursor {
        trigger: String,
        offset: u64,
    },
    DeleteCursor {
        trigger: String,
    },
    DeleteBroker {
        broker: String,
    },
    /// Drop the entries of `broker` (if it still has id `id`) below `below`.
    Truncate {
        broker: String,
        id: u64,
        below: u64,
    },
}

enum Done {
    Offsets(Vec<u64>),
    Nothing,
    Removed { entries: u64, bytes: u64 },
}

enum Reply {
    Async(oneshot::Sender<Result<Done, LogError>>),
    Blocking(mpsc::SyncSender<Result<Done, LogError>>),
}

impl Reply {
    fn send(self, result: Result<Done, LogError>) {
        // A caller that went away no longer cares.
        let _ = match self {
            Reply::Async(reply) => reply.send(result).map_err(drop),
            Reply::Blocking(reply) => reply.send(result).map_err(drop),
        };
    }
}

struct Request {
    op: Op,
    reply: Reply,
}

struct Shared {
    db: Database,
    /// Every broker's log as last committed.
    brokers: RwLock<HashMap<String, BrokerMeta>>,
    /// The next offset of each broker somebody subscribed to.
    watchers: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Shared {
    fn brokers(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, BrokerMeta>> {
        self.brokers.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    retention: Retention,
    /// `None` only while dropping: closing it stops the writer.
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<thread::JoinHandle<()>>,
}

impl Drop for Inner {
    /// Let the writer finish what is queued and close the file, so that it can be opened again.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The durable event log of every broker, in one redb file. Cheap to clone; the file closes when
/// the last clone is dropped.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").field("retention", &self.inner.retention).finish_non_exhaustive()
    }
}

impl EventLog {
    /// Open (or create) the log at `path`. After a crash, redb recovers the last durable commit.
    pub fn open(path: &Path, retention: Retention) -> Result<Self, LogError> {
        let existed = path.exists();
        let db = Database::create(path)
            .map_err(|e| LogError::Storage(format!("opening {}: {e}", path.display())))?;
        if !existed {
            sync_parent(path);
        }
        let brokers = load(&db)?;
        let next_id = brokers.values().map(|meta| meta.id + 1).max().unwrap_or(0);
        let shared =
            Arc::new(Shared { db, brokers: RwLock::new(brokers), watchers: Mutex::new(HashMap::new()) });
        let (requests, queue) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = thread::Builder::new()
            .name("skiff-eventlog".into())
            .spawn(move || Writer { shared: writer_shared, next_id, last_stamp: i64::MIN }.run(queue))
            .map_err(|e| LogError::Storage(format!("starting the event log writer: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner { shared, retention, requests: Some(requests), writer: Some(writer) }),
        })
    }

    /// The retention [`EventLog::compact`] applies.
    pub fn retention(&self) -> Retention {
        self.inner.retention
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn submit(&self, op: Op, reply: Reply) -> Result<(), LogError> {
        let requests = self.inner.requests.as_ref().ok_or(LogError::Stopped)?;
        requests.send(Request { op, reply }).map_err(|_| LogError::Stopped)
    }

    async fn write(&self, op: Op) -> Result<Done, LogError> {
        let (reply, answer) = oneshot::channel();
        self.submit(op, Reply::Async(reply))?;
        answer.await.map_err(|_| LogError::Stopped)?
    }

    fn write_blocking(&self, op: Op) -> Result<Done, LogError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(op, Reply::Blocking(reply))?;
        answer.recv().map_err(|_| LogError::Stopped)?
    }

    /// Append `events` (opaque bytes) to `broker`'s log, creating it if need be, and return their
    /// offsets, consecutive and in order. Resolves only once they are durably committed; appends
    /// made concurrently share one commit. Dropping the future does not withdraw the append.
    pub async fn append(&self, broker: &str, events: Vec<Bytes>) -> Result<Vec<u64>, LogError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        match self.write(Op::Append { broker: broker.to_string(), events }).await? {
            Done::Offsets(offsets) => Ok(offsets),
            _ => Err(LogError::Corrupt("the writer answered an append with no offsets".into())),
        }
    }

    /// Up to `max` entries of `broker` from offset `from` (inclusive), oldest first. Starts at the
    /// oldest entry left when `from` was compacted away.
    pub fn read(&self, broker: &str, from: u64, max: usize) -> Result<Vec<Entry>, LogError> {
        let Some(id) = self.shared().brokers().get(broker).map(|meta| meta.id) else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let txn = self.shared().db.begin_read().map_err(storage)?;
        let table = txn.open_table(ENTRIES).map_err(storage)?;
        let mut entries = Vec::with_capacity(max.min(1024));
        for item in table.range((id, from)..=(id, u64::MAX)).map_err(storage)?.take(max) {
            let (key, value) = item.map_err(storage)?;
            let (_, offset) = key.value();
            let value = value.value();
            let (appended_at, event) = decode_entry(value)
                .ok_or_else(|| LogError::Corrupt(format!("entry {offset} of {broker} is malformed")))?;
            entries.push(Entry { offset, appended_at, event: Bytes::copy_from_slice(event) });
        }
        Ok(entries)
    }

    /// `trigger`'s cursor: every offset below it has been delivered (or dead-lettered).
    pub fn cursor(&self, trigger: &str) -> Result<Option<u64>, LogError> {
        let txn = self.shared().db.begin_read().map_err(storage)?;
        let table = txn.open_table(CURSORS).map_err(storage)?;
        Ok(table.get(trigger).map_err(storage)?.map(|cursor| cursor.value()))
    }

    /// Durably move `trigger`'s cursor to `offset` (group-committed with everything else).
    pub async fn set_cursor(&self, trigger: &str, offset: u64) -> Result<(), LogError> {
        self.write(Op::SetCursor { trigger: trigger.to_string(), offset }).await.map(drop)
    }

    /// Durably forget `trigger`'s cursor. Blocks the calling thread until committed (a commit
    /// takes about a millisecond), like [`EventLog::delete_broker`] and [`EventLog::compact`].
    pub fn delete_cursor(&self, trigger: &str) -> Result<(), LogError> {
        self.write_blocking(Op::DeleteCursor { trigger: trigger.to_string() }).map(drop)
    }

    /// Durably drop every entry of `broker`. Its offsets carry on where they were if it comes
    /// back, so that the cursors of triggers that outlived it stay meaningful. Blocks until
    /// committed.
    pub fn delete_broker(&self, broker: &str) -> Result<(), LogError> {
        self.write_blocking(Op::DeleteBroker { broker: broker.to_string() }).map(drop)
    }

    /// A receiver of `broker`'s next offset, which changes whenever entries are committed.
    pub fn subscribe(&self, broker: &str) -> watch::Receiver<u64> {
        let mut watchers = self.shared().watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = watchers.get(broker) {
            return sender.subscribe();
        }
        // Read the offset under the watchers' lock: the writer publishes before it notifies.
        let (sender, receiver) = watch::channel(self.next_offset(broker));
        watchers.insert(broker.to_string(), sender);
        receiver
    }

    /// The offset `broker`'s next entry will get (0 for a broker never appended to).
    pub fn next_offset(&self, broker: &str) -> u64 {
        self.shared().brokers().get(broker).map_or(0, |meta| meta.next)
    }

    /// The oldest offset `broker` still stores (== [`EventLog::next_offset`] when it has none).
    pub fn first_offset(&self, broker: &str) -> u64 {
        self.shared().brokers().get(broker).map_or(0, |meta| meta.first)
    }

    /// Apply the retention: drop every broker's entries older than `max_age`, then its oldest
    /// entries until what is left fits in `max_bytes`, whether or not triggers have delivered them.
    /// `cursors_of(broker)` names the triggers of a broker, to report the ones overtaken. Blocks
    /// until committed; run it periodically.
    pub fn compact(&self, cursors_of: impl Fn(&str) -> Vec<String>) -> Result<CompactStats, LogError> {
        let retention = self.inner.retention;
        let now = OffsetDateTime::now_utc();
        let cutoff = time::Duration::try_from(retention.max_age)
            .ok()
            .and_then(|age| now.checked_sub(age))
            .and_then(|cutoff| i64::try_from(cutoff.unix_timestamp_nanos()).ok())
            .unwrap_or(i64::MIN);

        // Plan from a snapshot: everything below a cut is committed and only ever removed, so
        // appends may carry on meanwhile.
        let brokers: Vec<(String, BrokerMeta)> =
            self.shared().brokers().iter().map(|(name, meta)| (name.clone(), *meta)).collect();
        let mut plan = Vec::new();
        {
            let txn = self.shared().db.begin_read().map_err(storage)?;
            let table = txn.open_table(ENTRIES).map_err(storage)?;
            for (name, meta) in brokers {
                if meta.first >= meta.next {
                    continue;
                }
                let mut left = meta.bytes;
                let mut cut = meta.first;
                for item in table.range((meta.id, meta.first)..(meta.id, meta.next)).map_err(storage)? {
                    let (key, value) = item.map_err(storage)?;
                    let value = value.value();
                    let stamp = stamp_of(value).ok_or_else(|| LogError::Corrupt("malformed entry".into()))?;
                    if stamp >= cutoff && left <= retention.max_bytes {
                        break;
                    }
                    left = left.saturating_sub((value.len() - STAMP_LEN) as u64);
                    cut = key.value().1 + 1;
                }
                if cut > meta.first {
                    plan.push((name, meta.id, cut));
                }
            }
        }

        // Submit every truncation before waiting, so that they share one commit.
        let mut answers = Vec::with_capacity(plan.len());
        for (broker, id, below) in &plan {
            let (reply, answer) = mpsc::sync_channel(1);
            self.submit(
                Op::Truncate { broker: broker.clone(), id: *id, below: *below },
                Reply::Blocking(reply),
            )?;
            answers.push(answer);
        }
        let mut stats = CompactStats::default();
        for ((broker, _, below), answer) in plan.iter().zip(answers) {
            match answer.recv().map_err(|_| LogError::Stopped)?? {
                Done::Removed { entries, bytes } if entries > 0 => {
                    stats.brokers += 1;
                    stats.entries_removed += entries;
                    stats.bytes_removed += bytes;
                }
                _ => continue,
            }
            for trigger in cursors_of(broker) {
                if let Some(cursor) = self.cursor(&trigger)?
                    && cursor < *below
                {
                    tracing::warn!(
                        broker = %broker, trigger = %trigger, skipped = below - cursor,
                        "retention dropped events the trigger had not delivered yet"
                    );
                    stats.overtaken.push((trigger, below - cursor));
                }
            }
        }
        Ok(stats)
    }
}

fn load(db: &Database) -> Result<HashMap<String, BrokerMeta>, LogError> {
    let txn = db.begin_write().map_err(storage)?;
    {
        txn.open_table(ENTRIES).map_err(storage)?;
        txn.open_table(BROKERS).map_err(storage)?;
        txn.open_table(CURSORS).map_err(storage)?;
        let mut meta = txn.open_table(META).map_err(storage)?;
        let format = meta.get(FORMAT_KEY).map_err(storage)?.map(|v| v.value());
        match format {
            None => {
                meta.insert(FORMAT_KEY, FORMAT).map_err(storage)?;
            }
            Some(FORMAT) => {}
            Some(other) => return Err(LogError::Corrupt(format!("unknown event log format {other}"))),
        }
    }
    txn.commit().map_err(storage)?;

    let txn = db.begin_read().map_err(storage)?;
    let table = txn.open_table(BROKERS).map_err(storage)?;
    let mut brokers = HashMap::new();
    for item in table.iter().map_err(storage)? {
        let (name, meta) = item.map_err(storage)?;
        let meta = BrokerMeta::decode(meta.value())
            .ok_or_else(|| LogError::Corrupt(format!("broker {} is malformed", name.value())))?;
        brokers.insert(name.value().to_string(), meta);
    }
    Ok(brokers)
}

/// Make a new file's directory entry durable too (best effort: some platforms refuse).
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}

fn stamp_of(value: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(value.get(..STAMP_LEN)?.try_into().ok()?))
}

fn decode_entry(value: &[u8]) -> Option<(OffsetDateTime, &[u8])> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(stamp_of(value)?)).ok()?;
    Some((at, &value[STAMP_LEN..]))
}

struct Writer {
    shared: Arc<Shared>,
    next_id: u64,
    /// Append times never go backwards, so that age-based retention can stop at the first young
    /// entry.
    last_stamp: i64,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Request>) {
        // How many requests the last commit answered, and how long it took.
        let mut answered = 0;
        let mut last_commit = Duration::ZERO;
        loop {
            let mut batch = Batch::default();
            while !batch.full() {
                match queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let waiting = batch.requests.len();
            if waiting == 0 {
                match queue.recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => return,
                }
            }
            // Those just answered are likely to be back in a moment (an ingress or a delivery
            // loop appending again): when the last commit served several, wait for them a
            // little, up to half a commit, so that they share the next commit instead of
            // alternating with those that were already waiting.
            if answered > 1 {
                let expected = answered + waiting;
                let deadline = Instant::now() + (last_commit / 2).min(MAX_LINGER);
                while batch.requests.len() < expected && !batch.full() {
                    match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
            }
            while !batch.full() {
                match queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            answered = batch.requests.len();
            let started = Instant::now();
            self.commit(batch.requests);
            last_commit = started.elapsed();
        }
    }

    fn commit(&mut self, batch: Vec<Request>) {
        let now = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX);
        let stamp = now.max(self.last_stamp);
        let next_id = self.next_id;
        let mut overlay: HashMap<String, BrokerMeta> = HashMap::new();
        let mut results = Vec::with_capacity(batch.len());
        let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().map(|r| (r.op, r.reply)).unzip();

        let applied = (|| -> Result<(), LogError> {
            let mut txn = self.shared.db.begin_write().map_err(storage)?;
            // Saves the allocator state with each commit, so that reopening after a crash does
            // not walk the whole file.
            txn.set_quick_repair(true);
            {
                let mut entries = txn.open_table(ENTRIES).map_err(storage)?;
                let mut cursors = txn.open_table(CURSORS).map_err(storage)?;
                let committed = self.shared.brokers();
                let mut buffer = Vec::new();
                for op in ops {
                    let result = match op {
                        Op::Append { broker, events } => {
                            let meta = overlay.entry(broker).or_insert_with_key(|broker| {
                                committed.get(broker).copied().unwrap_or_else(|| {
                                    let id = self.next_id;
                                    self.next_id += 1;
                                    BrokerMeta { id, first: 0, next: 0, bytes: 0 }
                                })
                            });
                            let mut offsets = Vec::with_capacity(events.len());
                            for event in events {
                                buffer.clear();
                                buffer.extend_from_slice(&stamp.to_le_bytes());
                                buffer.extend_from_slice(&event);
                                entries.insert((meta.id, meta.next), buffer.as_slice()).map_err(storage)?;
                                offsets.push(meta.next);
                                meta.next += 1;
                                meta.bytes += event.len() as u64;
                            }
                            Done::Offsets(offsets)
                        }
                        Op::SetCursor { trigger, offset } => {
                            cursors.insert(trigger.as_str(), offset).map_err(storage)?;
                            Done::Nothing
                        }
                        Op::DeleteCursor { trigger } => {
                            cursors.remove(trigger.as_str()).map_err(storage)?;
                            Done::Nothing
                        }
                        Op::DeleteBroker { broker } => {
                            let current = overlay.get(&broker).or(committed.get(&broker)).copied();
                            if let Some(mut meta) = current {
                                entries
                                    .retain_in((meta.id, 0)..=(meta.id, u64::MAX), |_, _| false)
                                    .map_err(storage)?;
                                meta.first = meta.next;
                                meta.bytes = 0;
                                overlay.insert(broker, meta);
                            }
                            Done::Nothing
                        }
                        Op::Truncate { broker, id, below } => {
                            let current = overlay.get(&broker).or(committed.get(&broker)).copied();
                            match current {
                                Some(mut meta) if meta.id == id && meta.first < below.min(meta.next) => {
                                    let below = below.min(meta.next);
                                    let (mut removed, mut bytes) = (0u64, 0u64);
                                    entries
                                        .retain_in((id, meta.first)..(id, below), |_, value| {
                                            removed += 1;
                                            bytes += value.len().saturating_sub(STAMP_LEN) as u64;
                                            false
                                        })
                                        .map_err(storage)?;
                                    meta.first = below;
                                    meta.bytes = meta.bytes.saturating_sub(bytes);
                                    overlay.insert(broker, meta);
                                    Done::Removed { entries: removed, bytes }
                                }
                                _ => Done::Removed { entries: 0, bytes: 0 },
                            }
                        }
                    };
                    results.push(result);
                }
                drop(committed);
                let mut brokers = txn.open_table(BROKERS).map_err(storage)?;
                for (name, meta) in &overlay {
                    brokers.insert(name.as_str(), meta.encode().as_slice()).map_err(storage)?;
                }
            }
            txn.commit().map_err(storage)?;
            Ok(())
        })();

        if let Err(err) = applied {
            tracing::error!("committing to the event log failed: {err}");
            self.next_id = next_id;
            // Every request of the batch fails with it, including those never reached.
            for reply in replies {
                reply.send(Err(err.clone()));
            }
            return;
        }
        self.last_stamp = stamp;

        let mut grown = Vec::new();
        {
            let mut brokers = self.shared.brokers.write().unwrap_or_else(|p| p.into_inner());
            for (name, meta) in overlay {
                let previous = brokers.insert(name.clone(), meta);
                if previous.is_none_or(|previous| previous.next < meta.next) {
                    grown.push((name, meta.next));
                }
            }
        }
        {
            let watchers = self.shared.watchers.lock().unwrap_or_else(|p| p.into_inner());
            for (name, next) in grown {
                if let Some(sender) = watchers.get(&name) {
                    sender.send_if_modified(|current| {
                        let changed = *current < next;
                        *current = (*current).max(next);
                        changed
                    });
                }
            }
        }
        for (reply, result) in replies.into_iter().zip(results) {
            reply.send(Ok(result));
        }
    }
}

/// The requests one transaction takes.
#[derive(Default)]
struct Batch {
    requests: Vec<Request>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, request: Request) {
        self.bytes += request.op.size();
        self.requests.push(request);
    }

    fn full(&self) -> bool {
        self.requests.len() >= MAX_BATCH_REQUESTS || self.bytes >= MAX_BATCH_BYTES
    }
}

impl Op {
    fn size(&self) -> usize {
        match self {
            Op::Append { events, .. } => events.iter().map(|e| e.len() + STAMP_LEN).sum(),
            _ => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(texts: &[&str]) -> Vec<Bytes> {
        texts.iter().map(|t| Bytes::copy_from_slice(t.as_bytes())).collect()
    }

    fn open(dir: &tempfile::TempDir) -> EventLog {
        EventLog::open(&dir.path().join("log.redb"), Retention::default()).unwrap()
    }

    #[test]
    fn broker_meta_round_trips() {
        let meta = BrokerMeta { id: 3, first: 10, next: 42, bytes: 1 << 40 };
        assert_eq!(BrokerMeta::decode(&meta.encode()), Some(meta));
        assert_eq!(BrokerMeta::decode(&[0; 31]), None);
    }

    #[tokio::test]
    async fn offsets_are_per_broker_and_consecutive() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir);
        assert_eq!(log.append("ns/a", events(&["a0", "a1"])).await.unwrap(), [0, 1]);
        assert_eq!(log.append("ns/b", events(&["b0"])).await.unwrap(), [0]);
        assert_eq!(log.append("ns/a", events(&["a2"])).await.unwrap(), [2]);
        assert_eq!(log.append("ns/a", Vec::new()).await.unwrap(), Vec::<u64>::new());
        assert_eq!((log.next_offset("ns/a"), log.next_offset("ns/b"), log.next_offset("ns/c")), (3, 1, 0));
        let read = log.read("ns/a", 1, 10).unwrap();
        assert_eq!(read.iter().map(|e| e.offset).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(read[0].event, "a1");
        assert_eq!(log.read("ns/a", 0, 1).unwrap().len(), 1);
        assert!(log.read("ns/a", 3, 10).unwrap().is_empty());
        assert!(log.read("ns/c", 0, 10).unwrap().is_empty());
        assert!(log.read("ns/a", 0, 0).unwrap().is_empty());
    }

    #[tokio::test]
    async fn append_times_are_recorded_and_never_go_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir);
        let before = OffsetDateTime::now_utc();
        for i in 0..5 {
            log.append("ns/a", events(&[&i.to_string()])).await.unwrap();
        }
        let entries = log.read("ns/a", 0, 10).unwrap();
        assert!(entries[0].appended_at >= before - Duration::from_secs(1));
        assert!(entries.windows(2).all(|w| w[0].appended_at <= w[1].appended_at));
        assert!(entries[4].appended_at <= OffsetDateTime::now_utc());
    }

    #[tokio::test]
    async fn truncation_keeps_accounting_straight() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir);
        log.append("ns/a", events(&["12345", "123", "1"])).await.unwrap();
        let id = log.shared().brokers()["ns/a"].id;
        let Done::Removed { entries, bytes } =
            log.write_blocking(Op::Truncate { broker: "ns/a".into(), id, below: 2 }).unwrap()
        else {
            panic!("not a removal")
        };
        assert_eq!((entries, bytes), (2, 8));
        let meta = log.shared().brokers()["ns/a"];
        assert_eq!((meta.first, meta.next, meta.bytes), (2, 3, 1));
        // A stale id or an empty range removes nothing.
        let stale = log.write_blocking(Op::Truncate { broker: "ns/a".into(), id: id + 1, below: 3 }).unwrap();
        assert!(matches!(stale, Done::Removed { entries: 0, .. }));
        let empty = log.write_blocking(Op::Truncate { broker: "ns/a".into(), id, below: 1 }).unwrap();
        assert!(matches!(empty, Done::Removed { entries: 0, .. }));
    }
}
