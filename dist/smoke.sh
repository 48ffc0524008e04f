#!/usr/bin/env bash
# Smoke test of an unpacked offline kit (run by `./x dist-test`, docs/install.md):
#
#   dist/smoke.sh KIT_DIR ALLOWED_SIGNERS
#
# Runs with a PATH holding only system tools (no cargo, rustc, node or npm: the caller checks
# and this script checks again). Verifies the kit's signed SHA256SUMS and that its SBOMs are
# CycloneDX 1.5 naming what was built, starts the server from the kit on a free port with a
# fresh data directory, serves the demo site, runs an audited flow over plain HTTP with curl
# (dataset, version, run, metrics, artifact, finish, checkpoint, evidence bundle), scrapes
# /metrics, stops the server, then runs the kit's `verify` and `backup` on the data directory
# and `systemd-analyze verify` on the kit's unit.
set -euo pipefail

KIT=$(cd "$1" && pwd)
SIGNERS=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
T=$(mktemp -d /tmp/datapilot-smoke.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
step() { printf 'smoke: %s\n' "$*" >&2; }
fail() { printf 'smoke: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in cargo rustc rustup node npm wasm-bindgen; do
  if command -v "$tool" >/dev/null 2>&1; then fail "$tool is on PATH; the kit must run without a toolchain"; fi
done

step "SHA256SUMS signature and checksums"
(cd "$KIT" && ssh-keygen -Y verify -f "$SIGNERS" -I release@datapilot -n datapilot-release \
  -s SHA256SUMS.sig < SHA256SUMS >/dev/null) || fail "SHA256SUMS signature"
(cd "$KIT" && sha256sum --quiet -c SHA256SUMS) || fail "checksums"

step "SBOMs (CycloneDX 1.5), LIBC.txt, BUILD.txt"
for sbom in datapilot-server animus-datapilot; do
  f=$KIT/sbom/$sbom.cdx.json
  jq -e '.bomFormat == "CycloneDX" and .specVersion == "1.5" and (.components | length) > 0' "$f" >/dev/null \
    || fail "$f is not a CycloneDX 1.5 SBOM with components"
done
# The server's tree names the crates it is built from, the npm SBOM the package as shipped.
for crate in axum rusqlite rustls prometheus-client; do
  jq -e --arg n "$crate" '[.components[] | .. | objects | select(.name? == $n)] | length > 0' \
    "$KIT/sbom/datapilot-server.cdx.json" >/dev/null || fail "the server SBOM does not list $crate"
done
jq -e '.metadata.component.group == "@animus" and .metadata.component.name == "datapilot"' \
  "$KIT/sbom/animus-datapilot.cdx.json" >/dev/null || fail "the npm SBOM is not about @animus/datapilot"
grep -q 'glibc >= ' "$KIT/LIBC.txt" || fail "LIBC.txt names no glibc"
grep -q '^datapilot-server ' "$KIT/BUILD.txt" || fail "BUILD.txt"

BIN=$KIT/bin/datapilot-server
"$BIN" --version | grep -q '^datapilot-server ' || fail "--version"

step "start the server from the kit"
"$BIN" --data-dir "$T/data" --listen 127.0.0.1:0 --static-dir "$KIT/share/site" \
  > "$T/stdout" 2> "$T/stderr" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$T/stdout" 2>/dev/null && grep -q '^=====' <(tail -n1 "$T/stderr") && break
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$T/stdout")
[ -n "$URL" ] || fail "no 'listening on' line: $(cat "$T/stderr")"
TOKEN=$(awk '$1 == "admin" && $2 == "token" {print $3}' "$T/stderr")
[[ "$TOKEN" == dpt_* ]] || fail "no admin token in the start-up block"
grep -q 'verifier key' "$T/stderr" || fail "no verifier key in the start-up block"

api() { # METHOD PATH [JSON]: body on stdout, fails on HTTP >= 400
  local m=$1 p=$2; shift 2
  curl -fsS -X "$m" -H "Authorization: Bearer $TOKEN" ${1:+-H 'content-type: application/json' --data "$1"} "$URL$p"
}

step "probes, demo site"
# (Bodies go to a variable first: `curl | grep -q` fails under pipefail when grep exits early.)
body=$(curl -fsS "$URL/livez") && grep -q ok <<<"$body" || fail "/livez"
body=$(curl -fsS "$URL/readyz") && grep -q ready <<<"$body" || fail "/readyz"
body=$(curl -fsS "$URL/") && grep -qi '<html' <<<"$body" || fail "the demo page"
body=$(curl -fsS "$URL/sdk.js") && grep -q 'export' <<<"$body" || fail "the demo page's SDK entry"

step "audited flow: dataset, version, run, metrics, artifact, finish"
DS=$(api POST /v1/datasets '{"name":"smoke-images"}' | jq -r .id)
mkdir -p "$T/files/train" && printf 'id,label\n1,cat\n' > "$T/files/train/a.csv" && printf 'hello\n' > "$T/files/README"
DIGEST=sha256:$(cd "$T/files" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-64)
FILES=$(cd "$T/files" && find . -type f -printf '%P\n' | LC_ALL=C sort | while read -r f; do
  jq -nc --arg p "$f" --arg s "$(sha256sum "$f" | cut -c1-64)" --argjson n "$(stat -c %s "$f")" '{path:$p, sha256:$s, size:$n}'
done | jq -sc .)
api POST "/v1/datasets/$DS/versions" "{\"digest\":\"$DIGEST\",\"files\":$FILES}" >/dev/null
RUN_JSON=$(api POST /v1/runs "{\"name\":\"smoke\",\"inputs\":[{\"dataset_id\":\"$DS\",\"digest\":\"$DIGEST\"}],\"git_commit\":\"$(printf 'a%.0s' $(seq 40))\",\"image_digest\":\"sha256:$(printf 'b%.0s' $(seq 64))\",\"params\":{}}")
RUN=$(jq -r .run.id <<<"$RUN_JSON"); RUN_TOKEN=$(jq -r .run_token <<<"$RUN_JSON")
curl -fsS -X POST -H "Authorization: Bearer $RUN_TOKEN" -H 'content-type: application/json' \
  --data '{"points":[{"name":"loss","step":1,"value":0.5}]}' "$URL/v1/runs/$RUN/metrics" >/dev/null
printf 'model weights\n' > "$T/model.bin"
curl -fsS -X POST -H "Authorization: Bearer $RUN_TOKEN" -H 'content-type: application/octet-stream' \
  --data-binary "@$T/model.bin" "$URL/v1/runs/$RUN/artifacts?name=model.bin&sha256=$(sha256sum "$T/model.bin" | cut -c1-64)" >/dev/null
curl -fsS -X POST -H "Authorization: Bearer $RUN_TOKEN" -H 'content-type: application/json' \
  --data '{"status":"succeeded"}' "$URL/v1/runs/$RUN/finish" >/dev/null
CP=$(api GET /v1/ledger/checkpoint)
[ "$(sed -n 2p <<<"$CP")" -ge 8 ] 2>/dev/null || fail "checkpoint: $CP"   # a C2SP note: origin, size, root
curl -fsS -H "Authorization: Bearer $TOKEN" -o "$T/bundle.zip" "$URL/v1/runs/$RUN/evidence"
[ "$(head -c2 "$T/bundle.zip")" = PK ] || fail "the evidence bundle is not a zip"

step "/metrics"
curl -fsS "$URL/metrics" > "$T/metrics"
grep -q '^datapilot_http_requests_total{operation="POST /v1/datasets",status="201"} 1$' "$T/metrics" || fail "request counter"
grep -q '^datapilot_ledger_size ' "$T/metrics" || fail "ledger size gauge"

step "stop (SIGTERM), verify, backup"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=
"$BIN" verify --data-dir "$T/data" > "$T/verify" || fail "verify: $(cat "$T/verify")"
grep -q 'all verified' "$T/verify" || fail "verify summary"
"$BIN" backup "$T/backup" --data-dir "$T/data" >/dev/null || fail "backup"
[ -f "$T/backup/BACKUP.json" ] || fail "BACKUP.json"

step "systemd unit"
if command -v systemd-analyze >/dev/null; then
  sed "s#/opt/datapilot/bin/datapilot-server#$BIN#" "$KIT/systemd/datapilot.service" > "$T/datapilot.service"
  out=$(systemd-analyze verify "$T/datapilot.service" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  exposure=$(systemd-analyze security --offline=yes "$T/datapilot.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  step "systemd-analyze security exposure: $exposure (0 = fully sandboxed, 10 = none)"
  awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "exposure $exposure > 2.0"
else
  fail "systemd-analyze is missing (apt-get install systemd)"
fi
step "ok: $(tail -1 "$T/verify")"
