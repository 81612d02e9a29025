//! The on-disk cache of compiled components.
//!
//! An entry is `{dir}/{digest}-{engine}.cwasm`: `digest` is the sha256 of the component's
//! bytes, `engine` a hash of everything that makes compiled code compatible with this
//! engine (wasmtime version, target, settings: `Engine::precompile_compatibility_hash`).
//! The file is the artifact itself (`Component::serialize`), so that it can be mapped
//! rather than read and copied: code and memory images come straight from the page cache,
//! which is what makes a scale from zero cost a fraction of a millisecond. Beside it,
//! `{digest}-{engine}.sha256` holds the artifact's sha256. Both are written to temporary
//! files and renamed into place.
//!
//! Before a file is first mapped in a process it is read and checked against its hash
//! (a torn, damaged or altered file is a miss, and removed, never code that runs); the
//! check is remembered for that file (device, inode, size, modification time), so later
//! loads of the same file, such as every cold start of a revision, map it at once.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::WasmError;

/// Which file a check was made on: a replaced or rewritten file is checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileId { dev: meta.dev(), ino: meta.ino(), len: meta.len(), mtime: (meta.mtime(), meta.mtime_nsec()) }
    }
}

/// Compiled components on disk, for one engine.
#[derive(Debug)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_hash: String,
    /// Files whose hash this process has checked.
    verified: Mutex<HashMap<PathBuf, FileId>>,
}

impl ComponentCache {
    /// Opens (creating it if needed) the cache directory for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, WasmError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| WasmError::Cache(format!("cannot create cache directory {}: {e}", dir.display())))?;
        Ok(ComponentCache {
            dir: dir.to_path_buf(),
            engine_hash: engine_hash(engine),
            verified: Mutex::default(),
        })
    }

    /// The artifact file of a digest and its hash file; an error when the digest is not
    /// 64 hex digits.
    fn paths(&self, digest: &str) -> Result<(PathBuf, PathBuf), WasmError> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(WasmError::Cache(format!(
                "invalid component digest {digest:?}: expected 64 lower-case hex digits"
            )));
        }
        let base = format!("{digest}-{}", self.engine_hash);
        Ok((self.dir.join(format!("{base}.cwasm")), self.dir.join(format!("{base}.sha256"))))
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, FileId>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the compiled component of `digest`, `None` when there is none (or only a
    /// damaged one, which is removed).
    pub(crate) fn get(&self, engine: &Engine, digest: &str) -> Result<Option<Component>, WasmError> {
        let (path, sum_path) = self.paths(digest)?;
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(WasmError::Cache(format!("cannot read {}: {e}", path.display()))),
        };
        let id = FileId::of(&meta);
        if self.verified().get(&path) != Some(&id) {
            if !self.check(&path, &sum_path)? {
                tracing::warn!(path = %path.display(), "removing a damaged compiled component from the cache");
                self.forget(&path, &sum_path);
                return Ok(None);
            }
            self.verified().insert(path.clone(), id);
        }
        match deserialize_file(engine, &path) {
            Ok(component) => Ok(Some(component)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "removing a cached component that does not load: {e:#}");
                self.forget(&path, &sum_path);
                Ok(None)
            }
        }
    }

    /// Whether the artifact at `path` matches the hash beside it.
    fn check(&self, path: &Path, sum_path: &Path) -> Result<bool, WasmError> {
        let read = |p: &Path| match std::fs::read(p) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WasmError::Cache(format!("cannot read {}: {e}", p.display()))),
        };
        let (Some(artifact), Some(sum)) = (read(path)?, read(sum_path)?) else { return Ok(false) };
        Ok(Sha256::digest(&artifact).as_slice() == sum.as_slice())
    }

    fn forget(&self, path: &Path, sum_path: &Path) {
        self.verified().remove(path);
        remove_quietly(path);
        remove_quietly(sum_path);
    }

    /// Stores the compiled `component` of `digest`, atomically.
    pub(crate) fn put(&self, digest: &str, component: &Component) -> Result<(), WasmError> {
        let (path, sum_path) = self.paths(digest)?;
        let artifact = component
            .serialize()
            .map_err(|e| WasmError::Cache(format!("cannot serialize component: {e:#}")))?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let write = |target: &Path, bytes: &[u8]| -> Result<(), WasmError> {
            let tmp = self.dir.join(format!(
                ".{digest}-{}.{}.{}.tmp",
                self.engine_hash,
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let written = std::fs::File::create(&tmp)
                .and_then(|mut file| file.write_all(bytes).and_then(|()| file.flush()))
                .and_then(|()| std::fs::rename(&tmp, target));
            written.map_err(|e| {
                remove_quietly(&tmp);
                WasmError::Cache(format!("cannot write {}: {e}", target.display()))
            })
        };
        // The hash first: an artifact is never in place without the hash it is checked by.
        write(&sum_path, &Sha256::digest(&artifact))?;
        write(&path, &artifact)?;
        // What this process just wrote needs no check before its first load.
        if let Ok(meta) = std::fs::metadata(&path) {
            self.verified().insert(path, FileId::of(&meta));
        }
        Ok(())
    }
}

/// Maps a compiled artifact file as a component.
#[allow(unsafe_code)]
fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` trusts its input to be an artifact that
    // wasmtime produced for a compatible engine, since it maps it as executable code, and
    // the file not to change while mapped. Only files of this cache reach here: written by
    // `ComponentCache::put` (this process or an earlier one) from `Component::serialize`
    // and renamed into place, named by the sha256 of the source component and the hash of
    // this engine's compatibility settings, and whose bytes this process checked against
    // the sha256 stored beside them when it wrote them or before it first mapped them (a
    // rewritten file is checked again). wasmtime additionally checks the artifact's header
    // for version and settings.
    unsafe { Component::deserialize_file(engine, path) }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), "cannot remove cache file: {e}");
    }
}

/// sha256 hex of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A short, stable hash of what makes compiled code compatible with `engine`.
fn engine_hash(engine: &Engine) -> String {
    /// Feeds `Hash` output into sha256 (stable, unlike `DefaultHasher`).
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn digests_are_validated_before_touching_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = ComponentCache::open(dir.path(), &engine).unwrap();
        assert!(matches!(cache.get(&engine, "../../etc/passwd"), Err(WasmError::Cache(_))));
        assert!(cache.get(&engine, &sha256_hex(b"nothing")).unwrap().is_none());
    }
}
