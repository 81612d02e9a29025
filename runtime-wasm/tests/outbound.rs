//! Outbound HTTP from a guest goes through the pod's policy: allowed requests reach the
//! server, refused ones fail in the guest and are logged, rewrites are applied.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{get, pod, settings_with};
use skiff_runtime_wasm::{AllowList, LogStream, OutboundPolicy, PodLog};

/// A tiny HTTP/1.1 server on a std thread: answers every request with `200` and a body
/// naming the path and the `x-injected` header it got, and remembers the request heads.
struct TinyServer {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl TinyServer {
    fn start() -> TinyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let path = head.split_whitespace().nth(1).unwrap_or("?").to_string();
                let injected =
                    head.lines().find_map(|l| l.strip_prefix("x-injected: ")).unwrap_or("none").to_string();
                seen.lock().unwrap().push(head);
                let body = format!("tiny server saw {path} injected={injected}");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TinyServer { addr, heads }
    }
}

fn fetch_uri(target: &str) -> String {
    format!("http://fetch.default.localhost/?url={target}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_outbound_requests_reach_the_server() {
    let server = TinyServer::start();
    let log = PodLog::new(100);
    let allow = AllowList::new([format!("http://127.0.0.1:{}", server.addr.port())]).unwrap();
    let pod =
        pod(skiff_guests::FETCH, settings_with("fetch-00001", Duration::from_secs(10), Arc::new(allow), log));
    let answer =
        get(&pod, &fetch_uri(&format!("http://127.0.0.1:{}/hello", server.addr.port()))).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-fetched-status"], "200");
    assert_eq!(answer.text(), "tiny server saw /hello injected=none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_outbound_requests_fail_in_the_guest_and_are_logged() {
    let server = TinyServer::start();
    let log = PodLog::new(100);
    let allow = AllowList::new(["api.example.com"]).unwrap();
    let pod = pod(
        skiff_guests::FETCH,
        settings_with("fetch-00001", Duration::from_secs(10), Arc::new(allow), log.clone()),
    );
    let target = format!("http://127.0.0.1:{}/secret", server.addr.port());
    let answer = get(&pod, &fetch_uri(&target)).await.unwrap();
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(answer.text().starts_with(&format!("fetching {target} failed")), "{}", answer.text());
    assert!(server.heads.lock().unwrap().is_empty(), "the request must not reach the server");
    let refused = format!("http://127.0.0.1:{} is not an allowed outbound host", server.addr.port());
    let lines = log.lines();
    assert!(
        lines.iter().any(|l| l.stream == LogStream::Host && l.text.contains(&refused)),
        "no refusal in the pod log: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_can_rewrite_the_target_and_add_headers() {
    let server = TinyServer::start();
    let port = server.addr.port();
    // As the platform does for its own services: route a service URL to a local address.
    let policy = move |request: &mut http::Request<()>| -> Result<(), String> {
        if request.uri().host() != Some("svc.default.internal") {
            return Err("only svc.default.internal".into());
        }
        let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
        *request.uri_mut() = format!("http://127.0.0.1:{port}{path}").parse().map_err(|e| format!("{e}"))?;
        request.headers_mut().insert("x-injected", http::HeaderValue::from_static("yes"));
        Ok(())
    };
    let policy: Arc<dyn OutboundPolicy> = Arc::new(policy);
    let pod = pod(
        skiff_guests::FETCH,
        settings_with("fetch-00001", Duration::from_secs(10), policy, PodLog::new(10)),
    );
    let answer = get(&pod, &fetch_uri("http://svc.default.internal/api?q=1")).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "tiny server saw /api?q=1 injected=yes");
    let heads = server.heads.lock().unwrap();
    assert!(heads[0].to_ascii_lowercase().contains("host: svc.default.internal"), "{}", heads[0]);
}
