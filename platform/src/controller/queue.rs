//! A work queue with kube-runtime's guarantees: a key is queued at most once, and a key
//! being reconciled is never handed to a second worker; changes that arrive meanwhile
//! queue it again once the first reconcile is done.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::store::ObjectKey;

#[derive(Default)]
struct State {
    order: VecDeque<ObjectKey>,
    queued: HashSet<ObjectKey>,
    active: HashSet<ObjectKey>,
    dirty: HashSet<ObjectKey>,
}

#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    ready: Notify,
}

impl WorkQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, key: ObjectKey) {
        let mut state = self.lock();
        if state.active.contains(&key) {
            state.dirty.insert(key);
        } else if state.queued.insert(key.clone()) {
            state.order.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// The next key to reconcile; it stays "active" until [`WorkQueue::done`].
    pub async fn next(&self) -> ObjectKey {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if let Some(key) = state.order.pop_front() {
                    state.queued.remove(&key);
                    state.active.insert(key.clone());
                    if !state.order.is_empty() {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &ObjectKey) {
        let requeue = {
            let mut state = self.lock();
            state.active.remove(key);
            state.dirty.remove(key)
        };
        if requeue {
            self.add(key.clone());
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("r", "ns", name)
    }

    #[tokio::test]
    async fn a_key_is_queued_once_and_never_handed_out_twice() {
        let queue = WorkQueue::default();
        queue.add(key("a"));
        queue.add(key("a"));
        queue.add(key("b"));
        assert_eq!(queue.len(), 2);
        let first = queue.next().await;
        assert_eq!(first, key("a"));
        // A change while "a" is being reconciled waits for it.
        queue.add(key("a"));
        assert_eq!(queue.next().await, key("b"));
        assert_eq!(queue.len(), 0);
        queue.done(&first);
        assert_eq!(queue.next().await, key("a"));
    }
}
