//! OCI for Skiff: registries, container images and containers.
//!
//! Skiff takes a revision's code from any OCI registry. A Wasm function ships as a CNCF Wasm
//! OCI artifact (or as a one-layer image holding a `.wasm`); a container function ships as an
//! ordinary image. This crate is the platform's only way to a registry:
//!
//! * [`RegistryClient::resolve`] turns a tag into the manifest digest it names now. The
//!   platform records the pinned reference in the revision, as Knative does, so that a revision
//!   keeps running the same code after the tag moves.
//! * [`RegistryClient::is_wasm`] tells from the manifest whether an image is a Wasm component,
//!   which selects the Wasm runtime without a `runtimeClassName`.
//! * [`RegistryClient::pull_wasm`] fetches a component's bytes (digest-verified) for
//!   `skiff-runtime-wasm`; [`RegistryClient::push_wasm`] publishes one (the CLI's and the
//!   tests' way to put a component in a registry).
//!
//! For containers, [`image::ImageStore`] pulls images into a content-addressed blob store and
//! unpacks them (gzip or zstd layers, whiteouts) into read-only root filesystems, and
//! [`container::ContainerRuntime`] runs each pod as a container under runc or crun: an
//! overlay upper layer of its own, its own namespaces and address on the `skiff0` bridge,
//! cgroup limits, and a stop that leaves nothing behind. The crate knows nothing of the
//! platform, which reaches it through its runtime trait.
//!
//! Registries on loopback (`localhost`, 127.0.0.0/8, `[::1]`) are spoken to in plain HTTP,
//! all others in HTTPS (rustls with the ring provider, system roots). Credentials come from
//! [`Credentials`], usually [`Credentials::from_env`] (the docker `config.json`). Failures are
//! [`OciError`]s that carry the registry's own message, for a revision's status.
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_runtime_oci::OciError> {
//! use skiff_runtime_oci::{Credentials, RegistryClient};
//!
//! let registry = RegistryClient::new(Credentials::from_env());
//! let pinned = registry.push_wasm("localhost:5000/fns/hello:v1", b"\0asm\x0d\x00\x01\x00").await?;
//! let resolved = registry.resolve("localhost:5000/fns/hello:v1").await?;
//! assert_eq!(resolved.pinned, pinned);
//! let component = registry.pull_wasm(&resolved.pinned).await?;
//! assert!(registry.is_wasm(&resolved.pinned).await?);
//! # let _ = component;
//! # Ok(())
//! # }
//! ```

mod client;
pub mod container;
mod credentials;
mod error;
pub mod image;
mod platform;
mod reference;
mod wasm;

pub use client::{RegistryClient, Resolved, install_crypto_provider};
pub use credentials::Credentials;
pub use error::OciError;
pub use wasm::{WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE, WasmArtifact};
