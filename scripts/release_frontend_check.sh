#!/usr/bin/env bash
# Release frontend check: ./scripts/release_frontend_check.sh [local|staging|production]
# The Exec Sandbox page is served, its assets load, and the app initialises in headless Chromium.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/.venv/bin/opsconductor" frontend-check "${1:-local}"
