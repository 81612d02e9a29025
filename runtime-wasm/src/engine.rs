//! The process's wasmtime engine: configuration, the epoch ticker, loading components
//! (through the disk cache) and preparing them as pods.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::cache::{ComponentCache, sha256_hex};
use crate::error::WasmError;
use crate::pod::{PodSettings, WasmPod};
use crate::store::Host;

/// How the process's Wasm engine is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory of the on-disk compiled-component cache (created if missing).
    pub cache_dir: PathBuf,
    /// Most component instances alive at once, across all pods: with a fresh instance
    /// per request, the most requests in flight. Sizes the pooling allocator.
    pub max_instances: u32,
    /// Ceiling of one instance's linear memory, and the virtual address space reserved
    /// for each memory slot of the pool (per-pod limits are enforced below it). At 4 GiB
    /// (the default) compiled code needs no bounds checks; the pool reserves about
    /// `max_instances * (max_memory_bytes + 32 MiB)` of address space (not memory).
    pub max_memory_bytes: u64,
    /// Period of the epoch ticker: how often a running guest yields to other tasks, and
    /// the granularity of timeouts.
    pub epoch_tick: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: std::env::temp_dir().join("skiff-wasm-cache"),
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Linear memories the pool holds per component instance. A component built by Rust for
/// `wasm32-wasip2` has one (the guests of `examples/` all do); one with more takes more
/// slots, so fewer of them fit at once. Each slot reserves `max_memory_bytes` plus a
/// guard of address space: one per instance keeps the default pool at about 4 TiB of
/// the 128 TiB a process may map.
const MEMORIES_PER_INSTANCE: u32 = 1;
/// Core instances per component instance: a Rust component has its main module plus
/// small shim modules for indirect calls, sometimes an adapter.
const CORE_INSTANCES_PER_INSTANCE: u32 = 8;
/// Tables per component instance (Rust components have two).
const TABLES_PER_INSTANCE: u32 = 4;
/// Memory reset by `memset` rather than `madvise` per slot when an instance ends; with
/// `PAGEMAP_SCAN` (Linux 6.7+) only the dirty pages are reset, so the next instance
/// reuses resident pages instead of faulting them in again.
const KEEP_RESIDENT: usize = 512 * 1024;

/// The Wasm runtime of a process: one wasmtime engine, its pooling allocator, its epoch
/// ticker and its component cache. Cheap to clone.
#[derive(Clone)]
pub struct WasmRuntime {
    inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    linker: Linker<Host>,
    cache: ComponentCache,
    pub(crate) config: RuntimeConfig,
}

/// A compiled component, ready to be prepared as pods.
#[derive(Clone)]
pub struct Loaded {
    /// sha256 hex of the component's bytes.
    pub digest: String,
    /// Whether it was deserialized from the disk cache rather than compiled.
    pub from_cache: bool,
    pub(crate) component: Component,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("digest", &self.digest).field("from_cache", &self.from_cache).finish()
    }
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime").field("config", &self.inner.config).finish()
    }
}

impl WasmRuntime {
    /// Creates the engine (pooling allocator, epoch interruption, component model), the
    /// linker with all of WASI 0.2 and `wasi:http`, opens the cache and starts the epoch
    /// ticker thread (which ends when the last clone of the runtime and its pods are gone).
    pub fn new(config: RuntimeConfig) -> Result<Self, WasmError> {
        if config.max_instances == 0 {
            return Err(WasmError::Engine("max_instances must be at least 1".into()));
        }
        if config.epoch_tick.is_zero() {
            return Err(WasmError::Engine("epoch_tick must be positive".into()));
        }
        let engine =
            Engine::new(&engine_config(&config)?).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        // As `wasmtime serve -Scli`: all of WASI 0.2 (so std-built guests that import
        // wasi:cli or wasi:filesystem link) plus wasi:http, each interface once.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let cache = ComponentCache::open(&config.cache_dir, &engine)?;
        spawn_epoch_ticker(engine.weak(), config.epoch_tick)?;
        Ok(WasmRuntime { inner: Arc::new(RuntimeInner { engine, linker, cache, config }) })
    }

    /// sha256 hex of the bytes: a component's identity in the cache (whose entries are
    /// also keyed by the engine's compatibility hash).
    pub fn digest(bytes: &[u8]) -> String {
        sha256_hex(bytes)
    }

    /// Compiles a component, or loads it from the disk cache when it was compiled before
    /// by a compatible engine (never compiling it twice). Blocking: call it from
    /// `spawn_blocking`. Bytes that are not a component give
    /// [`WasmError::NotAComponent`] with wasmtime's message.
    pub fn load(&self, bytes: &[u8]) -> Result<Loaded, WasmError> {
        let digest = Self::digest(bytes);
        match self.inner.cache.get(&self.inner.engine, &digest) {
            Ok(Some(component)) => {
                tracing::debug!(%digest, "component loaded from the cache");
                return Ok(Loaded { digest, from_cache: true, component });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%digest, "compiling: {e}"),
        }
        let started = Instant::now();
        let component = Component::new(&self.inner.engine, bytes)
            .map_err(|e| WasmError::NotAComponent(format!("{e:#}")))?;
        tracing::info!(%digest, elapsed_ms = started.elapsed().as_millis() as u64, "component compiled");
        if let Err(e) = self.inner.cache.put(&digest, &component) {
            // Serving does not need the cache; the next start compiles again.
            tracing::warn!(%digest, "{e}");
        }
        Ok(Loaded { digest, from_cache: false, component })
    }

    /// Loads a component from the disk cache only, by digest (to scale from zero without
    /// the source); `None` when it is not cached. Blocking, like [`WasmRuntime::load`].
    pub fn load_cached(&self, digest: &str) -> Result<Option<Loaded>, WasmError> {
        Ok(self.inner.cache.get(&self.inner.engine, digest)?.map(|component| Loaded {
            digest: digest.to_string(),
            from_cache: true,
            component,
        }))
    }

    /// Links and pre-instantiates a component as a `wasi:http/proxy` pod with its own
    /// settings. A component of another world gives [`WasmError::WrongWorld`] with
    /// wasmtime's message.
    pub fn prepare(&self, loaded: &Loaded, settings: PodSettings) -> Result<WasmPod, WasmError> {
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&loaded.component)
            .map_err(|e| WasmError::WrongWorld(format!("{e:#}")))?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| WasmError::WrongWorld(format!("{e:#}")))?;
        let ceiling = self.inner.config.max_memory_bytes;
        let mut settings = settings;
        if settings.memory_limit_bytes > ceiling {
            tracing::warn!(
                pod = %settings.name,
                requested = settings.memory_limit_bytes,
                ceiling,
                "memory limit above the runtime's ceiling; using the ceiling"
            );
            settings.memory_limit_bytes = ceiling;
        }
        Ok(WasmPod::new(Arc::clone(&self.inner), pre, loaded.digest.clone(), settings))
    }

    /// The configuration the runtime was created with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }
}

/// The engine configuration: async, component model, epoch interruption, and a pooling
/// allocator with copy-on-write memory images sized from `config`.
fn engine_config(config: &RuntimeConfig) -> Result<Config, WasmError> {
    let max_memory = usize::try_from(config.max_memory_bytes)
        .map_err(|_| WasmError::Engine("max_memory_bytes does not fit this platform".into()))?;
    let instances = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_INSTANCE))
        .total_memories(instances.saturating_mul(MEMORIES_PER_INSTANCE))
        .total_tables(instances.saturating_mul(TABLES_PER_INSTANCE))
        .total_stacks(instances)
        .max_memory_size(max_memory)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .memory_reservation(config.max_memory_bytes)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(wasm)
}

/// Increments the engine's epoch every `tick` until the engine is gone.
fn spawn_epoch_ticker(engine: EngineWeak, tick: Duration) -> Result<(), WasmError> {
    std::thread::Builder::new()
        .name("skiff-wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
        .map_err(|e| WasmError::Engine(format!("cannot start the epoch thread: {e}")))
}
