//! A real OTLP/HTTP receiver for tests: it takes `POST /v1/traces` in protobuf, as any
//! collector does, and keeps the spans it decoded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, KeyValue};
use prost::Message;

/// One span as the receiver got it, ids in lower-case hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    pub attributes: HashMap<String, String>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// Linked (trace id, span id) pairs.
    pub links: Vec<(String, String)>,
}

pub struct OtlpReceiver {
    /// The base URL to give `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Export requests and bytes taken (both modes).
    taken: Arc<(AtomicU64, AtomicU64)>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&Any>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect()
}

impl OtlpReceiver {
    /// A receiver that decodes and keeps every span, for tests.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// A receiver that takes exports (reads each request whole and answers 200) without
    /// decoding them, as a collector on another machine costs this one nothing: for benchmarks
    /// of the exporting side.
    pub fn start_counting() -> Self {
        Self::start_with(false)
    }

    fn start_with(decode: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the OTLP receiver");
        let endpoint = format!("http://{}", listener.local_addr().expect("receiver address"));
        let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
        let taken: Arc<(AtomicU64, AtomicU64)> = Arc::default();
        let (sink, counts) = (spans.clone(), taken.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (sink, counts) = (sink.clone(), counts.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, decode.then_some(&*sink), &counts);
                });
            }
        });
        Self { endpoint, spans, taken }
    }

    /// Export requests and their bytes taken so far.
    pub fn taken(&self) -> (u64, u64) {
        (self.taken.0.load(Ordering::Relaxed), self.taken.1.load(Ordering::Relaxed))
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Wait until `done` holds for the spans received so far; returns them.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if Instant::now() > deadline {
                let names: Vec<_> = spans.iter().map(|s| format!("{} ({})", s.name, s.service)).collect();
                panic!("the spans looked for did not arrive within {timeout:?}; got {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn serve(
    stream: TcpStream,
    sink: Option<&Mutex<Vec<ReceivedSpan>>>,
    taken: &(AtomicU64, AtomicU64),
) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        taken.0.fetch_add(1, Ordering::Relaxed);
        taken.1.fetch_add(length as u64, Ordering::Relaxed);
        let Some(sink) = sink else {
            write!(
                writer,
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
            )?;
            writer.flush()?;
            continue;
        };
        let status = match (path.as_str(), ExportTraceServiceRequest::decode(body.as_slice())) {
            ("/v1/traces", Ok(request)) => {
                let mut spans = sink.lock().unwrap_or_else(|p| p.into_inner());
                for resource_spans in request.resource_spans {
                    let resource =
                        resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
                    let service = resource.get("service.name").cloned().unwrap_or_default();
                    for scope in resource_spans.scope_spans {
                        for span in scope.spans {
                            spans.push(ReceivedSpan {
                                service: service.clone(),
                                name: span.name,
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent_span_id: hex(&span.parent_span_id),
                                kind: span.kind,
                                attributes: attributes(&span.attributes),
                                status_code: span.status.map(|s| s.code).unwrap_or(0),
                                links: span
                                    .links
                                    .iter()
                                    .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                                    .collect(),
                            });
                        }
                    }
                }
                "200 OK"
            }
            ("/v1/traces", Err(_)) => "400 Bad Request",
            _ => "404 Not Found",
        };
        write!(
            writer,
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        )?;
        writer.flush()?;
    }
}
