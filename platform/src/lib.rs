//! Skiff's platform: the management API, the store, the control loops, the data plane's
//! ingress and the `skiff` command line, wired together by `skiff up`.
//!
//! The runtimes (Wasm and OCI), eventing and tracing live in crates of their own; this
//! crate owns the seams between them.

pub mod api;
pub mod autoscaler;
pub mod blobs;
pub mod cli;
pub mod controller;
pub mod dataplane;
pub mod eventing;
pub mod listen;
pub mod objects;
pub mod resources;
pub mod runtime;
pub mod scaling;
pub mod security;
pub mod server;
pub mod status;
pub mod store;
