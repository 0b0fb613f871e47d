"""Drives h2load (Debian's nghttp2-client), a C load generator far cheaper than any Python
client, for native gRPC (h2c) or gRPC-Web (HTTP/1.1). It counts HTTP 200 even when the gRPC
status is not OK, so callers check success against the server's own counters."""

from __future__ import annotations

import re
import resource
import shutil
import struct
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from opsconductor.load.loadgen import Measurement

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
GRPC_WEB_HEADERS = ("content-type: application/grpc-web+proto", "x-grpc-web: 1")


def available() -> bool:
    return shutil.which("h2load") is not None


def run(url: str, message: bytes, *, web: bool = False, clients: int = 4, streams: int = 16,
        duration_s: float | None = None, requests: int | None = None, rate_per_client: float | None = None,
        headers: tuple[str, ...] = ()) -> tuple[Measurement, float]:
    """One h2load run; returns the measurement and h2load's own CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        body, log = Path(tmp) / "body", Path(tmp) / "log"
        body.write_bytes(struct.pack(">BI", 0, len(message)) + message)  # one gRPC frame
        argv = ["h2load", "-c", str(clients), "-d", str(body), f"--log-file={log}"]
        argv += ["--h1"] if web else ["-m", str(streams)]
        for header in (*(GRPC_WEB_HEADERS if web else GRPC_HEADERS), *headers):
            argv += ["-H", header]
        if duration_s is not None:
            argv += ["-D", f"{duration_s:g}"]
        else:
            argv += ["-n", str(requests)]
        if rate_per_client:
            argv += [f"--rps={rate_per_client:g}"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run([*argv, url], capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0 and "finished in" not in result.stdout:
            raise RuntimeError(f"h2load failed: {result.stderr.strip() or result.stdout[-500:]}")
        measurement = _measurement(log.read_text(), result.stdout, elapsed)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return measurement, cpu


def _measurement(log: str, summary: str, elapsed: float) -> Measurement:
    measurement = Measurement(errors=Counter())
    for line in log.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        status, micros = int(parts[1]), int(parts[2])
        if status == 200:
            measurement.latencies.append(micros / 1e6)
        else:
            measurement.errors[f"HTTP {status}" if status > 0 else "NO_RESPONSE"] += 1
    finished = re.search(r"finished in ([\d.]+)(m?s)", summary)
    if finished:
        value = float(finished.group(1))
        measurement.elapsed_s = value / 1000 if finished.group(2) == "ms" else value
    else:
        measurement.elapsed_s = elapsed
    failed = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", summary)
    if failed and sum(map(int, failed.groups())) and not measurement.errors:
        measurement.errors["FAILED"] = sum(map(int, failed.groups()))
    return measurement
