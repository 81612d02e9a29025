//! Builds the guest components in `examples/` (their own workspace) for wasm32-wasip2
//! into OUT_DIR, as wasmtime's test-programs do, and writes their paths as constants.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: &[&str] = &["hello", "echo", "fetch", "event-handler", "misbehave"];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let examples = manifest_dir.join("../../examples").canonicalize().expect("the examples folder");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target_dir = out_dir.join("guests");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cargo_command = || {
        let mut command = Command::new(&cargo);
        // The outer build's flags are for the host build, not for these.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            command.env_remove(var);
        }
        command
    };

    let mut command = cargo_command();
    command
        .args(["build", "--release", "--locked", "--target", TARGET, "--manifest-path"])
        .arg(examples.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(GUESTS.iter().flat_map(|g| ["-p", g]));
    let status = command.status().expect("running cargo for the guests");
    if !status.success() {
        panic!(
            "building the guest components in {} failed; if the target is missing, run `rustup target add {TARGET}`",
            examples.display()
        );
    }

    let release = target_dir.join(TARGET).join("release");
    let mut constants = String::new();
    for guest in GUESTS {
        let artifact = release.join(format!("{}.wasm", guest.replace('-', "_")));
        let artifact = if artifact.exists() { artifact } else { release.join(format!("{guest}.wasm")) };
        assert!(artifact.exists(), "no artifact for {guest} at {}", artifact.display());
        let name = guest.replace('-', "_").to_uppercase();
        constants.push_str(&format!(
            "/// The `{guest}` component, built from `examples/{guest}`.\npub const {name}: &str = {:?};\n",
            artifact.display().to_string()
        ));
        rerun_for_dep_info(&release.join(format!("{guest}.d")));
    }
    constants.push_str(&build_http_server(&examples, &out_dir, cargo_command));
    fs::write(out_dir.join("guests.rs"), constants).expect("writing guests.rs");
    println!("cargo:rerun-if-changed={}", examples.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", examples.join("Cargo.lock").display());
}

/// Rebuild when any source a guest was built from changes (from cargo's dep-info).
fn rerun_for_dep_info(dep_info: &Path) {
    let Ok(contents) = fs::read_to_string(dep_info) else { return };
    let Some((_, deps)) = contents.lines().next().and_then(|l| l.split_once(": ")) else { return };
    for dep in deps.split_whitespace() {
        if !dep.contains("/.cargo/registry/") {
            println!("cargo:rerun-if-changed={dep}");
        }
    }
}

/// The container example `examples/http-server`, built natively as a static executable
/// (it becomes the only file of an OCI image); its path as the constant `HTTP_SERVER`.
fn build_http_server(examples: &Path, out_dir: &Path, cargo_command: impl Fn() -> Command) -> String {
    const HOST: &str = "x86_64-unknown-linux-gnu";
    let manifest = examples.join("http-server/Cargo.toml");
    let target_dir = out_dir.join("http-server");
    let status = cargo_command()
        .args(["build", "--release", "--locked", "--target", HOST, "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .expect("running cargo for the http-server example");
    assert!(status.success(), "building {} failed", manifest.display());
    let release = target_dir.join(HOST).join("release");
    rerun_for_dep_info(&release.join("http-server.d"));
    println!("cargo:rerun-if-changed={}", manifest.display());
    format!(
        "/// The container example's static executable, built from `examples/http-server`.\npub const HTTP_SERVER: &str = {:?};\n",
        release.join("http-server").display().to_string()
    )
}
