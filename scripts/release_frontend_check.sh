#!/usr/bin/env bash
# Release frontend check: ./scripts/release_frontend_check.sh [local|staging|production] [--state-dir DIR] [-o json]
# The Exec Sandbox page is served, its assets load, and the app initialises in headless Chromium.
# `local` is the stack in --state-dir, else $OPSCONDUCTOR_STATE_DIR, else .opsconductor; every
# argument goes to `opsconductor frontend-check`.
# Exit codes: 0 every check passed, 1 a check failed, 2 usage error, 5 no local stack, 130 Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/.venv/bin/opsconductor" frontend-check "$@"
