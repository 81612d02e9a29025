//! End-to-end test support: start the real `skiff` binary and talk to it over HTTP, as a
//! user would.

pub mod otlp;
pub mod recorder;
pub mod registry;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `skiff` binary, built once per process (`SKIFF_BIN` overrides). Tests use the
/// debug build; benchmarks set `SKIFF_RELEASE=1` for the release build.
pub fn skiff_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("SKIFF_BIN") {
            return PathBuf::from(bin);
        }
        let release = std::env::var("SKIFF_RELEASE").is_ok_and(|v| v == "1");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = workspace_root();
        let mut command = Command::new(cargo);
        command.args(["build", "--quiet", "-p", "skiff-platform", "--bin", "skiff"]).current_dir(&root);
        // The variables cargo sets for a test process would make build scripts of the
        // nested build think their environment changed, and rebuild: pass only the basics.
        command.env_clear();
        for var in
            ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR", "TMPDIR"]
        {
            if let Some(value) = std::env::var_os(var) {
                command.env(var, value);
            }
        }
        if release {
            command.arg("--release");
        }
        let status = command.status().expect("running cargo build for the skiff binary");
        assert!(status.success(), "building the skiff binary failed");
        let target =
            std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        target.join(if release { "release" } else { "debug" }).join("skiff")
    })
    .clone()
}

/// The root of the Skiff workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// An HTTP client for tests. reqwest is built without a bundled TLS provider in this
/// workspace, so the process installs ring first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A client that trusts the CA `skiff up` made in `data_dir` (and nothing else), for its API.
pub fn api_client(data_dir: &Path) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(data_dir.join("pki/ca.crt")).expect("the API's CA in {data-dir}/pki/ca.crt");
    let certs = reqwest::Certificate::from_pem_bundle(&pem).expect("the API's CA is PEM");
    reqwest::Client::builder().tls_certs_only(certs).build().expect("an HTTPS client")
}

/// A running `skiff up` with its own data directory and ports.
pub struct Skiff {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT` of the management API.
    pub api: String,
    /// `http://127.0.0.1:PORT` of the data plane.
    pub data: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// Trusts the API's CA; sends no token by itself (see [`Skiff::api_request`]).
    pub http: reqwest::Client,
    /// The API's bearer token.
    pub token: String,
    extra_env: Vec<(String, String)>,
}

impl Skiff {
    /// Start on a fresh data directory.
    pub fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut skiff = Self::start_in(temp.path(), &[], &[]);
        skiff._temp = Some(temp);
        skiff
    }

    /// Start on `data_dir` with extra arguments to `skiff up` and environment variables.
    pub fn start_in(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(skiff_bin());
        command
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", std::env::var("SKIFF_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("starting skiff up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if line.starts_with("skiff is up") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("skiff up did not say it was up within 60 s");
            }
        };
        let mut words = line.split_whitespace();
        // An older skiff (`SKIFF_BIN`, for before/after benchmarks) served its API over plain
        // HTTP without a token; this one always serves HTTPS.
        let api = words.find(|w| w.starts_with("https://") || w.starts_with("http://")).expect("API address");
        let api = api.to_string();
        let data = words.find(|w| w.starts_with("http://")).expect("data address").to_string();
        let legacy = api.starts_with("http://");
        let token = match env.iter().find(|(k, _)| *k == "SKIFF_TOKEN") {
            Some((_, token)) => token.to_string(),
            None if legacy => String::new(),
            None => {
                std::fs::read_to_string(data_dir.join("token")).expect("{data-dir}/token").trim().to_string()
            }
        };
        Self {
            child: Some(child),
            api,
            data,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            http: if legacy { http_client() } else { api_client(data_dir) },
            token,
            extra_env: Vec::new(),
        }
    }

    /// The process id of the running `skiff up`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kill the process at once (SIGKILL), as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Ask the process to stop (SIGTERM) and wait for it; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restart on the same data directory (after [`Skiff::kill9`] or [`Skiff::terminate`]).
    pub fn restart(mut self) -> Self {
        self.kill9();
        let temp = self._temp.take();
        let mut next = Self::start_in(&self.data_dir, &[], &[]);
        next._temp = temp;
        next
    }

    pub fn set_cli_env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.into(), value.into()));
    }

    /// Run the `skiff` CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, None)
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(skiff_bin());
        command
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("SKIFF_SERVER")
            .env_remove("SKIFF_TOKEN");
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        run_with_stdin(command, stdin)
    }

    /// The kubeconfig `skiff up` wrote: its server, CA and token.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// kubectl against this server with the kubeconfig `skiff up` wrote, as a user runs it.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.data_dir.join("kubectl-cache"))
            .args(args);
        run_with_stdin(command, stdin)
    }

    /// A request to the API at `path`, carrying the token.
    pub fn api_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.api)).bearer_auth(&self.token)
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self.api_request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request to skiff");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("response body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    pub async fn merge_patch(&self, path: &str, patch: &Value) -> (u16, Value) {
        let response = self
            .api_request(reqwest::Method::PATCH, path)
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string())
            .send()
            .await
            .expect("patch request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Poll `path` until `check` holds (up to `timeout`); returns the last object.
    pub async fn wait_for(&self, path: &str, timeout: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, object) = self.get(path).await;
            if status == 200 && check(&object) {
                return object;
            }
            assert!(Instant::now() < deadline, "timed out waiting on {path}; last: {status} {object}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Objects the autoscaling, container and benchmark programs all make.
impl Skiff {
    /// Start on `data_dir`, exporting traces over OTLP/HTTP to `endpoint` (flushed every 100 ms).
    pub fn start_exporting(data_dir: &Path, args: &[&str], endpoint: &str) -> Self {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        Self::start_in(data_dir, args, &env)
    }

    /// Upload component bytes (`POST /skiff/v1/components`); the image reference to run them.
    pub async fn upload_component(&self, bytes: Vec<u8>, name: &str) -> String {
        let response = self
            .api_request(reqwest::Method::POST, &format!("/skiff/v1/components?name={name}"))
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("upload request");
        assert_eq!(response.status().as_u16(), 201);
        response.json::<Value>().await.expect("upload answer")["image"].as_str().expect("image").to_string()
    }

    /// Create Service `name` in `default` whose template has these annotations and this
    /// revision `spec`; asserts it was created.
    pub async fn create_service(&self, name: &str, annotations: Value, spec: Value) {
        let service = serde_json::json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"template": {"metadata": {"annotations": annotations}, "spec": spec}},
        });
        let (status, body) =
            self.post("/apis/serving.knative.dev/v1/namespaces/default/services", &service).await;
        assert_eq!(status, 201, "{body}");
    }

    /// Deploy `wasm` (a guest's `.wasm` file) as service `name` with exactly one pod kept up,
    /// and wait until it is Ready: what a benchmark measures against.
    pub async fn deploy_one_warm_pod(&self, name: &str, wasm: &str) {
        let image = self.upload_component(std::fs::read(wasm).expect("reading the guest"), name).await;
        let annotations = serde_json::json!({
            "autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "1"});
        self.create_service(name, annotations, serde_json::json!({"containers": [{"image": image}]})).await;
        self.wait_ready(name).await;
    }

    /// The pods of service `name` in `default`.
    pub async fn pods_of(&self, service: &str) -> Vec<Value> {
        let path =
            format!("/api/v1/namespaces/default/pods?labelSelector=serving.knative.dev/service%3D{service}");
        let (status, list) = self.get(&path).await;
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().cloned().unwrap_or_default()
    }
}

/// The value at quantile `p` (0..=1) of sorted durations (zero for none): for benchmarks.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// `1.23 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The data plane, as a client sees it.
impl Skiff {
    /// A request to the service answering at `host` (sent to the data plane's address with
    /// that `Host`, as glibc does not resolve `*.localhost`).
    pub fn to_host(&self, method: reqwest::Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.data)).header("host", host)
    }

    /// GET `path` at `host`: status and body text.
    pub async fn call(&self, host: &str, path: &str) -> (u16, String) {
        let response =
            self.to_host(reqwest::Method::GET, host, path).send().await.expect("request to the data plane");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Deploy a `.wasm` file as service `name` in `default` with one request.
    pub async fn deploy_wasm(&self, name: &str, wasm: &str) -> Value {
        let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("reading {wasm}: {e}"));
        let response = self
            .api_request(
                reqwest::Method::PUT,
                &format!("/apis/serving.knative.dev/v1/namespaces/default/services/{name}/wasm"),
            )
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("deploy request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("deploy answer");
        assert!(status == 200 || status == 201, "deploying {name}: {status} {body}");
        body
    }

    /// Wait until service `name` (namespace `default`) is Ready for its current generation.
    pub async fn wait_ready(&self, name: &str) -> Value {
        let path = format!("/apis/serving.knative.dev/v1/namespaces/default/services/{name}");
        self.wait_for(&path, Duration::from_secs(60), |s| {
            s["status"]["observedGeneration"] == s["metadata"]["generation"]
                && condition(s, "Ready").is_some_and(|(status, _)| status == "True")
        })
        .await
    }
}

impl Drop for Skiff {
    /// Stop as a user would (SIGTERM), so that the containers it runs are stopped too.
    fn drop(&mut self) {
        self.terminate();
    }
}

fn run_with_stdin(mut command: Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawning a command");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("writing stdin");
    }
    child.wait_with_output().expect("waiting for a command")
}

/// The condition `type_` of an object's status, as (status, reason).
pub fn condition(object: &Value, type_: &str) -> Option<(String, String)> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_).map(|c| {
        (c["status"].as_str().unwrap_or("").to_string(), c["reason"].as_str().unwrap_or("").to_string())
    })
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether CI demands every outside tool (CI=true): tests then fail rather than skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Eventing's collections in `default`.
pub const BROKERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/brokers";
pub const TRIGGERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/triggers";
pub const PINGSOURCES: &str = "/apis/sources.knative.dev/v1/namespaces/default/pingsources";

/// Whether an object is Ready for its current generation.
pub fn is_ready(object: &Value) -> bool {
    object["status"]["observedGeneration"] == object["metadata"]["generation"]
        && condition(object, "Ready").is_some_and(|(status, _)| status == "True")
}

impl Skiff {
    /// POST `object` to `collection` and wait (30 s) until it is Ready; returns it.
    pub async fn create_ready(&self, collection: &str, object: Value) -> Value {
        let name = object["metadata"]["name"].as_str().expect("a name").to_string();
        let (status, body) = self.post(collection, &object).await;
        assert_eq!(status, 201, "{body}");
        self.wait_for(&format!("{collection}/{name}"), Duration::from_secs(30), is_ready).await
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    pub requests_per_second: f64,
    /// Answers that were not 2xx or 3xx.
    pub failed: u64,
}

/// Run wrk (`scripts/bench.sh` installs it) against `url` with this Lua script: `connections`
/// connections for `seconds` seconds.
pub fn wrk(url: &str, connections: usize, seconds: u64, lua: &str) -> WrkRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("load.lua");
    std::fs::write(&script, lua).expect("writing the wrk script");
    let threads = connections.clamp(1, 2).to_string();
    let output = Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .expect("running wrk (scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| text.lines().find_map(|l| l.trim().strip_prefix(name)).map(str::trim);
    WrkRun {
        requests_per_second: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}")),
        failed: field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}
