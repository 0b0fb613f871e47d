// Generated from opsconductor/observability/view.py and queries.py by `make generate`; do not edit.
export const VIEW = {
  "queries": {
    "share": {
      "expr": "sum by (pool) (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\"}[$window])) / ignoring (pool) group_left sum (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\"}[$window]))",
      "unit": "ratio",
      "labels": [
        "pool"
      ]
    },
    "healthyHosts": {
      "expr": "sum by (pool) (label_replace(envoy_cluster_membership_healthy{job=\"envoy\",envoy_cluster_name=~\"(stable|canary)_pool\"}, \"pool\", \"$1\", \"envoy_cluster_name\", \"(.+)_pool\"))",
      "unit": "hosts",
      "labels": [
        "pool"
      ]
    },
    "hosts": {
      "expr": "sum by (pool) (label_replace(envoy_cluster_membership_total{job=\"envoy\",envoy_cluster_name=~\"(stable|canary)_pool\"}, \"pool\", \"$1\", \"envoy_cluster_name\", \"(.+)_pool\"))",
      "unit": "hosts",
      "labels": [
        "pool"
      ]
    },
    "requestRate": {
      "expr": "sum by (pool) (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\"}[$window]))",
      "unit": "per_second",
      "labels": [
        "pool"
      ]
    },
    "successRatio": {
      "expr": "1 - ((sum by (pool) (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\",grpc_code=~\"UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS\"}[$window])) or 0 * sum by (pool) (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\"}[$window]))) / sum by (pool) (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\"}[$window])))",
      "unit": "ratio",
      "labels": [
        "pool"
      ]
    },
    "p50": {
      "expr": "histogram_quantile(0.5, sum by (pool, le) (rate(ai_request_duration_seconds_bucket{job=\"automation\"}[$window])))",
      "unit": "seconds",
      "labels": [
        "pool"
      ]
    },
    "p95": {
      "expr": "histogram_quantile(0.95, sum by (pool, le) (rate(ai_request_duration_seconds_bucket{job=\"automation\"}[$window])))",
      "unit": "seconds",
      "labels": [
        "pool"
      ]
    },
    "p99": {
      "expr": "histogram_quantile(0.99, sum by (pool, le) (rate(ai_request_duration_seconds_bucket{job=\"automation\"}[$window])))",
      "unit": "seconds",
      "labels": [
        "pool"
      ]
    },
    "budgetBurn": {
      "expr": "((sum by (pool) (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\",grpc_code=~\"UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS\"}[$window])) or 0 * sum by (pool) (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\"}[$window]))) / sum by (pool) (rate(grpc_server_handled_total{job=\"automation\",grpc_service=\"opsconductor.automation.v1.AutomationService\"}[$window]))) / 0.001",
      "unit": "times",
      "labels": [
        "pool"
      ]
    },
    "cacheHitRatio": {
      "expr": "sum by (pool) (rate(selector_cache_hits_total{job=\"pipeline\"}[$window])) / (sum by (pool) (rate(selector_cache_hits_total{job=\"pipeline\"}[$window])) + sum by (pool) (rate(selector_cache_misses_total{job=\"pipeline\"}[$window])))",
      "unit": "ratio",
      "labels": [
        "pool"
      ]
    },
    "errorsByReason": {
      "expr": "sum by (pool, error_type) (rate(ai_request_errors_total{job=\"automation\"}[$window])) > 0",
      "unit": "per_second",
      "labels": [
        "pool",
        "error_type"
      ]
    },
    "topTools": {
      "expr": "topk(5, sum by (tool) (rate(selector_selections_total{job=\"pipeline\"}[$window])) > 0)",
      "unit": "per_second",
      "labels": [
        "tool"
      ]
    }
  },
  "exemplars": "ai_request_errors_total{job=\"automation\"}",
  "window": "$window",
  "objective": 0.999,
  "faultReasons": [
    "BAD_GATEWAY",
    "INJECTED_FAULT",
    "INTERNAL_ERROR",
    "TIMEOUT"
  ],
  "ranges": [
    {
      "label": "5 m",
      "seconds": 300,
      "stepS": 5,
      "rateWindow": "1m"
    },
    {
      "label": "15 m",
      "seconds": 900,
      "stepS": 15,
      "rateWindow": "1m"
    },
    {
      "label": "1 h",
      "seconds": 3600,
      "stepS": 30,
      "rateWindow": "2m"
    }
  ]
} as const;
