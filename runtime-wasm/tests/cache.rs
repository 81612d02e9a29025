//! Loading components: compile once, then the disk cache; bytes that are not a proxy
//! component are refused with wasmtime's reason.

mod common;

use std::time::{Duration, Instant};

use common::test_config;
use skiff_runtime_wasm::{PodSettings, WasmError, WasmRuntime};

#[test]
fn compiled_components_come_from_the_disk_cache_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(skiff_guests::HELLO).unwrap();
    let digest = WasmRuntime::digest(&bytes);

    let runtime = WasmRuntime::new(test_config(dir.path().to_path_buf())).unwrap();
    assert!(runtime.load_cached(&digest).unwrap().is_none(), "nothing is cached yet");

    let started = Instant::now();
    let first = runtime.load(&bytes).unwrap();
    let compile = started.elapsed();
    assert!(!first.from_cache);
    assert_eq!(first.digest, digest);

    let started = Instant::now();
    let second = runtime.load(&bytes).unwrap();
    let cached = started.elapsed();
    assert!(second.from_cache, "the second load must come from the cache");
    assert_eq!(second.digest, digest);

    // A new runtime (a restart) on the same directory: scale from zero by digest.
    drop(runtime);
    let restarted = WasmRuntime::new(test_config(dir.path().to_path_buf())).unwrap();
    let started = Instant::now();
    let from_disk = restarted.load_cached(&digest).unwrap().expect("cached after a restart");
    let reload = started.elapsed();
    assert!(from_disk.from_cache);
    assert_eq!(from_disk.digest, digest);
    eprintln!("compile {compile:?}, cached load {cached:?}, load_cached after restart {reload:?}");
    assert!(cached * 5 < compile, "cached load {cached:?} is not much faster than compiling {compile:?}");
    assert!(reload * 5 < compile, "load_cached {reload:?} is not much faster than compiling {compile:?}");

    // And it serves.
    let pod = restarted.prepare(&from_disk, PodSettings::new("hello-00001")).unwrap();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let answer = tokio.block_on(common::get(&pod, "http://hello.default.localhost/")).unwrap();
    assert_eq!(answer.text(), "Hello World!\n");
}

#[test]
fn a_damaged_cache_entry_is_a_miss_and_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(skiff_guests::HELLO).unwrap();
    let runtime = WasmRuntime::new(test_config(dir.path().to_path_buf())).unwrap();
    let loaded = runtime.load(&bytes).unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 2, "an artifact and its hash: {entries:?}");
    let artifact = entries.iter().find(|p| p.extension().is_some_and(|e| e == "cwasm")).unwrap();
    let mut file = std::fs::read(artifact).unwrap();
    let middle = file.len() / 2;
    file[middle] ^= 0xff;
    // Damage found by the next process to load the file (a disk error, a stray write).
    drop(runtime);
    std::fs::write(artifact, &file).unwrap();
    let runtime = WasmRuntime::new(test_config(dir.path().to_path_buf())).unwrap();

    assert!(runtime.load_cached(&loaded.digest).unwrap().is_none(), "a damaged entry is not loaded");
    assert!(!artifact.exists(), "and it is removed");
    let again = runtime.load(&bytes).unwrap();
    assert!(!again.from_cache, "a damaged entry is compiled again");
    assert!(runtime.load_cached(&loaded.digest).unwrap().is_some(), "and cached again");
}

#[test]
fn load_cached_validates_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = WasmRuntime::new(test_config(dir.path().to_path_buf())).unwrap();
    let err = runtime.load_cached("../../etc/passwd").unwrap_err();
    assert!(matches!(err, WasmError::Cache(_)), "{err:?}");
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let runtime = common::runtime();
    let err = runtime.load(b"definitely not wasm").unwrap_err();
    let WasmError::NotAComponent(message) = &err else { panic!("expected NotAComponent, got {err:?}") };
    assert!(!message.is_empty());
    assert!(err.to_string().starts_with("not a wasm component: "), "{err}");

    // A core module is not a component either: it fails at load, with wasmtime's reason.
    let core_module = b"\0asm\x01\0\0\0";
    let err = runtime.load(core_module).unwrap_err();
    let WasmError::NotAComponent(message) = &err else { panic!("expected NotAComponent, got {err:?}") };
    eprintln!("core module: {message}");
    assert!(message.contains("module"), "{message}");
}

#[test]
fn a_component_of_another_world_is_refused_at_prepare() {
    let runtime = common::runtime();
    // `(component)`: an empty component, valid but exporting no wasi:http handler.
    let empty_component = b"\0asm\x0d\0\x01\0";
    let loaded = runtime.load(empty_component).unwrap();
    let err = runtime.prepare(&loaded, PodSettings::new("empty-00001")).unwrap_err();
    let WasmError::WrongWorld(message) = &err else { panic!("expected WrongWorld, got {err:?}") };
    eprintln!("empty component: {message}");
    assert!(message.contains("wasi:http/incoming-handler"), "{message}");
}

#[test]
fn runtime_config_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path().to_path_buf());
    config.epoch_tick = Duration::ZERO;
    assert!(matches!(WasmRuntime::new(config), Err(WasmError::Engine(_))));
}
