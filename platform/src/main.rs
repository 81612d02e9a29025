//! The `skiff` binary: the platform (`skiff up`) and its command line.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = skiff_platform::cli::Cli::parse();
    // Every HTTP client of the process (CLI, registries, OTLP) uses rustls with ring.
    skiff_runtime_oci::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(skiff_platform::cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
