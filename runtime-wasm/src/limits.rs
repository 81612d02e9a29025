//! Per-request limits: the memory budget (a [`ResourceLimiter`] that remembers whether it
//! refused a growth, so that running out of memory is told apart from other traps) and the
//! time budget (an epoch-deadline callback that yields to the executor every tick and
//! stops the guest at its deadline).

use std::time::Instant;

use wasmtime::{ResourceLimiter, UpdateDeadline};

/// Upper bound on the elements of one table, whatever the memory limit.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Caps the total linear memory of one store (all memories of the component together).
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit_bytes: u64,
    used_bytes: u64,
    refused: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit_bytes: u64) -> Self {
        MemoryLimiter { limit_bytes, used_bytes: 0, refused: false }
    }

    /// Whether a memory growth was refused because of the limit.
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    /// The limit in bytes.
    pub(crate) fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        match self.used_bytes.checked_add(growth) {
            Some(total) if total <= self.limit_bytes => {
                self.used_bytes = total;
                Ok(true)
            }
            _ => {
                self.refused = true;
                Ok(false)
            }
        }
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pool's own ceiling refused it: the guest sees `memory.grow` fail, as with
        // the limit.
        tracing::debug!("memory growth failed: {error:#}");
        self.refused = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The epoch-deadline behaviour of a request's store: every tick, yield to the async
/// executor (so that a guest spinning on the CPU lets other tasks on its worker thread
/// run) and, once `deadline` has passed, interrupt the guest with a trap.
pub(crate) fn epoch_deadline(
    deadline: Instant,
) -> impl FnMut(wasmtime::StoreContextMut<'_, crate::store::Host>) -> wasmtime::Result<UpdateDeadline>
+ Send
+ Sync
+ 'static {
    move |_store| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            // `tokio::task::yield_now` puts the task at the back of the run queue, unlike
            // a plain self-wake that could keep it in the worker's LIFO slot.
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_growth_across_memories_and_remembers_refusal() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(!limiter.refused());
        assert!(!limiter.memory_growing(40, 41, None).unwrap());
        assert!(limiter.refused());
        assert_eq!(limiter.limit_bytes(), 100);
    }

    #[test]
    fn tables_are_bounded() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.table_growing(0, 10, None).unwrap());
        assert!(!limiter.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).unwrap());
    }
}
