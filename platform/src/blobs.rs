//! Uploaded components, kept by content: `{data_dir}/blobs/sha256/{hex}`.
//!
//! A Wasm function deployed over HTTP lands here. Its Service refers to it as
//! `skiff.local/components/{name}@sha256:{hex}`, in the manner of `ko.local`: an image
//! reference pinned by digest whose registry, `skiff.local`, is this node's blob store
//! and is never contacted over the network.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The registry name that means "this node's blob store".
pub const LOCAL_REGISTRY: &str = "skiff.local";

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest in a `skiff.local/...@sha256:{hex}` reference, if it is one.
pub fn local_digest(image: &str) -> Option<&str> {
    let rest = image.strip_prefix(LOCAL_REGISTRY)?.strip_prefix('/')?;
    let (_, digest) = rest.rsplit_once("@sha256:")?;
    (digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit())).then_some(digest)
}

/// The reference a Service uses for an uploaded component.
pub fn local_image(name: &str, digest: &str) -> String {
    format!("{LOCAL_REGISTRY}/components/{name}@sha256:{digest}")
}

impl BlobStore {
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let root = data_dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.root.join(digest)
    }

    /// Keep `bytes` (durably: written, synced, then renamed into place); returns the digest.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let digest = sha256_hex(bytes);
        let path = self.path(&digest);
        if path.exists() {
            return Ok(digest);
        }
        let temp = self.root.join(format!(".{digest}.{}", std::process::id()));
        {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&temp, &path)?;
        Ok(digest)
    }

    /// Whether the blob with `digest` is kept.
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_file()
    }

    /// The bytes with `digest`, checked against it.
    pub fn get(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        let bytes = std::fs::read(self.path(digest))?;
        if sha256_hex(&bytes) != digest {
            return Err(std::io::Error::other(format!("blob sha256:{digest} is corrupt")));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let digest = store.put(b"\0asm component").unwrap();
        assert_eq!(store.get(&digest).unwrap(), b"\0asm component");
        assert_eq!(store.put(b"\0asm component").unwrap(), digest);
        let image = local_image("hello", &digest);
        assert_eq!(local_digest(&image), Some(digest.as_str()));
        assert_eq!(local_digest("ghcr.io/knative/helloworld-go:latest"), None);
        assert_eq!(local_digest("skiff.local/components/x@sha256:abc"), None);
    }
}
