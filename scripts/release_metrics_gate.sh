#!/usr/bin/env bash
# Release metrics gate: ./scripts/release_metrics_gate.sh [environment] [duration_minutes] [--state-dir DIR] [-o json]
# Watches error rate (< 1 %), p95 (< 1 s), p99 (< 2 s) and request rate in Prometheus (default:
# local, 5 minutes). `local` is the stack in --state-dir, else $OPSCONDUCTOR_STATE_DIR, else
# .opsconductor; every argument goes to `opsconductor gate`.
# Exit codes: 0 passed, 1 SLO violated, 2 usage error, 3 inconclusive (no traffic), 4 Prometheus
# unreachable, 5 no local stack, 130 Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/.venv/bin/opsconductor" gate "$@"
