#!/usr/bin/env bash
# Builds the Python package's release wheels for Linux x86_64 and aarch64 into
# target/python/dist/ (docs/sdk-python.md, "Install and build"). Not part of ./x test, which
# builds and tests the x86_64 wheel only (an aarch64 build is five more minutes on CI's two
# cores, and this machine cannot run what it produces).
#
#   scripts/build-python-wheels.sh
#
# The aarch64 wheel is cross-compiled: Rust's aarch64-unknown-linux-gnu standard library
# (rustup), Debian's aarch64 cross gcc for linking and for ring's C and assembly, and abi3,
# which needs no aarch64 Python. Each step installs what is missing and skips what is there.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TOOLS_DIR=${DATAPILOT_TOOLS_DIR:-$HOME/.cache/datapilot/tools}
SDK_VENV=$TOOLS_DIR/venv-python-sdk      # maturin, hash-pinned (tests/python/requirements.txt)
RUST_TOOLCHAIN=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
OUT=$ROOT/target/python/dist
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

want=$(sha256sum tests/python/requirements.txt | cut -c1-64)
if [ "$(cat "$SDK_VENV/.requirements-sha" 2>/dev/null)" != "$want" ]; then
  log "pip install -r tests/python/requirements.txt (into $SDK_VENV)"
  rm -rf "$SDK_VENV"
  python3 -m venv "$SDK_VENV"
  "$SDK_VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r tests/python/requirements.txt
  echo "$want" > "$SDK_VENV/.requirements-sha"
fi
if ! rustup target list --installed --toolchain "$RUST_TOOLCHAIN" | grep -qx aarch64-unknown-linux-gnu; then
  log "rustup target add aarch64-unknown-linux-gnu"
  timeout 120 rustup target add --toolchain "$RUST_TOOLCHAIN" aarch64-unknown-linux-gnu
fi
missing=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rm -rf "$OUT"
mkdir -p "$OUT"
build() { # extra maturin arguments...
  (cd python && CARGO_TARGET_DIR="$ROOT/target/python" "$SDK_VENV/bin/maturin" build --release --locked \
    --interpreter "$SDK_VENV/bin/python" --out "$OUT" "$@")
}
log "x86_64 wheel"
build
log "aarch64 wheel (cross)"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
  build --target aarch64-unknown-linux-gnu
ls -l "$OUT"
