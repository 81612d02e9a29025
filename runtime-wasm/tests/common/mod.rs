//! Helpers shared by the integration tests: one runtime per test binary (with a cache
//! shared by all test binaries, so each guest compiles once), and request shorthands.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use skiff_runtime_wasm::{
    InvokeError, Loaded, OutboundPolicy, PodLog, PodSettings, RuntimeConfig, WasmPod, WasmRuntime,
};

/// The compiled-component cache shared by the tests that do not test the cache.
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skiff-runtime-wasm-cache")
}

/// A small runtime configuration for tests.
pub fn test_config(cache_dir: PathBuf) -> RuntimeConfig {
    RuntimeConfig { cache_dir, max_instances: 64, ..RuntimeConfig::default() }
}

/// The runtime of this test binary.
pub fn runtime() -> &'static WasmRuntime {
    static RUNTIME: OnceLock<WasmRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| WasmRuntime::new(test_config(shared_cache_dir())).expect("wasm runtime"))
}

/// Loads a guest (compiled once, then from the shared cache).
pub fn load(path: &str) -> Loaded {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    runtime().load(&bytes).expect("load guest")
}

/// Settings for a test pod.
pub fn settings(name: &str) -> PodSettings {
    PodSettings::new(name)
}

/// Settings with an outbound policy and a log.
pub fn settings_with(
    name: &str,
    timeout: Duration,
    outbound: Arc<dyn OutboundPolicy>,
    log: PodLog,
) -> PodSettings {
    PodSettings { timeout, outbound, log, ..PodSettings::new(name) }
}

/// Prepares a guest as a pod.
pub fn pod(path: &str, settings: PodSettings) -> WasmPod {
    runtime().prepare(&load(path), settings).expect("prepare pod")
}

/// A response read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET `uri` from `pod`, reading the whole body.
pub async fn get(pod: &WasmPod, uri: &str) -> Result<Answer, InvokeError> {
    let request = http::Request::get(uri).body(Empty::<Bytes>::new()).expect("request");
    read(pod.handle(request).await?).await
}

/// POST `body` to `uri` with extra headers, reading the whole response.
pub async fn post(
    pod: &WasmPod,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Answer, InvokeError> {
    let mut request = http::Request::post(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    read(pod.handle(request).await?).await
}

async fn read(response: http::Response<skiff_runtime_wasm::ResponseBody>) -> Result<Answer, InvokeError> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| InvokeError::Internal(format!("body: {e}")))?.to_bytes();
    Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
}
