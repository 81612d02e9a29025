#!/usr/bin/env bash
# Set up what is missing, build Skiff and the example functions, start a loopback OCI
# registry and Skiff, push the examples and deploy them from examples/manifests.
# Stop everything with Ctrl-C. State lives in ./.skiff (delete it to start afresh).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo build --release --locked -p skiff-platform --bin skiff
cargo build --release --locked --target wasm32-wasip2 \
  --manifest-path examples/Cargo.toml --target-dir target/guests
# The container example is a static executable, pushed as a one-file image.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
  --target x86_64-unknown-linux-gnu --manifest-path examples/http-server/Cargo.toml \
  --target-dir target/http-server
skiff=./target/release/skiff
guests=target/guests/wasm32-wasip2/release
registry="${SKIFF_EXAMPLES_REGISTRY:-127.0.0.1:5000}"
# The API is HTTPS with a CA and a token of its own, which `skiff up` writes into
# .skiff/kubeconfig: kubectl and the skiff CLI read it from there.
api="${SKIFF_SERVER:-https://127.0.0.1:8081}"
mkdir -p .skiff

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_for() { # URL WHAT PID
  for _ in $(seq 1 200); do
    # -k only for the health check, which needs no token: the CA may not exist yet.
    curl -fsSk -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$2 exited during start-up" >&2; exit 1; }
    sleep 0.05
  done
  echo "$2 did not answer at $1" >&2; exit 1
}

# The examples' images live in Debian's docker-registry on loopback.
if ! curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null; then
  cat > .skiff/registry.yml <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $PWD/.skiff/registry
http:
  addr: $registry
YAML
  docker-registry serve .skiff/registry.yml > .skiff/registry.log 2>&1 &
  pids+=($!)
  wait_for "http://$registry/v2/" "docker-registry" "$!"
fi

"$skiff" up --data-dir .skiff "$@" &
pids+=($!)
wait_for "$api/readyz" "skiff" "$!"

for manifest in examples/manifests/*.yaml; do
  name=$(basename "$manifest" .yaml)
  "$skiff" push "$guests/$name.wasm" "$registry/skiff-examples/$name:latest" >/dev/null
  sed "s|127.0.0.1:5000|$registry|" "$manifest" | "$skiff" apply -f -
done
"$skiff" push target/http-server/x86_64-unknown-linux-gnu/release/http-server \
  "$registry/skiff-examples/http-server:latest" >/dev/null
sed "s|127.0.0.1:5000|$registry|" examples/manifests/containers/http-server.yaml | "$skiff" apply -f -
"$skiff" apply -f examples/manifests/eventing/orders.yaml
"$skiff" service list
"$skiff" trigger list

cat <<TEXT

Skiff is running. Try:
  curl http://hello.default.localhost:8080/
  curl -d 'some data' http://echo.default.localhost:8080/
  curl 'http://fetch.default.localhost:8080/?url=http://hello.default.localhost/'
  curl http://web.default.localhost:8080/          # a container, under runc
  $skiff event send --type com.example.order.created --data '{"item":"boat"}'
  curl -s --cacert .skiff/pki/ca.crt -H "Authorization: Bearer \$(cat .skiff/token)" $api/metrics | grep skiff_trigger_events_delivered
  $skiff service create mine --wasm $guests/hello.wasm --env TARGET=you
  KUBECONFIG=.skiff/kubeconfig kubectl get ksvc,revisions
Ctrl-C stops it.
TEXT
wait "${pids[@]}"
