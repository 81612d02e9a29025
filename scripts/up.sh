#!/usr/bin/env bash
# Set up what is missing, build Skiff, start it and deploy the examples.
# Stop it with Ctrl-C. State lives in ./.skiff (delete it to start afresh).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo build --release --locked -p skiff-platform --bin skiff
skiff=./target/release/skiff

"$skiff" up --data-dir .skiff "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM

api="${SKIFF_SERVER:-http://127.0.0.1:8081}"
for _ in $(seq 1 100); do
  curl -fsS "$api/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "skiff exited during start-up" >&2; exit 1; }
  sleep 0.1
done

for manifest in examples/manifests/*.yaml; do
  SKIFF_SERVER="$api" "$skiff" apply -f "$manifest"
done
echo
echo "Skiff is running (pid $pid). Try:"
echo "  $skiff service list"
echo "  kubectl --server $api get ksvc"
wait "$pid"
