//! `?watch=true`: a stream of `{"type": "ADDED|MODIFIED|DELETED|ERROR", "object": ...}` lines.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::selector::{FieldSelector, LabelSelector};
use super::table;
use crate::resources::ResourceType;
use crate::status::{Reason, StatusError};
use crate::store::{SharedStore, WatchEvent};

/// What one watch asks for.
pub struct WatchRequest {
    pub resource: &'static ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// Resume after this version; `None` starts with the current state as ADDED events.
    pub since: Option<u64>,
    pub timeout: Option<Duration>,
    /// `Some(includeObject)` when the client asked for Table rows.
    pub table: Option<String>,
}

impl WatchRequest {
    fn wants(&self, event: &WatchEvent) -> bool {
        &*event.key.resource == self.resource.key
            && self.namespace.as_deref().is_none_or(|ns| event.key.namespace == ns)
            && self.labels.matches(&event.object)
            && self.fields.matches(&event.object)
    }

    fn line(&self, event_type: &str, object: &Value, resource_version: u64) -> Bytes {
        let object = match &self.table {
            Some(include) => table::render(self.resource, &[object], resource_version, include),
            None => object.clone(),
        };
        let mut line = serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

fn error_line(err: &StatusError) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": "ERROR", "object": err.to_status()})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn expired(asked: u64) -> StatusError {
    StatusError::new(Reason::Expired, format!("too old resource version: {asked}"))
}

/// Start streaming. The stream ends on the timeout, on shutdown, or when the client goes.
pub fn respond(store: SharedStore, request: WatchRequest, shutdown: CancellationToken) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(256);
    // Subscribe before reading the backlog so that nothing falls between the two.
    let feed = store.subscribe();
    let span = tracing::debug_span!("watch", resource = request.resource.plural);
    tokio::spawn(pump(store, request, feed, tx, shutdown).instrument(span));
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_default()
}

async fn pump(
    store: SharedStore,
    request: WatchRequest,
    mut feed: broadcast::Receiver<Arc<WatchEvent>>,
    tx: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
    shutdown: CancellationToken,
) {
    let send = |bytes: Bytes| {
        let tx = tx.clone();
        async move { tx.send(Ok(bytes)).await.is_ok() }
    };
    let mut last = match request.since {
        None => {
            let (items, version) = store.list(request.resource.key, request.namespace.as_deref());
            for object in items.iter().filter(|o| request.labels.matches(o) && request.fields.matches(o)) {
                if !send(request.line("ADDED", object, version)).await {
                    return;
                }
            }
            version
        }
        Some(since) => match store.events_since(since) {
            Ok(backlog) => {
                let mut last = since;
                for event in backlog {
                    last = event.resource_version;
                    if request.wants(&event)
                        && !send(request.line(event.event_type.as_str(), &event.object, last)).await
                    {
                        return;
                    }
                }
                last
            }
            Err(_) => {
                send(error_line(&expired(since))).await;
                return;
            }
        },
    };
    let deadline = async {
        match request.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            event = feed.recv() => event,
        };
        match event {
            Ok(event) if event.resource_version <= last => {}
            Ok(event) => {
                last = event.resource_version;
                if request.wants(&event)
                    && !send(request.line(event.event_type.as_str(), &event.object, last)).await
                {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                send(error_line(&expired(last))).await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
