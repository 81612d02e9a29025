//! The cost of tracing on the data path: requests/s of the `hello` example with every
//! request sampled and exported over OTLP/HTTP to a receiver, against the same with tracing
//! off, in the same run. The receiver reads every export whole and answers it without
//! decoding: a collector runs elsewhere, and its work is not Skiff's. wrk drives each for 8 s at 1 and 16 connections; the runs alternate
//! (off, on, off, on) and the medians are compared.
//!
//! Run: `scripts/bench.sh tracing`, or `SKIFF_RELEASE=1 cargo bench -p skiff-tests --bench tracing`.

use skiff_tests::otlp::OtlpReceiver;
use skiff_tests::{Skiff, wrk};

const ROUNDS: usize = 3;

fn load(skiff: &Skiff, connections: usize) -> f64 {
    let run = wrk(
        &format!("{}/", skiff.data),
        connections,
        8,
        "wrk.headers[\"Host\"] = \"hello.default.localhost\"\n",
    );
    assert_eq!(run.failed, 0, "errors under load");
    run.requests_per_second
}

async fn deploy(skiff: &Skiff) {
    skiff.deploy_one_warm_pod("hello", skiff_guests::HELLO).await;
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
            without.push(load(&off, connections));
            with.push(load(&on, connections));
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
