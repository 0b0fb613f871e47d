#!/usr/bin/env bash
# Release smoke test: ./scripts/release_smoke.sh [local|staging|production] [--state-dir DIR] [-o json]
# Environments are defined in deploy/environments.toml; `local` is the stack in --state-dir, else
# $OPSCONDUCTOR_STATE_DIR, else .opsconductor. Every argument goes to `opsconductor smoke`.
# Exit codes: 0 every check passed, 1 a check failed, 2 usage error, 5 no local stack, 130 Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/.venv/bin/opsconductor" smoke "$@"
