"""Reading a service's /metrics page: the sum of the series that carry given labels."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from opsconductor.identity import operator

_LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric(address: str, name: str, state_dir: Path | None = None, **labels: str) -> float:
    """The sum of every `name` series at `address` ("host:port") whose labels include
    `labels` (0 when there is none). With `state_dir`, read as that stack's operator (its
    /metrics pages are mTLS under `up`)."""
    if state_dir is None:
        text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    else:
        text = urllib.request.urlopen(operator.metrics_url(state_dir, address), timeout=5,
                                      context=operator.ssl_context(state_dir)).read().decode()
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        series, _, value = line.rpartition(" ")
        found = dict(_LABELS.findall(series))
        if all(found.get(key) == wanted for key, wanted in labels.items()):
            total += float(value)
    return total


def in_flight(address: str, method: str = "Execute") -> float:
    """Calls of `method` started but not yet answered, from the server's own counters."""
    return (metric(address, "grpc_server_started_total", grpc_method=method)
            - metric(address, "grpc_server_handled_total", grpc_method=method))


def upstream_requests(admin_url: str) -> int:
    """Requests an Envoy sent to either pool's hosts (its own health checks not included),
    from the admin at `admin_url`."""
    text = urllib.request.urlopen(f"{admin_url}/stats?filter=" + r"^cluster\.\w+_pool\.upstream_rq_total$",
                                  timeout=5).read().decode()
    return sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if line.strip())
