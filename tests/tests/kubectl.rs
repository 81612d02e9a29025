//! kubectl against Skiff: apply, get, describe and delete of Knative's own sample.

use std::time::Duration;

use skiff_tests::{Skiff, describe, in_ci};

const SAMPLE: &str = include_str!("../fixtures/knative-helloworld-go.yaml");

fn kubectl_available() -> bool {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found || !in_ci(), "kubectl is not installed (scripts/setup.sh installs it)");
    found
}

#[tokio::test]
async fn kubectl_applies_gets_describes_and_deletes_a_knative_service() {
    if !kubectl_available() {
        eprintln!("skipping: kubectl is not installed (outside CI)");
        return;
    }
    let skiff = Skiff::start();

    let applied = skiff.kubectl(&["apply", "-f", "-"], Some(SAMPLE));
    assert!(applied.status.success(), "{}", describe(&applied));
    assert!(
        String::from_utf8_lossy(&applied.stdout)
            .contains("service.serving.knative.dev/helloworld-go created")
    );

    skiff
        .wait_for(
            "/apis/serving.knative.dev/v1/namespaces/default/services/helloworld-go",
            Duration::from_secs(10),
            |s| s["status"]["latestCreatedRevisionName"] == "helloworld-go-00001",
        )
        .await;

    // A second apply with a changed template patches it and makes revision 2.
    let changed = SAMPLE.replace("Go Sample v1", "Go Sample v2");
    let applied = skiff.kubectl(&["apply", "-f", "-"], Some(&changed));
    assert!(applied.status.success(), "{}", describe(&applied));
    assert!(String::from_utf8_lossy(&applied.stdout).contains("configured"), "{}", describe(&applied));
    skiff
        .wait_for(
            "/apis/serving.knative.dev/v1/namespaces/default/services/helloworld-go",
            Duration::from_secs(10),
            |s| s["status"]["latestCreatedRevisionName"] == "helloworld-go-00002",
        )
        .await;

    let get = skiff.kubectl(&["get", "ksvc"], None);
    assert!(get.status.success(), "{}", describe(&get));
    let table = String::from_utf8_lossy(&get.stdout);
    assert!(table.contains("LATESTCREATED"), "{table}");
    assert!(table.contains("http://helloworld-go.default.localhost"), "{table}");

    let yaml = skiff.kubectl(&["get", "ksvc", "helloworld-go", "-o", "yaml"], None);
    assert!(yaml.status.success(), "{}", describe(&yaml));
    let yaml = String::from_utf8_lossy(&yaml.stdout);
    assert!(yaml.contains("value: Go Sample v2"), "{yaml}");
    assert!(yaml.contains("latestCreatedRevisionName: helloworld-go-00002"), "{yaml}");

    let revisions = skiff.kubectl(&["get", "revisions"], None);
    let revisions = String::from_utf8_lossy(&revisions.stdout);
    assert!(
        revisions.contains("helloworld-go-00001") && revisions.contains("helloworld-go-00002"),
        "{revisions}"
    );

    let described = skiff.kubectl(&["describe", "ksvc", "helloworld-go"], None);
    assert!(described.status.success(), "{}", describe(&described));
    let text = String::from_utf8_lossy(&described.stdout);
    assert!(text.contains("Latest Created Revision Name:  helloworld-go-00002"), "{text}");
    // The sample's image is a container on a registry this machine cannot reach: the
    // revision says why it cannot run, in words from the registry client.
    assert!(text.contains("RevisionFailed") && text.contains("ghcr.io/knative/helloworld-go"), "{text}");

    let deleted = skiff.kubectl(&["delete", "ksvc", "helloworld-go"], None);
    assert!(deleted.status.success(), "{}", describe(&deleted));
    let gone = skiff.kubectl(&["get", "ksvc", "helloworld-go"], None);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"), "{}", describe(&gone));
    // What the service owned goes with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = skiff.kubectl(&["get", "revisions,configurations,routes", "-o", "name"], None);
        if String::from_utf8_lossy(&left.stdout).trim().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", describe(&left));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kubectl_reports_an_invalid_split_by_field() {
    if !kubectl_available() {
        eprintln!("skipping: kubectl is not installed (outside CI)");
        return;
    }
    let skiff = Skiff::start();
    let split = format!(
        "{SAMPLE}  traffic:\n    - revisionName: helloworld-go-00001\n      percent: 70\n    - latestRevision: true\n      percent: 20\n"
    );
    let applied = skiff.kubectl(&["apply", "-f", "-"], Some(&split));
    assert!(!applied.status.success());
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(stderr.contains("spec.traffic") && stderr.contains("sum to 90"), "{stderr}");
}

#[tokio::test]
async fn kubectl_sees_pods_reads_their_logs_and_deletes_them() {
    if !kubectl_available() {
        eprintln!("skipping: kubectl is not installed (outside CI)");
        return;
    }
    let skiff = Skiff::start();
    skiff.deploy_wasm("misbehave", skiff_guests::MISBEHAVE).await;
    let path = "/apis/serving.knative.dev/v1/namespaces/default/services/misbehave";
    let short = serde_json::json!({"spec": {"template": {"spec": {"timeoutSeconds": 1}}}});
    assert_eq!(skiff.merge_patch(path, &short).await.0, 200);
    skiff.wait_ready("misbehave").await;
    // /spam floods stdout until its timeout stops it; the lines land in the pod's log.
    let (status, _) = skiff.call("misbehave.default.localhost", "/spam").await;
    assert_eq!(status, 504, "spamming is stopped by the timeout");

    let pods = skiff.kubectl(&["get", "pods"], None);
    assert!(pods.status.success(), "{}", describe(&pods));
    let text = String::from_utf8_lossy(&pods.stdout).to_string();
    let header = text.lines().next().unwrap_or_default();
    for column in ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "RUNTIME", "REVISION"] {
        assert!(header.contains(column), "{text}");
    }
    let row = text.lines().find(|l| l.starts_with("misbehave-00002-deployment-")).expect(&text);
    assert!(row.contains("1/1") && row.contains("Running") && row.contains("wasm"), "{text}");
    let pod = row.split_whitespace().next().unwrap().to_string();

    let logs = skiff.kubectl(&["logs", &pod], None);
    assert!(logs.status.success(), "{}", describe(&logs));
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("spamming stdout on purpose"),
        "{}",
        describe(&logs)
    );

    let selected = skiff
        .kubectl(&["get", "pods", "-l", "serving.knative.dev/revision=misbehave-00002", "-o", "name"], None);
    assert_eq!(String::from_utf8_lossy(&selected.stdout).trim(), format!("pod/{pod}"));

    let deleted = skiff.kubectl(&["delete", "pod", &pod], None);
    assert!(deleted.status.success(), "{}", describe(&deleted));
    // The autoscaler replaces it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = skiff.kubectl(&["get", "pods", "-o", "name"], None);
        let names = String::from_utf8_lossy(&now.stdout).to_string();
        if names.contains("pod/misbehave-00002-deployment-") && !names.contains(&pod) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the deleted pod was not replaced: {names}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let created = skiff.kubectl(&["run", "mine", "--image", "nginx"], None);
    assert!(!created.status.success(), "pods are not created through the API");
}
