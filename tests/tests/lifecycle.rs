//! The process as an operator meets it: tokens, signals, a data directory in use.

use reqwest::StatusCode;
use skiff_tests::{Skiff, skiff_bin};

#[tokio::test]
async fn a_token_is_enforced_and_health_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut skiff = Skiff::start_in(dir.path(), &[], &[("SKIFF_TOKEN", "s3cret")]);
    let url = format!("{}/apis/serving.knative.dev/v1/namespaces/default/services", skiff.api);
    let anonymous = skiff.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let status: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(status["reason"], "Unauthorized");
    let wrong = skiff.http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = skiff.http.get(&url).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let health = skiff.http.get(format!("{}/readyz", skiff.api)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // The CLI reads the kubeconfig `skiff up` wrote; a --token of its own wins over it.
    let listed = skiff.cli(&["service", "list"]);
    assert!(listed.status.success(), "{}", skiff_tests::describe(&listed));
    let denied = skiff.cli(&["service", "list", "--token", "nope"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("not valid"),
        "{}",
        skiff_tests::describe(&denied)
    );
    assert!(skiff.terminate(), "skiff did not exit cleanly on SIGTERM");
}

#[tokio::test]
async fn listening_beyond_loopback_needs_the_generated_token_too() {
    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_in(dir.path(), &["--api-listen", "0.0.0.0:0"], &[]);
    assert!(skiff.api.starts_with("https://127.0.0.1:"), "{}", skiff.api);
    let url = format!("{}/api/v1/namespaces", skiff.api);
    let anonymous = skiff.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = skiff.get("/api/v1/namespaces").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_a_second_skiff_cannot_share_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut skiff = Skiff::start_in(dir.path(), &[], &[]);
    let second = std::process::Command::new(skiff_bin())
        .args(["up", "--data-dir"])
        .arg(dir.path())
        .args(["--api-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("skiff.redb"), "{stderr}");
    assert!(skiff.terminate(), "skiff did not exit cleanly on SIGTERM");
}
