//! The registry client against a real registry (`docker-registry`, distribution v2.8) on
//! loopback: pushes, pulls, tag moves, errors, basic auth and docker config files.

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageIndex, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use sha2::Digest as _;
use skiff_runtime_oci::{Credentials, OciError, RegistryClient, WASM_CONFIG_MEDIA_TYPE};
use skiff_tests::registry::{self as support, BasicAuth, Registry};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

fn hello() -> Vec<u8> {
    std::fs::read(skiff_guests::HELLO).expect("the hello guest component")
}

fn echo() -> Vec<u8> {
    std::fs::read(skiff_guests::ECHO).expect("the echo guest component")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

fn anonymous() -> RegistryClient {
    RegistryClient::new(Credentials::Anonymous)
}

/// A plain `oci-client` over HTTP, to put images in the registry that `push_wasm` would not
/// write. Create a [`RegistryClient`] first: it installs the TLS crypto provider.
fn raw_client() -> oci_client::Client {
    oci_client::Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() })
}

/// Pushes a one-layer image with an ordinary image config; returns its manifest digest.
async fn push_image(reference: &str, layer: ImageLayer) -> String {
    let client = raw_client();
    let image: oci_client::Reference = reference.parse().unwrap();
    let config = Config::oci_v1(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
        None,
    );
    let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    client
        .push(&image, &[layer], config, &RegistryAuth::Anonymous, Some(manifest))
        .await
        .expect("push image");
    client.fetch_manifest_digest(&image, &RegistryAuth::Anonymous).await.expect("digest of pushed image")
}

fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

fn digest_of(pinned: &str) -> &str {
    pinned.split_once('@').expect("a pinned reference").1
}

#[tokio::test]
async fn push_then_pull_round_trips_the_component() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let bytes = hello();
    let reference = registry.reference("fns/hello:v1");

    let pinned = client.push_wasm(&reference, &bytes).await.expect("push");
    assert!(pinned.starts_with(&format!("{}/fns/hello@sha256:", registry.host)), "{pinned}");

    let pulled = client.pull_wasm(&reference).await.expect("pull by tag");
    assert_eq!(pulled.bytes.as_ref(), bytes.as_slice());
    assert_eq!(pulled.layer_digest, sha256(&bytes));
    assert_eq!(pulled.pinned, pinned);
    assert_eq!(pulled.manifest_digest, digest_of(&pinned));

    let by_digest = client.pull_wasm(&pinned).await.expect("pull by digest");
    assert_eq!(by_digest, pulled);
    assert!(client.is_wasm(&reference).await.unwrap());

    // The artifact follows the CNCF layout, with a config naming the component's interface.
    let raw = raw_client();
    let (manifest, _, config) = raw
        .pull_manifest_and_config(&reference.parse().unwrap(), &RegistryAuth::Anonymous)
        .await
        .expect("manifest and config");
    assert_eq!(manifest.config.media_type, WASM_CONFIG_MEDIA_TYPE);
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, "application/wasm");
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"], serde_json::json!([sha256(&bytes)]));
    let exports = config["component"]["exports"].as_array().expect("exports");
    assert!(
        exports.iter().any(|e| e.as_str().is_some_and(|e| e.starts_with("wasi:http/incoming-handler"))),
        "{config}"
    );
    assert!(!config["component"]["imports"].as_array().unwrap().is_empty(), "{config}");

    // Pushing the same bytes again gives the same blobs (the config's timestamp differs).
    let again = client.push_wasm(&reference, &bytes).await.expect("second push");
    assert_eq!(client.pull_wasm(&again).await.unwrap().layer_digest, pulled.layer_digest);
}

#[tokio::test]
async fn a_pinned_digest_survives_a_tag_move() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let reference = registry.reference("fns/app:latest");
    let (old, new) = (hello(), echo());
    assert_ne!(old, new);

    client.push_wasm(&reference, &old).await.expect("push old");
    let resolved = client.resolve(&reference).await.expect("resolve");
    assert_eq!(resolved.reference, reference);
    assert_eq!(resolved.pinned, format!("{}/fns/app@{}", registry.host, resolved.digest));
    assert!(resolved.digest.starts_with("sha256:"));

    client.push_wasm(&reference, &new).await.expect("push new");
    let moved = client.resolve(&reference).await.expect("resolve after the move");
    assert_ne!(moved.digest, resolved.digest);

    assert_eq!(client.pull_wasm(&resolved.pinned).await.unwrap().bytes.as_ref(), old.as_slice());
    assert_eq!(client.pull_wasm(&reference).await.unwrap().bytes.as_ref(), new.as_slice());
    // Resolving a digest reference gives that digest back.
    assert_eq!(client.resolve(&resolved.pinned).await.unwrap().digest, resolved.digest);
}

#[tokio::test]
async fn missing_tags_and_repositories_are_not_found_with_the_registry_message() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    client.push_wasm(&registry.reference("fns/there:v1"), &hello()).await.expect("push");

    for missing in ["fns/there:v2", "fns/never:v1"] {
        let reference = registry.reference(missing);
        match client.pull_wasm(&reference).await {
            Err(OciError::NotFound { reference: r, message }) => {
                assert_eq!(r, reference);
                assert_eq!(message, "manifest unknown", "the registry's own words");
            }
            other => panic!("{missing}: expected NotFound, got {other:?}"),
        }
        let err = client.resolve(&reference).await.unwrap_err();
        assert_eq!(err.to_string(), format!("{reference} not found: manifest unknown"));
    }
    let absent_digest = format!("fns/there@{}", sha256(b"nothing"));
    assert!(matches!(
        client.resolve(&registry.reference(&absent_digest)).await,
        Err(OciError::NotFound { .. })
    ));
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let client = anonymous();
    let port = support::free_port();
    let reference = format!("127.0.0.1:{port}/fns/hello:v1");
    for err in [
        client.pull_wasm(&reference).await.unwrap_err(),
        client.resolve(&reference).await.unwrap_err(),
        client.push_wasm(&reference, &hello()).await.unwrap_err(),
    ] {
        match &err {
            OciError::Unreachable { registry, message } => {
                assert_eq!(registry, &format!("127.0.0.1:{port}"));
                assert!(message.to_lowercase().contains("connect"), "{message}");
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn invalid_references_are_reported_before_any_request() {
    let client = anonymous();
    for bad in ["", "UPPER/case", "localhost:5000/app@sha256:short"] {
        assert!(
            matches!(client.resolve(bad).await, Err(OciError::InvalidReference { ref reference, .. }) if reference == bad),
            "{bad}"
        );
    }
    let digest_ref = format!("localhost:1/app@{}", sha256(b"x"));
    assert!(matches!(client.push_wasm(&digest_ref, b"\0asm").await, Err(OciError::InvalidReference { .. })));
    // Bytes that are not Wasm are refused before anything is uploaded.
    assert!(matches!(
        client.push_wasm("localhost:1/app:v1", b"#!/bin/sh").await,
        Err(OciError::InvalidWasm { .. })
    ));
}

#[tokio::test]
async fn basic_auth_needs_the_right_credentials() {
    let Some(registry) = Registry::start_with_basic_auth(BasicAuth { username: USER, password: PASSWORD })
    else {
        return;
    };
    let reference = registry.reference("private/hello:v1");
    let bytes = hello();
    let authed = RegistryClient::new(Credentials::Basic { username: USER.into(), password: PASSWORD.into() });
    let pinned =
        authed.push_wasm(&reference, &bytes).await.unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    assert_eq!(authed.pull_wasm(&reference).await.unwrap().bytes.as_ref(), bytes.as_slice());
    assert_eq!(authed.resolve(&reference).await.unwrap().pinned, pinned);

    let wrong = RegistryClient::new(Credentials::Basic { username: USER.into(), password: "wrong".into() });
    for client in [anonymous(), wrong] {
        for err in [
            client.pull_wasm(&reference).await.unwrap_err(),
            client.resolve(&pinned).await.unwrap_err(),
            client.push_wasm(&registry.reference("private/other:v1"), &bytes).await.unwrap_err(),
        ] {
            match &err {
                OciError::Unauthorized { registry: r, message } => {
                    assert_eq!(r, &registry.host);
                    assert!(message.contains("authentication required"), "{message}");
                }
                other => panic!("expected Unauthorized, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn docker_config_credentials_work() {
    let Some(registry) = Registry::start_with_basic_auth(BasicAuth { username: USER, password: PASSWORD })
    else {
        return;
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let path = registry.scratch().join("config.json");
    let config = serde_json::json!({
        "auths": {
            format!("http://{}", registry.host): { "auth": auth },
            "https://index.docker.io/v1/": { "auth": "b3RoZXI6dXNlcg==" },
        }
    });
    std::fs::write(&path, config.to_string()).unwrap();
    let client = RegistryClient::new(Credentials::DockerConfig(path));

    let reference = registry.reference("private/hello:v1");
    let pinned =
        client.push_wasm(&reference, &hello()).await.unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    assert_eq!(client.pull_wasm(&pinned).await.unwrap().bytes.as_ref(), hello().as_slice());
    assert!(client.is_wasm(&reference).await.unwrap());

    // A config without an entry for this registry is anonymous, and refused.
    let other = registry.scratch().join("other.json");
    std::fs::write(&other, r#"{"auths":{"ghcr.io":{"auth":"dTpw"}}}"#).unwrap();
    let client = RegistryClient::new(Credentials::DockerConfig(other));
    assert!(matches!(client.pull_wasm(&reference).await, Err(OciError::Unauthorized { .. })));
}

#[tokio::test]
async fn single_layer_images_holding_wasm_are_pulled() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let bytes = hello();

    // A tar+gzip layer holding exactly one .wasm (as `docker build` of a scratch image makes).
    let layer = tar_gz(&[("README", b"hello"), ("app/hello.wasm", &bytes)]);
    let reference = registry.reference("images/tarred:v1");
    let digest = push_image(&reference, ImageLayer::oci_v1_gzip(layer.clone(), None)).await;
    let pulled = client.pull_wasm(&reference).await.expect("pull tar layer");
    assert_eq!(pulled.bytes.as_ref(), bytes.as_slice());
    assert_eq!(pulled.manifest_digest, digest);
    assert_eq!(pulled.layer_digest, sha256(&layer));
    // Its manifest does not say Wasm.
    assert!(!client.is_wasm(&reference).await.unwrap());

    // An application/octet-stream layer that is the binary itself.
    let reference = registry.reference("images/raw:v1");
    push_image(&reference, ImageLayer::new(bytes.clone(), "application/octet-stream".into(), None)).await;
    assert_eq!(client.pull_wasm(&reference).await.unwrap().bytes.as_ref(), bytes.as_slice());

    // A container image is not Wasm, and says what it has.
    let reference = registry.reference("images/container:v1");
    push_image(&reference, ImageLayer::oci_v1_gzip(tar_gz(&[("bin/app", b"\x7fELF")]), None)).await;
    assert!(!client.is_wasm(&reference).await.unwrap());
    match client.pull_wasm(&reference).await {
        Err(OciError::NotWasm { reference: r, media_types }) => {
            assert_eq!(r, reference);
            assert!(
                media_types.iter().any(|m| m == "application/vnd.oci.image.layer.v1.tar+gzip"),
                "{media_types:?}"
            );
        }
        other => panic!("expected NotWasm, got {other:?}"),
    }
}

#[tokio::test]
async fn image_indexes_resolve_to_the_wasm_or_linux_amd64_entry() {
    let Some(registry) = Registry::start() else { return };
    let client = anonymous();
    let wasm_pinned = client.push_wasm(&registry.reference("multi/app:wasm"), &hello()).await.unwrap();
    let linux = push_image(
        &registry.reference("multi/app:linux"),
        ImageLayer::oci_v1_gzip(tar_gz(&[("bin/app", b"\x7fELF")]), None),
    )
    .await;
    let arm = push_image(
        &registry.reference("multi/app:arm"),
        ImageLayer::oci_v1_gzip(tar_gz(&[("bin/app", b"\x7fELF arm")]), None),
    )
    .await;
    let wasm = digest_of(&wasm_pinned).to_owned();

    let raw = raw_client();
    let entry = |digest: &str, os: &str, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": { "os": os, "architecture": arch },
        })
    };
    let repository = registry.reference("multi/app");
    let push_index = |tag: &'static str, entries: Vec<serde_json::Value>| {
        let raw = raw.clone();
        let repository = repository.clone();
        async move {
            // Give each entry its manifest's real size.
            let mut fixed = Vec::new();
            for mut e in entries {
                let r: oci_client::Reference =
                    format!("{repository}@{}", e["digest"].as_str().unwrap()).parse().unwrap();
                let (body, _) = raw
                    .pull_manifest_raw(
                        &r,
                        &RegistryAuth::Anonymous,
                        &["application/vnd.oci.image.manifest.v1+json"],
                    )
                    .await
                    .unwrap();
                e["size"] = body.len().into();
                fixed.push(e);
            }
            let index: OciImageIndex = serde_json::from_value(serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": fixed,
            }))
            .unwrap();
            let reference = format!("{repository}:{tag}");
            raw.push_manifest_list(&reference.parse().unwrap(), &RegistryAuth::Anonymous, index)
                .await
                .unwrap();
            reference
        }
    };

    let both = push_index(
        "both",
        vec![entry(&arm, "linux", "arm64"), entry(&linux, "linux", "amd64"), entry(&wasm, "wasip2", "wasm")],
    )
    .await;
    let resolved = client.resolve(&both).await.unwrap();
    assert_eq!(resolved.digest, wasm);
    assert!(client.is_wasm(&both).await.unwrap());
    assert_eq!(client.pull_wasm(&both).await.unwrap().bytes.as_ref(), hello().as_slice());

    let containers =
        push_index("containers", vec![entry(&arm, "linux", "arm64"), entry(&linux, "linux", "amd64")]).await;
    assert_eq!(client.resolve(&containers).await.unwrap().digest, linux);
    assert!(!client.is_wasm(&containers).await.unwrap());

    let arm_only = push_index("arm-only", vec![entry(&arm, "linux", "arm64")]).await;
    match client.resolve(&arm_only).await {
        Err(OciError::NotFound { message, .. }) => assert!(message.contains("linux/arm64"), "{message}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}
