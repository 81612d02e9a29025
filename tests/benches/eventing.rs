//! Eventing benchmark through the real binary (release build), three figures, each next to a
//! baseline from the same run:
//!
//! 1. Ingress: events/s a broker accepts durably (202 only after the fsync'd append), binary
//!    mode, 1 KiB of data, 16 connections, driven by wrk. Baseline: the same requests to a
//!    broker that does not exist (404 before any write): the data plane's HTTP ceiling.
//! 2. End to end: events/s from ingress to a Wasm subscriber (`hello`, one pod kept up),
//!    through a trigger: 16 connections post for a fixed time, then the clock runs until
//!    the trigger has delivered every accepted event. Baseline: requests/s straight to the
//!    same service with wrk, 16 connections.
//! 3. Latency at a steady 1,000 events/s for 10 s: from sending an event to the broker to the
//!    subscriber (an HTTP recorder in this process) receiving it, p50/p99. Baseline: the
//!    ingress's own 202 round trip for the same events.
//!
//! Run: `scripts/bench.sh eventing`, or `SKIFF_RELEASE=1 cargo bench -p skiff-tests --bench eventing`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use skiff_tests::recorder::Recorder;
use skiff_tests::{BROKERS, Skiff, TRIGGERS, ms, percentile, wrk};

const CONNECTIONS: usize = 16;
const LOAD_SECONDS: u64 = 8;
const RATE: u64 = 1000;
const RATE_SECONDS: u64 = 10;

/// wrk against the data plane: requests/s and how many answers were not 2xx.
fn load(skiff: &Skiff, host: &str, path: &str, post_event: bool) -> (f64, u64) {
    let body = "x".repeat(1024);
    let lua = if post_event {
        format!(
            "counter = 0\n\
             request = function()\n\
               counter = counter + 1\n\
               local headers = {{}}\n\
               headers[\"Host\"] = \"{host}\"\n\
               headers[\"ce-specversion\"] = \"1.0\"\n\
               headers[\"ce-id\"] = tostring(counter) .. \"-\" .. tostring(math.random(1, 1000000000))\n\
               headers[\"ce-type\"] = \"bench\"\n\
               headers[\"ce-source\"] = \"/bench\"\n\
               headers[\"Content-Type\"] = \"application/octet-stream\"\n\
               return wrk.format(\"POST\", \"{path}\", headers, \"{body}\")\n\
             end\n"
        )
    } else {
        format!("wrk.headers[\"Host\"] = \"{host}\"\nwrk.path = \"{path}\"\n")
    };
    let run = wrk(&skiff.data, CONNECTIONS, LOAD_SECONDS, &lua);
    (run.requests_per_second, run.failed)
}

async fn metric(skiff: &Skiff, name: &str, label: &str) -> f64 {
    let (status, text) = skiff.get("/metrics").await;
    assert_eq!(status, 200);
    text.as_str()
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let skiff = Skiff::start();
    skiff.create_ready(BROKERS,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}}),
    )
    .await;
    skiff.deploy_one_warm_pod("hello", skiff_guests::HELLO).await;

    // 1. Ingress, durable, with no trigger reading.
    println!(
        "eventing benchmark ({CONNECTIONS} connections, {LOAD_SECONDS} s per run, 1 KiB binary-mode events)"
    );
    let (missing, _) = load(&skiff, "broker-ingress.localhost", "/default/missing", true);
    let (accepted, failed) = load(&skiff, "broker-ingress.localhost", "/default/default", true);
    assert_eq!(failed, 0, "the broker refused events");
    println!("ingress: {accepted:.0} events/s accepted durably (202 after fsync)");
    println!(
        "  baseline, 404 before any write: {missing:.0} requests/s  (durable ingress at {:.2}x of it; goal >= 10,000 events/s)",
        accepted / missing
    );

    // 2. End to end to a Wasm subscriber.
    skiff.create_ready(TRIGGERS, json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "to-hello"},
        "spec": {"broker": "default", "filter": {"attributes": {"type": "bench"}},
                 "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello"}}}}))
    .await;
    let (direct, _) = load(&skiff, "hello.default.localhost", "/", false);
    let before_accepted = metric(&skiff, "skiff_broker_events_accepted_total", "broker=\"default\"").await;
    let started = Instant::now();
    let (_, failed) = load(&skiff, "broker-ingress.localhost", "/default/default", true);
    assert_eq!(failed, 0, "the broker refused events");
    let accepted_now =
        metric(&skiff, "skiff_broker_events_accepted_total", "broker=\"default\"").await - before_accepted;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let delivered = metric(&skiff, "skiff_trigger_events_delivered_total", "trigger=\"to-hello\"").await;
        if delivered >= accepted_now {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {delivered} of {accepted_now} events delivered after 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let failed = metric(&skiff, "skiff_trigger_events_failed_total", "trigger=\"to-hello\"").await;
    let e2e = accepted_now / took.as_secs_f64();
    println!(
        "end to end: {e2e:.0} events/s delivered to the Wasm subscriber ({accepted_now:.0} events in {:.2} s, {failed} failed)",
        took.as_secs_f64()
    );
    println!(
        "  baseline, requests straight to the service: {direct:.0} requests/s  ({:.2}x; goal >= 5,000 events/s)",
        e2e / direct
    );
    let (status, _) = skiff.delete(&format!("{TRIGGERS}/to-hello")).await;
    assert_eq!(status, 200);

    // 3. Latency at a steady 1,000 events/s.
    let recorder = Recorder::start();
    skiff.create_ready(TRIGGERS, json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "to-recorder"},
        "spec": {"broker": "default", "filter": {"attributes": {"type": "paced"}},
                 "subscriber": {"uri": format!("{}/paced", recorder.url)}}}))
    .await;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let acks: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let total = RATE * RATE_SECONDS;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    let body = "x".repeat(1024);
    for n in 0..total {
        ticker.tick().await;
        let (request, sent, acks) = (
            skiff
                .to_host(reqwest::Method::POST, "broker-ingress.localhost", "/default/default")
                .header("ce-specversion", "1.0")
                .header("ce-id", format!("p{n}"))
                .header("ce-type", "paced")
                .header("ce-source", "/bench")
                .body(body.clone()),
            sent.clone(),
            acks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            sent.lock().unwrap_or_else(|p| p.into_inner()).insert(format!("p{n}"), at);
            let response = request.send().await.expect("posting an event");
            assert_eq!(response.status().as_u16(), 202);
            acks.lock().unwrap_or_else(|p| p.into_inner()).push(at.elapsed());
        }));
    }
    for task in tasks {
        task.await.expect("sender");
    }
    let received = recorder.wait_for("/paced", total as usize, Duration::from_secs(60)).await;
    let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
    let mut latencies: Vec<Duration> = received
        .iter()
        .filter_map(|r| sent.get(r.header("ce-id")).map(|at| r.at.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    let mut acks = acks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    acks.sort();
    println!(
        "latency at {RATE} events/s for {RATE_SECONDS} s, ingress to subscriber: p50 {} p99 {} max {}  (goal p99 < 20 ms)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0))
    );
    println!(
        "  baseline, the ingress's 202 round trip: p50 {} p99 {}",
        ms(percentile(&acks, 0.5)),
        ms(percentile(&acks, 0.99))
    );
}
