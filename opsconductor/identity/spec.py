"""What a local stack is asked for in TLS: mTLS inside the mesh (always, unless a benchmark
measures its cost), certificate lifetime, and TLS at the gateway's edge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opsconductor.identity.store import DEFAULT_LIFETIME_S


@dataclass(frozen=True)
class TlsSpec:
    mesh: bool = True  # mTLS on every internal hop; off only to measure what it costs
    lifetime_s: float = DEFAULT_LIFETIME_S  # workload certificates, renewed at two thirds
    edge: bool = False  # `up --tls`: the gateway terminates TLS (h2 and HTTP/1.1 by ALPN)
    edge_cert: Path | None = None  # with `edge`: this certificate and key instead of the local CA's
    edge_key: Path | None = None
    # The benchmark's floor scenario calls a pipeline directly; `up` never lets the operator.
    operator_calls_pipeline: bool = False
