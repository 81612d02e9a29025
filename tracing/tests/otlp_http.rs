//! End to end over OTLP/HTTP: a real (tiny) receiver on 127.0.0.1, the global
//! subscriber from `init`, a span parented by an incoming `traceparent`.
//!
//! `init` installs a process-global subscriber, so this file holds one test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;
use skiff_tracing::{Protocol, TelemetryError, TelemetryOptions};

const PARENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// One request as seen by the receiver.
struct Received {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// Starts an HTTP/1.1 receiver that records every request and answers 200.
fn start_receiver() -> (SocketAddr, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let addr = listener.local_addr().expect("receiver address");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            thread::spawn(move || {
                // Connection errors just end that connection.
                let _ = serve_connection(stream, &tx);
            });
        }
    });
    (addr, rx)
}

/// Serves keep-alive requests with `Content-Length` bodies until EOF.
fn serve_connection(stream: TcpStream, tx: &mpsc::Sender<Received>) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();

        let mut content_length = 0usize;
        let mut content_type = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("content-type") {
                    content_type = Some(value.trim().to_owned());
                }
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;

        let status = if path == "/v1/traces" { "200 OK" } else { "404 Not Found" };
        // Record before answering, so the exporter's success implies delivery.
        let _ = tx.send(Received { method, path, content_type, body });
        write!(
            writer,
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        )?;
        writer.flush()?;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn service_name(resource_spans: &ResourceSpans) -> Option<String> {
    resource_spans.resource.as_ref()?.attributes.iter().find(|kv| kv.key == "service.name").and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[test]
fn span_with_remote_parent_reaches_an_otlp_http_receiver() {
    let (addr, requests) = start_receiver();

    // grpc needs a tokio runtime; outside one, init fails cleanly and leaves
    // nothing installed (the init below still succeeds).
    let no_runtime = skiff_tracing::init(
        "grpc-without-runtime",
        TelemetryOptions {
            endpoint: Some(format!("http://{addr}")),
            protocol: Some(Protocol::Grpc),
            ..TelemetryOptions::default()
        },
    );
    assert!(matches!(no_runtime, Err(TelemetryError::NoTokioRuntime { .. })), "{no_runtime:?}");

    let telemetry = skiff_tracing::init(
        "default-name",
        TelemetryOptions {
            service_name: Some("otlp-http-test".into()),
            endpoint: Some(format!("http://{addr}")),
            protocol: Some(Protocol::HttpProtobuf),
            sampler_ratio: None,
            log_filter: Some("info".into()),
        },
    )
    .expect("init");
    assert!(telemetry.exporting());
    assert_eq!(telemetry.service_name(), "otlp-http-test");
    let expected_endpoint = format!("http://{addr}/v1/traces");
    assert_eq!(telemetry.endpoint(), Some(expected_endpoint.as_str()));

    // A second init must fail cleanly, not panic or replace the first.
    let second = skiff_tracing::init("again", TelemetryOptions::default());
    assert!(matches!(second, Err(TelemetryError::AlreadyInitialized { .. })), "{second:?}");

    let mut incoming = HeaderMap::new();
    incoming.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let span = tracing::info_span!("handle_request", otel.kind = "server", "http.route" = "/fn/{name}");
    skiff_tracing::set_parent_from_headers(&span, &incoming);
    assert_eq!(skiff_tracing::trace_id(&span).as_deref(), Some(PARENT_TRACE_ID));
    let traceresponse = skiff_tracing::traceresponse(&span).expect("traceresponse");
    let traceresponse = traceresponse.to_str().expect("ascii").to_owned();
    let own_span_id = traceresponse.split('-').nth(2).expect("span id field").to_owned();
    {
        let _entered = span.enter();
        tracing::info!("handling");
    }
    drop(span);

    telemetry.shutdown();

    let first = requests.recv_timeout(Duration::from_secs(10)).expect("the receiver got an export request");
    let all: Vec<Received> = std::iter::once(first).chain(requests.try_iter()).collect();
    let mut exported: Vec<(Option<String>, Span)> = Vec::new();
    for request in &all {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(request.content_type.as_deref(), Some("application/x-protobuf"));
        let decoded = ExportTraceServiceRequest::decode(request.body.as_slice()).expect("protobuf body");
        for resource_spans in &decoded.resource_spans {
            let name = service_name(resource_spans);
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    exported.push((name.clone(), span.clone()));
                }
            }
        }
    }

    let names: Vec<&str> = exported.iter().map(|(_, s)| s.name.as_str()).collect();
    let (service, span) = exported
        .iter()
        .find(|(_, s)| s.name == "handle_request")
        .unwrap_or_else(|| panic!("handle_request not among exported spans {names:?}"));
    assert_eq!(service.as_deref(), Some("otlp-http-test"));
    assert_eq!(hex(&span.trace_id), PARENT_TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_SPAN_ID);
    assert_eq!(hex(&span.span_id), own_span_id);
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert!(span.attributes.iter().any(|kv| kv.key == "http.route"), "{:?}", span.attributes);
    assert!(
        span.events.iter().any(|e| e.name == "handling"),
        "the log event inside the span is a span event: {:?}",
        span.events
    );
    // Nothing from the exporter's own transport was exported.
    assert!(exported.iter().all(|(_, s)| s.name == "handle_request"), "unexpected spans {names:?}");
}
