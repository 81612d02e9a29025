//! Scale-from-zero benchmark for the Wasm `hello` example, through the real binary:
//!
//! 1. One cold start at a time, at least 50 of them: a service created with
//!    `initial-scale: "0"` (its component compiled into the on-disk cache, nothing in
//!    memory), then one request, timed from send to the full response; then the service is
//!    deleted so the next cold start shares nothing in memory. Baseline from the same run:
//!    the same request to a revision whose pod is up.
//! 2. 100 services cold-started at once: 100 distinct components (hello with a custom
//!    section naming each, so each has its own digest and compiled file), all at zero; one
//!    request to each, all sent together; p50/p95/max.
//! 3. The activator's added latency: one warm pod, requests with the activator kept in
//!    the path (`target-burst-capacity: "-1"`) against requests straight to the pod
//!    (`target-burst-capacity: "0"`), alternating rounds, one connection.
//!
//! Run: `scripts/bench.sh autoscale`, or `SKIFF_RELEASE=1 cargo bench -p skiff-tests --bench autoscale`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_tests::{Skiff, ms, percentile};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const COLD_STARTS: usize = 60;
const AT_ONCE: usize = 100;
const ACTIVATOR_ROUNDS: usize = 6;
const ACTIVATOR_REQUESTS: usize = 2000;

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// A component's bytes with a custom section appended: the same code under another digest.
fn with_custom_section(component: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"skiff-bench";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

async fn create(skiff: &Skiff, name: &str, image: &str, annotations: Value) {
    let spec = json!({"runtimeClassName": "wasm", "containers": [{"image": image}]});
    skiff.create_service(name, annotations, spec).await;
}

/// Wait until no pod of `service` is left (its revision deleted or scaled to zero).
async fn wait_no_pods(skiff: &Skiff, service: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if skiff.pods_of(service).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("pods of {service} still there after 30 s");
}

async fn timed_get(skiff: &Skiff, host: &str) -> Duration {
    let started = Instant::now();
    let response = skiff.to_host(reqwest::Method::GET, host, "/").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(&body[..], b"Hello World!\n");
    started.elapsed()
}

async fn one_at_a_time(skiff: &Skiff, image: &str) -> (Vec<Duration>, Vec<Duration>) {
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..COLD_STARTS {
        let name = format!("cold-{i}");
        let host = format!("{name}.default.localhost");
        create(skiff, &name, image, json!({"autoscaling.knative.dev/initial-scale": "0"})).await;
        skiff.wait_ready(&name).await;
        wait_no_pods(skiff, &name).await;
        cold.push(timed_get(skiff, &host).await);
        for _ in 0..5 {
            warm.push(timed_get(skiff, &host).await);
        }
        let (status, _) = skiff.delete(&format!("{SERVICES}/{name}")).await;
        assert_eq!(status, 200);
        wait_no_pods(skiff, &name).await;
    }
    cold.sort();
    warm.sort();
    (cold, warm)
}

async fn all_at_once(skiff: &Skiff, hello: &[u8]) -> (Vec<Duration>, Duration) {
    for i in 0..AT_ONCE {
        let image =
            skiff.upload_component(with_custom_section(hello, &format!("{i}")), &format!("burst-{i}")).await;
        create(skiff, &format!("burst-{i}"), &image, json!({"autoscaling.knative.dev/initial-scale": "0"}))
            .await;
    }
    for i in 0..AT_ONCE {
        skiff.wait_ready(&format!("burst-{i}")).await;
    }
    let started = Instant::now();
    let requests: Vec<_> = (0..AT_ONCE)
        .map(|i| {
            let request = skiff.to_host(reqwest::Method::GET, &format!("burst-{i}.default.localhost"), "/");
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = request.send().await.unwrap();
                assert_eq!(response.status().as_u16(), 200);
                response.bytes().await.unwrap();
                sent.elapsed()
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for request in requests {
        latencies.push(request.await.unwrap());
    }
    let all = started.elapsed();
    latencies.sort();
    (latencies, all)
}

/// A pod that answers at once: what is left to time is the path to it.
struct Instant200;

impl skiff_platform::runtime::Pod for Instant200 {
    fn serve(
        &self,
        _: http::Request<axum::body::Body>,
    ) -> futures::future::BoxFuture<
        'static,
        Result<http::Response<axum::body::Body>, skiff_platform::runtime::InvokeFailure>,
    > {
        Box::pin(async { Ok(http::Response::new(axum::body::Body::empty())) })
    }
}

/// The data plane's per-request work in-process, without HTTP: metrics, then a pod through
/// the activator or straight; ns per request (median of rounds).
async fn activator_in_process() -> (f64, f64) {
    use skiff_platform::dataplane::{ActivatorLimits, PodSlot, Revision};
    use std::sync::Arc;
    let revision = Arc::new(Revision::new(
        "default".into(),
        "bench-00001".into(),
        "uid".into(),
        None,
        Duration::from_secs(300),
        0,
        skiff_runtime_wasm::PodLog::default(),
        ActivatorLimits::default(),
    ));
    revision.set_pods(vec![Arc::new(PodSlot::new("pod".into(), Arc::new(Instant200), 0))]);
    const N: u32 = 200_000;
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    for round in 0..7 {
        for in_path in if round % 2 == 0 { [true, false] } else { [false, true] } {
            revision.set_activator_in_path(in_path);
            let started = Instant::now();
            for _ in 0..N {
                let mut in_flight = revision.stats.begin();
                let assigned = revision.acquire().await.unwrap();
                in_flight.answered(http::StatusCode::OK);
                drop(assigned);
            }
            let ns = started.elapsed().as_nanos() as f64 / f64::from(N);
            if in_path { via.push(ns) } else { direct.push(ns) }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(via), median(direct))
}

async fn activator_overhead(skiff: &Skiff, image: &str) -> (Duration, Duration) {
    let keep = |tbc: &str| json!({"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/target-burst-capacity": tbc});
    create(skiff, "via-activator", image, keep("-1")).await;
    create(skiff, "direct", image, keep("0")).await;
    skiff.wait_ready("via-activator").await;
    skiff.wait_ready("direct").await;
    let mut via = Vec::new();
    let mut direct = Vec::new();
    for round in 0..ACTIVATOR_ROUNDS {
        for (host, into) in
            [("via-activator.default.localhost", &mut via), ("direct.default.localhost", &mut direct)]
        {
            let mut samples = Vec::with_capacity(ACTIVATOR_REQUESTS);
            for _ in 0..ACTIVATOR_REQUESTS {
                samples.push(timed_get(skiff, host).await);
            }
            // The first round warms connections and caches.
            if round > 0 {
                into.extend(samples);
            }
        }
    }
    via.sort();
    direct.sort();
    (percentile(&via, 0.5), percentile(&direct, 0.5))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let skiff = Skiff::start_in(dir.path(), &[], &[]);
    let hello = std::fs::read(skiff_guests::HELLO).unwrap();
    let image = skiff.upload_component(hello.clone(), "hello").await;

    println!("Scale from zero, Wasm hello, compile cache warm (release build, 2 cores)\n");
    let (cold, warm) = one_at_a_time(&skiff, &image).await;
    println!("1. One cold start at a time ({} cold starts; request sent -> full response)", cold.len());
    println!("   {:<34} {:>10} {:>10} {:>10}", "", "p50", "p99", "max");
    let row = |label: &str, v: &[Duration]| {
        println!(
            "   {label:<34} {:>10} {:>10} {:>10}",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(*v.last().unwrap())
        );
    };
    row("cold start (revision at zero)", &cold);
    row("baseline: same request, pod up", &warm);
    println!(
        "   cold-start cost at p50: {} (goal: p50 < 5 ms, p99 < 20 ms)\n",
        ms(percentile(&cold, 0.5).saturating_sub(percentile(&warm, 0.5)))
    );

    let (burst, all) = all_at_once(&skiff, &hello).await;
    println!("2. {AT_ONCE} services (distinct components) cold-started at once");
    println!(
        "   p50 {}  p95 {}  max {}  all answered in {} (goal: p95 < 100 ms; Knative's SLO: 25 s)\n",
        ms(percentile(&burst, 0.5)),
        ms(percentile(&burst, 0.95)),
        ms(*burst.last().unwrap()),
        ms(all)
    );

    let (via, direct) = activator_overhead(&skiff, &image).await;
    println!(
        "3. Activator in the path vs out of it (warm pod, 1 connection, p50 of {} requests each)",
        (ACTIVATOR_ROUNDS - 1) * ACTIVATOR_REQUESTS
    );
    println!("   through the activator (target-burst-capacity -1): {}", us(via));
    println!("   straight to the pod   (target-burst-capacity  0): {}", us(direct));
    let added = via.as_secs_f64() - direct.as_secs_f64();
    println!(
        "   added by the activator over HTTP: {:.1} µs (goal: < 100 µs; the difference is within noise)",
        added * 1e6
    );
    let (via, direct) = activator_in_process().await;
    println!(
        "   in-process, per request (metrics + pod choice, no HTTP): through the activator {via:.0} ns, straight {direct:.0} ns"
    );
}
