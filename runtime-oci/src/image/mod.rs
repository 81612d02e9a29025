//! Container images: pull into a content-addressed blob store, unpack into read-only rootfs.
