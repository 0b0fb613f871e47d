"""The bearer token the CLIs send when the gateway requires JWT: from OPSCONDUCTOR_TOKEN, or
from the file OPSCONDUCTOR_TOKEN_FILE names. Never printed or logged."""

from __future__ import annotations

import os
from pathlib import Path


def token() -> str | None:
    value = os.environ.get("OPSCONDUCTOR_TOKEN", "").strip()
    path = os.environ.get("OPSCONDUCTOR_TOKEN_FILE", "").strip()
    if not value and path:
        value = Path(path).read_text().strip()
    return value or None


def metadata() -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying the token, or nothing."""
    value = token()
    return (("authorization", f"Bearer {value}"),) if value else ()


def headers() -> dict[str, str]:
    """HTTP headers (gRPC-Web, h2load) carrying the token, or none."""
    return dict(metadata())
