//! How fast the event log takes durable appends: 1 KiB events from 16 concurrent appenders, each
//! waiting for its append to be committed (fsync) before the next, against a baseline of one redb
//! commit per event, measured in the same run on the same disk.
//!
//! `cargo run --release -p skiff-eventing --example log_bench -- [--events N] [--dir PATH]`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, TableDefinition};
use skiff_eventing::log::{EventLog, Retention};

const APPENDERS: u64 = 16;
const EVENT_SIZE: usize = 1024;
const BASELINE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("entries");

struct Run {
    events: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
    }
}

fn main() {
    let mut events: u64 = 40_000;
    let mut dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--events" => events = args.next().and_then(|n| n.parse().ok()).expect("--events N"),
            "--dir" => dir = Some(args.next().expect("--dir PATH").into()),
            other => panic!("unknown argument {other}; expected --events N or --dir PATH"),
        }
    }
    let scratch = match &dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("a scratch directory");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");

    let single = runtime.block_on(group_commit(&scratch.path().join("single.redb"), events, 1));
    let batched = runtime.block_on(group_commit(&scratch.path().join("batched.redb"), events, 8));
    // The baseline is slower: a quarter of the events says as much.
    let baseline = one_commit_per_event(&scratch.path().join("baseline.redb"), (events / 4).max(APPENDERS));

    println!(
        "log_bench: {EVENT_SIZE} B events, {APPENDERS} concurrent appenders, durable (each append waits for its fsync), {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let line = |name: &str, run: &Run, unit: &str| {
        println!(
            "  {name:<52} {:>9.0} events/s  ({} events in {:.2?}; per {unit}: p50 {:.2?}, p99 {:.2?})",
            run.per_second(),
            run.events,
            run.elapsed,
            run.percentile(0.5),
            run.percentile(0.99),
        );
    };
    line("EventLog::append, group commit, 1 event per append", &single, "append");
    line("EventLog::append, group commit, 8 events per append", &batched, "append");
    line("baseline: one redb commit per event", &baseline, "commit");
    println!(
        "  group commit vs baseline (1 event per append): {:.1}x",
        single.per_second() / baseline.per_second()
    );
}

async fn group_commit(path: &Path, events: u64, per_append: u64) -> Run {
    let log = EventLog::open(path, Retention::default()).expect("opening the log");
    let payload = Bytes::from(vec![b'x'; EVENT_SIZE]);
    let remaining = Arc::new(AtomicU64::new(events / per_append));
    let start = Instant::now();
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|task| {
            let (log, payload, remaining) = (log.clone(), payload.clone(), remaining.clone());
            tokio::spawn(async move {
                let broker = format!("bench/broker-{}", task % 4);
                let mut latencies = Vec::new();
                while remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let batch = vec![payload.clone(); per_append as usize];
                    let started = Instant::now();
                    log.append(&broker, batch).await.expect("append");
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for appender in appenders {
        latencies.extend(appender.await.expect("appender"));
    }
    let elapsed = start.elapsed();
    Run { events: latencies.len() as u64 * per_append, elapsed, latencies }
}

fn one_commit_per_event(path: &Path, events: u64) -> Run {
    let db = Arc::new(Database::create(path).expect("opening the baseline"));
    let payload = vec![b'x'; EVENT_SIZE + 8];
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..APPENDERS)
        .map(|_| {
            let (db, payload, next) = (db.clone(), payload.clone(), next.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                loop {
                    let started = Instant::now();
                    let mut txn = db.begin_write().expect("begin");
                    // Committed exactly as the log commits.
                    txn.set_quick_repair(true);
                    let offset = next.fetch_add(1, Ordering::Relaxed);
                    if offset >= events {
                        txn.abort().expect("abort");
                        return latencies;
                    }
                    {
                        let mut table = txn.open_table(BASELINE).expect("table");
                        table.insert((0, offset), payload.as_slice()).expect("insert");
                    }
                    txn.commit().expect("commit");
                    latencies.push(started.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for thread in threads {
        latencies.extend(thread.join().expect("baseline thread"));
    }
    Run { events, elapsed: start.elapsed(), latencies }
}
