//! Misbehaving guests are contained: traps, infinite loops, memory exhaustion and output
//! spam fail the request with the right error, and the pod keeps serving.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{get, pod, settings, settings_with};
use skiff_runtime_wasm::{AllowList, InvokeError, LogStream, PodLog};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_guest_is_a_trap_and_the_pod_keeps_serving() {
    let log = PodLog::new(100);
    let pod = pod(
        skiff_guests::MISBEHAVE,
        settings_with(
            "misbehave-00001",
            Duration::from_secs(10),
            Arc::new(AllowList::deny_all()),
            log.clone(),
        ),
    );
    let err = get(&pod, "http://misbehave.default.localhost/trap").await.unwrap_err();
    let InvokeError::Trap { message } = &err else { panic!("expected a trap, got {err:?}") };
    eprintln!("trap: {message}");
    assert!(message.contains("unreachable"), "{message}");
    // The guest's panic message went to its stderr, into the pod log.
    let lines = log.lines();
    assert!(
        lines.iter().any(|l| l.stream == LogStream::Stderr && l.text.contains("trapping on purpose")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.stream == LogStream::Host && l.text.starts_with("guest trapped")),
        "{lines:?}"
    );
    assert_eq!(get(&pod, "http://misbehave.default.localhost/").await.unwrap().text(), "fine\n");
}

/// On a single-threaded executor, a guest spinning forever must still let other requests
/// run (it yields every epoch tick), and is stopped at its timeout.
#[tokio::test(flavor = "current_thread")]
async fn an_infinite_loop_times_out_without_blocking_other_requests() {
    let timeout = Duration::from_millis(500);
    let mut settings = settings("misbehave-00001");
    settings.timeout = timeout;
    let pod = pod(skiff_guests::MISBEHAVE, settings);

    let started = Instant::now();
    let looping = tokio::spawn({
        let pod = pod.clone();
        async move { get(&pod, "http://misbehave.default.localhost/loop").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!looping.is_finished());

    // Served while the loop spins on the same thread.
    let answer = get(&pod, "http://misbehave.default.localhost/").await.unwrap();
    let served_after = started.elapsed();
    assert_eq!(answer.text(), "fine\n");
    assert!(served_after < Duration::from_millis(400), "a concurrent request waited {served_after:?}");
    assert!(!looping.is_finished(), "the loop should still be running");

    let err = looping.await.unwrap().unwrap_err();
    let stopped_after = started.elapsed();
    assert!(matches!(err, InvokeError::Timeout { after } if after == timeout), "{err:?}");
    assert!(stopped_after >= timeout, "stopped early: {stopped_after:?}");
    assert!(stopped_after < Duration::from_millis(1000), "stopped late: {stopped_after:?}");

    // The same pod still serves.
    assert_eq!(get(&pod, "http://misbehave.default.localhost/").await.unwrap().text(), "fine\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausting_memory_is_out_of_memory_naming_the_limit() {
    let mut settings = settings("misbehave-00001");
    settings.memory_limit_bytes = 32 << 20;
    let pod = pod(skiff_guests::MISBEHAVE, settings);
    let err = get(&pod, "http://misbehave.default.localhost/alloc").await.unwrap_err();
    assert!(matches!(err, InvokeError::OutOfMemory { limit_bytes } if limit_bytes == 32 << 20), "{err:?}");
    assert!(err.to_string().contains("33554432 bytes"), "{err}");
    assert_eq!(get(&pod, "http://misbehave.default.localhost/").await.unwrap().text(), "fine\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_limit_below_the_initial_memory_fails_as_out_of_memory() {
    let mut settings = settings("hello-00001");
    settings.memory_limit_bytes = 64 * 1024;
    let pod = pod(skiff_guests::HELLO, settings);
    let err = get(&pod, "http://hello.default.localhost/").await.unwrap_err();
    assert!(matches!(err, InvokeError::OutOfMemory { limit_bytes: 65536 }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spamming_stdout_times_out_and_the_log_stays_bounded() {
    let log = PodLog::new(100);
    let timeout = Duration::from_secs(1);
    let pod = pod(
        skiff_guests::MISBEHAVE,
        settings_with("misbehave-00001", timeout, Arc::new(AllowList::deny_all()), log.clone()),
    );
    let started = Instant::now();
    let err = get(&pod, "http://misbehave.default.localhost/spam").await.unwrap_err();
    assert!(matches!(err, InvokeError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "stopped late: {:?}", started.elapsed());
    let lines = log.lines();
    assert!(lines.len() <= 100, "{} lines kept", lines.len());
    assert!(log.dropped() > 0, "nothing dropped");
    assert!(lines.iter().any(|l| l.stream == LogStream::Stdout && l.text.contains("spamming stdout")));
    eprintln!("kept {} lines, dropped {}", lines.len(), log.dropped());
}

/// A caller that stops waiting (a client gone) stops the guest: it is aborted rather than
/// left spinning until its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_request_stops_the_guest() {
    let log = PodLog::new(100);
    let timeout = Duration::from_millis(1500);
    let pod = pod(
        skiff_guests::MISBEHAVE,
        settings_with("misbehave-00001", timeout, Arc::new(AllowList::deny_all()), log.clone()),
    );
    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), get(&pod, "http://m.localhost/loop")).await;
    assert!(gave_up.is_err(), "the loop cannot answer");
    tokio::time::sleep(timeout + Duration::from_millis(300)).await;
    let lines = log.lines();
    assert!(
        !lines.iter().any(|l| l.text.contains("timed out")),
        "the guest ran until its timeout instead of being stopped: {lines:?}"
    );
}

#[test]
fn handle_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let pod = pod(skiff_guests::HELLO, settings("hello-00001"));
    let request = http::Request::get("/").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    let future = pod.handle(request);
    assert_send(&future);
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<skiff_runtime_wasm::WasmPod>();
    assert_send_sync::<skiff_runtime_wasm::WasmRuntime>();
    assert_send_sync::<skiff_runtime_wasm::PodLog>();
    fn assert_send_only<T: Send + 'static>() {}
    assert_send_only::<skiff_runtime_wasm::ResponseBody>();
}
