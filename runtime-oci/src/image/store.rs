//! [`ImageStore`]: images pulled from registries, kept on disk as content-addressed blobs and
//! unpacked read-only root filesystems.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageManifest};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::sync::OwnedMutexGuard;
use tracing::{Instrument as _, field};

use super::config::{DOCKER_CONFIG_MEDIA_TYPE, ImageConfig, OCI_CONFIG_MEDIA_TYPE};
use super::unpack::{self, Compression};
use crate::client::{RegistryClient, Target};
use crate::error::OciError;
use crate::reference::ImageRef;
use crate::wasm;

const BLOBS: &str = "blobs";
const IMAGES: &str = "images";
const TMP: &str = "tmp";
const ROOTFS: &str = "rootfs";
const RECORD: &str = "image.json";
const CONFIG: &str = "config.json";
/// The largest image config this store reads (they are a few KiB).
const MAX_CONFIG_BYTES: i64 = 16 * 1024 * 1024;

/// A container image unpacked on disk.
#[derive(Debug, Clone)]
pub struct Image {
    /// `registry/repository@sha256:...`: the reference pinned to the manifest digest.
    pub pinned: String,
    /// The manifest digest (`sha256:...`; for a multi-platform index, of the linux/amd64
    /// manifest).
    pub digest: String,
    /// The unpacked root filesystem, `{root}/images/<manifest hex>/rootfs`. Shared by every
    /// container of the image: mount it read-only (or as an overlay's lower directory), never
    /// write to it.
    pub rootfs: PathBuf,
    /// How the image says to run it.
    pub config: ImageConfig,
}

/// Images on disk under one root (Skiff uses `{data-dir}/oci`):
///
/// * `blobs/<algorithm>/<hex>`: manifests, configs and layers, content-addressed, verified
///   against their digests before they get there, shared by all images;
/// * `images/<manifest hex>/`: one unpacked image, `rootfs/` with `config.json` (the image
///   config blob) and `image.json` (the pinned reference and the digests of the blobs it was
///   made from). It appears whole or not at all: an image is unpacked under `tmp/` and renamed
///   into place;
/// * `tmp/`: downloads and unpacks in progress, emptied by [`ImageStore::open`].
///
/// Cheap to clone; clones share the in-process locks. Pulls of the same image wait for one
/// another; [`prune`](Self::prune) leaves alone what a pull in progress uses. Use one store
/// (and its clones) per root and process.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// A lock per manifest digest being pulled.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Blobs that pulls in progress use, with how many use each.
    busy: Mutex<HashMap<String, usize>>,
}

/// What `images/<hex>/image.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    pinned: String,
    digest: String,
    config: String,
    layers: Vec<String>,
}

impl Record {
    /// The blobs the image was made from: manifest, config, layers.
    fn blobs(&self) -> impl Iterator<Item = &String> {
        [&self.digest, &self.config].into_iter().chain(&self.layers)
    }
}

impl ImageStore {
    /// Opens (creating it if needed) the store under `root`, and clears what pulls cut short
    /// left in `tmp/`.
    pub fn open(root: &Path) -> Result<Self, OciError> {
        let fail = |what: &str, e: io::Error| store_error(root, format!("{what}: {e}"));
        for dir in [Path::new(BLOBS).join("sha256"), IMAGES.into(), TMP.into()] {
            fs::create_dir_all(root.join(dir)).map_err(|e| fail("creating the store", e))?;
        }
        let root = root.canonicalize().map_err(|e| fail("resolving the root", e))?;
        for entry in fs::read_dir(root.join(TMP)).map_err(|e| fail("reading tmp", e))? {
            let path = entry.map_err(|e| fail("reading tmp", e))?.path();
            remove_tree(&path).map_err(|e| fail(&format!("removing {}", path.display()), e))?;
        }
        Ok(Self { inner: Arc::new(Inner { root, pulls: Mutex::default(), busy: Mutex::default() }) })
    }

    /// The directory the store lives in (absolute).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Pulls `reference` (a tag or a digest; an index resolves to its linux/amd64 manifest)
    /// unless it is unpacked already, and returns it.
    ///
    /// A reference by manifest digest that is unpacked is served from disk without asking the
    /// registry; a tag is always resolved by the registry (tags move). Otherwise the manifest,
    /// the config and the layers not in the store yet are downloaded (each verified against
    /// its digest) and the layers are unpacked in order into a new rootfs.
    pub async fn pull(&self, client: &RegistryClient, reference: &str) -> Result<Image, OciError> {
        let span = tracing::info_span!(
            "oci.pull_image",
            reference,
            "server.address" = field::Empty,
            digest = field::Empty
        );
        async {
            let image_ref = ImageRef::parse(reference)?;
            if let Some(digest) = image_ref.inner.digest()
                && let Some(image) = self.get(digest)
            {
                tracing::debug!(%digest, "image already unpacked");
                return Ok(Image { pinned: image_ref.pinned(digest), ..image });
            }
            let target = client.target(reference).await?;
            let (manifest, digest, body) =
                client.fetch_image_manifest(&target, linux_amd64, "linux/amd64").await?;
            tracing::Span::current().record("digest", digest.as_str());
            if manifest_hex(&digest).is_none() {
                return Err(target.context().protocol(format!("unsupported manifest digest {digest}")));
            }
            let _slot = self.inner.pull_slot(&digest).await;
            if let Some(image) = self.get(&digest) {
                tracing::debug!(%digest, "image already unpacked");
                return Ok(Image { pinned: target.image.pinned(&digest), ..image });
            }
            self.fetch_and_unpack(&target, &manifest, &digest, &body).await
        }
        .instrument(span)
        .await
    }

    /// The image with this manifest digest (`sha256:...`), if it is unpacked.
    pub fn get(&self, manifest_digest: &str) -> Option<Image> {
        let hex = manifest_hex(manifest_digest)?;
        let dir = self.inner.root.join(IMAGES).join(hex);
        let record = read_record(&dir).ok()?;
        let config = fs::read(dir.join(CONFIG)).ok().and_then(|blob| ImageConfig::parse(&blob).ok());
        let Some(config) = config else {
            tracing::warn!(dir = %dir.display(), "unpacked image without a readable config");
            return None;
        };
        Some(Image { pinned: record.pinned, digest: record.digest, rootfs: dir.join(ROOTFS), config })
    }

    /// Removes the unpacked images whose manifest digest is not in `keep` (entries may also be
    /// pinned references, `registry/repo@sha256:...`), then the blobs no kept image was made
    /// from. Images and blobs that a pull in progress uses stay.
    pub fn prune(&self, keep: &HashSet<String>) -> Result<(), OciError> {
        let inner = &self.inner;
        let keep: HashSet<&str> =
            keep.iter().map(|k| k.rsplit_once('@').map_or(k.as_str(), |(_, digest)| digest)).collect();
        let fail = |what: String, e: io::Error| store_error(&inner.root, format!("{what}: {e}"));
        let images = inner.root.join(IMAGES);
        let mut referenced: HashSet<String> = HashSet::new();
        let mut prune_blobs = true;
        for entry in fs::read_dir(&images).map_err(|e| fail("reading images".into(), e))? {
            let dir = entry.map_err(|e| fail("reading images".into(), e))?.path();
            let digest = format!("sha256:{}", dir.file_name().unwrap_or_default().to_string_lossy());
            if keep.contains(digest.as_str()) {
                match read_record(&dir) {
                    Ok(record) => referenced.extend(record.blobs().cloned()),
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "kept image without a record; keeping all blobs");
                        prune_blobs = false;
                    }
                }
                continue;
            }
            // Out of sight first (a rename), then deleted: `get` never sees half an image.
            let doomed = {
                let pulls = lock(&inner.pulls);
                if pulls.contains_key(&digest) {
                    continue;
                }
                let doomed = inner.temp_path("prune");
                fs::rename(&dir, &doomed).map_err(|e| fail(format!("removing {}", dir.display()), e))?;
                doomed
            };
            remove_tree(&doomed).map_err(|e| fail(format!("removing {}", doomed.display()), e))?;
            tracing::info!(%digest, "pruned image");
        }
        if !prune_blobs {
            return Ok(());
        }
        let blobs = inner.root.join(BLOBS);
        for algorithm in fs::read_dir(&blobs).map_err(|e| fail("reading blobs".into(), e))? {
            let algorithm = algorithm.map_err(|e| fail("reading blobs".into(), e))?;
            let name = algorithm.file_name().to_string_lossy().into_owned();
            for blob in
                fs::read_dir(algorithm.path()).map_err(|e| fail(format!("reading blobs/{name}"), e))?
            {
                let blob = blob.map_err(|e| fail(format!("reading blobs/{name}"), e))?.path();
                let digest = format!("{name}:{}", blob.file_name().unwrap_or_default().to_string_lossy());
                if referenced.contains(&digest) {
                    continue;
                }
                // Checked and removed under the lock, so that a pull either sees the blob
                // gone or keeps it.
                let busy = lock(&inner.busy);
                if busy.contains_key(&digest) {
                    continue;
                }
                unpack::remove_any(&blob).map_err(|e| fail(format!("removing {}", blob.display()), e))?;
                drop(busy);
                tracing::debug!(%digest, "pruned blob");
            }
        }
        Ok(())
    }

    /// Downloads what the image needs and unpacks it; the caller holds the pull slot.
    async fn fetch_and_unpack(
        &self,
        target: &Target<'_>,
        manifest: &OciImageManifest,
        digest: &str,
        body: &[u8],
    ) -> Result<Image, OciError> {
        let ctx = target.context();
        let started = Instant::now();
        let config_type = manifest.config.media_type.as_str();
        if config_type != OCI_CONFIG_MEDIA_TYPE && config_type != DOCKER_CONFIG_MEDIA_TYPE {
            return Err(ctx.protocol(if wasm::manifest_says_wasm(manifest) {
                "the image is a wasm component, not a container image".to_owned()
            } else {
                format!("unsupported image config media type {config_type:?}")
            }));
        }
        let layers = manifest
            .layers
            .iter()
            .map(|layer| unpack::compression(&layer.media_type).map(|c| (layer, c)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| ctx.protocol(message))?;
        if !(0..=MAX_CONFIG_BYTES).contains(&manifest.config.size) {
            return Err(ctx.protocol(format!("the image config is {} bytes", manifest.config.size)));
        }
        let record = Record {
            pinned: target.image.pinned(digest),
            digest: digest.to_owned(),
            config: manifest.config.digest.clone(),
            layers: layers.iter().map(|(layer, _)| layer.digest.clone()).collect(),
        };
        let _busy = self.inner.hold(record.blobs().cloned().collect());

        // The manifest, as the registry sent it (oci-client checked it against the digest).
        wasm::verify_digest(body, digest).map_err(|e| ctx.protocol(format!("manifest: {e}")))?;
        let manifest_path = self.blob_path(target, digest)?;
        if !manifest_path.exists() {
            let tmp = self.inner.temp_path("manifest");
            let written = fs::write(&tmp, body).and_then(|()| fs::rename(&tmp, &manifest_path));
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                return Err(self.io_error(target, "storing the manifest", e));
            }
        }

        let config_path = self.fetch_blob(target, &manifest.config).await?;
        let config_blob =
            fs::read(&config_path).map_err(|e| self.io_error(target, "reading the image config", e))?;
        let config = ImageConfig::parse(&config_blob)
            .map_err(|m| ctx.protocol(format!("config {}: {m}", record.config)))?;
        let mut layer_paths = Vec::with_capacity(layers.len());
        for (layer, compression) in &layers {
            layer_paths.push((self.fetch_blob(target, layer).await?, *compression, layer.digest.clone()));
        }
        let downloaded = started.elapsed();

        let inner = self.inner.clone();
        let hex = manifest_hex(digest).unwrap_or_default().to_owned();
        let record_json = serde_json::to_vec_pretty(&record).map_err(|e| ctx.protocol(e))?;
        let unpacked =
            tokio::task::spawn_blocking(move || inner.unpack(&hex, &layer_paths, &config_blob, &record_json))
                .await
                .map_err(|e| ctx.protocol(format!("unpacking the image failed: {e}")))?;
        let dir = unpacked.map_err(|e| self.io_error(target, "unpacking the image", e))?;
        tracing::info!(
            digest,
            layers = layers.len(),
            download_ms = downloaded.as_millis() as u64,
            unpack_ms = (started.elapsed() - downloaded).as_millis() as u64,
            rootfs = %dir.join(ROOTFS).display(),
            "pulled and unpacked image"
        );
        Ok(Image { pinned: record.pinned, digest: record.digest, rootfs: dir.join(ROOTFS), config })
    }

    /// The blob's path in the store, downloading and verifying it first if it is not there.
    async fn fetch_blob(&self, target: &Target<'_>, descriptor: &OciDescriptor) -> Result<PathBuf, OciError> {
        let path = self.blob_path(target, &descriptor.digest)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(path);
        }
        let tmp = self.inner.temp_path("blob");
        let fetched = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| self.io_error(target, "creating a download file", e))?;
            target
                .client
                .pull_blob(&target.image.inner, descriptor, &mut file)
                .await
                .map_err(|e| target.context().map(e))?;
            file.sync_all().await.map_err(|e| self.io_error(target, "writing a blob", e))?;
            drop(file);
            let (file_path, expected) = (tmp.clone(), descriptor.digest.clone());
            let (actual, size) = tokio::task::spawn_blocking(move || file_digest(&file_path, &expected))
                .await
                .map_err(|e| target.context().protocol(format!("hashing a blob failed: {e}")))?
                .map_err(|e| self.io_error(target, "hashing a blob", e))?;
            if actual != descriptor.digest {
                return Err(target.context().protocol(format!(
                    "blob {}: digest verification failed: got {actual}",
                    descriptor.digest
                )));
            }
            if descriptor.size >= 0 && size != descriptor.size as u64 {
                return Err(target.context().protocol(format!(
                    "blob {}: the manifest says {} bytes, the registry sent {size}",
                    descriptor.digest, descriptor.size
                )));
            }
            tokio::fs::rename(&tmp, &path).await.map_err(|e| self.io_error(target, "storing a blob", e))?;
            tracing::debug!(digest = %descriptor.digest, size, "downloaded blob");
            Ok(path)
        }
        .await;
        if fetched.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        fetched
    }

    fn blob_path(&self, target: &Target<'_>, digest: &str) -> Result<PathBuf, OciError> {
        self.inner
            .blob_path(digest)
            .ok_or_else(|| target.context().protocol(format!("unsupported digest {digest}")))
    }

    fn io_error(&self, target: &Target<'_>, what: &str, e: io::Error) -> OciError {
        OciError::Protocol(format!(
            "{}: {what} in the image store {}: {e}",
            target.image.given,
            self.inner.root.display()
        ))
    }
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore").field("root", &self.inner.root).finish_non_exhaustive()
    }
}

impl Inner {
    /// `blobs/<algorithm>/<hex>`, for a well-formed `sha256:` or `sha512:` digest.
    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let (algorithm, hex) = digest.split_once(':')?;
        let len = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return None,
        };
        if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let dir = self.root.join(BLOBS).join(algorithm);
        if algorithm != "sha256" {
            fs::create_dir_all(&dir).ok()?;
        }
        Some(dir.join(hex))
    }

    /// A fresh path under `tmp/`.
    fn temp_path(&self, what: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.root.join(TMP).join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Waits until no other pull of `digest` runs here, and holds that until dropped.
    async fn pull_slot(&self, digest: &str) -> PullSlot<'_> {
        let lock = lock(&self.pulls).entry(digest.to_owned()).or_default().clone();
        PullSlot { inner: self, digest: digest.to_owned(), guard: Some(lock.lock_owned().await) }
    }

    /// Marks `digests` as used by a pull until the result is dropped.
    fn hold(&self, digests: Vec<String>) -> Busy<'_> {
        let mut busy = lock(&self.busy);
        for digest in &digests {
            *busy.entry(digest.clone()).or_default() += 1;
        }
        Busy { inner: self, digests }
    }

    /// Unpacks `layers` into `tmp/`, then renames the result to `images/<hex>`.
    fn unpack(
        &self,
        hex: &str,
        layers: &[(PathBuf, Compression, String)],
        config: &[u8],
        record: &[u8],
    ) -> io::Result<PathBuf> {
        let staging = self.temp_path(&format!("unpack-{}", &hex[..12.min(hex.len())]));
        let result = (|| {
            let rootfs = staging.join(ROOTFS);
            fs::create_dir_all(&rootfs)?;
            fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755))?;
            for (blob, compression, digest) in layers {
                unpack::apply_layer_file(&rootfs, blob, *compression)
                    .map_err(|e| io::Error::new(e.kind(), format!("layer {digest}: {e}")))?;
            }
            fs::write(staging.join(CONFIG), config)?;
            fs::write(staging.join(RECORD), record)?;
            // What was written reaches the disk before the image appears.
            nix::unistd::syncfs(fs::File::open(&staging)?)?;
            let dir = self.root.join(IMAGES).join(hex);
            if let Err(e) = fs::rename(&staging, &dir) {
                // Someone else unpacked it meanwhile (or left a broken one: replace that).
                if read_record(&dir).is_ok() {
                    remove_tree(&staging)?;
                } else if dir.exists() {
                    remove_tree(&dir)?;
                    fs::rename(&staging, &dir)?;
                } else {
                    return Err(e);
                }
            }
            Ok(dir)
        })();
        if result.is_err() {
            let _ = remove_tree(&staging);
        }
        result
    }
}

struct PullSlot<'a> {
    inner: &'a Inner,
    digest: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for PullSlot<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut pulls = lock(&self.inner.pulls);
        if pulls.get(&self.digest).is_some_and(|l| Arc::strong_count(l) == 1) {
            pulls.remove(&self.digest);
        }
    }
}

struct Busy<'a> {
    inner: &'a Inner,
    digests: Vec<String>,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut busy = lock(&self.inner.busy);
        for digest in &self.digests {
            if let Some(count) = busy.get_mut(digest) {
                *count -= 1;
                if *count == 0 {
                    busy.remove(digest);
                }
            }
        }
    }
}

/// The linux/amd64 entry of an index (a container image never takes a wasm entry).
fn linux_amd64(entries: &[ImageIndexEntry]) -> Option<String> {
    entries
        .iter()
        .find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os.to_string() == "linux" && p.architecture.to_string() == "amd64")
        })
        .map(|e| e.digest.clone())
}

/// The hex of a well-formed `sha256:` manifest digest.
fn manifest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

fn read_record(dir: &Path) -> io::Result<Record> {
    let bytes = fs::read(dir.join(RECORD))?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The digest (in `expected`'s algorithm) and size of the file at `path`.
fn file_digest(path: &Path, expected: &str) -> io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    let mut sha256 = sha2::Sha256::new();
    let mut sha512 = sha2::Sha512::new();
    let is_512 = expected.starts_with("sha512:");
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if is_512 {
            sha512.update(&buf[..n]);
        } else {
            sha256.update(&buf[..n]);
        }
    }
    let digest = if is_512 {
        format!("sha512:{}", hex(&sha512.finalize()))
    } else {
        format!("sha256:{}", hex(&sha256.finalize()))
    };
    Ok((digest, size))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes a file or a tree, making directories writable first if that is what stops it
/// (an image may have read-only directories; root does not care, others do).
fn remove_tree(path: &Path) -> io::Result<()> {
    match unpack::remove_any(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path);
            unpack::remove_any(path)
        }
        other => other,
    }
}

fn make_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(meta.permissions().mode() | 0o700));
    if let Ok(children) = fs::read_dir(path) {
        for child in children.flatten() {
            make_writable(&child.path());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn store_error(root: &Path, message: String) -> OciError {
    OciError::Protocol(format!("image store {}: {message}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_before_they_become_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(manifest_hex(&good), Some("ab".repeat(32).as_str()));
        for bad in ["sha256:../../etc", "sha256:AB", "md5:00", "", &format!("sha256:{}", "AB".repeat(32))] {
            assert_eq!(manifest_hex(bad), None, "{bad}");
            assert!(store.inner.blob_path(bad).is_none(), "{bad}");
            assert!(store.get(bad).is_none());
        }
        assert!(store.inner.blob_path(&good).unwrap().ends_with(format!("blobs/sha256/{}", "ab".repeat(32))));
        assert!(store.get(&good).is_none());
    }

    #[test]
    fn open_clears_tmp_and_keeps_images() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let leftover = store.inner.temp_path("unpack-x");
        fs::create_dir_all(leftover.join("rootfs/ro")).unwrap();
        fs::set_permissions(leftover.join("rootfs"), fs::Permissions::from_mode(0o555)).unwrap();
        let reopened = ImageStore::open(dir.path()).unwrap();
        assert!(!leftover.exists());
        assert!(reopened.root().is_absolute());
        assert!(reopened.root().join("images").is_dir());
    }

    #[test]
    fn busy_counts_and_pull_slots_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let a = store.inner.hold(vec!["sha256:a".into(), "sha256:b".into()]);
        let b = store.inner.hold(vec!["sha256:a".into()]);
        assert_eq!(lock(&store.inner.busy).get("sha256:a"), Some(&2));
        drop(a);
        assert_eq!(lock(&store.inner.busy).get("sha256:a"), Some(&1));
        assert!(!lock(&store.inner.busy).contains_key("sha256:b"));
        drop(b);
        assert!(lock(&store.inner.busy).is_empty());

        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let slot = store.inner.pull_slot("sha256:x").await;
            assert!(lock(&store.inner.pulls).contains_key("sha256:x"));
            drop(slot);
            assert!(lock(&store.inner.pulls).is_empty());
        });
    }
}
