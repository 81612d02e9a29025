//! Wasm component files: reading one for `service create|update --wasm`, and `skiff push`,
//! which publishes one to an OCI registry as a CNCF Wasm artifact (like `wkg oci push`).

use std::path::{Path, PathBuf};

use skiff_runtime_oci::{Credentials, RegistryClient};

/// The first bytes of every WebAssembly binary, component or core module.
const WASM_MAGIC: &[u8] = b"\0asm";

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The .wasm file: a component (or core module).
    pub file: PathBuf,
    /// Where to push it, REGISTRY/REPOSITORY:TAG (registries on localhost are spoken to in plain HTTP).
    pub reference: String,
}

/// The bytes of a `.wasm` file, or an error that names the file.
pub async fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = tokio::fs::read(path).await.map_err(|err| {
        anyhow::anyhow!("cannot read the Wasm file {}: {}", path.display(), io_message(&err))
    })?;
    check_component(path, &bytes)?;
    Ok(bytes)
}

fn check_component(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if !bytes.starts_with(WASM_MAGIC) {
        let what = if bytes.is_empty() { "it is empty" } else { "it does not start with \\0asm" };
        anyhow::bail!("{} is not a WebAssembly file: {what}", path.display());
    }
    Ok(())
}

/// `No such file or directory`, without the `(os error 2)` a user has no use for.
fn io_message(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// `skiff push FILE REFERENCE`: prints the pinned reference, `REGISTRY/REPOSITORY@sha256:...`.
pub async fn push(args: &PushArgs) -> anyhow::Result<()> {
    let bytes = read_component(&args.file).await?;
    let registry = RegistryClient::new(Credentials::from_env());
    let pinned = registry
        .push_wasm(&args.reference, &bytes)
        .await
        .map_err(|err| anyhow::anyhow!("cannot push {} to {}: {err}", args.file.display(), args.reference))?;
    eprintln!("Pushed {} ({} bytes) to {}", args.file.display(), bytes.len(), args.reference);
    super::emit(&format!("{pinned}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_webassembly_files_pass() {
        let path = Path::new("hello.wasm");
        assert!(check_component(path, b"\0asm\x0d\x00\x01\x00").is_ok());
        let err = check_component(path, b"#!/bin/sh").unwrap_err().to_string();
        assert_eq!(err, "hello.wasm is not a WebAssembly file: it does not start with \\0asm");
        let err = check_component(path, b"").unwrap_err().to_string();
        assert!(err.ends_with("it is empty"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_file_is_named() {
        let err = read_component(Path::new("/nonexistent/hello.wasm")).await.unwrap_err().to_string();
        assert_eq!(err, "cannot read the Wasm file /nonexistent/hello.wasm: No such file or directory");
    }
}
