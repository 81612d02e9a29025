//! The event log through its public API: durability across reopening and `kill -9`, concurrent
//! appenders, subscriptions, cursors, deletion and retention.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::print_now;
use skiff_eventing::log::{EventLog, LogError, Retention};

fn event(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn open(path: &Path) -> EventLog {
    EventLog::open(path, Retention::default()).unwrap()
}

#[test]
fn the_log_is_clone_send_and_sync() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<EventLog>();
}

#[tokio::test]
async fn entries_cursors_and_offsets_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    {
        let log = open(&path);
        let clone = log.clone();
        assert_eq!(log.append("default/b", vec![event("e0"), event("e1")]).await.unwrap(), [0, 1]);
        assert_eq!(clone.append("other/b", vec![event("x0")]).await.unwrap(), [0]);
        log.set_cursor("default/t", 1).await.unwrap();
        // The file closes with the last clone.
        drop(log);
        clone.set_cursor("default/u", 2).await.unwrap();
    }
    let log = open(&path);
    assert_eq!(log.next_offset("default/b"), 2);
    assert_eq!(log.cursor("default/t").unwrap(), Some(1));
    assert_eq!(log.cursor("default/u").unwrap(), Some(2));
    assert_eq!(log.cursor("default/nobody").unwrap(), None);
    let entries = log.read("default/b", 0, 100).unwrap();
    assert_eq!(
        entries.iter().map(|e| (e.offset, e.event.clone())).collect::<Vec<_>>(),
        [(0, event("e0")), (1, event("e1"))]
    );
    assert_eq!(log.append("default/b", vec![event("e2")]).await.unwrap(), [2]);
    assert_eq!(log.append("other/b", vec![event("x1")]).await.unwrap(), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_distinct_gapless_offsets_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("events.redb"));
    let appenders = (0..16).map(|task| {
        let log = log.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for seq in 0..50 {
                let batch: Vec<Bytes> =
                    (0..1 + seq % 3).map(|i| event(&format!("{task}/{seq}/{i}"))).collect();
                let offsets = log.append("ns/busy", batch.clone()).await.unwrap();
                assert_eq!(offsets.len(), batch.len());
                // One append's events are consecutive.
                assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1));
                // Each appender's later appends get later offsets.
                assert!(mine.last().is_none_or(|(last, _)| *last < offsets[0]));
                mine.extend(offsets.into_iter().zip(batch));
            }
            mine
        })
    });
    let mut written = BTreeMap::new();
    for appender in appenders {
        for (offset, event) in appender.await.unwrap() {
            assert!(written.insert(offset, event).is_none(), "offset {offset} given twice");
        }
    }
    let total = written.len() as u64;
    assert_eq!(log.next_offset("ns/busy"), total);
    assert_eq!(written.keys().copied().collect::<Vec<_>>(), (0..total).collect::<Vec<_>>());
    let read = log.read("ns/busy", 0, usize::MAX).unwrap();
    assert_eq!(read.len() as u64, total);
    for entry in read {
        assert_eq!(written[&entry.offset], entry.event);
    }
}

#[tokio::test]
async fn subscribers_wake_on_new_entries() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("events.redb"));
    // Subscribing before the broker has any entry is fine.
    let mut early = log.subscribe("ns/b");
    assert_eq!(*early.borrow(), 0);
    let writer = log.clone();
    let append = tokio::spawn(async move { writer.append("ns/b", vec![event("a"), event("b")]).await });
    tokio::time::timeout(Duration::from_secs(5), early.changed()).await.unwrap().unwrap();
    assert_eq!(*early.borrow_and_update(), 2);
    append.await.unwrap().unwrap();
    // What a woken subscriber reads is there.
    assert_eq!(log.read("ns/b", 0, 10).unwrap().len(), 2);

    // A later subscriber starts at the current next offset; others' appends do not wake it.
    let mut late = log.subscribe("ns/b");
    assert_eq!(*late.borrow_and_update(), 2);
    log.append("ns/other", vec![event("x")]).await.unwrap();
    assert!(!late.has_changed().unwrap());
    log.append("ns/b", vec![event("c")]).await.unwrap();
    assert!(late.has_changed().unwrap());
    assert_eq!(*late.borrow_and_update(), 3);
    // Cursor moves wake nobody.
    log.set_cursor("ns/t", 3).await.unwrap();
    assert!(!late.has_changed().unwrap());
}

#[tokio::test]
async fn cursors_are_set_moved_and_deleted_durably() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    {
        let log = open(&path);
        log.set_cursor("ns/t1", 5).await.unwrap();
        log.set_cursor("ns/t1", 7).await.unwrap();
        log.set_cursor("ns/t2", 1).await.unwrap();
        log.set_cursor("ns/t3", 9).await.unwrap();
        log.delete_cursor("ns/t2").unwrap();
        log.delete_cursor("ns/never-set").unwrap();
        assert_eq!(log.cursor("ns/t1").unwrap(), Some(7));
        assert_eq!(log.cursor("ns/t2").unwrap(), None);
    }
    let log = open(&path);
    assert_eq!(log.cursor("ns/t1").unwrap(), Some(7));
    assert_eq!(log.cursor("ns/t2").unwrap(), None);
    assert_eq!(log.cursor("ns/t3").unwrap(), Some(9));
}

#[tokio::test]
async fn deleting_a_broker_drops_its_log_but_not_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    {
        let log = open(&path);
        log.append("ns/gone", vec![event("a"), event("b"), event("c")]).await.unwrap();
        log.append("ns/kept", vec![event("k")]).await.unwrap();
        log.set_cursor("ns/trigger", 3).await.unwrap();
        log.delete_broker("ns/gone").unwrap();
        log.delete_broker("ns/never-existed").unwrap();
        assert!(log.read("ns/gone", 0, 10).unwrap().is_empty());
        assert_eq!(log.next_offset("ns/gone"), 3);
        assert_eq!(log.read("ns/kept", 0, 10).unwrap().len(), 1);
        // Cursors belong to triggers: the caller deletes them.
        assert_eq!(log.cursor("ns/trigger").unwrap(), Some(3));
    }
    let log = open(&path);
    assert!(log.read("ns/gone", 0, 10).unwrap().is_empty());
    // A broker of the same name carries on, so that the surviving trigger's cursor stays right.
    assert_eq!(log.append("ns/gone", vec![event("d")]).await.unwrap(), [3]);
    let entries = log.read("ns/gone", 0, 10).unwrap();
    assert_eq!(entries.iter().map(|e| e.offset).collect::<Vec<_>>(), [3]);
}

#[tokio::test]
async fn retention_by_size_drops_the_oldest_and_reports_overtaken_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let retention = Retention { max_age: Duration::from_secs(3600), max_bytes: 3000 };
    let log = EventLog::open(&path, retention).unwrap();
    let kib = Bytes::from(vec![b'x'; 1000]);
    for _ in 0..5 {
        log.append("ns/big", vec![kib.clone()]).await.unwrap();
    }
    log.append("ns/small", vec![kib.clone()]).await.unwrap();
    log.set_cursor("ns/slow", 1).await.unwrap();
    log.set_cursor("ns/fast", 5).await.unwrap();

    let stats = log
        .compact(|broker| match broker {
            "ns/big" => vec!["ns/slow".to_string(), "ns/fast".to_string(), "ns/new".to_string()],
            _ => Vec::new(),
        })
        .unwrap();
    assert_eq!((stats.brokers, stats.entries_removed, stats.bytes_removed), (1, 2, 2000));
    assert_eq!(stats.overtaken, [("ns/slow".to_string(), 1)]);
    assert_eq!(log.first_offset("ns/big"), 2);
    assert_eq!(log.next_offset("ns/big"), 5);
    // Reading from a compacted offset starts at the oldest entry left.
    let entries = log.read("ns/big", 0, 10).unwrap();
    assert_eq!(entries.iter().map(|e| e.offset).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(log.read("ns/small", 0, 10).unwrap().len(), 1);

    // Nothing more to do; the accounting survives reopening.
    assert_eq!(log.compact(|_| Vec::new()).unwrap().entries_removed, 0);
    drop(log);
    let log = EventLog::open(&path, retention).unwrap();
    assert_eq!(log.compact(|_| Vec::new()).unwrap().entries_removed, 0);
    log.append("ns/big", vec![kib.clone()]).await.unwrap();
    let stats = log.compact(|_| Vec::new()).unwrap();
    assert_eq!(stats.entries_removed, 1);
    assert_eq!(log.first_offset("ns/big"), 3);
    assert_eq!(log.append("ns/big", vec![kib]).await.unwrap(), [6]);
}

#[tokio::test]
async fn retention_by_age_drops_old_entries_and_keeps_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention { max_age: Duration::from_millis(300), max_bytes: u64::MAX };
    let log = EventLog::open(&dir.path().join("events.redb"), retention).unwrap();
    log.append("ns/b", vec![event("old0"), event("old1")]).await.unwrap();
    log.append("ns/other", vec![event("old")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    log.append("ns/b", vec![event("new")]).await.unwrap();

    let stats = log.compact(|_| Vec::new()).unwrap();
    assert_eq!((stats.brokers, stats.entries_removed), (2, 3));
    let entries = log.read("ns/b", 0, 10).unwrap();
    assert_eq!(entries.iter().map(|e| (e.offset, e.event.clone())).collect::<Vec<_>>(), [(2, event("new"))]);
    assert!(log.read("ns/other", 0, 10).unwrap().is_empty());
    assert_eq!(log.append("ns/other", vec![event("again")]).await.unwrap(), [1]);
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let _log = open(&path);
    assert!(matches!(EventLog::open(&path, Retention::default()), Err(LogError::Storage(_))));
}

// ---- crash safety -----------------------------------------------------------------------------

/// Set in the re-executed test binary: the path of the log to append to until killed.
const CHILD_LOG: &str = "SKIFF_EVENTLOG_CRASH_CHILD";
const CHILD_ROUND: &str = "SKIFF_EVENTLOG_CRASH_ROUND";
const TASKS: u64 = 8;

/// The event appender `task` writes as its `seq`th, in round `round`: recognisable and of
/// varying size, so that a torn or misplaced entry cannot pass for a good one.
fn crash_event(round: u64, task: u64, seq: u64) -> Bytes {
    let header = format!("{round}/{task}/{seq}/");
    let len = 100 + ((seq * 7919 + task * 104_729) % 3000) as usize;
    let mut bytes = header.into_bytes();
    bytes.extend((0..len).map(|i| (i as u64 * 31 + seq + task) as u8));
    Bytes::from(bytes)
}

fn crash_broker(task: u64) -> String {
    format!("ns/broker-{}", task % 3)
}

/// The child: appends from several tasks (batches of 1 to 4), moves a cursor per task, and
/// prints every acknowledgement, until it is killed.
fn crash_child(path: &str, round: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let log = EventLog::open(Path::new(path), Retention::default()).unwrap();
        let tasks = (0..TASKS).map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                let broker = crash_broker(task);
                let trigger = format!("ns/trigger-{task}");
                for seq in (0..).step_by(4) {
                    let count = 1 + (seq / 4 + task) % 4;
                    let seqs: Vec<u64> = (seq..seq + count).collect();
                    let events = seqs.iter().map(|s| crash_event(round, task, *s)).collect();
                    let offsets = log.append(&broker, events).await.unwrap();
                    let mut lines = String::new();
                    for (offset, s) in offsets.iter().zip(&seqs) {
                        lines.push_str(&format!("ACK {broker} {offset} {round} {task} {s}\n"));
                    }
                    print_now(&lines);
                    if seq % 8 == 0 {
                        let cursor = offsets[0] + 1;
                        log.set_cursor(&trigger, cursor).await.unwrap();
                        print_now(&format!("CUR {trigger} {cursor}\n"));
                    }
                }
            })
        });
        for task in tasks.collect::<Vec<_>>() {
            let _ = task.await;
        }
    });
}

#[test]
fn acknowledged_appends_and_cursors_survive_kill_9() {
    if let Ok(path) = std::env::var(CHILD_LOG) {
        let round = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
        crash_child(&path, round);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let mut acked: HashMap<(String, u64), (u64, u64, u64)> = HashMap::new();
    let mut cursors: HashMap<String, u64> = HashMap::new();
    // Kill after a different number of acknowledgements each round, so that the kill lands at
    // different points of the writer's cycle; every round goes on from the last one's file.
    for (round, kill_after) in [(0u64, 40usize), (1, 700), (2, 1), (3, 2500), (4, 170)] {
        let test = "acknowledged_appends_and_cursors_survive_kill_9";
        let round_text = round.to_string();
        let env = [(CHILD_LOG, path.as_os_str()), (CHILD_ROUND, OsStr::new(&round_text))];
        let seen = common::kill_9_after(kill_after, test, &env, |line| {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["ACK", broker, offset, round, task, seq] => {
                    let key = (broker.to_string(), offset.parse().unwrap());
                    let value = (round.parse().unwrap(), task.parse().unwrap(), seq.parse().unwrap());
                    assert!(acked.insert(key, value).is_none(), "offset acknowledged twice: {line}");
                    true
                }
                ["CUR", trigger, cursor] => {
                    let cursor: u64 = cursor.parse().unwrap();
                    let last = cursors.entry(trigger.to_string()).or_default();
                    *last = (*last).max(cursor);
                    false
                }
                _ => false,
            }
        });
        assert!(seen >= kill_after, "round {round}: the child stopped after {seen} acknowledgements");

        let log = open(&path);
        let mut total = 0;
        for task in 0..3 {
            let broker = crash_broker(task);
            let entries = log.read(&broker, 0, usize::MAX).unwrap();
            // Offsets strictly increasing from 0, without gaps, up to the next offset.
            let offsets: Vec<u64> = entries.iter().map(|e| e.offset).collect();
            assert_eq!(offsets, (0..log.next_offset(&broker)).collect::<Vec<_>>(), "{broker}");
            // Every entry is a whole event some appender wrote, and none is there twice.
            let mut contents = HashSet::new();
            for entry in &entries {
                let text = String::from_utf8_lossy(&entry.event);
                let mut parts = text.splitn(4, '/');
                let (r, t, s) = (
                    parts.next().unwrap().parse().unwrap(),
                    parts.next().unwrap().parse().unwrap(),
                    parts.next().unwrap().parse().unwrap(),
                );
                assert_eq!(entry.event, crash_event(r, t, s), "{broker} {}: torn entry", entry.offset);
                assert!(contents.insert((r, t, s)), "{broker}: event {r}/{t}/{s} stored twice");
            }
            // Every acknowledged entry is there, intact, at its offset.
            for ((acked_broker, offset), (r, t, s)) in &acked {
                if *acked_broker == broker {
                    let entry = &entries[*offset as usize];
                    assert_eq!(entry.event, crash_event(*r, *t, *s), "{broker} {offset}: lost or changed");
                }
            }
            total += entries.len();
        }
        for (trigger, cursor) in &cursors {
            let stored = log.cursor(trigger).unwrap().unwrap();
            assert!(stored >= *cursor, "{trigger}: cursor {stored} behind acknowledged {cursor}");
        }
        assert!(total >= acked.len());
    }
    assert!(acked.len() >= 3411);
}
