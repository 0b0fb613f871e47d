"""`opsconductor bench`: throughput and latency of Execute, directly to the pipeline and
through the automation service, with per-call telemetry on and off; CPU and RSS per process."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

from mesh.loadgen import Measurement, Target, closed_loop
from mesh.processes import BIN, Child, free_port

AUTOMATION = "opsconductor.automation.v1.AutomationService"
PIPELINE = "opsconductor.pipeline.v1.PipelineService"


@dataclass
class Pair:
    """A pipeline and an automation service started for the benchmark."""

    pipeline: Child
    automation: Child
    pipeline_addr: str
    automation_addr: str


def start_pair(log_dir: Path, name: str, telemetry: bool) -> Pair:
    pipeline_addr, automation_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    common = {"TELEMETRY": "on" if telemetry else "off", "LOG_LEVEL": "INFO"}
    pipeline = Child(f"{name}-pipeline", [str(BIN / "opsconductor"), "pipeline"], {
        **common, "PIPELINE_GRPC_ADDR": pipeline_addr, "PIPELINE_METRICS_ADDR": f"127.0.0.1:{free_port()}"},
        log_dir / f"{name}-pipeline.log").start()
    pipeline.wait_healthy(pipeline_addr, PIPELINE)
    automation = Child(f"{name}-automation", [str(BIN / "opsconductor"), "automation"], {
        **common, "AUTOMATION_GRPC_ADDR": automation_addr, "AUTOMATION_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        "PIPELINE_TARGET": pipeline_addr}, log_dir / f"{name}-automation.log").start()
    automation.wait_healthy(automation_addr, AUTOMATION)
    return Pair(pipeline, automation, pipeline_addr, automation_addr)


def _cpu_seconds(children: list[Child]) -> dict[str, float]:
    return {child.name: sum(psutil.Process(child.pid).cpu_times()[:2]) for child in children}


def _rss_mb(children: list[Child]) -> dict[str, float]:
    return {child.name: round(psutil.Process(child.pid).memory_info().rss / 2**20, 1) for child in children}


async def _progress(label: str, measurement_ref: list[Measurement]) -> None:
    while True:
        await asyncio.sleep(1)
        if measurement_ref:
            print(f"\r  {label}: {measurement_ref[0].calls} calls", end="", file=sys.stderr, flush=True)


def measure(label: str, target: Target, children: list[Child], concurrency: int, duration_s: float) -> dict:
    """One closed-loop run, with the CPU its processes spent per call."""
    print(f"  {label} …", end="", file=sys.stderr, flush=True)
    before = _cpu_seconds(children)
    result = asyncio.run(closed_loop(target, concurrency, duration_s))
    after = _cpu_seconds(children)
    summary = result.summary()
    summary["cpu_us_per_call"] = {name: round((after[name] - before[name]) / max(result.calls, 1) * 1e6, 1)
                                  for name in before}
    summary["rss_mb"] = _rss_mb(children)
    print(f"\r  {label}: {summary['rps']} calls/s, p99 {summary['p99_ms']} ms, errors {summary['errors']}",
          file=sys.stderr)
    return {"scenario": label, "concurrency": concurrency, **summary}


def run(args: argparse.Namespace) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="opsconductor-bench-") as tmp:
        log_dir = Path(tmp)
        pairs = {"on": start_pair(log_dir, "telemetry-on", True), "off": start_pair(log_dir, "telemetry-off", False)}
        try:
            for key, pair in pairs.items():
                children = [pair.pipeline, pair.automation]
                tag = f"telemetry {key}"
                results.append(measure(f"pipeline direct ({tag})", Target.pipeline("pipeline", pair.pipeline_addr),
                                       children, args.concurrency, args.duration))
                results.append(measure(f"through automation ({tag})", Target("automation", pair.automation_addr),
                                       children, args.concurrency, args.duration))
        finally:
            for pair in pairs.values():
                pair.automation.stop()
                pair.pipeline.stop()
    on, off = results[1]["rps"], results[3]["rps"]
    report = {"results": results, "telemetry_cost": round(1 - on / off, 3) if off else None}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    _print_table(report)
    return 0 if all(not r["errors"] for r in results) else 1


def _print_table(report: dict) -> None:
    header = f"{'scenario':38} {'calls/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}  CPU µs/call"
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        cpu = " + ".join(f"{v:g}" for v in r["cpu_us_per_call"].values())
        print(f"{r['scenario']:38} {r['rps']:>9} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} "
              f"{sum(r['errors'].values()):>7}  {cpu}")
    if report["telemetry_cost"] is not None:
        print(f"\nper-call metrics and logs cost {report['telemetry_cost']:.1%} of throughput through automation "
              "(target: at most 20 %)")


def add_parser(commands) -> None:
    bench = commands.add_parser("bench", help="measure throughput and latency of Execute",
                                description=__doc__)
    bench.add_argument("--duration", type=float, default=10.0, help="seconds per scenario (default 10)")
    bench.add_argument("--concurrency", type=int, default=20, help="concurrent calls (default 20)")
    bench.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    bench.set_defaults(func=run)
