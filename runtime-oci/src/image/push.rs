//! [`RegistryClient::push_image`]: publishing a container image built from a few files.

use std::collections::{BTreeSet, HashSet};
use std::io::Write as _;
use std::path::Path;

use bytes::Bytes;
use oci_client::manifest::{IMAGE_LAYER_GZIP_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use tracing::{Instrument as _, field};

use super::config::{ImageConfig, OCI_CONFIG_MEDIA_TYPE};
use crate::client::{RegistryClient, descriptor};
use crate::error::OciError;
use crate::wasm;

/// A file to put in an image with [`RegistryClient::push_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Where the file goes, absolute: `/server`, `/etc/app/config.toml`. Its parent
    /// directories are created (mode 755).
    pub path: String,
    /// What the file holds.
    pub contents: Vec<u8>,
    /// Its permission bits (`0o755` for an executable); owned by root.
    pub mode: u32,
}

impl RegistryClient {
    /// Pushes an image made of `files` under the tag in `reference`: one gzip tar layer
    /// holding them (owned by root, mtime 0), an OCI image config (linux/amd64) saying how to
    /// run it as `config` does, and an OCI manifest. Returns the pinned reference
    /// `registry/repository@sha256:...`. The same files and config give the same digest.
    pub async fn push_image(
        &self,
        reference: &str,
        files: &[ImageFile],
        config: &ImageConfig,
    ) -> Result<String, OciError> {
        let span = tracing::info_span!(
            "oci.push_image",
            reference,
            "server.address" = field::Empty,
            digest = field::Empty,
            files = files.len()
        );
        async {
            let target = self.push_target(reference).await?;
            let ctx = target.context();
            let files = files.to_vec();
            let (tar, layer) = tokio::task::spawn_blocking(move || layer(&files))
                .await
                .map_err(|e| ctx.protocol(format!("building the layer failed: {e}")))?
                .map_err(|message| ctx.protocol(message))?;
            let config_blob = config.to_blob(&[wasm::sha256_digest(&tar)]);
            drop(tar);
            let manifest = OciImageManifest {
                media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
                config: descriptor(OCI_CONFIG_MEDIA_TYPE, &config_blob),
                layers: vec![descriptor(IMAGE_LAYER_GZIP_MEDIA_TYPE, &layer)],
                ..Default::default()
            };
            let layer_digest = manifest.layers[0].digest.clone();
            self.push_blob(&target, Bytes::from(layer), &layer_digest).await?;
            let config_digest = manifest.config.digest.clone();
            self.push_blob(&target, Bytes::from(config_blob), &config_digest).await?;

            let body = serde_json::to_vec(&manifest).map_err(|e| ctx.protocol(e))?;
            let manifest_digest = wasm::sha256_digest(&body);
            let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
            target
                .client
                .push_manifest_raw(&target.image.inner, body, content_type)
                .await
                .map_err(|e| ctx.map(e))?;
            tracing::Span::current().record("digest", manifest_digest.as_str());
            tracing::info!(layer = %layer_digest, "pushed image");
            Ok(target.image.pinned(&manifest_digest))
        }
        .instrument(span)
        .await
    }
}

/// The layer holding `files`: the tar (for the config's diff id) and its gzip (the blob).
fn layer(files: &[ImageFile]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut dirs = BTreeSet::new();
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(files.len());
    for file in files {
        let relative = relative_path(&file.path)?;
        if !seen.insert(relative.clone()) {
            return Err(format!("image file {:?} is given twice", file.path));
        }
        let mut parent = Path::new(&relative).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_string_lossy().into_owned());
            parent = dir.parent();
        }
        entries.push((relative, file));
    }
    if let Some(clash) = dirs.iter().find(|d| seen.contains(*d)) {
        return Err(format!("image file /{clash} is also the directory of another file"));
    }
    let mut builder = tar::Builder::new(Vec::new());
    let header = |kind, mode, size| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header
    };
    let tar_error = |e: std::io::Error| format!("writing the layer: {e}");
    for dir in &dirs {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        builder.append_data(&mut header, format!("{dir}/"), std::io::empty()).map_err(tar_error)?;
    }
    for (path, file) in entries {
        let mut header = header(tar::EntryType::Regular, file.mode & 0o7777, file.contents.len() as u64);
        builder.append_data(&mut header, path, file.contents.as_slice()).map_err(tar_error)?;
    }
    let tar = builder.into_inner().map_err(tar_error)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).map_err(tar_error)?;
    let gz = gz.finish().map_err(tar_error)?;
    Ok((tar, gz))
}

/// `/a/b` -> `a/b`; refused unless absolute, without `.`/`..` and naming a file.
fn relative_path(path: &str) -> Result<String, String> {
    let invalid = |why: &str| format!("image file path {path:?} {why}");
    if !path.starts_with('/') {
        return Err(invalid("is not absolute"));
    }
    let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    if parts.iter().any(|part| *part == "." || *part == "..") {
        return Err(invalid("has . or .."));
    }
    if parts.is_empty() || path.ends_with('/') {
        return Err(invalid("names no file"));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn file(path: &str, contents: &str, mode: u32) -> ImageFile {
        ImageFile { path: path.into(), contents: contents.into(), mode }
    }

    #[test]
    fn the_layer_holds_the_files_and_their_directories() {
        let (tar, gz) =
            layer(&[file("/srv/bin/server", "elf", 0o755), file("/etc/conf", "x=1", 0o600)]).unwrap();
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut unzipped).unwrap();
        assert_eq!(unzipped, tar);
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (e.path().unwrap().display().to_string(), h.mode().unwrap(), h.entry_type())
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("etc/".to_owned(), 0o755, tar::EntryType::Directory),
                ("srv/".to_owned(), 0o755, tar::EntryType::Directory),
                ("srv/bin/".to_owned(), 0o755, tar::EntryType::Directory),
                ("srv/bin/server".to_owned(), 0o755, tar::EntryType::Regular),
                ("etc/conf".to_owned(), 0o600, tar::EntryType::Regular),
            ]
        );
        // Deterministic: the same files give the same blobs.
        let again = layer(&[file("/srv/bin/server", "elf", 0o755), file("/etc/conf", "x=1", 0o600)]).unwrap();
        assert_eq!(again.1, gz);
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["server", "/", "/a/../b", "/a/./b", "/dir/", ""] {
            assert!(layer(&[file(bad, "", 0o644)]).is_err(), "{bad:?}");
        }
        assert!(layer(&[file("/a", "", 0o644), file("//a", "", 0o644)]).unwrap_err().contains("twice"));
        assert!(layer(&[file("/a", "", 0o644), file("/a/b", "", 0o644)]).unwrap_err().contains("directory"));
    }
}
