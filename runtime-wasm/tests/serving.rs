//! Serving requests with real guests: environment, streaming bodies, headers, concurrency.

mod common;

use std::time::Instant;

use common::{get, pod, post, settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_with_target_from_the_environment() {
    let mut settings = settings("hello-00001");
    settings.env.push(("TARGET".into(), "Skiff".into()));
    let pod = pod(skiff_guests::HELLO, settings);
    let answer = get(&pod, "http://hello.default.localhost/").await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "Hello Skiff!\n");
    assert_eq!(answer.headers["content-type"], "text/plain; charset=utf-8");

    // Without TARGET the guest falls back to its default: the environment is the pod's only.
    let bare = common::pod(skiff_guests::HELLO, common::settings("hello-00002"));
    assert_eq!(get(&bare, "http://hello.default.localhost/").await.unwrap().text(), "Hello World!\n");
    assert_eq!(pod.digest().len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_an_authority_are_served() {
    let pod = pod(skiff_guests::ECHO, settings("echo-00001"));
    let answer = get(&pod, "/relative?x=1").await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["x-echo-path"], "/relative?x=1");
    assert_eq!(answer.headers["x-echo-method"], "GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_streams_a_large_body_back_intact_with_headers() {
    let pod = pod(skiff_guests::ECHO, settings("echo-00001"));
    let body: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let answer = post(
        &pod,
        "http://echo.default.localhost/upload?big=1",
        &[("x-custom", "value-1"), ("content-type", "application/octet-stream")],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), body.len());
    assert!(answer.body == body, "the echoed body differs from what was sent");
    assert_eq!(answer.headers["x-echo-x-custom"], "value-1");
    assert_eq!(answer.headers["x-echo-content-type"], "application/octet-stream");
    assert_eq!(answer.headers["x-echo-method"], "POST");
    assert_eq!(answer.headers["x-echo-path"], "/upload?big=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_are_all_answered_correctly() {
    let mut settings = settings("hello-00001");
    settings.env.push(("TARGET".into(), "Concurrency".into()));
    let pod = pod(skiff_guests::HELLO, settings);
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let pod = pod.clone();
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..200 / 16 + 1 {
                    let answer = get(&pod, "http://hello.default.localhost/").await.unwrap();
                    assert_eq!(answer.status, 200);
                    assert_eq!(answer.text(), "Hello Concurrency!\n");
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert!(total >= 200);
    eprintln!("{total} requests over 16 tasks in {:?}", started.elapsed());
}
