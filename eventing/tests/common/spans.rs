//! A `tracing` subscriber that keeps every span, for the tests that check spans.
//!
//! The integration tests use it through `common`; the pinger's unit tests, which need the
//! crate's private span constructor, include this file with `#[path]`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A span as the [`SpanRecorder`] saw it.
#[derive(Debug, Clone)]
pub struct RecordedSpan {
    pub name: String,
    /// Whether it starts a trace of its own (`parent: None`).
    pub root: bool,
    /// Its fields, values as `Debug` prints them (strings as they are).
    pub fields: BTreeMap<String, String>,
}

/// A subscriber that keeps every span's name and fields, with the values recorded later.
#[derive(Clone, Default)]
pub struct SpanRecorder(Arc<Mutex<Vec<RecordedSpan>>>);

impl SpanRecorder {
    /// The spans so far, in the order they were created.
    pub fn spans(&self) -> MutexGuard<'_, Vec<RecordedSpan>> {
        self.0.lock().unwrap()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl tracing::Subscriber for SpanRecorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = BTreeMap::new();
        span.record(&mut Fields(&mut fields));
        let mut spans = self.spans();
        spans.push(RecordedSpan { name: span.metadata().name().to_owned(), root: span.is_root(), fields });
        tracing::span::Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.spans();
        values.record(&mut Fields(&mut spans[span.into_u64() as usize - 1].fields));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
