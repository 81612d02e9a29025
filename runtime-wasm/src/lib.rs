//! Wasm pods for Skiff: runs `wasi:http/proxy` components in-process with wasmtime.
//!
//! A revision whose pods are WebAssembly components is served by this crate. It knows
//! nothing of the platform: the platform loads a component, prepares it as a pod with the
//! revision's settings, and calls the pod for each request, in-process (no loopback TCP).
//!
//! * [`WasmRuntime`] owns the process's one wasmtime engine: component model, async,
//!   epoch interruption (a background thread ticks every [`RuntimeConfig::epoch_tick`]),
//!   and a pooling allocator whose linear memories start from copy-on-write images. It
//!   links all of WASI 0.2 and `wasi:http`, as `wasmtime serve -Scli` does, so components
//!   built with Rust's std (for example with `wstd`) run.
//! * [`WasmRuntime::load`] compiles a component once: compiled code is cached on disk,
//!   keyed by the component's sha256 and the engine's compatibility hash, so a restart or
//!   a scale from zero ([`WasmRuntime::load_cached`]) deserializes instead of compiling.
//! * [`WasmRuntime::prepare`] links and pre-instantiates a component as a [`WasmPod`]:
//!   its memory limit, timeout, environment, [`OutboundPolicy`] and [`PodLog`].
//! * [`WasmPod::handle`] serves one request in a fresh store and instance, streaming the
//!   bodies both ways. A guest that traps, loops, exhausts its memory or spams its output
//!   is contained: the request fails with an [`InvokeError`] saying which, and the pod
//!   keeps serving.
//!
//! Capabilities are the host's to give: the guest sees its environment, stdout/stderr
//! (into the pod log), clocks and randomness, and outbound HTTP through the pod's
//! policy; no files, no sockets, nothing inherited from the host process.
//!
//! ```no_run
//! # async fn demo(wasm: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use skiff_runtime_wasm::{AllowList, PodSettings, RuntimeConfig, WasmRuntime};
//! use std::sync::Arc;
//!
//! let runtime = WasmRuntime::new(RuntimeConfig::default())?;
//! let loaded = runtime.load(wasm)?; // blocking: use spawn_blocking in async code
//! let mut settings = PodSettings::new("hello-00001");
//! settings.env.push(("TARGET".into(), "Skiff".into()));
//! settings.outbound = Arc::new(AllowList::new(["*.example.com"])?);
//! let pod = runtime.prepare(&loaded, settings)?;
//! let request = http::Request::get("http://hello.default.localhost/")
//!     .body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let response = pod.handle(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod body;
mod cache;
mod engine;
mod error;
mod limits;
mod log;
mod outbound;
mod pod;
mod store;

pub use body::{BoxError, ResponseBody};
pub use engine::{Loaded, RuntimeConfig, WasmRuntime};
pub use error::{InvokeError, WasmError};
pub use log::{LogLine, LogStream, PodLog};
pub use outbound::{AllowList, AllowListError, OutboundPolicy};
pub use pod::{PodSettings, WasmPod};
