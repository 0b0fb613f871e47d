#!/usr/bin/env bash
# Regenerates every stub from proto/: the Python messages and gRPC stubs (package
# `opsconductor`, mirroring the proto packages) and the browser stubs in web_client/src/gen
# (running `npm ci` in web_client/ first when its pinned plugin is not installed yet).
# Usage: scripts/generate.sh [OUTPUT_ROOT]   (default: the repo root)
# Generated files are committed; tests/unit/test_contracts.py fails when they are stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
python=${PYTHON:-$root/.venv/bin/python}
cd "$root"

protos=$(find proto/opsconductor -name '*.proto' | sort)

# Python: messages, type stubs and gRPC service stubs.
rm -rf "$out/opsconductor"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" $protos
find "$out/opsconductor" -type d -exec sh -c \
  'printf "\"\"\"Generated from proto/ by scripts/generate.sh; do not edit.\"\"\"\n" > "$1/__init__.py"' _ {} \;

# Browser: protoc-gen-es (Connect-ES) messages and service descriptors, including the
# vendored google.rpc protos so the page can decode ErrorInfo details. The plugin is the exact
# version pinned in web_client/package-lock.json, so a fresh clone installs it first (npm ci
# takes a few seconds) rather than skipping the browser stubs and their freshness check.
plugin="$root/web_client/node_modules/.bin/protoc-gen-es"
if [ -f "$root/web_client/package.json" ]; then
  if [ ! -x "$plugin" ]; then
    echo "generate: installing web_client's pinned node packages (npm ci)" >&2
    npm ci --prefix "$root/web_client" --no-audit --no-fund >&2
  fi
  rm -rf "$out/web_client/src/gen"
  mkdir -p "$out/web_client/src/gen"
  # The google.rpc files are named relative to proto/third_party (google/rpc/...), the names
  # they carry everywhere else; naming them through proto/ would register "third_party/...".
  "$python" -m grpc_tools.protoc -I proto -I proto/third_party \
    --plugin=protoc-gen-es="$plugin" --es_out="$out/web_client/src/gen" \
    --es_opt=target=ts,import_extension=js \
    $protos google/rpc/status.proto google/rpc/error_details.proto
fi
