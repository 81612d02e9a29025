//! [`RegistryClient`]: resolve references to digests, pull and push Wasm artifacts.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, ImageIndexEntry, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, OciManifest,
};
use oci_client::secrets::RegistryAuth;
use tracing::{Instrument as _, field};

use crate::credentials::Credentials;
use crate::error::{Context, OciError};
use crate::reference::ImageRef;
use crate::{WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE, WasmArtifact};
use crate::{platform, wasm};

/// Manifest media types asked for when fetching a manifest.
const ACCEPT: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

const USER_AGENT: &str = concat!("skiff/", env!("CARGO_PKG_VERSION"));

/// A reference resolved to the manifest digest it names now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The reference as given.
    pub reference: String,
    /// `registry/repository@sha256:...`: what a revision records and pulls from then on.
    pub pinned: String,
    /// The manifest digest (for a multi-platform index, the digest of the chosen platform's
    /// manifest).
    pub digest: String,
}

/// A client for OCI registries. Cheap to clone; clones share connections and tokens.
///
/// Registries on loopback (`localhost`, 127.0.0.0/8, `[::1]`, any port) are spoken to in
/// plain HTTP, all others in HTTPS with the system's root certificates.
#[derive(Clone)]
pub struct RegistryClient {
    https: oci_client::Client,
    http: oci_client::Client,
    credentials: Credentials,
}

/// One operation's view of a reference: parsed, with the client and credentials for its registry.
pub(crate) struct Target<'c> {
    pub(crate) image: ImageRef,
    pub(crate) client: &'c oci_client::Client,
    pub(crate) auth: RegistryAuth,
}

impl Target<'_> {
    pub(crate) fn context(&self) -> Context<'_> {
        Context { reference: &self.image.given, registry: self.image.address() }
    }
}

impl RegistryClient {
    /// A client authenticating with `auth`.
    pub fn new(auth: Credentials) -> Self {
        install_crypto_provider();
        Self {
            https: oci_client::Client::new(client_config(ClientProtocol::Https)),
            http: oci_client::Client::new(client_config(ClientProtocol::Http)),
            credentials: auth,
        }
    }

    /// Resolves a reference (tag or digest) to its manifest digest, as Knative pins a
    /// revision's image. A multi-platform index resolves to its `wasi/wasm` entry if it has
    /// one, else to `linux/amd64`.
    pub async fn resolve(&self, reference: &str) -> Result<Resolved, OciError> {
        let span = tracing::info_span!(
            "oci.resolve",
            reference,
            "server.address" = field::Empty,
            digest = field::Empty
        );
        async {
            let target = self.target(reference).await?;
            let (_, digest) = self.image_manifest(&target).await?;
            tracing::Span::current().record("digest", digest.as_str());
            Ok(Resolved { reference: reference.to_owned(), pinned: target.image.pinned(&digest), digest })
        }
        .instrument(span)
        .await
    }

    /// Pulls a Wasm component: a CNCF Wasm OCI artifact (config
    /// `application/vnd.wasm.config.v0+json`, one `application/wasm` layer), or a single-layer
    /// image whose layer is the binary (`application/wasm`, `application/octet-stream`) or a
    /// tar(+gzip) archive holding exactly one `*.wasm` file. The layer's digest is verified.
    pub async fn pull_wasm(&self, reference: &str) -> Result<WasmArtifact, OciError> {
        let span = tracing::info_span!(
            "oci.pull",
            reference,
            "server.address" = field::Empty,
            digest = field::Empty,
            size = field::Empty
        );
        async {
            let target = self.target(reference).await?;
            let (manifest, manifest_digest) = self.image_manifest(&target).await?;
            tracing::Span::current().record("digest", manifest_digest.as_str());
            let (layer, kind) = wasm::component_layer(reference, &manifest)?;
            let size = u64::try_from(layer.size).unwrap_or(0);
            if size > wasm::MAX_COMPONENT_BYTES {
                return Err(OciError::InvalidWasm {
                    reference: reference.to_owned(),
                    message: format!(
                        "the layer is {size} bytes, more than the {} allowed",
                        wasm::MAX_COMPONENT_BYTES
                    ),
                });
            }
            // Sized by the manifest, which the registry controls: only a hint, capped.
            let mut blob = Vec::with_capacity(size.min(64 * 1024 * 1024) as usize);
            target
                .client
                .pull_blob(&target.image.inner, layer, &mut blob)
                .await
                .map_err(|e| target.context().map(e))?;
            // oci-client checks this too; checking here keeps the guarantee in this crate.
            wasm::verify_digest(&blob, &layer.digest)
                .map_err(|e| target.context().protocol(format!("layer {}: {e}", layer.digest)))?;
            let bytes = wasm::extract(reference, &manifest, kind, blob).await?;
            tracing::Span::current().record("size", bytes.len());
            tracing::info!(layer = %layer.digest, size = bytes.len(), "pulled wasm component");
            Ok(WasmArtifact {
                bytes,
                pinned: target.image.pinned(&manifest_digest),
                manifest_digest,
                layer_digest: layer.digest.clone(),
            })
        }
        .instrument(span)
        .await
    }

    /// Whether the image at `reference` is a Wasm artifact, judged from its manifest: a Wasm
    /// config media type, a Wasm layer media type or a Wasm artifact type. (Single-layer
    /// images that [`pull_wasm`](Self::pull_wasm) can unpack but whose manifest does not say
    /// Wasm answer `false`.)
    pub async fn is_wasm(&self, reference: &str) -> Result<bool, OciError> {
        let span = tracing::info_span!("oci.inspect", reference, "server.address" = field::Empty);
        async {
            let target = self.target(reference).await?;
            let (manifest, _) = self.image_manifest(&target).await?;
            Ok(wasm::manifest_says_wasm(&manifest))
        }
        .instrument(span)
        .await
    }

    /// Pushes a Wasm component (or core module) as a CNCF Wasm OCI artifact under the tag in
    /// `reference`, and returns the pinned reference `registry/repository@sha256:...`.
    pub async fn push_wasm(&self, reference: &str, bytes: &[u8]) -> Result<String, OciError> {
        let span = tracing::info_span!(
            "oci.push",
            reference,
            "server.address" = field::Empty,
            digest = field::Empty,
            size = bytes.len()
        );
        async {
            let target = self.push_target(reference).await?;
            let invalid =
                |message: String| OciError::InvalidWasm { reference: reference.to_owned(), message };
            if bytes.len() as u64 > wasm::MAX_COMPONENT_BYTES {
                return Err(invalid(format!(
                    "{} bytes is more than the {} allowed",
                    bytes.len(),
                    wasm::MAX_COMPONENT_BYTES
                )));
            }
            let layer_digest = wasm::sha256_digest(bytes);
            let config = wasm::config_json(bytes, &layer_digest).map_err(invalid)?;
            let manifest = OciImageManifest {
                media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
                config: descriptor(WASM_CONFIG_MEDIA_TYPE, &config),
                layers: vec![descriptor(WASM_LAYER_MEDIA_TYPE, bytes)],
                ..Default::default()
            };
            self.push_blob(&target, Bytes::copy_from_slice(bytes), &layer_digest).await?;
            let config_digest = manifest.config.digest.clone();
            self.push_blob(&target, Bytes::from(config), &config_digest).await?;

            let body = serde_json::to_vec(&manifest).map_err(|e| target.context().protocol(e))?;
            let manifest_digest = wasm::sha256_digest(&body);
            let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
            target
                .client
                .push_manifest_raw(&target.image.inner, body, content_type)
                .await
                .map_err(|e| target.context().map(e))?;
            tracing::Span::current().record("digest", manifest_digest.as_str());
            tracing::info!(layer = %layer_digest, "pushed wasm component");
            Ok(target.image.pinned(&manifest_digest))
        }
        .instrument(span)
        .await
    }

    /// Parses `reference` and picks the client (HTTP on loopback) and credentials for it.
    pub(crate) async fn target(&self, reference: &str) -> Result<Target<'_>, OciError> {
        let image = ImageRef::parse(reference)?;
        tracing::Span::current().record("server.address", image.address());
        let client = if image.is_loopback() { &self.http } else { &self.https };
        let auth = self.credentials.auth_for(image.address()).await?;
        client.store_auth_if_needed(image.address(), &auth).await;
        Ok(Target { image, client, auth })
    }

    /// As [`Self::target`], for a push: the reference must name a tag, not a digest.
    pub(crate) async fn push_target(&self, reference: &str) -> Result<Target<'_>, OciError> {
        let target = self.target(reference).await?;
        if target.image.inner.digest().is_some() {
            return Err(OciError::InvalidReference {
                reference: reference.to_owned(),
                message: "pushing needs a tag, not a digest".to_owned(),
            });
        }
        Ok(target)
    }

    /// The image manifest `target` names and its digest, choosing a platform in an index.
    async fn image_manifest(&self, target: &Target<'_>) -> Result<(OciImageManifest, String), OciError> {
        let (manifest, digest, _) =
            self.fetch_image_manifest(target, platform::select, "wasi/wasm or linux/amd64").await?;
        Ok((manifest, digest))
    }

    /// The image manifest `target` names, its digest and its bytes as the registry sent them
    /// (checked against the digest); in an index, `select` picks the entry (`wanted` names
    /// what it looks for, for the error when nothing fits).
    pub(crate) async fn fetch_image_manifest(
        &self,
        target: &Target<'_>,
        select: fn(&[ImageIndexEntry]) -> Option<String>,
        wanted: &str,
    ) -> Result<(OciImageManifest, String, Bytes), OciError> {
        let ctx = target.context();
        let fetch = |reference| async move {
            let (body, digest) = target
                .client
                .pull_manifest_raw(reference, &target.auth, ACCEPT)
                .await
                .map_err(|e| ctx.map(e))?;
            let manifest = serde_json::from_slice::<OciManifest>(&body)
                .map_err(|e| ctx.protocol(format!("unsupported or malformed manifest {digest}: {e}")))?;
            Ok::<_, OciError>((manifest, digest, body))
        };
        match fetch(&target.image.inner).await? {
            (OciManifest::Image(manifest), digest, body) => Ok((manifest, digest, body)),
            (OciManifest::ImageIndex(index), index_digest, _) => {
                let Some(digest) = select(&index.manifests) else {
                    return Err(ctx.not_found(format!(
                        "image index {index_digest} has no {wanted} entry (it has {})",
                        platform::describe(&index.manifests)
                    )));
                };
                tracing::debug!(index = %index_digest, manifest = %digest, "chose platform manifest from index");
                match fetch(&target.image.with_digest(&digest)).await? {
                    (OciManifest::Image(manifest), digest, body) => Ok((manifest, digest, body)),
                    (OciManifest::ImageIndex(_), _, _) => {
                        Err(ctx
                            .protocol(format!("image index {index_digest} points at another index {digest}")))
                    }
                }
            }
        }
    }

    /// Uploads a blob unless the repository has it already.
    pub(crate) async fn push_blob(
        &self,
        target: &Target<'_>,
        data: Bytes,
        digest: &str,
    ) -> Result<(), OciError> {
        let ctx = target.context();
        let exists = target.client.blob_exists(&target.image.inner, digest).await.map_err(|e| ctx.map(e))?;
        if !exists {
            target.client.push_blob(&target.image.inner, data, digest).await.map_err(|e| ctx.map(e))?;
        }
        Ok(())
    }
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient").field("credentials", &self.credentials).finish_non_exhaustive()
    }
}

fn client_config(protocol: ClientProtocol) -> ClientConfig {
    ClientConfig {
        protocol,
        platform_resolver: Some(Box::new(platform::select)),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: USER_AGENT,
        ..Default::default()
    }
}

pub(crate) fn descriptor(media_type: &str, data: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_owned(),
        digest: wasm::sha256_digest(data),
        size: data.len() as i64,
        ..Default::default()
    }
}

/// Install ring as the process's rustls crypto provider, unless one is installed.
///
/// reqwest is built without a bundled provider (see Cargo.toml), so every HTTP client in a
/// process that links this crate needs one: call this before building any reqwest client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
