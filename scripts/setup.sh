#!/usr/bin/env bash
# Install what Skiff's build and tests need and is not on the machine yet.
# Debian, run as root (or with sudo available). Safe to run again: it only installs what is missing.
set -euo pipefail

need=()
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
# Tests start a real OCI registry on loopback.
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
# Container pods run under runc (default) or crun, in network namespaces made with iproute2.
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v crun >/dev/null 2>&1 || need+=(crun)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# The container runtime tests build their root filesystems from a static busybox.
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
# The container tests look for leftover processes with pgrep.
command -v pgrep >/dev/null 2>&1 || need+=(procps)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
  # Guest components (examples/) are built for wasm32-wasip2.
  rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
