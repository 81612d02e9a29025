//! Container pods benchmark, with the example image (`examples/http-server`, a static
//! executable) in a loopback `docker-registry`, through the real binary under runc:
//!
//! 1. Cold start, 20 times: a service created with `initial-scale: "0"` (its image pulled
//!    and unpacked, no pod), one request timed from send to the full response, then the
//!    service is deleted. Baseline in the same run: a plain `runc run` of a bundle over the
//!    same unpacked rootfs (host network, no overlay, no namespace setup by Skiff), timed from
//!    spawning runc to the first answer of the server on its port: what the runtime and the
//!    server's own start cost.
//! 2. The warm path: sequential requests through the ingress (Host header) against the same
//!    requests straight to `podIP:8080`, one connection each, alternating rounds; p50s.
//!
//! Run: `scripts/bench.sh containers` (as root, with runc), or
//! `SKIFF_RELEASE=1 cargo bench -p skiff-tests --bench containers`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_runtime_oci::image::{ImageConfig, ImageFile};
use skiff_runtime_oci::{Credentials, RegistryClient};
use skiff_tests::registry::Registry;
use skiff_tests::{Skiff, ms, percentile};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const COLD_STARTS: usize = 20;
const ROUNDS: usize = 6;
const REQUESTS: usize = 1000;

async fn create(skiff: &Skiff, name: &str, image: &str, annotations: Value) {
    skiff.create_service(name, annotations, json!({"containers": [{"image": image}]})).await;
}

async fn timed_get(skiff: &Skiff, host: &str) -> Duration {
    let started = Instant::now();
    let response = skiff.to_host(reqwest::Method::GET, host, "/").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.unwrap();
    started.elapsed()
}

/// A GET of `/` for `host` on one kept-alive connection; the time to the full answer.
fn raw_get(stream: &mut TcpStream, host: &str) -> Duration {
    let started = Instant::now();
    stream.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).unwrap();
    let mut buffer = [0u8; 1024];
    let mut read = 0;
    loop {
        read += stream.read(&mut buffer[read..]).unwrap();
        let text = String::from_utf8_lossy(&buffer[..read]);
        if let Some(head) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if read >= head + 4 + length {
                return started.elapsed();
            }
        }
    }
}

/// `runc run` of a bundle over `rootfs` with the host's network: spawn to first answer.
fn bare_runc(rootfs: &std::path::Path, port: u16, round: usize) -> Duration {
    let bundle = tempfile::tempdir().unwrap();
    let id = format!("skiff-bench-bare-{}-{round}", std::process::id());
    let spec = Command::new("runc").args(["spec", "--bundle"]).arg(bundle.path()).status().unwrap();
    assert!(spec.success());
    let path = bundle.path().join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["root"] = json!({"path": rootfs, "readonly": true});
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["/server"]);
    config["process"]["env"] = json!(["PATH=/", format!("PORT={port}")]);
    if let Some(namespaces) = config["linux"]["namespaces"].as_array_mut() {
        namespaces.retain(|n| n["type"] != "network");
    }
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let started = Instant::now();
    let mut child = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let took = loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            raw_get(&mut stream, "bench");
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the bare container did not answer");
        std::thread::sleep(Duration::from_micros(200));
    };
    let _ = Command::new("runc").args(["kill", &id, "KILL"]).status();
    let _ = child.wait();
    let _ = Command::new("runc").args(["delete", "--force", &id]).status();
    took
}

#[tokio::main]
async fn main() {
    let Some(registry) = Registry::start() else {
        eprintln!("the containers benchmark needs docker-registry");
        return;
    };
    let server = std::fs::read(skiff_guests::HTTP_SERVER).unwrap();
    let files = [ImageFile { path: "/server".into(), contents: server, mode: 0o755 }];
    let config =
        ImageConfig { entrypoint: vec!["/server".into()], env: vec!["PATH=/".into()], ..Default::default() };
    let reference = registry.reference("bench/http-server:latest");
    RegistryClient::new(Credentials::Anonymous).push_image(&reference, &files, &config).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_in(dir.path(), &[], &[]);

    println!("Container pods: the example server under runc (release build, 2 cores)\n");
    let mut cold = Vec::new();
    let mut bare = Vec::new();
    let port = skiff_tests::registry::free_port();
    for i in 0..COLD_STARTS {
        let name = format!("cold-{i}");
        create(&skiff, &name, &reference, json!({"autoscaling.knative.dev/initial-scale": "0"})).await;
        skiff.wait_ready(&name).await;
        cold.push(timed_get(&skiff, &format!("{name}.default.localhost")).await);
        let (status, _) = skiff.delete(&format!("{SERVICES}/{name}")).await;
        assert_eq!(status, 200);
        while !skiff.pods_of(&name).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The baseline, interleaved so both see the same machine.
        let images = dir.path().join("oci/images");
        let image = std::fs::read_dir(&images).ok().and_then(|mut d| d.next()).and_then(|e| e.ok());
        let rootfs = match image {
            Some(image) => image.path().join("rootfs"),
            None => {
                create(
                    &skiff,
                    "keep-image",
                    &reference,
                    json!({"autoscaling.knative.dev/initial-scale": "0"}),
                )
                .await;
                skiff.wait_ready("keep-image").await;
                std::fs::read_dir(&images).unwrap().next().unwrap().unwrap().path().join("rootfs")
            }
        };
        bare.push(bare_runc(&rootfs, port, i));
    }
    cold.sort();
    bare.sort();
    println!("1. Cold start ({COLD_STARTS} each; Skiff: request at zero -> full response)");
    println!("   {:<46} {:>10} {:>10}", "", "p50", "max");
    println!(
        "   {:<46} {:>10} {:>10}",
        "Skiff, revision at zero",
        ms(percentile(&cold, 0.5)),
        ms(*cold.last().unwrap())
    );
    println!(
        "   {:<46} {:>10} {:>10}",
        "baseline: bare `runc run` to first answer",
        ms(percentile(&bare, 0.5)),
        ms(*bare.last().unwrap())
    );
    let ratio = percentile(&cold, 0.5).as_secs_f64() / percentile(&bare, 0.5).as_secs_f64();
    println!("   ratio at p50: {ratio:.2}x (goal: within 1.5x)\n");

    create(&skiff, "warm", &reference, json!({"autoscaling.knative.dev/min-scale": "1"})).await;
    skiff.wait_ready("warm").await;
    let pods = loop {
        let pods = skiff.pods_of("warm").await;
        if pods.len() == 1 && pods[0]["status"]["podIP"].is_string() {
            break pods;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ip = pods[0]["status"]["podIP"].as_str().unwrap().to_string();
    let mut via = Vec::new();
    let mut direct = Vec::new();
    // The same minimal client both ways, each on its own kept-alive connection.
    let mut stream = TcpStream::connect((ip.as_str(), 8080)).unwrap();
    stream.set_nodelay(true).unwrap();
    let ingress_address = skiff.data.trim_start_matches("http://").to_string();
    let mut through = TcpStream::connect(ingress_address.as_str()).unwrap();
    through.set_nodelay(true).unwrap();
    for round in 0..ROUNDS {
        let mut ingress = Vec::with_capacity(REQUESTS);
        let mut straight = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            ingress.push(raw_get(&mut through, "warm.default.localhost"));
            straight.push(raw_get(&mut stream, "bench"));
        }
        if round > 0 {
            via.extend(ingress);
            direct.extend(straight);
        }
    }
    via.sort();
    direct.sort();
    let (via, direct) = (percentile(&via, 0.5), percentile(&direct, 0.5));
    println!("2. Warm path, p50 of {} requests each (one connection each)", (ROUNDS - 1) * REQUESTS);
    println!("   through Skiff's ingress:  {:.1} µs", via.as_secs_f64() * 1e6);
    println!("   straight to podIP:8080:   {:.1} µs", direct.as_secs_f64() * 1e6);
    println!(
        "   proxy overhead: {:.1} µs (goal: < 200 µs)",
        (via.as_secs_f64() - direct.as_secs_f64()) * 1e6
    );
}
