"""`opsconductor bench`: throughput, latency and cost of Execute on this machine.

It starts its own mesh on free ports and measures, in one run so the ratios compare like with
like: the pipeline directly and the automation service directly (the floors), the gateway over
native gRPC and over gRPC-Web (pinned to the stable pool, so the same two processes serve every
scenario), a steady rate through the gateway, and fast calls while a hundred slow ones are
held. h2load drives the load when it is installed, a built-in asyncio client otherwise; every
reply is checked against the serving process's own count of OK calls. `--soak` sends 100,000
calls and reports memory growth; `--telemetry-cost` compares per-call metrics and logs on/off.
`--cost FEATURE` measures what a feature on the call path costs: stacks with and without it,
in alternating rounds of one run, each at a steady --rate (CPU per call, p50, p99).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from opsconductor.cli.output import add_output
from opsconductor.cli.parsing import command, count, existing_dir, seconds
from opsconductor.load import cost
from opsconductor.load.bench import BenchOptions, run_benchmark, telemetry_cost, verified
from opsconductor.load.report import table


def run(args: argparse.Namespace) -> int:
    options = BenchOptions(duration_s=args.duration, concurrency=args.concurrency, rate=args.rate,
                           slow_calls=args.slow_calls, soak=args.soak, soak_calls=args.soak_calls,
                           builtin_client=args.builtin_client)
    if args.cost:
        report = cost.measure_cost(cost.CostOptions(args.cost, rate=args.rate, duration_s=args.duration,
                                                    rounds=args.rounds, builtin_client=args.builtin_client,
                                                    baseline_source=args.baseline_source))
        text = cost.table(report)
    elif args.telemetry_cost:
        report = telemetry_cost(options)
        text = (f"per-call metrics and logs cost {report['cost']:.1%} of throughput through the automation service "
                f"(target: at most 20 %)")
    else:
        report = run_benchmark(options)
        text = table(report)
    print(json.dumps(report, indent=2) if args.output == "json" else text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.cost:
        return 0 if all(v["verified"] for v in report["variants"].values()) else 1
    return 0 if args.telemetry_cost or verified(report) else 1


def add_parsers(commands) -> None:
    bench = command(commands, "bench", help="measure throughput, latency and cost of Execute", description=__doc__,
                    examples=(("opsconductor bench", "every scenario, 10 s each"),
                              ("opsconductor bench --cost checkout --baseline-source ../main", ""),
                              ("opsconductor bench --duration 5 -o json", "")))
    bench.add_argument("--duration", type=seconds, default=10.0, help="seconds per scenario (default 10)")
    bench.add_argument("--concurrency", type=count, default=64, help="concurrent calls (default 64)")
    bench.add_argument("--rate", type=seconds, default=500.0, metavar="PER_S",
                       help="steady rate through the gateway (default 500/s)")
    bench.add_argument("--slow-calls", type=count, default=100,
                       help="slow calls held open (default 100; a pipeline runs at most TOOL_MAX_WAITING, 128)")
    bench.add_argument("--soak", action="store_true", help="send --soak-calls calls and report memory growth")
    bench.add_argument("--soak-calls", type=count, default=100_000, help="calls in a soak (default 100000)")
    bench.add_argument("--telemetry-cost", action="store_true", help="compare TELEMETRY on and off")
    bench.add_argument("--cost", choices=sorted(cost.FEATURES), metavar="FEATURE",
                       help=f"cost of a call-path feature at --rate: {', '.join(sorted(cost.FEATURES))}")
    bench.add_argument("--rounds", type=count, default=2, help="with --cost: rounds per variant (default 2)")
    bench.add_argument("--baseline-source", type=existing_dir, metavar="DIR",
                       help="with --cost checkout: the other checkout whose services to compare with")
    bench.add_argument("--builtin-client", action="store_true", help="use the asyncio client even if h2load exists")
    bench.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    add_output(bench)
    bench.set_defaults(func=run, interrupted=lambda args: "interrupted; the benchmark's own mesh was stopped, "
                                                          "no figures were kept")
