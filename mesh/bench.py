"""`opsconductor bench`: throughput, latency and cost of Execute on this machine.

It starts its own mesh on free ports and measures, in one run so the ratios compare like with
like: the pipeline directly and the automation service directly (the floors), the gateway over
native gRPC and over gRPC-Web (pinned to the stable pool, so the same two processes serve every
scenario), a steady rate through the gateway, and fast calls while hundreds of slow ones are
held. h2load drives the load when it is installed, a built-in asyncio client otherwise; every
reply is checked against the serving process's own count of OK calls. `--soak` sends 100,000
calls and reports memory growth; `--telemetry-cost` compares per-call metrics and logs on/off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from mesh import auth, grpcweb, h2load, promclient
from mesh.loadgen import PIPELINE_EXECUTE, Measurement, Target, closed_loop
from mesh.processes import BIN, Child, free_port
from mesh.ports import Ports
from mesh.stack import Stack, StackSpec
from opsconductor.automation.v1 import automation_pb2
from opsconductor.pipeline.v1 import pipeline_pb2

AUTOMATION = "opsconductor.automation.v1.AutomationService"
PIPELINE = "opsconductor.pipeline.v1.PipelineService"
EXECUTE_PATH = f"/{AUTOMATION}/Execute"
PING = automation_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString()
PIPELINE_PING = pipeline_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString()
SLOW = automation_pb2.ExecuteRequest(input="x", tool="delay", arguments={"ms": "2000"}).SerializeToString()
PIN_STABLE = ("x-canary: never", *(f"{k}: {v}" for k, v in auth.headers().items()))
PROCESSES = ("stable-1-pipeline", "stable-1-automation", "envoy")


@dataclass
class Endpoint:
    """Where a scenario sends calls, and whose /metrics counts the OK replies."""

    name: str
    address: str
    path: str
    message: bytes
    counter_url: str
    web: bool = False
    headers: tuple[str, ...] = ()


class Bench:
    def __init__(self, stack: Stack, use_h2load: bool) -> None:
        self.stack = stack
        self.use_h2load = use_h2load
        self.processes = {name: psutil.Process(stack.children[name].pid) for name in PROCESSES}
        stable = next(r for r in stack.replicas if r.pool == "stable")
        automation_metrics = f"http://127.0.0.1:{stable.ports['automation_metrics']}/metrics"
        gateway = f"127.0.0.1:{stack.spec.ports.gateway}"
        self.endpoints = {
            "pipeline direct": Endpoint("pipeline direct", stable.pipeline_addr, PIPELINE_EXECUTE, PIPELINE_PING,
                                        f"http://127.0.0.1:{stable.ports['pipeline_metrics']}/metrics"),
            "automation direct": Endpoint("automation direct", stable.automation_addr, EXECUTE_PATH, PING,
                                          automation_metrics),
            "gateway gRPC": Endpoint("gateway gRPC", gateway, EXECUTE_PATH, PING, automation_metrics,
                                     headers=PIN_STABLE),
            "gateway gRPC-Web": Endpoint("gateway gRPC-Web", gateway, EXECUTE_PATH, PING, automation_metrics,
                                         web=True, headers=PIN_STABLE),
        }

    # --- measuring -----------------------------------------------------------------------------

    def _ok_count(self, endpoint: Endpoint) -> dict[str, float]:
        counts = {}
        text_codes = ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "DEADLINE_EXCEEDED", "UNAVAILABLE", "INTERNAL",
                      "CANCELLED", "UNKNOWN", "RESOURCE_EXHAUSTED")
        for code in text_codes:
            counts[code] = promclient.scrape_sum(endpoint.counter_url, "grpc_server_handled_total",
                                                 grpc_method="Execute", grpc_code=code)
        return counts

    def measure(self, label: str, endpoint: Endpoint, *, concurrency: int, duration_s: float | None = None,
                requests: int | None = None, rate: float | None = None) -> dict:
        """One scenario: load, then latency, server-verified outcomes, CPU and RSS."""
        print(f"  {label} …", file=sys.stderr, flush=True)
        codes_before = self._ok_count(endpoint)
        cpu_before = self._cpu()
        self_before = _own_cpu()
        if self.use_h2load:
            clients = concurrency if endpoint.web else max(1, min(8, concurrency // 8))
            if rate:
                # h2load paces each connection with its own timer: few connections, so the
                # calls arrive evenly rather than in a burst per tick.
                clients = 2
            streams = max(1, concurrency // clients)
            measurement, loadgen_cpu = h2load.run(
                f"http://{endpoint.address}{endpoint.path}", endpoint.message, web=endpoint.web, clients=clients,
                streams=streams, duration_s=duration_s, requests=requests,
                rate_per_client=rate / clients if rate else None, headers=endpoint.headers)
            loadgen = "h2load"
        else:
            measurement = self._builtin(endpoint, concurrency, duration_s or 10.0)
            loadgen_cpu, loadgen = _own_cpu() - self_before, "asyncio client"
        cpu_after = self._cpu()
        codes_after = self._ok_count(endpoint)
        by_code = {code: int(codes_after[code] - codes_before[code]) for code in codes_after
                   if codes_after[code] > codes_before[code]}
        summary = measurement.summary()
        calls = max(summary["calls"], 1)
        result = {
            "scenario": label, "loadgen": loadgen, "concurrency": concurrency, "rate": rate, **summary,
            "server_codes": by_code,
            # h2load counts HTTP 200; the server's own count of OK replies is the truth. A timed
            # run ends by resetting the calls still in flight: those count CANCELLED, at most
            # one per concurrent call, and are not failures.
            "verified": by_code.get("OK", 0) >= summary["ok"] and not summary["errors"]
                        and set(by_code) <= {"OK", "CANCELLED"} and by_code.get("CANCELLED", 0) <= concurrency,
            "cpu_us_per_call": {**{name: round((cpu_after[name] - cpu_before[name]) / calls * 1e6, 1)
                                   for name in cpu_before}, "loadgen": round(loadgen_cpu / calls * 1e6, 1)},
            "rss_mb": self.rss_mb(),
        }
        print(f"    {result['rps']:.0f} calls/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
              f"server codes {by_code}", file=sys.stderr, flush=True)
        return result

    def _builtin(self, endpoint: Endpoint, concurrency: int, duration_s: float) -> Measurement:
        if not endpoint.web:
            target = Target(endpoint.name, endpoint.address, endpoint.path, endpoint.message,
                            metadata=tuple(tuple(h.split(": ", 1)) for h in endpoint.headers))
            return asyncio.run(closed_loop(target, concurrency, duration_s))
        return _web_closed_loop(endpoint, concurrency, duration_s)

    def _cpu(self) -> dict[str, float]:
        return {name: sum(process.cpu_times()[:2]) for name, process in self.processes.items()}

    def rss_mb(self) -> dict[str, float]:
        return {name: round(process.memory_info().rss / 2**20, 1) for name, process in self.processes.items()}

    # --- scenarios -------------------------------------------------------------------------------

    def slow_and_fast(self, slow_calls: int, fast_rate: float, duration_s: float) -> dict:
        """Fast calls at a steady rate while `slow_calls` delay-2-s calls are held open."""
        gateway = self.endpoints["gateway gRPC"]
        slow_result: dict[str, Measurement] = {}
        if self.use_h2load:
            # Slow calls arrive steadily (slow_calls / 2 s a second, each lasting 2 s), so about
            # `slow_calls` are always in flight; started all at once they would end, and restart,
            # in one burst every 2 s, and that burst, not the held calls, would set the latency.
            url = f"http://{gateway.address}{EXECUTE_PATH}"
            hold = lambda: slow_result.setdefault("m", h2load.run(  # noqa: E731
                url, SLOW, clients=4, streams=slow_calls, duration_s=duration_s + 4,
                rate_per_client=slow_calls / 2 / 4, headers=PIN_STABLE)[0])
        else:
            slow_target = Target("slow", gateway.address, EXECUTE_PATH, SLOW, expect=b"slept",
                                 metadata=(("x-canary", "never"), *auth.metadata()))
            hold = lambda: slow_result.setdefault("m", asyncio.run(  # noqa: E731
                closed_loop(slow_target, slow_calls, duration_s + 4, timeout=30, channels=8)))
        thread = threading.Thread(target=hold)
        thread.start()
        time.sleep(2.5)  # the slow calls' ramp-up: a full 2 s of them must be in flight before measuring
        result = self.measure(f"fast calls at {fast_rate:g}/s with {slow_calls} slow calls held", gateway,
                              concurrency=16, duration_s=duration_s, rate=fast_rate)
        thread.join()
        slow = slow_result["m"].summary()
        result["slow_calls"] = {"completed": slow["ok"], "errors": slow["errors"], "p50_ms": slow["p50_ms"]}
        return result

    def soak(self, calls: int) -> dict:
        gateway = self.endpoints["gateway gRPC"]
        warm_up = max(calls // 10, 1000)
        self.measure("soak warm-up", gateway, concurrency=32, requests=warm_up)
        rss_before = self.rss_mb()
        result = self.measure(f"soak {calls} calls", gateway, concurrency=32, requests=calls)
        rss_after = self.rss_mb()
        result["rss_growth"] = {name: {"after_warm_up_mb": rss_before[name], "end_mb": rss_after[name],
                                       "growth_mb": round(rss_after[name] - rss_before[name], 1),
                                       "growth_pct": round((rss_after[name] / rss_before[name] - 1) * 100, 1)}
                                for name in rss_before}
        return result


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _web_closed_loop(endpoint: Endpoint, concurrency: int, duration_s: float) -> Measurement:
    """gRPC-Web without h2load: keep-alive HTTP/1.1 connections on threads."""
    import http.client

    measurement = Measurement()
    stop_at = time.perf_counter() + duration_s
    host, _, port = endpoint.address.rpartition(":")
    headers = dict(h.split(": ", 1) for h in endpoint.headers)
    lock = threading.Lock()

    def worker() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.perf_counter() < stop_at:
            begin = time.perf_counter()
            try:
                reply = grpcweb.call(host, int(port), endpoint.path, endpoint.message, headers,
                                     connection=connection)
                ok = reply.grpc_status == 0 and reply.messages and b"pong" in reply.messages[0]
            except OSError:
                ok, reply = False, None
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
            with lock:
                if ok:
                    measurement.latencies.append(time.perf_counter() - begin)
                else:
                    measurement.errors[f"grpc-status {reply.grpc_status}" if reply else "CONNECTION"] += 1

    begin = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    measurement.elapsed_s = time.perf_counter() - begin
    return measurement


def _start_stack(state_dir: Path) -> Stack:
    ports = Ports(gateway=free_port(), page=free_port(), prometheus=free_port(), envoy_admin=free_port(),
                  envoy_stats=free_port())
    stack = Stack(StackSpec(state_dir=state_dir, ports=ports, with_prometheus=False, with_page=False,
                            auto_service_ports=True), echo=lambda line: print(line, file=sys.stderr))
    stack.start()
    return stack


def _machine() -> dict:
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


def run(args: argparse.Namespace) -> int:
    if args.telemetry_cost:
        return telemetry_cost(args)
    use_h2load = h2load.available() and not args.builtin_client
    report: dict = {"machine": _machine(), "loadgen": "h2load" if use_h2load else "asyncio client",
                    "duration_s": args.duration, "concurrency": args.concurrency}
    with tempfile.TemporaryDirectory(prefix="opsconductor-bench-") as tmp:
        print("starting a mesh for the benchmark …", file=sys.stderr, flush=True)
        stack = _start_stack(Path(tmp))
        try:
            bench = Bench(stack, use_h2load)
            if args.soak:
                report["soak"] = bench.soak(args.soak_calls)
            else:
                report["results"] = [bench.measure(name, endpoint, concurrency=args.concurrency,
                                                   duration_s=args.duration)
                                     for name, endpoint in bench.endpoints.items()]
                report["results"].append(bench.measure(
                    f"gateway gRPC at {args.rate:g}/s", bench.endpoints["gateway gRPC"], concurrency=16,
                    duration_s=args.duration, rate=args.rate))
                report["results"].append(bench.slow_and_fast(args.slow_calls, 200, args.duration))
                report["targets"] = _targets(report["results"], args)
        finally:
            stack.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    _print(report)
    return 0 if all(r["verified"] for r in report.get("results", [report.get("soak")])) else 1


def _targets(results: list[dict], args: argparse.Namespace) -> list[dict]:
    by_name = {r["scenario"]: r for r in results}
    gateway, direct = by_name["gateway gRPC"]["rps"], by_name["automation direct"]["rps"]
    web = by_name["gateway gRPC-Web"]["rps"]
    steady = by_name[f"gateway gRPC at {args.rate:g}/s"]
    slow = results[-1]
    rss = max(results[-1]["rss_mb"][name] for name in ("stable-1-pipeline", "stable-1-automation"))
    return [
        {"target": "gateway throughput ≥ 70 % of direct-to-automation", "value": f"{gateway / direct:.0%}",
         "met": gateway >= 0.7 * direct},
        {"target": "gRPC-Web within 10 % of native gRPC", "value": f"{web / gateway - 1:+.0%}",
         "met": abs(web / gateway - 1) <= 0.10},
        {"target": f"p99 ≤ 5 ms at a steady {args.rate:g}/s through the gateway", "value": f"{steady['p99_ms']} ms",
         "met": steady["p99_ms"] <= 5},
        {"target": f"fast p99 < 50 ms with {args.slow_calls} slow calls held", "value": f"{slow['p99_ms']} ms",
         "met": slow["p99_ms"] < 50 and slow["slow_calls"]["completed"] > 0},
        {"target": "RSS of each Python service < 80 MB", "value": f"{rss} MB", "met": rss < 80},
    ]


def _print(report: dict) -> None:
    machine = report["machine"]
    print(f"\n{machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
          f"load from {report['loadgen']}")
    rows = report.get("results") or [report["soak"]]
    header = (f"{'scenario':46} {'calls/s':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8} {'errors':>6}  "
              f"CPU µs/call (pipeline+automation+envoy+loadgen)  RSS MB")
    print(header)
    print("-" * len(header))
    for r in rows:
        cpu = "+".join(f"{v:g}" for v in r["cpu_us_per_call"].values())
        errors = (sum(v for k, v in r["server_codes"].items() if k not in ("OK", "CANCELLED"))
                  + sum(r["errors"].values()))
        rss = "/".join(f"{r['rss_mb'][n]:g}" for n in ("stable-1-pipeline", "stable-1-automation"))
        print(f"{r['scenario']:46} {r['rps']:>8.0f} {r['p50_ms']:>7} {r['p95_ms']:>7} {r['p99_ms']:>7} "
              f"{r['max_ms']:>8} {errors:>6}  {cpu:<48} {rss}")
        if "slow_calls" in r:
            print(f"{'':46} slow calls completed: {r['slow_calls']['completed']}, errors {r['slow_calls']['errors']}")
    if "soak" in report:
        for name, growth in report["soak"]["rss_growth"].items():
            print(f"  {name}: {growth['after_warm_up_mb']} MB after warm-up → {growth['end_mb']} MB "
                  f"({growth['growth_mb']:+} MB, {growth['growth_pct']:+}%)")
    for target in report.get("targets", []):
        print(f"  {'MET ' if target['met'] else 'MISS'}  {target['target']}: {target['value']}")
    if not all(r["verified"] for r in rows):
        print("  some replies were not OK by the server's own count: see server_codes in the JSON")


# --- per-call telemetry cost ---------------------------------------------------------------------

def telemetry_cost(args: argparse.Namespace) -> int:
    """Direct to the automation service, TELEMETRY on and off, same load generator."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="opsconductor-bench-") as tmp:
        for mode in ("on", "off"):
            pipeline_addr, automation_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
            metrics = f"127.0.0.1:{free_port()}"
            env = {"TELEMETRY": mode}
            pipeline = Child(f"pipeline-{mode}", [str(BIN / "opsconductor"), "pipeline"], {
                **env, "PIPELINE_GRPC_ADDR": pipeline_addr, "PIPELINE_METRICS_ADDR": f"127.0.0.1:{free_port()}"},
                Path(tmp) / f"pipeline-{mode}.log").start()
            automation = Child(f"automation-{mode}", [str(BIN / "opsconductor"), "automation"], {
                **env, "AUTOMATION_GRPC_ADDR": automation_addr, "AUTOMATION_METRICS_ADDR": metrics,
                "PIPELINE_TARGET": pipeline_addr}, Path(tmp) / f"automation-{mode}.log").start()
            try:
                pipeline.wait_healthy(pipeline_addr, PIPELINE)
                automation.wait_healthy(automation_addr, AUTOMATION)
                target = Target("automation", automation_addr)
                if h2load.available():
                    measurement, _ = h2load.run(f"http://{automation_addr}{EXECUTE_PATH}", PING, clients=4,
                                                streams=8, duration_s=args.duration)
                else:
                    measurement = asyncio.run(closed_loop(target, args.concurrency, args.duration))
                results[mode] = measurement.summary()
                print(f"  telemetry {mode}: {results[mode]['rps']} calls/s, p99 {results[mode]['p99_ms']} ms",
                      file=sys.stderr)
            finally:
                automation.stop()
                pipeline.stop()
    cost = 1 - results["on"]["rps"] / results["off"]["rps"]
    if args.json:
        Path(args.json).write_text(json.dumps({"telemetry": results, "cost": cost}, indent=2))
    print(f"per-call metrics and logs cost {cost:.1%} of throughput through the automation service "
          f"(target: at most 20 %)")
    return 0


def add_parser(commands) -> None:
    bench = commands.add_parser("bench", help="measure throughput, latency and cost of Execute",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--duration", type=float, default=10.0, help="seconds per scenario (default 10)")
    bench.add_argument("--concurrency", type=int, default=64, help="concurrent calls (default 64)")
    bench.add_argument("--rate", type=float, default=500.0, help="steady rate through the gateway (default 500/s)")
    bench.add_argument("--slow-calls", type=int, default=500, help="slow calls held open (default 500)")
    bench.add_argument("--soak", action="store_true", help="send --soak-calls calls and report memory growth")
    bench.add_argument("--soak-calls", type=int, default=100_000, help="calls in a soak (default 100000)")
    bench.add_argument("--telemetry-cost", action="store_true", help="compare TELEMETRY on and off")
    bench.add_argument("--builtin-client", action="store_true", help="use the asyncio client even if h2load exists")
    bench.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    bench.set_defaults(func=run)
