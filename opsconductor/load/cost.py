"""What a feature on the call path costs: the same steady load through the gateway on stacks
that differ only in that feature, measured in one run. Reported per variant: CPU per call of
every process of the stack (so work a feature moves into Envoy or a helper process counts
too) and the latency quantiles at the steady rate. Variants run in alternating rounds, so a
noisy neighbour on these shared machines hits each of them alike."""

from __future__ import annotations

import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from opsconductor.gateway.admin import Weights
from opsconductor.identity.spec import TlsSpec
from opsconductor.load import h2load
from opsconductor.load.bench import Bench, start_stack
from opsconductor.gateway.settings import DEFAULT_SAMPLE_PERCENT
from opsconductor.stack.spec import version_of
from opsconductor.stack.state import write_weights
from opsconductor.stack.traces import TraceSpec

# feature -> variant label -> StackSpec overrides (and "weights", the split the stack starts
# with). The first variant is the baseline.
FEATURES: dict[str, dict[str, dict[str, object]]] = {
    "telemetry": {"off": {"service_env": {"TELEMETRY": "off"}}, "on": {}},
    # Spans from every hop into the embedded trace store (whose CPU counts too): none at all,
    # the gateway's default sampling rate, and every call traced.
    "tracing": {"off": {"traces": TraceSpec(sample_percent=None)},
                f"{DEFAULT_SAMPLE_PERCENT:g} % (default)": {},
                "10 %": {"traces": TraceSpec(sample_percent=10.0)},
                "100 %": {"traces": TraceSpec(sample_percent=100.0)}},
    # mTLS on every internal hop (Envoy → automation → pipeline, and the scrapes) against the
    # same stack in plaintext; the gateway's edge is plaintext in both, as locally by default.
    "mtls": {"off": {"tls": TlsSpec(mesh=False)}, "on": {}},
    # Another checkout's services (--baseline-source, e.g. a worktree of the last release)
    # against this one's: what a change costs. The gateway is this checkout's in both.
    "checkout": {"baseline": {}, "this checkout": {}},
    # Every call to stable, and each one mirrored to the canary as well or not: what the
    # mesh spends on the copies (the caller's latency should not move; the canary's CPU does).
    "mirror": {"off": {"weights": Weights(100, 0)}, "100 %": {"weights": Weights(100, 0, mirror=100)}},
}


@dataclass(frozen=True)
class CostOptions:
    feature: str
    rate: float = 500.0
    duration_s: float = 10.0
    rounds: int = 2
    builtin_client: bool = False
    baseline_source: Path | None = None


def _variants(options: CostOptions) -> dict[str, dict[str, object]]:
    if options.feature != "checkout":
        return FEATURES[options.feature]
    if options.baseline_source is None:
        raise ValueError("--cost checkout compares with --baseline-source DIR (another checkout)")
    baseline = version_of(options.baseline_source, {})
    return {f"baseline {baseline.version or baseline.source.name}": {"stable": baseline},
            "this checkout": {}}


def measure_cost(options: CostOptions) -> dict:
    """Every variant of the feature, `rounds` times each, alternating; medians per variant."""
    variants = _variants(options)
    runs: dict[str, list[dict]] = {label: [] for label in variants}
    use_h2load = h2load.available() and not options.builtin_client
    for round_index in range(options.rounds):
        order = list(variants) if round_index % 2 == 0 else list(reversed(variants))
        for label in order:
            print(f"{options.feature} {label}, round {round_index + 1} of {options.rounds} …", file=sys.stderr,
                  flush=True)
            with tempfile.TemporaryDirectory(prefix="opsconductor-cost-") as tmp:
                overrides = dict(variants[label])
                weights = overrides.pop("weights", None)
                if isinstance(weights, Weights):
                    write_weights(Path(tmp), weights)  # the supervisor publishes it as it starts
                stack = start_stack(Path(tmp), **overrides)
                try:
                    bench = Bench(stack, use_h2load, processes=tuple(stack.supervisor.components))
                    bench.measure("warm-up", bench.endpoints["gateway gRPC"], concurrency=16,
                                  duration_s=min(3.0, options.duration_s), rate=options.rate)
                    runs[label].append(bench.measure(f"{label} at {options.rate:g}/s", bench.endpoints["gateway gRPC"],
                                                     concurrency=16, duration_s=options.duration_s,
                                                     rate=options.rate))
                finally:
                    stack.stop()
    return {"feature": options.feature, "rate": options.rate, "duration_s": options.duration_s,
            "rounds": options.rounds, "variants": {label: _summary(results) for label, results in runs.items()}}


def _summary(results: list[dict]) -> dict:
    cpu = [sum(v for k, v in r["cpu_us_per_call"].items() if k != "loadgen") for r in results]
    return {"cpu_us_per_call": round(statistics.median(cpu), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in results), 3),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in results), 3),
            "rps": round(statistics.median(r["rps"] for r in results), 1),
            "verified": all(r["verified"] is not False for r in results),
            "runs": results}


def table(report: dict) -> str:
    variants = report["variants"]
    base = next(iter(variants.values()))
    lines = [f"\n{report['feature']}: steady {report['rate']:g} calls/s through the gateway, "
             f"{report['duration_s']:g} s × {report['rounds']} rounds per variant (medians)",
             f"{'variant':16} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/call':>12} "
             f"{'vs ' + next(iter(variants)):>10}"]
    for label, v in variants.items():
        delta = (v["cpu_us_per_call"] / base["cpu_us_per_call"] - 1) * 100 if base["cpu_us_per_call"] else 0.0
        lines.append(f"{label:16} {v['rps']:>8.0f} {v['p50_ms']:>8.2f} {v['p99_ms']:>8.2f} "
                     f"{v['cpu_us_per_call']:>12.0f} {delta:>+9.1f}%")
    if not all(v["verified"] for v in variants.values()):
        lines.append("  some replies were not OK by the server's own count: see the JSON")
    return "\n".join(lines)
