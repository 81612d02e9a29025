//! `Telemetry::shutdown` called from inside a current-thread tokio runtime
//! while the gRPC collector never answers: the worst case for a deadlock
//! (the runtime thread blocks in `shutdown` and tonic's connection task needs
//! that very thread). Shutdown must give up after its deadline instead.
//!
//! `init` installs a process-global subscriber, so this file holds one test.

use std::time::{Duration, Instant};

use skiff_tracing::{Protocol, TelemetryOptions};

#[tokio::test(flavor = "current_thread")]
async fn shutdown_returns_within_its_deadline_inside_a_current_thread_runtime() {
    // Accepts connections and never speaks: exports cannot complete.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind black hole");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });

    let telemetry = skiff_tracing::init(
        "shutdown-deadline-test",
        TelemetryOptions {
            endpoint: Some(format!("http://{addr}")),
            protocol: Some(Protocol::Grpc),
            ..TelemetryOptions::default()
        },
    )
    .expect("init");
    assert!(telemetry.exporting());
    tracing::info_span!("never_delivered").in_scope(|| tracing::info!("inside"));

    let started = Instant::now();
    telemetry.shutdown();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "shutdown took {elapsed:?}, past its ~5 s deadline");
}
