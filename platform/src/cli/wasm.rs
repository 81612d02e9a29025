//! Wasm component files: reading one for `service create|update --wasm`, and `skiff push`,
//! which publishes one to an OCI registry as a CNCF Wasm artifact (like `wkg oci push`).

use std::path::{Path, PathBuf};

use skiff_runtime_oci::image::{ImageConfig, ImageFile};
use skiff_runtime_oci::{Credentials, RegistryClient};

/// The first bytes of every WebAssembly binary, component or core module.
const WASM_MAGIC: &[u8] = b"\0asm";

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The .wasm file (a component), or a static Linux executable, pushed as a one-file
    /// container image whose entrypoint it is.
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
    let raw = tokio::fs::read(&args.file)
        .await
        .map_err(|err| anyhow::anyhow!("cannot read {}: {}", args.file.display(), io_message(&err)))?;
    let registry = RegistryClient::new(Credentials::from_env());
    let failed = |err| anyhow::anyhow!("cannot push {} to {}: {err}", args.file.display(), args.reference);
    let pinned = if raw.starts_with(ELF_MAGIC) {
        let (files, config) = executable_image(&args.file, raw.clone());
        registry.push_image(&args.reference, &files, &config).await.map_err(failed)?
    } else {
        check_component(&args.file, &raw)?;
        registry.push_wasm(&args.reference, &raw).await.map_err(failed)?
    };
    eprintln!("Pushed {} ({} bytes) to {}", args.file.display(), raw.len(), args.reference);
    super::emit(&format!("{pinned}\n"))
}

const ELF_MAGIC: &[u8] = b"\x7fELF";

/// A one-file image: the executable at `/{its name}`, which is the entrypoint.
fn executable_image(path: &Path, contents: Vec<u8>) -> (Vec<ImageFile>, ImageConfig) {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "app".into());
    let inside = format!("/{name}");
    let files = vec![ImageFile { path: inside.clone(), contents, mode: 0o755 }];
    let config = ImageConfig {
        entrypoint: vec![inside],
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
        exposed_ports: vec![crate::runtime::DEFAULT_PORT],
        ..ImageConfig::default()
    };
    (files, config)
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

    #[test]
    fn an_executable_becomes_a_one_file_image() {
        let (files, config) =
            executable_image(Path::new("target/release/http-server"), b"\x7fELF...".to_vec());
        assert_eq!(files[0].path, "/http-server");
        assert_eq!(files[0].mode, 0o755);
        assert_eq!(config.entrypoint, vec!["/http-server".to_string()]);
    }

    #[tokio::test]
    async fn a_missing_file_is_named() {
        let err = read_component(Path::new("/nonexistent/hello.wasm")).await.unwrap_err().to_string();
        assert_eq!(err, "cannot read the Wasm file /nonexistent/hello.wasm: No such file or directory");
    }
}
