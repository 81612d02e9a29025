//! End to end over OTLP/gRPC: a tonic `TraceService` on 127.0.0.1, `init`
//! inside a tokio runtime, a span parented by an incoming `traceparent`, and
//! `shutdown` called from inside that runtime.
//!
//! `init` installs a process-global subscriber, so this file holds one test.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use skiff_tracing::{Protocol, TelemetryOptions};
use tokio::sync::mpsc;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

const PARENT_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_SPAN_ID: &str = "b7ad6b7169203331";

struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.send(request.into_inner()).map_err(|_| Status::unavailable("test receiver gone"))?;
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_with_remote_parent_reaches_an_otlp_grpc_receiver() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let addr = listener.local_addr().expect("receiver address");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    let endpoint = format!("http://{addr}");
    let telemetry = skiff_tracing::init(
        "otlp-grpc-test",
        TelemetryOptions {
            endpoint: Some(endpoint.clone()),
            protocol: Some(Protocol::Grpc),
            ..TelemetryOptions::default()
        },
    )
    .expect("init");
    assert!(telemetry.exporting());
    assert_eq!(telemetry.endpoint(), Some(endpoint.as_str()), "no /v1/traces for grpc");

    let mut incoming = HeaderMap::new();
    incoming.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    let span = tracing::info_span!("invoke", otel.kind = "server");
    skiff_tracing::set_parent_from_headers(&span, &incoming);
    async {
        tracing::info!("invoking");
    }
    .instrument(span.clone())
    .await;
    drop(span);

    // Called from a runtime worker thread: must neither panic nor deadlock.
    telemetry.shutdown();

    let request = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an export within 10 s")
        .expect("an export request");
    let resource_spans = request.resource_spans.first().expect("resource spans");
    let service_name = resource_spans
        .resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        });
    assert_eq!(service_name, Some("otlp-grpc-test"));
    let span = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .find(|s| s.name == "invoke")
        .expect("the invoke span");
    assert_eq!(hex(&span.trace_id), PARENT_TRACE_ID);
    // tonic/h2/tower spans of the export itself must never be exported. They
    // exist only at debug/trace level and are only batched by a later export,
    // so this bites with `RUST_LOG=trace OTEL_BSP_SCHEDULE_DELAY=100` and a
    // pause before shutdown (checked by hand: without the layer filter, dozens
    // of h2 spans such as "FramedWrite::buffer" show up here).
    let mut names: Vec<String> = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.name.clone())
        .collect();
    while let Ok(more) = rx.try_recv() {
        names.extend(
            more.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|s| s.name.clone()),
        );
    }
    assert!(names.iter().all(|n| n == "invoke"), "unexpected spans {names:?}");
    assert_eq!(hex(&span.parent_span_id), PARENT_SPAN_ID);
}
