#!/usr/bin/env bash
# Benchmarks: programs that print figures next to a baseline measured in the same run.
# Usage: scripts/bench.sh [api] [wasm] [autoscale] [containers] [eventing] [tracing]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export SKIFF_RELEASE=1
benches=("${@:-api}")
for bench in "${benches[@]}"; do
  # The wasm, eventing and tracing benches drive load with wrk.
  if { [ "$bench" = wasm ] || [ "$bench" = eventing ] || [ "$bench" = tracing ]; } && ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk
  fi
  # The wasm bench compares with wasmtime serve (wasmtime-cli, the same version as the
  # wasmtime crates Skiff embeds).
  if [ "$bench" = wasm ] && [ ! -x target/tools/bin/wasmtime ]; then
    echo "bench: installing wasmtime-cli 48.0.8 into target/tools"
    cargo install wasmtime-cli@48.0.8 --locked --root target/tools
  fi
done
for bench in "${benches[@]}"; do
  cargo bench --locked -p skiff-tests --bench "$bench"
done
