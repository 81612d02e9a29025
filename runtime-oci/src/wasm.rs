//! Wasm components as OCI artifacts: which manifests hold one, getting the component out of
//! the layer, and the config blob written on push.
//!
//! The layout is the CNCF TAG Runtime "Wasm OCI Artifact" one, as `wkg` and `oci-wasm` write
//! it: config media type [`WASM_CONFIG_MEDIA_TYPE`] with a JSON body naming the architecture
//! (`wasm`), the os (`wasip2` for components, `wasip1` for core modules), the layer digests and,
//! for components, their top-level imports and exports; one layer of [`WASM_LAYER_MEDIA_TYPE`]
//! holding the binary.

use std::fmt;
use std::io::Read;

use bytes::Bytes;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use sha2::Digest as _;

use crate::error::OciError;

/// Config media type of a Wasm OCI artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Layer media type of a Wasm OCI artifact.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Config media type written by `wasm-to-oci` and older tools.
const LEGACY_CONFIG_MEDIA_TYPE: &str = oci_client::manifest::WASM_CONFIG_MEDIA_TYPE;
/// Layer media type written by `wasm-to-oci`, Spin and older tools.
const LEGACY_LAYER_MEDIA_TYPE: &str = oci_client::manifest::WASM_LAYER_MEDIA_TYPE;
/// Layer media type of an opaque file; accepted when its bytes start with the Wasm magic.
const OCTET_STREAM: &str = "application/octet-stream";
/// Layer media types of tar archives, optionally gzip-compressed.
const TAR_LAYER_MEDIA_TYPES: &[&str] = &[
    oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE,
    oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
    oci_client::manifest::IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
    oci_client::manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
];

/// The largest component this crate pulls or unpacks (guards against decompression bombs).
pub(crate) const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

const WASM_MAGIC: &[u8] = b"\0asm";

/// A Wasm component (or core module) pulled from a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct WasmArtifact {
    /// The Wasm binary.
    pub bytes: Bytes,
    /// Digest of the image manifest it came from (the platform manifest, for an index).
    pub manifest_digest: String,
    /// Digest of the layer it came from (verified against the bytes received).
    pub layer_digest: String,
    /// `registry/repository@manifest_digest`.
    pub pinned: String,
}

impl fmt::Debug for WasmArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmArtifact")
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("manifest_digest", &self.manifest_digest)
            .field("layer_digest", &self.layer_digest)
            .field("pinned", &self.pinned)
            .finish()
    }
}

/// How the component sits in its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerKind {
    /// The layer is the binary itself.
    Raw,
    /// The layer is a tar (maybe gzip) archive holding exactly one `*.wasm` file.
    Tar,
}

/// Whether the manifest says Wasm, by config media type, layer media type or artifact type.
pub(crate) fn manifest_says_wasm(manifest: &OciImageManifest) -> bool {
    is_wasm_config(&manifest.config.media_type)
        || manifest.layers.iter().any(|l| is_wasm_layer(&l.media_type))
        || manifest.artifact_type.as_deref().is_some_and(|t| t.starts_with("application/vnd.wasm."))
}

/// The config and layer media types, for [`OciError::NotWasm`].
pub(crate) fn media_types(manifest: &OciImageManifest) -> Vec<String> {
    std::iter::once(&manifest.config).chain(&manifest.layers).map(|d| d.media_type.clone()).collect()
}

/// The layer holding the component: the one Wasm layer of a Wasm artifact, or the only layer
/// of a single-layer image when it is a raw binary or a tar archive.
pub(crate) fn component_layer<'m>(
    reference: &str,
    manifest: &'m OciImageManifest,
) -> Result<(&'m OciDescriptor, LayerKind), OciError> {
    let wasm_layers: Vec<&OciDescriptor> =
        manifest.layers.iter().filter(|l| is_wasm_layer(&l.media_type)).collect();
    match wasm_layers.as_slice() {
        [layer] => return Ok((layer, LayerKind::Raw)),
        [] => {}
        several => {
            return Err(OciError::InvalidWasm {
                reference: reference.to_owned(),
                message: format!("the manifest has {} wasm layers; expected one", several.len()),
            });
        }
    }
    if is_wasm_config(&manifest.config.media_type) {
        return Err(OciError::InvalidWasm {
            reference: reference.to_owned(),
            message: format!(
                "the config says wasm but no layer has media type {WASM_LAYER_MEDIA_TYPE} (layers: {})",
                manifest.layers.iter().map(|l| l.media_type.as_str()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let not_wasm =
        || OciError::NotWasm { reference: reference.to_owned(), media_types: media_types(manifest) };
    match manifest.layers.as_slice() {
        [layer] if layer.media_type == OCTET_STREAM => Ok((layer, LayerKind::Raw)),
        [layer] if TAR_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()) => Ok((layer, LayerKind::Tar)),
        _ => Err(not_wasm()),
    }
}

/// Gets the component out of a layer blob whose digest has been verified.
pub(crate) async fn extract(
    reference: &str,
    manifest: &OciImageManifest,
    kind: LayerKind,
    blob: Vec<u8>,
) -> Result<Bytes, OciError> {
    let bytes = match kind {
        LayerKind::Raw => blob,
        LayerKind::Tar => {
            let unpacked = tokio::task::spawn_blocking(move || wasm_from_tar(&blob))
                .await
                .map_err(|e| OciError::Protocol(format!("{reference}: unpacking the layer failed: {e}")))?;
            match unpacked {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    return Err(OciError::NotWasm {
                        reference: reference.to_owned(),
                        media_types: media_types(manifest),
                    });
                }
                Err(message) => {
                    return Err(OciError::InvalidWasm { reference: reference.to_owned(), message });
                }
            }
        }
    };
    if !bytes.starts_with(WASM_MAGIC) {
        if kind == LayerKind::Raw && !manifest_says_wasm(manifest) {
            return Err(OciError::NotWasm {
                reference: reference.to_owned(),
                media_types: media_types(manifest),
            });
        }
        return Err(OciError::InvalidWasm {
            reference: reference.to_owned(),
            message: "the layer does not start with the wasm magic number".to_owned(),
        });
    }
    Ok(Bytes::from(bytes))
}

/// The one `*.wasm` regular file in a tar (or tar+gzip) archive; `None` when there is none.
fn wasm_from_tar(blob: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let reader: Box<dyn Read + '_> = if blob.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(blob))
    } else {
        Box::new(blob)
    };
    let mut archive = tar::Archive::new(reader);
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().map_err(|e| format!("the layer is not a tar archive: {e}"))? {
        let entry = entry.map_err(|e| format!("reading the layer's tar archive: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| format!("bad path in the layer's tar archive: {e}"))?;
        let is_wasm = path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("wasm"))
            && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".wh."));
        if !is_wasm {
            continue;
        }
        let name = path.display().to_string();
        if found.len() == 1 {
            return Err(format!(
                "the layer holds several .wasm files ({}, {name}); expected one",
                found[0].0
            ));
        }
        let mut bytes = Vec::new();
        entry
            .take(MAX_COMPONENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading {name} from the layer: {e}"))?;
        if bytes.len() as u64 > MAX_COMPONENT_BYTES {
            return Err(format!("{name} is larger than {MAX_COMPONENT_BYTES} bytes"));
        }
        found.push((name, bytes));
    }
    Ok(found.pop().map(|(_, bytes)| bytes))
}

/// The config blob for pushing `bytes` as a Wasm artifact whose layer has `layer_digest`.
pub(crate) fn config_json(bytes: &[u8], layer_digest: &str) -> Result<Vec<u8>, String> {
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("formatting the creation time: {e}"))?;
    let mut config = serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [layer_digest],
    });
    if wasmparser::Parser::is_component(bytes) {
        let (imports, exports) = component_interface(bytes)?;
        config["os"] = "wasip2".into();
        config["component"] = serde_json::json!({ "exports": exports, "imports": imports });
    } else if !wasmparser::Parser::is_core_wasm(bytes) {
        return Err("the bytes are not a wasm component or module (no wasm header)".to_owned());
    } else {
        // A core module: check it parses at all, as for components.
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            payload.map_err(|e| format!("malformed wasm module: {e}"))?;
        }
    }
    serde_json::to_vec(&config).map_err(|e| format!("serialising the config: {e}"))
}

/// The top-level import and export names of a component (`wasi:http/incoming-handler@0.2.0`).
fn component_interface(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    use wasmparser::Payload;
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| format!("malformed wasm component: {e}"))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| format!("malformed component import: {e}"))?;
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| format!("malformed component export: {e}"))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

fn is_wasm_config(media_type: &str) -> bool {
    media_type == WASM_CONFIG_MEDIA_TYPE || media_type == LEGACY_CONFIG_MEDIA_TYPE
}

fn is_wasm_layer(media_type: &str) -> bool {
    media_type == WASM_LAYER_MEDIA_TYPE || media_type == LEGACY_LAYER_MEDIA_TYPE
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
}

/// Checks `bytes` against `expected` (`sha256:` or `sha512:`).
pub(crate) fn verify_digest(bytes: &[u8], expected: &str) -> Result<(), String> {
    let actual = match expected.split_once(':') {
        Some(("sha256", _)) => sha256_digest(bytes),
        Some(("sha512", _)) => format!("sha512:{}", hex(&sha2::Sha512::digest(bytes))),
        _ => return Err(format!("unsupported digest {expected:?}")),
    };
    if actual == expected { Ok(()) } else { Err(format!("expected digest {expected}, got {actual}")) }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: header only.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";
    /// The smallest core module.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\x00\x00\x00";

    fn descriptor(media_type: &str, data: &[u8]) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.to_owned(),
            digest: sha256_digest(data),
            size: data.len() as i64,
            ..Default::default()
        }
    }

    fn manifest(config: &str, layers: &[&str]) -> OciImageManifest {
        OciImageManifest {
            config: descriptor(config, b"{}"),
            layers: layers.iter().map(|m| descriptor(m, b"x")).collect(),
            ..Default::default()
        }
    }

    fn tar_of(files: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        if !gzip {
            return tar;
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &tar).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn cncf_artifact_and_legacy_layouts_are_wasm() {
        let cncf = manifest(WASM_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE]);
        assert!(manifest_says_wasm(&cncf));
        assert_eq!(component_layer("r", &cncf).unwrap().1, LayerKind::Raw);
        let legacy = manifest(LEGACY_CONFIG_MEDIA_TYPE, &[LEGACY_LAYER_MEDIA_TYPE]);
        assert!(manifest_says_wasm(&legacy));
        // A plain image config with a wasm layer is still a wasm image.
        let plain = manifest(oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE]);
        assert!(manifest_says_wasm(&plain));
        let mut typed = manifest(oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE, &[OCTET_STREAM]);
        assert!(!manifest_says_wasm(&typed));
        typed.artifact_type = Some("application/vnd.wasm.component.v1+wasm".into());
        assert!(manifest_says_wasm(&typed));
    }

    #[test]
    fn single_layer_images_are_accepted_by_layer_type() {
        let config = oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE;
        let octet = manifest(config, &[OCTET_STREAM]);
        assert_eq!(component_layer("r", &octet).unwrap().1, LayerKind::Raw);
        assert!(!manifest_says_wasm(&octet));
        for tar in TAR_LAYER_MEDIA_TYPES {
            assert_eq!(component_layer("r", &manifest(config, &[tar])).unwrap().1, LayerKind::Tar);
        }
        let two = manifest(config, &[TAR_LAYER_MEDIA_TYPES[1], TAR_LAYER_MEDIA_TYPES[1]]);
        match component_layer("r", &two) {
            Err(OciError::NotWasm { reference, media_types }) => {
                assert_eq!(reference, "r");
                assert_eq!(media_types.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        let zstd = manifest(config, &["application/vnd.oci.image.layer.v1.tar+zstd"]);
        assert!(matches!(component_layer("r", &zstd), Err(OciError::NotWasm { .. })));
    }

    #[test]
    fn wasm_config_without_a_wasm_layer_is_invalid() {
        let broken = manifest(WASM_CONFIG_MEDIA_TYPE, &[OCTET_STREAM]);
        assert!(matches!(component_layer("r", &broken), Err(OciError::InvalidWasm { .. })));
        let twice = manifest(WASM_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE]);
        assert!(matches!(component_layer("r", &twice), Err(OciError::InvalidWasm { .. })));
    }

    #[test]
    fn tar_layers_must_hold_exactly_one_wasm_file() {
        for gzip in [false, true] {
            let one = tar_of(&[("etc/readme", b"hi"), ("app/main.wasm", EMPTY_COMPONENT)], gzip);
            assert_eq!(wasm_from_tar(&one).unwrap().as_deref(), Some(EMPTY_COMPONENT));
            let none = tar_of(&[("bin/sh", b"elf")], gzip);
            assert_eq!(wasm_from_tar(&none).unwrap(), None);
            let two = tar_of(&[("a.wasm", EMPTY_COMPONENT), ("b.WASM", EMPTY_MODULE)], gzip);
            let err = wasm_from_tar(&two).unwrap_err();
            assert!(err.contains("a.wasm") && err.contains("b.WASM"), "{err}");
        }
        assert!(wasm_from_tar(b"\x1f\x8bnot really gzip").is_err());
    }

    #[tokio::test]
    async fn extract_checks_the_wasm_magic() {
        let octet = manifest(oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE, &[OCTET_STREAM]);
        let got = extract("r", &octet, LayerKind::Raw, EMPTY_COMPONENT.to_vec()).await.unwrap();
        assert_eq!(&got[..], EMPTY_COMPONENT);
        let err = extract("r", &octet, LayerKind::Raw, b"#!/bin/sh".to_vec()).await.unwrap_err();
        assert!(matches!(err, OciError::NotWasm { .. }), "{err:?}");
        let cncf = manifest(WASM_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE]);
        let err = extract("r", &cncf, LayerKind::Raw, b"garbage".to_vec()).await.unwrap_err();
        assert!(matches!(err, OciError::InvalidWasm { .. }), "{err:?}");
        let tar = manifest(oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE, &[TAR_LAYER_MEDIA_TYPES[1]]);
        let blob = tar_of(&[("f.wasm", EMPTY_MODULE)], true);
        assert_eq!(&extract("r", &tar, LayerKind::Tar, blob).await.unwrap()[..], EMPTY_MODULE);
        let blob = tar_of(&[("bin/app", b"elf")], true);
        let err = extract("r", &tar, LayerKind::Tar, blob).await.unwrap_err();
        assert!(matches!(err, OciError::NotWasm { .. }), "{err:?}");
    }

    #[test]
    fn config_names_os_and_layer_digests() {
        let digest = sha256_digest(EMPTY_COMPONENT);
        let config: serde_json::Value =
            serde_json::from_slice(&config_json(EMPTY_COMPONENT, &digest).unwrap()).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["layerDigests"], serde_json::json!([digest]));
        assert_eq!(config["component"], serde_json::json!({ "exports": [], "imports": [] }));
        assert!(
            time::OffsetDateTime::parse(
                config["created"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );

        let config: serde_json::Value =
            serde_json::from_slice(&config_json(EMPTY_MODULE, "sha256:x").unwrap()).unwrap();
        assert_eq!(config["os"], "wasip1");
        assert!(config.get("component").is_none());

        assert!(config_json(b"not wasm", "sha256:x").unwrap_err().contains("no wasm header"));
        assert!(config_json(b"\0asm\x0d\x00\x01\x00\x07\xff", "sha256:x").unwrap_err().contains("malformed"));
    }

    #[test]
    fn digests_are_verified() {
        let digest = sha256_digest(b"abc");
        assert_eq!(digest, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        verify_digest(b"abc", &digest).unwrap();
        assert!(verify_digest(b"abd", &digest).unwrap_err().contains("expected digest"));
        let sha512 = format!("sha512:{}", hex(&sha2::Sha512::digest(b"abc")));
        verify_digest(b"abc", &sha512).unwrap();
        assert!(verify_digest(b"abc", "md5:00").is_err());
    }
}
