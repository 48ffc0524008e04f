#!/usr/bin/env bash
# The Python package's benchmarks (BENCHMARKS.md, "Python package"); not part of ./x test.
#
#   benches/python/run.sh            # everything, under `nice` (the machines are shared)
#
# Builds the release server and wheel, sets up a bench venv in the tools cache (MLflow,
# hash-pinned in benches/python/requirements.txt, plus the wheel) and runs bench.py, which
# prints the numbers as JSON. The first run installs MLflow (a few minutes); later runs reuse it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
TOOLS_DIR=${DATAPILOT_TOOLS_DIR:-$HOME/.cache/datapilot/tools}
SDK_VENV=$TOOLS_DIR/venv-python-sdk      # maturin (the same venv ./x test uses)
VENV=$TOOLS_DIR/venv-python-bench
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_pinned() { # VENV REQUIREMENTS
  local want; want=$(sha256sum "$2" | cut -c1-64)
  [ "$(cat "$1/.requirements-sha" 2>/dev/null)" = "$want" ] && return 0
  log "pip install -r ${2#"$ROOT"/} (into $1)"
  rm -rf "$1"
  python3 -m venv "$1"
  "$1/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$2"
  echo "$want" > "$1/.requirements-sha"
}
install_pinned "$SDK_VENV" "$ROOT/tests/python/requirements.txt"
install_pinned "$VENV" "$ROOT/benches/python/requirements.txt"

log "cargo build --release -p datapilot-server"
cargo build --release -p datapilot-server
log "maturin build --release (python/)"
wheels=$ROOT/target/python/wheels
rm -f "$wheels"/datapilot-*.whl
(cd python && CARGO_TARGET_DIR="$ROOT/target/python" "$SDK_VENV/bin/maturin" build --release --locked \
  --interpreter "$SDK_VENV/bin/python" --out "$wheels")
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$wheels"/datapilot-*.whl

log "bench.py (nice -n 10)"
exec nice -n 10 "$VENV/bin/python" "$ROOT/benches/python/bench.py" --server "$ROOT/target/release/datapilot-server" "$@"
