#!/usr/bin/env bash
# Benchmarks: programs that print figures next to a baseline measured in the same run.
# Usage: scripts/bench.sh [api]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export SKIFF_RELEASE=1
for bench in "${@:-api}"; do
  cargo bench --locked -p skiff-tests --bench "$bench"
done
