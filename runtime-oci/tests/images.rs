//! The image store against a real registry (`docker-registry`, distribution v2.8) on loopback:
//! `push_image` and pull, layers with whiteouts and every compression, pulls served from disk,
//! concurrent pulls, indexes, errors and pruning.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use sha2::Digest as _;
use skiff_runtime_oci::image::{ImageConfig, ImageFile, ImageStore};
use skiff_runtime_oci::{Credentials, OciError, RegistryClient};
use skiff_tests::registry::{self as support, Registry};

const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The smallest core Wasm module.
const EMPTY_MODULE: &[u8] = b"\0asm\x01\x00\x00\x00";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

fn anonymous() -> RegistryClient {
    RegistryClient::new(Credentials::Anonymous)
}

fn digest_of(pinned: &str) -> &str {
    pinned.split_once('@').expect("a pinned reference").1
}

fn file(path: &str, contents: &str, mode: u32) -> ImageFile {
    ImageFile { path: path.into(), contents: contents.into(), mode }
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn exists(root: &Path, path: &str) -> bool {
    std::fs::symlink_metadata(root.join(path)).is_ok()
}

fn mode(root: &Path, path: &str) -> u32 {
    std::fs::symlink_metadata(root.join(path)).unwrap().permissions().mode() & 0o7777
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// One entry of a hand-built layer.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a str, u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

fn tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_700_000_000);
        match entry {
            E::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, std::io::empty()).unwrap();
            }
            E::File(path, data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_bytes()).unwrap();
            }
            E::Symlink(path, target) | E::Hardlink(path, target) => {
                let kind = if matches!(entry, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                header.set_entry_type(kind);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, data).unwrap();
    gz.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A plain `oci-client` over HTTP. Create a [`RegistryClient`] first: it installs the TLS
/// crypto provider.
fn raw_client() -> oci_client::Client {
    oci_client::Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() })
}

/// Pushes an image of hand-made layers `(media type, uncompressed tar, blob)` for `arch`;
/// returns the pinned reference.
async fn push_layers(reference: &str, arch: &str, layers: &[(&str, Vec<u8>, Vec<u8>)]) -> String {
    let _ = anonymous();
    let raw = raw_client();
    let image: oci_client::Reference = reference.parse().unwrap();
    let diff_ids: Vec<String> = layers.iter().map(|(_, tar, _)| sha256(tar)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Cmd": ["/bin/tool"], "Env": [format!("ARCH={arch}")] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    let descriptor = |media_type: &str, blob: &[u8]| OciDescriptor {
        media_type: media_type.to_owned(),
        digest: sha256(blob),
        size: blob.len() as i64,
        ..Default::default()
    };
    let manifest = OciImageManifest {
        media_type: Some(OCI_MANIFEST.to_owned()),
        config: descriptor("application/vnd.oci.image.config.v1+json", &config),
        layers: layers.iter().map(|(media_type, _, blob)| descriptor(media_type, blob)).collect(),
        ..Default::default()
    };
    for blob in layers.iter().map(|(_, _, blob)| blob).chain([&config]) {
        if !raw.blob_exists(&image, &sha256(blob)).await.unwrap() {
            raw.push_blob(&image, blob.clone(), &sha256(blob)).await.expect("push blob");
        }
    }
    let body = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256(&body);
    raw.push_manifest_raw(&image, body, http::HeaderValue::from_static(OCI_MANIFEST))
        .await
        .expect("push manifest");
    format!("{}/{}@{digest}", image.registry(), image.repository())
}

#[tokio::test]
async fn push_image_then_pull_gives_the_files_with_modes_and_the_config() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let reference = registry.reference("fns/server:v1");
    let files = [
        file("/server", "#!/bin/sh\necho hello\n", 0o755),
        file("/etc/app/config.toml", "port = 8080\n", 0o644),
        file("/data/secret", "s3cret", 0o600),
    ];
    let config = ImageConfig {
        entrypoint: vec!["/server".into()],
        cmd: vec!["--port".into(), "8080".into()],
        env: vec!["PORT=8080".into(), "GREETING=hello world".into()],
        working_dir: Some("/data".into()),
        user: Some("1000:1000".into()),
        exposed_ports: vec![8080],
        stop_signal: Some("SIGTERM".into()),
    };

    let pinned = client.push_image(&reference, &files, &config).await.expect("push image");
    assert!(pinned.starts_with(&format!("{}/fns/server@sha256:", registry.host)), "{pinned}");
    // The same files and config make the same image.
    assert_eq!(client.push_image(&reference, &files, &config).await.unwrap(), pinned);
    // What a resolve sees is what was pushed.
    assert_eq!(client.resolve(&reference).await.unwrap().pinned, pinned);
    assert!(!client.is_wasm(&reference).await.unwrap());

    let image = store.pull(&client, &reference).await.expect("pull by tag");
    assert_eq!(image.pinned, pinned);
    assert_eq!(image.digest, digest_of(&pinned));
    assert_eq!(image.config, config);
    let hex = image.digest.strip_prefix("sha256:").unwrap();
    assert_eq!(image.rootfs, store.root().join("images").join(hex).join("rootfs"));

    let root = &image.rootfs;
    assert_eq!(read(root, "server"), "#!/bin/sh\necho hello\n");
    assert_eq!(read(root, "etc/app/config.toml"), "port = 8080\n");
    assert_eq!(read(root, "data/secret"), "s3cret");
    assert_eq!(mode(root, "server"), 0o755);
    assert_eq!(mode(root, "etc/app/config.toml"), 0o644);
    assert_eq!(mode(root, "data/secret"), 0o600);
    assert_eq!(mode(root, "etc/app"), 0o755);
    if nix::unistd::geteuid().is_root() {
        let meta = std::fs::metadata(root.join("server")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
    }
    assert_eq!(count(root), 3, "server, etc and data");

    // Manifest, config and layer are in the blob store; nothing is left in tmp.
    assert_eq!(count(&store.root().join("blobs/sha256")), 3);
    assert!(store.root().join("blobs/sha256").join(hex).is_file());
    assert_eq!(count(&store.root().join("tmp")), 0);

    let got = store.get(&image.digest).expect("get the unpacked image");
    assert_eq!(
        (got.pinned, got.digest, got.rootfs, got.config),
        (pinned, image.digest, image.rootfs, config)
    );
}

#[tokio::test]
async fn a_second_pull_is_served_from_disk() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let reference = registry.reference("fns/cached:v1");
    let config = ImageConfig { cmd: vec!["/hello".into()], ..Default::default() };
    let pinned = client.push_image(&reference, &[file("/hello", "hi", 0o755)], &config).await.unwrap();
    let first = store.pull(&client, &reference).await.expect("first pull");
    let host = registry.host.clone();
    drop(registry);

    // By digest, nothing asks the (stopped) registry: the same store, a reopened one, a new client.
    let again = store.pull(&client, &pinned).await.expect("second pull, from disk");
    assert_eq!((&again.rootfs, &again.digest, &again.config), (&first.rootfs, &first.digest, &config));
    let reopened = ImageStore::open(dir.path()).unwrap();
    let fresh = reopened.pull(&anonymous(), &pinned).await.expect("pull after reopening");
    assert_eq!(fresh.rootfs, first.rootfs);
    assert_eq!(fresh.pinned, pinned);
    assert_eq!(read(&fresh.rootfs, "hello"), "hi");

    // A tag still needs the registry: it may have moved.
    match reopened.pull(&client, &reference).await {
        Err(OciError::Unreachable { registry, .. }) => assert_eq!(registry, host),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn layers_apply_in_order_with_whiteouts_and_opaque_directories() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();

    let base = tar(&[
        E::Dir("etc/"),
        E::File("etc/keep", "keep v1", 0o644),
        E::File("etc/gone", "gone", 0o644),
        E::Symlink("etc/keep-link", "keep"),
        E::Dir("data/old/"),
        E::File("data/old/a", "a", 0o644),
        E::File("data/stays", "stays", 0o640),
        E::Dir("opaque/"),
        E::File("opaque/lower", "lower", 0o644),
        E::Dir("opaque/sub/"),
        E::File("opaque/sub/deep", "deep", 0o644),
        E::File("bin/tool", "#!/bin/sh\n", 0o755),
        E::Symlink("usr/bin", "/bin"),
    ]);
    let middle = tar(&[
        E::File("etc/.wh.gone", "", 0o644),
        E::File("data/.wh.old", "", 0o644),
        E::Dir("opaque/"),
        E::File("opaque/.wh..wh..opq", "", 0o644),
        E::File("opaque/upper", "upper", 0o644),
        E::File("etc/keep", "keep v2", 0o600),
        E::Hardlink("bin/tool-hard", "bin/tool"),
        // Written through the absolute symlink: lands in /bin of the rootfs.
        E::File("usr/bin/other", "other", 0o755),
    ]);
    let top = tar(&[E::File("etc/.wh.keep-link", "", 0o644), E::File("new/file", "new", 0o644)]);
    let pinned = push_layers(
        &registry.reference("fns/layered:v1"),
        "amd64",
        &[
            (OCI_GZIP, base.clone(), gzip(&base)),
            (OCI_ZSTD, middle.clone(), zstd(&middle)),
            (DOCKER_GZIP, top.clone(), gzip(&top)),
        ],
    )
    .await;

    let image = store.pull(&client, &registry.reference("fns/layered:v1")).await.expect("pull");
    assert_eq!(image.pinned, pinned);
    assert_eq!(image.config.cmd, ["/bin/tool"]);
    assert_eq!(image.config.env, ["ARCH=amd64"]);
    let root = &image.rootfs;
    assert_eq!(read(root, "etc/keep"), "keep v2");
    assert_eq!(mode(root, "etc/keep"), 0o600);
    assert!(!exists(root, "etc/gone"), "whited out");
    assert!(!exists(root, "etc/keep-link"), "whited out in the top layer");
    assert!(!exists(root, "data/old"), "a whited-out directory goes with its contents");
    assert_eq!(read(root, "data/stays"), "stays");
    assert_eq!(read(root, "opaque/upper"), "upper");
    assert!(!exists(root, "opaque/lower"), "the opaque directory hides the lower layer");
    assert!(!exists(root, "opaque/sub"));
    assert_eq!(read(root, "bin/tool-hard"), "#!/bin/sh\n");
    let (tool, hard) = (root.join("bin/tool"), root.join("bin/tool-hard"));
    assert_eq!(std::fs::metadata(&tool).unwrap().ino(), std::fs::metadata(&hard).unwrap().ino());
    assert_eq!(std::fs::read_link(root.join("usr/bin")).unwrap(), Path::new("/bin"));
    assert_eq!(read(root, "bin/other"), "other");
    assert_eq!(read(root, "new/file"), "new");
    for name in ["etc/.wh.gone", "data/.wh.old", "opaque/.wh..wh..opq", "etc/.wh.keep-link"] {
        assert!(!exists(root, name), "{name}: whiteouts are not files");
    }
    // Three layers and a config and a manifest.
    assert_eq!(count(&store.root().join("blobs/sha256")), 5);
}

#[tokio::test]
async fn gzip_zstd_and_plain_layers_all_unpack() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let layer = |n: usize| tar(&[E::File(&format!("layers/{n}"), &format!("layer {n}"), 0o644)]);
    let layers: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (OCI_TAR, layer(0), layer(0)),
        (OCI_GZIP, layer(1), gzip(&layer(1))),
        (OCI_ZSTD, layer(2), zstd(&layer(2))),
        (DOCKER_GZIP, layer(3), gzip(&layer(3))),
        // Said to be plain tar, but compressed: the magic bytes tell.
        (OCI_TAR, layer(4), gzip(&layer(4))),
        (OCI_TAR, layer(5), zstd(&layer(5))),
    ];
    let reference = registry.reference("fns/compressed:v1");
    push_layers(&reference, "amd64", &layers).await;
    let image = store.pull(&client, &reference).await.expect("pull");
    for n in 0..layers.len() {
        assert_eq!(read(&image.rootfs, &format!("layers/{n}")), format!("layer {n}"));
    }

    // A layer whose bytes are not what its media type says fails the pull and leaves nothing.
    let broken = registry.reference("fns/broken:v1");
    push_layers(&broken, "amd64", &[(OCI_ZSTD, layer(9), gzip(&layer(9)))]).await;
    let err = store.pull(&client, &broken).await.unwrap_err();
    assert!(err.to_string().contains("layer sha256:"), "{err}");
    assert_eq!(count(&store.root().join("images")), 1);
    assert_eq!(count(&store.root().join("tmp")), 0);
}

#[tokio::test]
async fn missing_images_report_the_registry_message() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    client
        .push_image(&registry.reference("fns/there:v1"), &[file("/a", "a", 0o644)], &ImageConfig::default())
        .await
        .unwrap();

    for missing in ["fns/there:v2", "fns/never:v1"] {
        let reference = registry.reference(missing);
        match store.pull(&client, &reference).await {
            Err(OciError::NotFound { reference: r, message }) => {
                assert_eq!(r, reference);
                assert_eq!(message, "manifest unknown", "the registry's own words");
            }
            other => panic!("{missing}: expected NotFound, got {other:?}"),
        }
    }
    let absent = registry.reference(&format!("fns/there@{}", sha256(b"nothing")));
    assert!(matches!(store.pull(&client, &absent).await, Err(OciError::NotFound { .. })));

    let nowhere = format!("127.0.0.1:{}/fns/there:v1", support::free_port());
    assert!(matches!(store.pull(&client, &nowhere).await, Err(OciError::Unreachable { .. })));
    assert!(matches!(store.pull(&client, "UPPER/case").await, Err(OciError::InvalidReference { .. })));
    assert_eq!(count(&store.root().join("images")), 0);
    assert_eq!(count(&store.root().join("blobs/sha256")), 0);
}

#[tokio::test]
async fn a_wasm_artifact_is_not_a_container_image() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let reference = registry.reference("fns/module:v1");
    client.push_wasm(&reference, EMPTY_MODULE).await.unwrap();
    let err = store.pull(&client, &reference).await.unwrap_err();
    assert!(matches!(&err, OciError::Protocol(m) if m.contains("wasm component")), "{err:?}");
}

#[tokio::test]
async fn an_index_resolves_to_linux_amd64() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let arch = |name: &str| tar(&[E::File("arch", name, 0o644)]);
    let amd64 = push_layers(
        &registry.reference("fns/multi:amd64"),
        "amd64",
        &[(OCI_TAR, arch("amd64"), arch("amd64"))],
    )
    .await;
    let arm64 = push_layers(
        &registry.reference("fns/multi:arm64"),
        "arm64",
        &[(OCI_TAR, arch("arm64"), arch("arm64"))],
    )
    .await;
    let wasm = client.push_wasm(&registry.reference("fns/multi:wasm"), EMPTY_MODULE).await.unwrap();

    let raw = raw_client();
    let mut entries = Vec::new();
    for (pinned, os, architecture) in
        [(&wasm, "wasip1", "wasm"), (&arm64, "linux", "arm64"), (&amd64, "linux", "amd64")]
    {
        let (body, digest) = raw
            .pull_manifest_raw(&pinned.parse().unwrap(), &RegistryAuth::Anonymous, &[OCI_MANIFEST])
            .await
            .unwrap();
        entries.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": body.len(),
            "platform": { "os": os, "architecture": architecture },
        }));
    }
    let index = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let reference = registry.reference("fns/multi:latest");
    raw.push_manifest_list(&reference.parse().unwrap(), &RegistryAuth::Anonymous, index).await.unwrap();

    let image = store.pull(&client, &reference).await.expect("pull the index");
    assert_eq!(image.pinned, amd64, "the linux/amd64 entry, even with a wasm entry in the index");
    assert_eq!(read(&image.rootfs, "arch"), "amd64");
    assert_eq!(image.config.env, ["ARCH=amd64"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pulls_of_one_image_share_one_unpack() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let reference = registry.reference("fns/popular:v1");
    let big: String = (0..200_000).map(|i| format!("{i}\n")).collect();
    let files = [ImageFile { path: "/big".into(), contents: big.clone().into_bytes(), mode: 0o644 }];
    client.push_image(&reference, &files, &ImageConfig::default()).await.unwrap();

    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let (store, client, reference) = (store.clone(), client.clone(), reference.clone());
            tokio::spawn(async move { store.pull(&client, &reference).await })
        })
        .collect();
    let mut rootfs = HashSet::new();
    for pull in pulls {
        let image = pull.await.unwrap().expect("concurrent pull");
        rootfs.insert(image.rootfs);
    }
    assert_eq!(rootfs.len(), 1);
    let rootfs = rootfs.into_iter().next().unwrap();
    assert_eq!(read(&rootfs, "big"), big);
    assert_eq!(count(&store.root().join("images")), 1);
    assert_eq!(count(&store.root().join("tmp")), 0, "no second unpack was started and dropped");
}

#[tokio::test]
async fn prune_removes_what_is_not_kept() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let files = [file("/shared", "the same layer", 0o644)];
    // Same files (so the same layer blob), different configs.
    let a = client
        .push_image(
            &registry.reference("fns/a:v1"),
            &files,
            &ImageConfig { cmd: vec!["a".into()], ..Default::default() },
        )
        .await
        .unwrap();
    let b = client
        .push_image(
            &registry.reference("fns/b:v1"),
            &files,
            &ImageConfig { cmd: vec!["b".into()], ..Default::default() },
        )
        .await
        .unwrap();
    let c = client
        .push_image(&registry.reference("fns/c:v1"), &[file("/c", "c", 0o644)], &ImageConfig::default())
        .await
        .unwrap();
    let image_a = store.pull(&client, &a).await.unwrap();
    let image_b = store.pull(&client, &b).await.unwrap();
    let image_c = store.pull(&client, &c).await.unwrap();
    let blobs = store.root().join("blobs/sha256");
    // a: manifest, config, layer; b: manifest, config (layer shared); c: three more.
    assert_eq!(count(&blobs), 8);

    // Keep a by digest and c by pinned reference.
    store.prune(&HashSet::from([image_a.digest.clone(), c.clone()])).unwrap();
    assert!(store.get(&image_a.digest).is_some());
    assert!(store.get(&image_c.digest).is_some());
    assert!(store.get(&image_b.digest).is_none());
    assert!(!image_b.rootfs.exists());
    assert_eq!(read(&image_a.rootfs, "shared"), "the same layer");
    assert_eq!(count(&blobs), 6, "b's manifest and config went, the shared layer stayed");
    assert!(!blobs.join(image_b.digest.strip_prefix("sha256:").unwrap()).exists());

    // What is gone can be pulled again.
    let again = store.pull(&client, &b).await.unwrap();
    assert_eq!(read(&again.rootfs, "shared"), "the same layer");

    store.prune(&HashSet::new()).unwrap();
    assert_eq!(count(&store.root().join("images")), 0);
    assert_eq!(count(&blobs), 0);
    assert!(store.get(&image_a.digest).is_none());
}

#[tokio::test]
async fn push_image_refuses_bad_input_before_uploading() {
    let client = anonymous();
    let digest_ref = format!("localhost:1/app@{}", sha256(b"x"));
    assert!(matches!(
        client.push_image(&digest_ref, &[file("/a", "", 0o644)], &ImageConfig::default()).await,
        Err(OciError::InvalidReference { .. })
    ));
    for bad in ["relative", "/a/../b", "/"] {
        let err = client
            .push_image("localhost:1/app:v1", &[file(bad, "", 0o644)], &ImageConfig::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("image file path"), "{bad}: {err}");
    }
}
