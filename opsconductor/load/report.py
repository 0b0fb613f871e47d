"""How a benchmark run is reported: the machine it ran on, the targets it met or missed, and
the table `opsconductor bench` prints."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil


def machine() -> dict:
    return {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "python": platform.python_version(),
            "kernel": platform.release(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def targets(results: list[dict], rate: float, slow_calls: int) -> list[dict]:
    by_name = {r["scenario"]: r for r in results}
    gateway, direct = by_name["gateway gRPC"]["rps"], by_name["automation direct"]["rps"]
    web = by_name["gateway gRPC-Web"]["rps"]
    steady = by_name[f"gateway gRPC at {rate:g}/s"]
    slow = results[-1]
    rss = max(results[-1]["rss_mb"][name] for name in ("stable-1-pipeline", "stable-1-automation"))
    return [
        {"target": "gateway throughput ≥ 70 % of direct-to-automation", "value": f"{gateway / direct:.0%}",
         "met": gateway >= 0.7 * direct},
        {"target": "gRPC-Web within 10 % of native gRPC", "value": f"{web / gateway - 1:+.0%}",
         "met": abs(web / gateway - 1) <= 0.10},
        {"target": f"p99 ≤ 5 ms at a steady {rate:g}/s through the gateway", "value": f"{steady['p99_ms']} ms",
         "met": steady["p99_ms"] <= 5},
        {"target": f"fast p99 < 50 ms with {slow_calls} slow calls held", "value": f"{slow['p99_ms']} ms",
         "met": slow["p99_ms"] < 50 and slow["slow_calls"]["completed"] > 0},
        {"target": "RSS of each Python service < 80 MB", "value": f"{rss} MB", "met": rss < 80},
    ]


def table(report: dict) -> str:
    machine_ = report["machine"]
    lines = [f"\n{machine_['cpus']} CPUs ({machine_['cpu_model']}), Python {machine_['python']}, "
             f"load from {report['loadgen']}"]
    rows = report.get("results") or [report["soak"]]
    header = (f"{'scenario':46} {'calls/s':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8} {'errors':>6}  "
              f"CPU µs/call (pipeline+automation+envoy+loadgen)  RSS MB")
    lines += [header, "-" * len(header)]
    for r in rows:
        cpu = "+".join(f"{v:g}" for v in r["cpu_us_per_call"].values())
        errors = (sum(v for k, v in r["server_codes"].items() if k not in ("OK", "CANCELLED"))
                  + sum(r["errors"].values()))
        rss = "/".join(f"{r['rss_mb'][n]:g}" for n in ("stable-1-pipeline", "stable-1-automation"))
        lines.append(f"{r['scenario']:46} {r['rps']:>8.0f} {r['p50_ms']:>7} {r['p95_ms']:>7} {r['p99_ms']:>7} "
                     f"{r['max_ms']:>8} {errors:>6}  {cpu:<48} {rss}")
        if "slow_calls" in r:
            lines.append(f"{'':46} slow calls completed: {r['slow_calls']['completed']}, "
                         f"errors {r['slow_calls']['errors']}")
    if "soak" in report:
        for name, growth in report["soak"]["rss_growth"].items():
            lines.append(f"  {name}: {growth['after_warm_up_mb']} MB after warm-up → {growth['end_mb']} MB "
                         f"({growth['growth_mb']:+} MB, {growth['growth_pct']:+}%)")
    for target in report.get("targets", []):
        lines.append(f"  {'MET ' if target['met'] else 'MISS'}  {target['target']}: {target['value']}")
    if not all(r["verified"] is not False for r in rows):
        lines.append("  some replies were not OK by the server's own count: see server_codes in the JSON")
    return "\n".join(lines)
