//! The two error types: [`WasmError`] for setting a pod up, [`InvokeError`] for serving one
//! request.

use std::time::Duration;

/// Why a component could not be loaded or prepared as a pod.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WasmError {
    /// The bytes are not a Wasm component (a core module, a precompiled artifact, text or
    /// garbage), or the component does not validate. Carries wasmtime's message.
    #[error("not a wasm component: {0}")]
    NotAComponent(String),
    /// The component is valid but not a `wasi:http/proxy` (it lacks the
    /// `wasi:http/incoming-handler` export or imports something the host does not
    /// provide). Carries wasmtime's message.
    #[error("component is not a wasi:http/proxy: {0}")]
    WrongWorld(String),
    /// The on-disk cache of compiled components could not be read or written.
    #[error("component cache: {0}")]
    Cache(String),
    /// The wasmtime engine could not be configured or created.
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// Why one invocation of a pod failed.
///
/// Suggested HTTP answers for a platform: [`Timeout`](Self::Timeout) 504,
/// [`Instantiate`](Self::Instantiate) 503, everything else 500.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The guest trapped (a Rust panic, `unreachable`, an out-of-bounds access...) or
    /// answered with a `wasi:http` error code instead of a response.
    #[error("guest trapped: {message}")]
    Trap {
        /// What wasmtime reported, with the guest's backtrace when there is one.
        message: String,
    },
    /// The guest ran past the pod's timeout and was stopped.
    #[error("guest timed out after {after:?} and was stopped")]
    Timeout {
        /// The pod's timeout.
        after: Duration,
    },
    /// The guest needed more memory than the pod's limit and failed.
    #[error("guest ran out of memory: the pod's limit is {limit_bytes} bytes")]
    OutOfMemory {
        /// The pod's memory limit.
        limit_bytes: u64,
    },
    /// The guest returned from its handler without setting a response.
    #[error("guest returned without sending a response")]
    NoResponse,
    /// A fresh instance could not be created (for example the pooling allocator is full).
    #[error("could not instantiate the component: {0}")]
    Instantiate(String),
    /// The host failed in a way that is not the guest's fault.
    #[error("internal error while invoking the guest: {0}")]
    Internal(String),
}

impl InvokeError {
    /// Short machine-friendly kind, used as the `error.type` span attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::Trap { .. } => "trap",
            InvokeError::Timeout { .. } => "timeout",
            InvokeError::OutOfMemory { .. } => "out_of_memory",
            InvokeError::NoResponse => "no_response",
            InvokeError::Instantiate(_) => "instantiate",
            InvokeError::Internal(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_happened() {
        let oom = InvokeError::OutOfMemory { limit_bytes: 32 << 20 };
        assert_eq!(oom.to_string(), "guest ran out of memory: the pod's limit is 33554432 bytes");
        let timeout = InvokeError::Timeout { after: Duration::from_millis(500) };
        assert_eq!(timeout.to_string(), "guest timed out after 500ms and was stopped");
        assert_eq!(timeout.kind(), "timeout");
        let wrong = WasmError::WrongWorld("no export".into());
        assert_eq!(wrong.to_string(), "component is not a wasi:http/proxy: no export");
    }
}
