#!/usr/bin/env bash
# The whole test suite: set up what is missing, then format check, clippy and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
# The end-to-end tests start the real skiff binary: build it once and point them at it.
cargo build --locked -p skiff-platform --bin skiff
export SKIFF_BIN="$PWD/target/debug/skiff"
cargo test --workspace --locked
