//! In-process throughput of a Wasm pod: calls `WasmPod::handle` in a loop on N tasks for a
//! few seconds and prints requests/s, p50 and p99, next to a baseline (a native Rust
//! handler through the same loop) measured in the same run.
//!
//! ```text
//! cargo run --release -p skiff-runtime-wasm --example hello_rps -- [path.wasm] [seconds] [tasks,...]
//! ```
//!
//! Defaults: the `hello` guest, 3 seconds, 1 and 16 tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use skiff_runtime_wasm::{PodSettings, ResponseBody, RuntimeConfig, WasmPod, WasmRuntime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| skiff_guests::HELLO.to_string());
    let seconds: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let tasks: Vec<usize> = match args.next() {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![1, 16],
    };
    let duration = Duration::from_secs_f64(seconds);

    let cache = std::env::temp_dir().join("skiff-hello-rps-cache");
    let runtime = WasmRuntime::new(RuntimeConfig { cache_dir: cache, ..RuntimeConfig::default() })?;
    let bytes = std::fs::read(&path)?;
    let started = Instant::now();
    let loaded = runtime.load(&bytes)?;
    println!(
        "{path}: {} in {:?} ({})",
        &loaded.digest[..12],
        started.elapsed(),
        if loaded.from_cache { "from the cache" } else { "compiled" }
    );
    let mut settings = PodSettings::new("hello-rps");
    settings.env.push(("TARGET".into(), "Bench".into()));
    let pod = runtime.prepare(&loaded, settings)?;

    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async {
        // Warm up: fault in the pool slots and code.
        let _ = run(&pod_call(&pod), 16, Duration::from_millis(500)).await;
        println!("{:<10} {:>6} {:>12} {:>10} {:>10}", "handler", "tasks", "req/s", "p50", "p99");
        for &n in &tasks {
            let wasm = run(&pod_call(&pod), n, duration).await;
            wasm.print("wasm", n);
            let native = run(&native_call(), n, duration).await;
            native.print("native", n);
        }
    });
    Ok(())
}

type Call = Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Bytes> + Send>> + Send + Sync>;

fn pod_call(pod: &WasmPod) -> Call {
    let pod = pod.clone();
    Arc::new(move || {
        let pod = pod.clone();
        Box::pin(async move {
            let request = http::Request::get("http://hello.default.localhost/")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let response = pod.handle(request).await.expect("handle");
            response.into_body().collect().await.expect("body").to_bytes()
        })
    })
}

/// The same loop around a native handler: what the harness itself costs.
fn native_call() -> Call {
    Arc::new(|| {
        Box::pin(async {
            let response = http::Response::builder()
                .header("content-type", "text/plain; charset=utf-8")
                .body(ResponseBody::full(format!("Hello {}!\n", "Bench")))
                .expect("response");
            response.into_body().collect().await.expect("body").to_bytes()
        })
    })
}

struct Figures {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn print(&self, handler: &str, tasks: usize) {
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1));
            self.latencies.get(i).copied().unwrap_or_default()
        };
        println!(
            "{handler:<10} {tasks:>6} {:>12.0} {:>10.1?} {:>10.1?}",
            self.requests as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99)
        );
    }
}

async fn run(call: &Call, tasks: usize, duration: Duration) -> Figures {
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let call = Arc::clone(call);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let body = call().await;
                    latencies.push(t.elapsed());
                    assert_eq!(&body[..], b"Hello Bench!\n");
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await.expect("task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Figures { requests: latencies.len(), elapsed, latencies }
}
