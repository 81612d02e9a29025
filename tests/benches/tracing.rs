//! The cost of tracing on the data path: requests/s of the `hello` example with every
//! request sampled and exported over OTLP/HTTP to a receiver, against the same with tracing
//! off, in the same run. The receiver reads every export whole and answers it without
//! decoding: a collector runs elsewhere, and its work is not Skiff's. wrk drives each for 8 s at 1 and 16 connections; the runs alternate
//! (off, on, off, on) and the medians are compared.
//!
//! Run: `scripts/bench.sh tracing`, or `SKIFF_RELEASE=1 cargo bench -p skiff-tests --bench tracing`.

use std::process::Command;

use serde_json::json;
use skiff_tests::Skiff;
use skiff_tests::otlp::OtlpReceiver;

const ROUNDS: usize = 3;

fn wrk(skiff: &Skiff, connections: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("host.lua");
    std::fs::write(&script, "wrk.headers[\"Host\"] = \"hello.default.localhost\"\n").expect("wrk script");
    let output = Command::new("wrk")
        .args([
            "-t",
            if connections == 1 { "1" } else { "2" },
            "-c",
            &connections.to_string(),
            "-d",
            "8s",
            "-s",
        ])
        .arg(&script)
        .arg(format!("{}/", skiff.data))
        .output()
        .expect("running wrk (scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("Non-2xx"), "errors under load:\n{text}");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

async fn deploy(skiff: &Skiff) {
    let image = skiff.upload_component(std::fs::read(skiff_guests::HELLO).expect("guest"), "hello").await;
    skiff
        .create_service(
            "hello",
            json!({"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "1"}),
            json!({"containers": [{"image": image}]}),
        )
        .await;
    skiff.wait_ready("hello").await;
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let receiver = OtlpReceiver::start_counting();
    let (off_dir, on_dir) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let off = Skiff::start_in(off_dir.path(), &[], &[]);
    let on = Skiff::start_in(
        on_dir.path(),
        &[
            "--otlp-endpoint",
            &receiver.endpoint,
            "--otlp-protocol",
            "http/protobuf",
            "--trace-sample-ratio",
            "1",
        ],
        &[],
    );
    deploy(&off).await;
    deploy(&on).await;
    println!(
        "tracing overhead: hello through the ingress, wrk 8 s per run, {ROUNDS} alternating rounds, medians"
    );
    for connections in [1, 16] {
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            without.push(wrk(&off, connections));
            with.push(wrk(&on, connections));
        }
        let (without, with) = (median(without), median(with));
        println!(
            "{connections:>2} connections: {with:.0} req/s with 100% sampling and OTLP export, {without:.0} req/s with tracing off ({:.2}x; goal >= 0.9x)",
            with / without
        );
    }
    let (exports, bytes) = receiver.taken();
    println!("the receiver took {exports} exports, {:.1} MB of spans", bytes as f64 / 1e6);
    assert!(exports > 0, "nothing was exported");
}
