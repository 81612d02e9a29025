//! The data plane's front door: `{name}.{namespace}.{domain}` and
//! `{tag}-{name}.{namespace}.{domain}` resolved to a Route.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::resources::{ROUTES, meta};
use crate::store::{ObjectKey, SharedStore};

#[derive(Clone)]
pub struct Ingress {
    store: SharedStore,
    domain: String,
}

impl Ingress {
    pub fn new(store: SharedStore, domain: String) -> Self {
        Self { store, domain }
    }

    /// The route and tag a host names, if any.
    fn lookup(&self, host: &str) -> Option<(std::sync::Arc<Value>, Option<String>)> {
        let host =
            host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(h, _)| h);
        let rest = host.strip_suffix(&self.domain)?.strip_suffix('.')?;
        let (first, namespace) = rest.rsplit_once('.')?;
        if let Some(route) = self.store.get(&ObjectKey::new(ROUTES.key, namespace, first)) {
            return Some((route, None));
        }
        let (routes, _) = self.store.list(ROUTES.key, Some(namespace));
        routes.into_iter().find_map(|route| {
            let tag = first.strip_suffix(&format!("-{}", meta::name(&route)))?.to_string();
            let tagged = route
                .pointer("/spec/traffic")?
                .as_array()?
                .iter()
                .any(|t| t["tag"].as_str() == Some(tag.as_str()));
            tagged.then_some((route, Some(tag)))
        })
    }
}

pub fn router(ingress: Ingress) -> Router {
    Router::new().fallback(handle).with_state(ingress)
}

fn plain(code: StatusCode, message: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response()
}

async fn handle(State(ingress): State<Ingress>, request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or("")
        .to_ascii_lowercase();
    let Some((route, _tag)) = ingress.lookup(&host) else {
        return plain(StatusCode::NOT_FOUND, format!("no service answers at host {host:?}"));
    };
    let name = meta::name(&route);
    let why = meta::condition(&route, "Ready")
        .map(|c| format!("{}: {}", c.reason, c.message))
        .unwrap_or_else(|| "its route is not reconciled yet".into());
    plain(StatusCode::SERVICE_UNAVAILABLE, format!("service {name:?} has no revision that can serve: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mutation, RedbStore, Store};
    use serde_json::json;
    use std::sync::Arc;

    #[tokio::test]
    async fn hosts_resolve_to_routes_and_tags() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("s.redb")).unwrap());
        let route = json!({"metadata": {"name": "hello", "namespace": "default"},
            "spec": {"traffic": [{"revisionName": "hello-00001", "percent": 100, "tag": "blue"}]}});
        store
            .mutate(
                ObjectKey::new(ROUTES.key, "default", "hello"),
                Box::new(move |_| Ok(Mutation::Put(route))),
            )
            .await
            .unwrap();
        let ingress = Ingress::new(store, "localhost".into());
        assert_eq!(ingress.lookup("hello.default.localhost:8080").unwrap().1, None);
        assert_eq!(ingress.lookup("blue-hello.default.localhost").unwrap().1.as_deref(), Some("blue"));
        assert!(ingress.lookup("green-hello.default.localhost").is_none());
        assert!(ingress.lookup("hello.other.localhost").is_none());
        assert!(ingress.lookup("hello.default.example.com").is_none());
    }
}
