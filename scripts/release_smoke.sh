#!/usr/bin/env bash
# Release smoke test: ./scripts/release_smoke.sh [local|staging|production]
# Environments are defined in deploy/environments.toml. Exit code non-zero when a check failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/.venv/bin/opsconductor" smoke "${1:-local}"
