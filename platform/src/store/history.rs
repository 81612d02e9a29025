//! The recent changes, remembered so a watch can resume from a `resourceVersion`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::WatchEvent;

/// The asked-for `resourceVersion` is older than what is remembered: re-list and watch again.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too old resource version: {asked} ({oldest})")]
pub struct Expired {
    pub asked: u64,
    pub oldest: u64,
}

pub(crate) struct History {
    events: VecDeque<Arc<WatchEvent>>,
    capacity: usize,
    /// Every change after this version is remembered.
    horizon: u64,
}

impl History {
    pub(crate) fn new(capacity: usize, horizon: u64) -> Self {
        Self { events: VecDeque::with_capacity(capacity.min(4096)), capacity, horizon }
    }

    pub(crate) fn push(&mut self, event: Arc<WatchEvent>) {
        if self.events.len() == self.capacity
            && let Some(old) = self.events.pop_front()
        {
            self.horizon = old.resource_version;
        }
        self.events.push_back(event);
    }

    pub(crate) fn since(&self, resource_version: u64) -> Result<Vec<Arc<WatchEvent>>, Expired> {
        if resource_version < self.horizon {
            return Err(Expired { asked: resource_version, oldest: self.horizon });
        }
        let start = self.events.partition_point(|e| e.resource_version <= resource_version);
        Ok(self.events.range(start..).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventType, ObjectKey};

    fn event(rv: u64) -> Arc<WatchEvent> {
        Arc::new(WatchEvent {
            resource_version: rv,
            event_type: EventType::Added,
            key: ObjectKey::new("r", "ns", &rv.to_string()),
            object: Arc::new(serde_json::json!({})),
        })
    }

    #[test]
    fn resumes_after_a_version_and_expires_what_fell_out() {
        let mut history = History::new(3, 10);
        for rv in 11..=15 {
            history.push(event(rv));
        }
        let got: Vec<u64> = history.since(13).unwrap().iter().map(|e| e.resource_version).collect();
        assert_eq!(got, vec![14, 15]);
        assert!(history.since(12).is_ok());
        assert!(history.since(11).is_err());
        assert!(history.since(15).unwrap().is_empty());
    }
}
