//! The `skiff` CLI end to end: a `.wasm` file to a service with `service create --wasm`,
//! updates, traffic splits and tags, logs, describe, delete, and `skiff push` to a registry.

use std::process::Output;
use std::time::{Duration, Instant};

use skiff_tests::registry::Registry;
use skiff_tests::{Skiff, describe};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";

/// GET `path` from the data plane as `host`: status and body.
async fn call(skiff: &Skiff, host: &str, path: &str) -> (u16, String) {
    let response = skiff
        .http
        .get(format!("{}{path}", skiff.data))
        .header("host", host)
        .send()
        .await
        .expect("request to the data plane");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Calls `host` until `check` holds on the answer (up to 20 s); returns the last answer.
async fn call_until(skiff: &Skiff, host: &str, check: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = call(skiff, host, "/").await;
        if check(status, &body) {
            return (status, body);
        }
        assert!(Instant::now() < deadline, "{host} kept answering {status} {body:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the CLI and asserts it succeeded; returns stdout.
fn ok(skiff: &Skiff, args: &[&str]) -> String {
    let output = skiff.cli(args);
    assert!(output.status.success(), "skiff {}: {}", args.join(" "), describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs the CLI and asserts it failed with exit code 1; returns stderr.
fn fails(skiff: &Skiff, args: &[&str]) -> String {
    let output: Output = skiff.cli(args);
    assert_eq!(output.status.code(), Some(1), "skiff {}: {}", args.join(" "), describe(&output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_wasm_file_becomes_a_service_that_updates_splits_logs_and_goes() {
    skiff_runtime_oci::install_crypto_provider();
    let skiff = Skiff::start();
    let host = "hello.default.localhost";

    // One command from file to URL, with the other flags in the same revision.
    let created =
        ok(&skiff, &["service", "create", "hello", "--wasm", skiff_guests::HELLO, "--env", "TARGET=Skiff"]);
    assert_eq!(
        created,
        "Service 'hello' created to latest revision 'hello-00001' is available at URL:\nhttp://hello.default.localhost\n"
    );
    assert_eq!(call(&skiff, host, "/").await, (200, "Hello Skiff!\n".to_string()));
    let (_, service) = skiff.get(&format!("{SERVICES}/hello")).await;
    let template = &service["spec"]["template"]["spec"];
    assert_eq!(template["runtimeClassName"], "wasm", "{service}");
    assert!(
        template["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("skiff.local/components/hello@sha256:")
    );

    // An update makes a second revision, which takes the traffic.
    let updated = ok(&skiff, &["service", "update", "hello", "--env", "TARGET=Again"]);
    assert!(updated.contains("Service 'hello' updated to latest revision 'hello-00002'"), "{updated}");
    assert_eq!(call(&skiff, host, "/").await, (200, "Hello Again!\n".to_string()));

    // Split the traffic and tag the new revision: the tag's host reaches only it.
    ok(
        &skiff,
        &[
            "service",
            "update",
            "hello",
            "--traffic",
            "hello-00001=50,hello-00002=50",
            "--tag",
            "hello-00002=candidate",
        ],
    );
    let tagged = "candidate-hello.default.localhost";
    call_until(&skiff, tagged, |status, _| status == 200).await;
    for _ in 0..10 {
        assert_eq!(call(&skiff, tagged, "/").await, (200, "Hello Again!\n".to_string()));
    }
    let mut answers = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (status, body) = call(&skiff, host, "/").await;
        assert_eq!(status, 200, "{body}");
        answers.insert(body);
    }
    assert_eq!(answers.into_iter().collect::<Vec<_>>(), ["Hello Again!\n", "Hello Skiff!\n"]);

    let revisions = ok(&skiff, &["revision", "list"]);
    for want in ["hello-00001", "hello-00002", "candidate", "50%"] {
        assert!(revisions.contains(want), "{want} missing from:\n{revisions}");
    }
    let description = ok(&skiff, &["service", "describe", "hello"]);
    for want in ["hello-00001", "hello-00002 #candidate", "http://candidate-hello.default.localhost"] {
        assert!(description.contains(want), "{want} missing from:\n{description}");
    }

    // hello writes nothing, but its revisions run: logs has nothing to say and says so with 0.
    ok(&skiff, &["logs", "hello"]);
    ok(&skiff, &["logs", "hello", "--revision", "hello-00001", "--tail", "5"]);

    // A guest's panic lands on its stderr, which logs shows with the revision in front.
    ok(&skiff, &["service", "create", "misbehave", "--wasm", skiff_guests::MISBEHAVE]);
    let (status, _) = call(&skiff, "misbehave.default.localhost", "/trap").await;
    assert_eq!(status, 500);
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs = ok(&skiff, &["logs", "misbehave"]);
        if logs.contains("trapping on purpose") || Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let panic_line = logs.lines().find(|l| l.contains("trapping on purpose"));
    let panic_line = panic_line.unwrap_or_else(|| panic!("no panic message in the logs:\n{logs}"));
    assert!(panic_line.starts_with("[misbehave-00001] "), "{panic_line}");
    assert!(panic_line.contains(" stderr "), "{panic_line}");
    assert!(logs.lines().all(|l| l.starts_with("[misbehave-00001] ")), "{logs}");
    let tail = ok(&skiff, &["logs", "misbehave", "--tail", "1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // Delete: the host stops answering.
    let deleted = ok(&skiff, &["service", "delete", "hello"]);
    assert!(deleted.contains("Service 'hello' successfully deleted"), "{deleted}");
    call_until(&skiff, host, |status, _| status == 404).await;

    // Errors name what is wrong and exit 1.
    let err = fails(&skiff, &["service", "create", "x", "--wasm", "/nonexistent"]);
    assert!(err.contains("/nonexistent"), "{err}");
    let err = fails(&skiff, &["service", "create", "x", "--wasm", "/etc/hostname"]);
    assert!(err.contains("not a WebAssembly file"), "{err}");
    let err = fails(&skiff, &["service", "create", "misbehave", "--wasm", skiff_guests::MISBEHAVE]);
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&skiff, &["logs", "nosuch"]);
    assert!(err.contains("'nosuch' not found"), "{err}");
    let err = fails(&skiff, &["logs", "hello"]);
    assert!(err.contains("'hello' not found"), "{err}");
    let output = skiff.cli(&["service", "create", "x", "--wasm", skiff_guests::HELLO, "--image", "a:1"]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be used with"), "{}", describe(&output));
}

#[tokio::test]
async fn a_pushed_component_runs_from_the_registry_and_an_update_uploads_new_code() {
    skiff_runtime_oci::install_crypto_provider();
    let skiff = Skiff::start();
    let host = "fn.default.localhost";

    // skiff push, then a service of the pinned reference with --runtime-class (when the test
    // registry is installed; otherwise the service starts from an upload).
    match Registry::start() {
        Some(registry) => {
            let reference = registry.reference("fns/hello:v1");
            let pinned = ok(&skiff, &["push", skiff_guests::HELLO, &reference]);
            let pinned = pinned.trim();
            let repository = registry.reference("fns/hello@sha256:");
            assert!(pinned.starts_with(&repository), "{pinned}");
            ok(
                &skiff,
                &[
                    "service",
                    "create",
                    "fn",
                    "--image",
                    pinned,
                    "--runtime-class",
                    "wasm",
                    "--env",
                    "TARGET=Registry",
                ],
            );
            assert_eq!(call(&skiff, host, "/").await, (200, "Hello Registry!\n".to_string()));
            let (_, service) = skiff.get(&format!("{SERVICES}/fn")).await;
            assert_eq!(service["spec"]["template"]["spec"]["runtimeClassName"], "wasm");

            // A registry error is the registry's message, exit 1.
            let err =
                fails(&skiff, &["push", skiff_guests::HELLO, &registry.reference("fns/hello@sha256:00")]);
            assert!(err.contains("Error: "), "{err}");
        }
        None => {
            ok(
                &skiff,
                &["service", "create", "fn", "--wasm", skiff_guests::HELLO, "--env", "TARGET=Registry"],
            );
        }
    }
    let err = fails(&skiff, &["push", skiff_guests::HELLO, "127.0.0.1:1/fns/hello:v1"]);
    assert!(err.contains("127.0.0.1:1") && err.contains("unreachable"), "{err}");

    // New code with --wasm: one new revision with the upload and the other flags.
    let updated = ok(&skiff, &["service", "update", "fn", "--wasm", skiff_guests::ECHO, "--env", "TARGET-"]);
    assert!(updated.contains("Service 'fn' updated to latest revision 'fn-00002'"), "{updated}");
    let response = skiff
        .http
        .get(format!("{}/echoed", skiff.data))
        .header("host", host)
        .send()
        .await
        .expect("request to echo");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-echo-path"], "/echoed");
    let (_, service) = skiff.get(&format!("{SERVICES}/fn")).await;
    let template = &service["spec"]["template"]["spec"];
    assert_eq!(template["runtimeClassName"], "wasm");
    assert!(template["containers"][0]["image"].as_str().unwrap().starts_with("skiff.local/components/fn@"));
    assert!(template["containers"][0].get("env").is_none(), "{service}");
    assert_eq!(service["metadata"]["generation"], 2, "one write, one revision: {service}");

    // An update of a service that does not exist uploads nothing and says so.
    let err = fails(&skiff, &["service", "update", "nosuch", "--wasm", skiff_guests::ECHO]);
    assert!(err.contains("nosuch"), "{err}");
}
