//! API benchmark: creates/s and latency for 1,000 Services, and listing 10,000, through
//! the real `skiff` binary over HTTP. Baselines measured in the same run: the store's
//! floor (one durable redb commit per object, in-process) and the serialisation floor
//! (encoding the same 10,000 objects as JSON, in-process).
//!
//! Run: `cargo bench -p skiff-tests --bench api` (builds skiff in release mode).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_tests::{Skiff, ms, percentile};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"bench": "api"}},
        // A Wasm revision whose component is not on this node: its revision fails at once,
        // without a registry lookup, so the controllers' work stays local as the API is measured.
        "spec": {"template": {"spec": {"runtimeClassName": "wasm", "containers": [{
            "image": format!("skiff.local/components/bench@sha256:{}", "0".repeat(64)),
            "env": [{"name": "TARGET", "value": "benchmark"}],
            "ports": [{"containerPort": 8080}],
        }]}}},
    })
}

/// Create `count` services named `{prefix}-{i}` with `clients` concurrent clients.
async fn create(skiff: &Skiff, prefix: &str, count: usize, clients: usize) -> (Duration, Vec<Duration>) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, next, prefix, token) = (
                skiff.http.clone(),
                format!("{}{SERVICES}", skiff.api),
                next.clone(),
                prefix.to_string(),
                skiff.token.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return latencies;
                    }
                    let body = service(&format!("{prefix}-{i}"));
                    let t = Instant::now();
                    let response =
                        http.post(&url).bearer_auth(&token).json(&body).send().await.expect("create");
                    assert_eq!(response.status().as_u16(), 201, "create {prefix}-{i}");
                    let _ = response.bytes().await;
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (elapsed, latencies)
}

fn redb_floor(count: usize) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = redb::Database::create(dir.path().join("floor.redb")).expect("redb");
    let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("objects");
    let started = Instant::now();
    for i in 0..count {
        let bytes = serde_json::to_vec(&service(&format!("floor-{i}"))).expect("json");
        let txn = db.begin_write().expect("txn");
        txn.open_table(table)
            .expect("table")
            .insert(format!("k{i}").as_str(), bytes.as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    if std::env::var("SKIFF_RELEASE").is_err() {
        println!("note: set SKIFF_RELEASE=1 to bench the release build (the bench script does)");
    }
    let skiff = Skiff::start();
    println!("API benchmark — skiff at {}", skiff.api);
    println!();

    let count = 1_000;
    let (elapsed, latencies) = create(&skiff, "seq", count, 1).await;
    println!(
        "create 1,000 Services, 1 client:    {:>8.0} creates/s   p50 {}   p99 {}",
        count as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    let (elapsed, latencies) = create(&skiff, "par", count, 16).await;
    println!(
        "create 1,000 Services, 16 clients:  {:>8.0} creates/s   p50 {}   p99 {}   (goal >= 2,000/s)",
        count as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    let floor = redb_floor(count);
    println!(
        "baseline: 1,000 durable redb commits, one object each, in-process: {:>8.0} commits/s",
        count as f64 / floor.as_secs_f64()
    );
    println!();

    // Fill up to 10,000 services and list them.
    let (_, _) = create(&skiff, "fill", 10_000 - 2 * count, 16).await;
    // Let the controllers settle so the list measures the API, not a busy machine.
    let settle = Instant::now();
    loop {
        let (_, revisions) = skiff.get("/apis/serving.knative.dev/v1/namespaces/default/revisions").await;
        if revisions["items"].as_array().map(Vec::len) == Some(10_000)
            || settle.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut lists = Vec::new();
    let mut body_len = 0;
    let mut items = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let response = skiff.api_request(reqwest::Method::GET, SERVICES).send().await.expect("list");
        let bytes = response.bytes().await.expect("list body");
        lists.push(t.elapsed());
        body_len = bytes.len();
        if items.is_empty() {
            let list: Value = serde_json::from_slice(&bytes).expect("list json");
            items = list["items"].as_array().cloned().unwrap_or_default();
        }
    }
    lists.sort();
    println!(
        "list 10,000 Services over HTTP:     p50 {}   p99 {}   ({} items, {:.1} MiB)   (goal < 200 ms)",
        ms(percentile(&lists, 0.5)),
        ms(percentile(&lists, 0.99)),
        items.len(),
        body_len as f64 / (1024.0 * 1024.0)
    );
    let mut encodes = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let bytes = serde_json::to_vec(&items).expect("encode");
        std::hint::black_box(bytes);
        encodes.push(t.elapsed());
    }
    encodes.sort();
    println!(
        "baseline: encoding the same 10,000 objects as JSON in-process: p50 {}",
        ms(percentile(&encodes, 0.5))
    );
}
