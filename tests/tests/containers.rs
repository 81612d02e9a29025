//! OCI container pods, driven through the real binary: an image built from
//! `examples/http-server`, pushed to Debian's `docker-registry` on loopback, run by a Knative
//! Service under runc, scaled by the same autoscaler as Wasm, and cleaned up after.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_runtime_oci::image::{ImageConfig, ImageFile};
use skiff_runtime_oci::{Credentials, RegistryClient};
use skiff_tests::registry::Registry;
use skiff_tests::{Skiff, condition, in_ci};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const REVISIONS: &str = "/apis/serving.knative.dev/v1/namespaces/default/revisions";

/// Containers need root and runc; under CI their absence is a failure.
fn containers_possible() -> bool {
    let runc = std::process::Command::new("runc").arg("--version").output().is_ok_and(|o| o.status.success());
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        (runc && root) || !in_ci(),
        "container tests need root and runc (scripts/setup.sh installs runc)"
    );
    if !(runc && root) {
        eprintln!("skipping: container tests need root and runc (outside CI)");
    }
    runc && root
}

/// The example server as an image in `registry`: its pinned reference.
async fn push_example(registry: &Registry) -> String {
    let server = std::fs::read(skiff_guests::HTTP_SERVER).expect("the http-server example");
    let files = [ImageFile { path: "/server".into(), contents: server, mode: 0o755 }];
    let config = ImageConfig {
        entrypoint: vec!["/server".into()],
        env: vec!["PATH=/".into()],
        exposed_ports: vec![8080],
        ..Default::default()
    };
    RegistryClient::new(Credentials::Anonymous)
        .push_image(&registry.reference("skiff-examples/http-server:latest"), &files, &config)
        .await
        .expect("pushing the example image")
}

async fn create(skiff: &Skiff, name: &str, image: &str, annotations: Value, container: Value) {
    let mut spec = json!({"image": image});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), container.as_object()) {
        spec.extend(extra.clone());
    }
    skiff.create_service(name, annotations, json!({"containers": [spec]})).await;
}

async fn wait_pods(
    skiff: &Skiff,
    service: &str,
    timeout: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let pods = skiff.pods_of(service).await;
        if check(&pods) {
            return pods;
        }
        assert!(Instant::now() < deadline, "{service}: pods not as expected after {timeout:?}: {pods:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn host_traces_of(pod: &str) -> Vec<String> {
    let mut left = Vec::new();
    let netns = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    left.extend(
        String::from_utf8_lossy(&netns.stdout).lines().filter(|l| l.contains(pod)).map(str::to_string),
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    left.extend(mounts.lines().filter(|l| l.contains(pod)).map(str::to_string));
    // No runtime process for it (runc runs with the pod's name as the container id).
    let processes = std::process::Command::new("pgrep").args(["-af", pod]).output().unwrap();
    left.extend(String::from_utf8_lossy(&processes.stdout).lines().map(str::to_string));
    left
}

const FAST: &[&str] = &[
    "--autoscaler",
    "stable-window=6s",
    "--autoscaler",
    "scale-to-zero-grace-period=6s",
    "--autoscaler",
    "tick-interval=1s",
];

#[tokio::test]
async fn a_container_service_serves_scales_out_and_to_zero_and_leaves_nothing_behind() {
    if !containers_possible() {
        return;
    }
    let Some(registry) = Registry::start() else { return };
    let image = push_example(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_in(dir.path(), FAST, &[]);
    create(
        &skiff,
        "web",
        &registry.reference("skiff-examples/http-server:latest"),
        json!({"autoscaling.knative.dev/target": "1", "autoscaling.knative.dev/target-utilization-percentage": "100",
               "autoscaling.knative.dev/max-scale": "3"}),
        json!({"env": [{"name": "TARGET", "value": "Containers"}]}),
    )
    .await;
    skiff.wait_ready("web").await;
    let revision = skiff.get(&format!("{REVISIONS}/web-00001")).await.1;
    assert_eq!(
        revision["status"]["containerStatuses"][0]["imageDigest"], image,
        "the revision pins the digest"
    );
    assert_eq!(skiff.call("web.default.localhost", "/").await, (200, "Hello Containers!\n".to_string()));

    let pods = wait_pods(&skiff, "web", Duration::from_secs(30), |p| p.len() == 1).await;
    assert_eq!(pods[0]["spec"]["runtimeClassName"], "oci");
    assert_eq!(pods[0]["status"]["phase"], "Running");
    let first = pods[0]["metadata"]["name"].as_str().unwrap().to_string();

    // Its own namespaces: only its own processes, only the image's files.
    let (_, ps) = skiff.call("web.default.localhost", "/ps").await;
    assert!(ps.lines().count() <= 3 && ps.contains("server"), "{ps}");
    let (_, root) = skiff.call("web.default.localhost", "/ls?path=/").await;
    assert!(root.contains("server") && !root.contains("work") && !root.contains("root\nrun\nsbin"), "{root}");
    let marker = dir.path().display().to_string();
    let (status, _) = skiff.call("web.default.localhost", &format!("/ls?path={marker}")).await;
    assert_eq!(status, 404, "the host's files are not visible");

    // Load scales it out, to max-scale.
    let until = Instant::now() + Duration::from_secs(5);
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let client = skiff.http.clone();
            let url = format!("{}/sleep?ms=300", skiff.data);
            tokio::spawn(async move {
                while Instant::now() < until {
                    let response =
                        client.get(&url).header("host", "web.default.localhost").send().await.unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                }
            })
        })
        .collect();
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(skiff.pods_of("web").await.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(peak, 3, "six in flight against a target of one scales to max-scale");

    // Idle: back to zero, and no process, mount or network namespace of its pods is left.
    wait_pods(&skiff, "web", Duration::from_secs(60), <[Value]>::is_empty).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(host_traces_of(&first).is_empty(), "left behind: {:?}", host_traces_of(&first));

    // And it wakes from zero.
    assert_eq!(skiff.call("web.default.localhost", "/").await, (200, "Hello Containers!\n".to_string()));
    let woken = wait_pods(&skiff, "web", Duration::from_secs(10), |p| p.len() == 1).await;
    let woken = woken[0]["metadata"]["name"].as_str().unwrap().to_string();
    let (status, _) = skiff.delete(&format!("{SERVICES}/web")).await;
    assert_eq!(status, 200);
    wait_pods(&skiff, "web", Duration::from_secs(30), <[Value]>::is_empty).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(host_traces_of(&woken).is_empty(), "left behind: {:?}", host_traces_of(&woken));
    // With its revision gone, so is its unpacked image.
    let images = dir.path().join("oci/images");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&images).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "the image is still unpacked in {}", images.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn crashes_out_of_memory_and_missing_images_are_reported() {
    if !containers_possible() {
        return;
    }
    let Some(registry) = Registry::start() else { return };
    push_example(&registry).await;
    let image = registry.reference("skiff-examples/http-server:latest");
    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_in(dir.path(), FAST, &[]);

    // The example's Knative YAML, as a user applies it.
    let manifest = include_str!("../../examples/manifests/containers/http-server.yaml")
        .replace("127.0.0.1:5000", &registry.host);
    let applied = skiff.cli_with_stdin(&["apply", "-f", "-"], Some(&manifest));
    assert!(applied.status.success(), "{}", skiff_tests::describe(&applied));
    skiff.wait_ready("web").await;
    assert_eq!(
        skiff.call("web.default.localhost", "/").await,
        (200, "Hello Skiff in a container!\n".to_string())
    );

    // Exits 3 at start: ExitCode3, restarted with backoff.
    create(&skiff, "crashy", &image, json!({}), json!({"env": [{"name": "EXIT_ON_START", "value": "3"}]}))
        .await;
    let crashy = skiff
        .wait_for(&format!("{REVISIONS}/crashy-00001"), Duration::from_secs(30), |r| {
            condition(r, "ContainerHealthy")
                .is_some_and(|(status, reason)| status == "False" && reason == "ExitCode3")
        })
        .await;
    assert_eq!(condition(&crashy, "Ready").unwrap().0, "False", "{crashy}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let log = skiff
        .api_request(reqwest::Method::GET, &format!("{REVISIONS}/crashy-00001/log"))
        .send()
        .await
        .unwrap();
    let log = log.text().await.unwrap();
    assert!(log.matches("exiting with 3 on start").count() >= 2, "restarted: {log}");

    // Over its memory limit: OOMKilled, and the pod is restarted under its name.
    create(
        &skiff,
        "hungry",
        &image,
        json!({"autoscaling.knative.dev/min-scale": "1"}),
        json!({"resources": {"limits": {"memory": "32Mi"}}}),
    )
    .await;
    skiff.wait_ready("hungry").await;
    let (status, _) = skiff.call("hungry.default.localhost", "/alloc?mb=128").await;
    assert!(status >= 500, "the request that blew the limit fails: {status}");
    let hungry = skiff
        .wait_for(&format!("{REVISIONS}/hungry-00001"), Duration::from_secs(30), |r| {
            condition(r, "ContainerHealthy").is_some_and(|(_, reason)| reason == "OOMKilled")
        })
        .await;
    assert_eq!(condition(&hungry, "ContainerHealthy").unwrap().0, "False");
    let pods = wait_pods(&skiff, "hungry", Duration::from_secs(30), |p| {
        p.len() == 1 && p[0]["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(pods[0]["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"], "OOMKilled");

    // A missing image: the registry's own words in the revision.
    create(&skiff, "ghost", &registry.reference("nope/missing:latest"), json!({}), json!({})).await;
    let ghost = skiff
        .wait_for(&format!("{REVISIONS}/ghost-00001"), Duration::from_secs(30), |r| {
            condition(r, "ResourcesAvailable").is_some_and(|(status, _)| status == "False")
        })
        .await;
    let (_, reason) = condition(&ghost, "ResourcesAvailable").unwrap();
    assert_eq!(reason, "ContainerMissing", "{ghost}");
    let message = ghost["status"]["conditions"].to_string();
    assert!(message.contains("nope/missing") && message.to_lowercase().contains("unknown"), "{message}");
}

#[tokio::test]
async fn requests_to_a_container_carry_the_trace() {
    if !containers_possible() {
        return;
    }
    let Some(registry) = Registry::start() else { return };
    push_example(&registry).await;
    let receiver = skiff_tests::otlp::OtlpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_exporting(dir.path(), &[], &receiver.endpoint);
    create(&skiff, "traced", &registry.reference("skiff-examples/http-server:latest"), json!({}), json!({}))
        .await;
    skiff.wait_ready("traced").await;
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let response = skiff
        .to_host(reqwest::Method::GET, "traced.default.localhost", "/headers")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.text().await.unwrap();
    let forwarded = headers.lines().find(|l| l.starts_with("traceparent: ")).expect(&headers);
    assert!(forwarded.starts_with(&format!("traceparent: 00-{trace_id}-")), "{headers}");
    assert!(!forwarded.contains("00f067aa0ba902b7"), "the container's parent is Skiff's span: {forwarded}");
    receiver.wait_for(Duration::from_secs(15), |spans| spans.iter().any(|s| s.trace_id == trace_id)).await;
}
