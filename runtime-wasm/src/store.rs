//! The data of one request's `Store`: WASI and `wasi:http` contexts, the resource table,
//! the outbound hooks and the memory limiter.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::limits::MemoryLimiter;
use crate::log::{LogStream, PodLog};
use crate::outbound::{OutboundHooks, OutboundPolicy};

/// Store data of one request.
pub(crate) struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    pub(crate) limiter: MemoryLimiter,
}

impl Host {
    /// A fresh context: the given environment, stdout/stderr into the pod log, stdin
    /// closed, no arguments, no preopened directories, no sockets, nothing inherited.
    pub(crate) fn new(
        env: &[(String, String)],
        log: &PodLog,
        policy: &Arc<dyn OutboundPolicy>,
        memory_limit_bytes: u64,
    ) -> Host {
        let mut wasi = WasiCtx::builder();
        wasi.envs(env)
            .stdout(log.writer(LogStream::Stdout))
            .stderr(log.writer(LogStream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        Host {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks { policy: Arc::clone(policy), log: log.clone() },
            limiter: MemoryLimiter::new(memory_limit_bytes),
        }
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}
