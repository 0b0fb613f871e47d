#!/usr/bin/env bash
# Regenerates everything generated in this repository, from its one source each:
#   - the Python stubs from proto/ (opsconductor/automation/v1, opsconductor/pipeline/v1: named
#     like the proto packages, as grpcurl shows them);
#   - the browser stubs in web_client/src/gen (running `npm ci` in web_client/ first when its
#     pinned plugin is not installed yet);
#   - every config rendered from code (opsconductor/renders.py: Envoy per variant, the
#     Kubernetes ConfigMaps, Prometheus for compose).
# Usage: scripts/generate.sh [OUTPUT_ROOT]   (default: the repo root; `make generate`)
# Generated files are committed; tests/static/test_generated.py fails when any is stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
python=${PYTHON:-$root/.venv/bin/python}
cd "$root"

protos=$(find proto/opsconductor -name '*.proto' | sort)
stub_packages=$(find proto/opsconductor -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)

# Python: messages, type stubs and gRPC service stubs. opsconductor/__init__.py and the
# operator tool beside the stubs are hand-written: only the stub packages are replaced.
for package in $stub_packages; do rm -rf "$out/opsconductor/$package"; done
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" $protos
for package in $stub_packages; do
  find "$out/opsconductor/$package" -type d -exec sh -c \
    'printf "\"\"\"Generated from proto/ by scripts/generate.sh; do not edit.\"\"\"\n" > "$1/__init__.py"' _ {} \;
done

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

# Configs rendered from code, written under the same root.
"$python" -m opsconductor.renders --write "$out"
