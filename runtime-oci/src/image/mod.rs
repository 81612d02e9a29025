//! Container images: pull into a content-addressed blob store, unpack into read-only rootfs.
//!
//! [`ImageStore::pull`] resolves a reference with the crate's [`RegistryClient`](crate::RegistryClient)
//! (a multi-platform index resolves to linux/amd64), downloads the manifest, the config and the
//! layers it does not have yet into `blobs/` (each verified against its digest), and applies
//! the layers in order (tar, tar+gzip or tar+zstd, with OCI whiteouts) to a new root
//! filesystem under `images/<manifest hex>/rootfs`, which appears whole or not at all.
//! [`ImageStore::prune`] removes what the platform no longer runs.
//!
//! [`RegistryClient::push_image`](crate::RegistryClient::push_image) publishes a one-layer image
//! made of a few files: how the tests and `up.sh` put the example server in a registry.

mod config;
mod push;
mod store;
mod unpack;

pub use config::ImageConfig;
pub use push::ImageFile;
pub use store::{Image, ImageStore};
