#!/usr/bin/env bash
# Release metrics gate: ./scripts/release_metrics_gate.sh [environment] [duration_minutes]
# Watches error rate (< 1 %), p95 (< 1 s), p99 (< 2 s) and request rate in Prometheus.
# Exit codes: 0 passed, 1 SLO violated, 2 usage error, 3 inconclusive (no traffic), 4 Prometheus unreachable.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/.venv/bin/opsconductor" gate "${1:-local}" "${2:-5}"
