//! The on-disk cache of compiled components.
//!
//! An entry is `{dir}/{digest}-{engine}.cwasm`: `digest` is the sha256 of the component's
//! bytes, `engine` a hash of everything that makes compiled code compatible with this
//! engine (wasmtime version, target, settings: `Engine::precompile_compatibility_hash`).
//! A file holds a magic tag, the sha256 of the artifact, then the artifact
//! (`Component::serialize`). It is written to a temporary file and renamed into place, and
//! checked against its hash before it is deserialized, so a torn or altered file is a
//! cache miss (and removed), never code that runs.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::WasmError;

/// Tags the files of this cache (and their format version).
const MAGIC: &[u8; 8] = b"SKIFFCW1";
const HASH_LEN: usize = 32;

/// Compiled components on disk, for one engine.
#[derive(Debug)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_hash: String,
}

impl ComponentCache {
    /// Opens (creating it if needed) the cache directory for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, WasmError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| WasmError::Cache(format!("cannot create cache directory {}: {e}", dir.display())))?;
        Ok(ComponentCache { dir: dir.to_path_buf(), engine_hash: engine_hash(engine) })
    }

    /// The file of a digest; an error when the digest is not 64 hex digits.
    fn path(&self, digest: &str) -> Result<PathBuf, WasmError> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(WasmError::Cache(format!(
                "invalid component digest {digest:?}: expected 64 lower-case hex digits"
            )));
        }
        Ok(self.dir.join(format!("{digest}-{}.cwasm", self.engine_hash)))
    }

    /// Loads the compiled component of `digest`, `None` when there is none (or only a
    /// damaged one, which is removed).
    pub(crate) fn get(&self, engine: &Engine, digest: &str) -> Result<Option<Component>, WasmError> {
        let path = self.path(digest)?;
        let file = match std::fs::read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(WasmError::Cache(format!("cannot read {}: {e}", path.display()))),
        };
        let Some(artifact) = verified_artifact(&file) else {
            tracing::warn!(path = %path.display(), "removing a damaged compiled component from the cache");
            remove_quietly(&path);
            return Ok(None);
        };
        match deserialize(engine, artifact) {
            Ok(component) => Ok(Some(component)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "removing a cached component that does not load: {e:#}");
                remove_quietly(&path);
                Ok(None)
            }
        }
    }

    /// Stores the compiled `component` of `digest`, atomically.
    pub(crate) fn put(&self, digest: &str, component: &Component) -> Result<(), WasmError> {
        let path = self.path(digest)?;
        let artifact = component
            .serialize()
            .map_err(|e| WasmError::Cache(format!("cannot serialize component: {e:#}")))?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            ".{digest}-{}.{}.{}.tmp",
            self.engine_hash,
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(&artifact))?;
            file.write_all(&artifact)?;
            file.flush()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            remove_quietly(&tmp);
            WasmError::Cache(format!("cannot write {}: {e}", path.display()))
        })
    }
}

/// The artifact of a cache file when its tag and hash are right.
fn verified_artifact(file: &[u8]) -> Option<&[u8]> {
    let rest = file.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < HASH_LEN {
        return None;
    }
    let (hash, artifact) = rest.split_at(HASH_LEN);
    (Sha256::digest(artifact).as_slice() == hash).then_some(artifact)
}

/// Turns a compiled artifact back into a component.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts its input to be an artifact that wasmtime
    // produced for a compatible engine, since it maps it as executable code. Only files of
    // this cache reach here: written by `ComponentCache::put` (this process or an earlier
    // one) from `Component::serialize`, named by the sha256 of the source component and
    // the hash of this engine's compatibility settings, and whose sha256 of the artifact
    // (stored in the file when it was written) was just checked against these bytes.
    // wasmtime additionally checks the artifact's header for version and settings.
    unsafe { Component::deserialize(engine, artifact) }
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
    fn verification_rejects_damaged_files() {
        let artifact = b"compiled code";
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&Sha256::digest(artifact));
        file.extend_from_slice(artifact);
        assert_eq!(verified_artifact(&file), Some(&artifact[..]));
        let last = file.len() - 1;
        file[last] ^= 1;
        assert_eq!(verified_artifact(&file), None);
        assert_eq!(verified_artifact(&file[..20]), None);
        assert_eq!(verified_artifact(b"not a cache file at all, not at all"), None);
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
