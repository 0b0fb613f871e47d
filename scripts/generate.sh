#!/usr/bin/env bash
# Regenerates every stub from proto/: the Python messages and gRPC stubs (package
# `opsconductor`, mirroring the proto packages) and, once web_client/ has its node_modules,
# the browser stubs. Usage: scripts/generate.sh [OUTPUT_ROOT]   (default: the repo root)
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
# vendored google.rpc protos so the page can decode ErrorInfo details.
plugin="$root/web_client/node_modules/.bin/protoc-gen-es"
if [ -d "$root/web_client" ]; then
  if [ ! -x "$plugin" ]; then
    echo "generate: $plugin is missing; run 'npm ci --prefix web_client' first" >&2
    exit 1
  fi
  rm -rf "$out/web_client/src/gen"
  mkdir -p "$out/web_client/src/gen"
  "$python" -m grpc_tools.protoc -I proto -I proto/third_party \
    --plugin=protoc-gen-es="$plugin" --es_out="$out/web_client/src/gen" \
    --es_opt=target=ts,import_extension=js \
    $protos proto/third_party/google/rpc/status.proto proto/third_party/google/rpc/error_details.proto
fi
