"""The benchmark behind `opsconductor bench` (its help says what each scenario measures): a mesh
on free ports, load from h2load or an asyncio client, and every reply checked against the
serving process's own count."""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc
import psutil

from opsconductor import auth
from opsconductor.automation.v1 import automation_pb2
from opsconductor.identity import operator
from opsconductor.identity.spec import TlsSpec
from opsconductor.load import grpcweb, h2load
from opsconductor.load.loadgen import Measurement, Target, closed_loop
from opsconductor.load.report import machine, targets
from opsconductor.observability import prometheus
from opsconductor.pipeline.v1 import pipeline_pb2
from opsconductor.stack.ports import Ports, free_port
from opsconductor.stack.replica import service_pair
from opsconductor.stack.spec import StackSpec
from opsconductor.stack.supervisor import Stack
from services.common.names import AUTOMATION_EXECUTE, PIPELINE_EXECUTE
PING = automation_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString()
PIPELINE_PING = pipeline_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString()
SLOW = automation_pb2.ExecuteRequest(input="x", tool="delay", arguments={"ms": "2000"}).SerializeToString()
PIN_STABLE = ("x-canary: never", *(f"{k}: {v}" for k, v in auth.headers().items()))
PROCESSES = ("stable-1-pipeline", "stable-1-automation", "envoy")
# Outcomes the server counts for a scenario, from its own grpc_server_handled_total.
SERVER_CODES = ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "DEADLINE_EXCEEDED", "UNAVAILABLE", "INTERNAL",
                "CANCELLED", "UNKNOWN", "RESOURCE_EXHAUSTED")


@dataclass(frozen=True)
class BenchOptions:
    duration_s: float = 10.0
    concurrency: int = 64
    rate: float = 500.0  # steady rate through the gateway
    # Under the lane of tools that wait (TOOL_MAX_WAITING, 128 per pipeline): the slow calls are
    # pinned to the stable pool's one pipeline, which refuses more at once by design.
    slow_calls: int = 100
    soak: bool = False
    soak_calls: int = 100_000
    builtin_client: bool = False


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
    service: tuple[str, str] | None = None  # (pool, service) called directly, as the operator


class Bench:
    def __init__(self, stack: Stack, use_h2load: bool, processes: tuple[str, ...] = PROCESSES) -> None:
        self.stack = stack
        self.use_h2load = use_h2load
        # Whose CPU and memory a scenario reports (by default the stable replica and Envoy).
        self.processes = {name: psutil.Process(stack.pid_of(name)) for name in processes}
        stable = next(r for r in stack.replicas if r.pool == "stable")
        self.state_dir = stack.spec.state_dir
        # The services' /metrics are HTTPS with client certificates when the mesh runs mTLS.
        self.metrics_context = operator.ssl_context(self.state_dir)
        automation_metrics = operator.metrics_url(self.state_dir, stable.automation_metrics)
        gateway = f"127.0.0.1:{stack.spec.ports.gateway}"
        self.endpoints = {
            "pipeline direct": Endpoint("pipeline direct", stable.pipeline_target, PIPELINE_EXECUTE, PIPELINE_PING,
                                        operator.metrics_url(self.state_dir, stable.pipeline_metrics),
                                        service=("stable", "pipeline")),
            "automation direct": Endpoint("automation direct", stable.automation_target, AUTOMATION_EXECUTE, PING,
                                          automation_metrics, service=("stable", "automation")),
            "gateway gRPC": Endpoint("gateway gRPC", gateway, AUTOMATION_EXECUTE, PING, automation_metrics,
                                     headers=PIN_STABLE),
            "gateway gRPC-Web": Endpoint("gateway gRPC-Web", gateway, AUTOMATION_EXECUTE, PING, automation_metrics,
                                         web=True, headers=PIN_STABLE),
        }

    # --- measuring -----------------------------------------------------------------------------

    def _ok_count(self, endpoint: Endpoint) -> dict[str, float] | None:
        """The server's own count of Execute calls by code; None when it keeps none (TELEMETRY=off)."""
        handled = prometheus.scrape(endpoint.counter_url, context=self.metrics_context).get(
            "grpc_server_handled_total", [])
        if not handled:
            return None
        return {code: sum(s.value for s in handled
                          if s.labels.get("grpc_method") == "Execute" and s.labels.get("grpc_code") == code)
                for code in SERVER_CODES}

    def measure(self, label: str, endpoint: Endpoint, *, concurrency: int, duration_s: float | None = None,
                requests: int | None = None, rate: float | None = None) -> dict:
        """One scenario: load, then latency, server-verified outcomes, CPU and RSS."""
        print(f"  {label} …", file=sys.stderr, flush=True)
        codes_before = self._ok_count(endpoint)
        cpu_before = self._cpu()
        self_before = _own_cpu()
        if self.use_h2load and not self._needs_certificate(endpoint):
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
            if self._needs_certificate(endpoint):
                loadgen += " (mTLS as the operator)"
        cpu_after = self._cpu()
        codes_after = self._ok_count(endpoint)
        by_code = {code: int(codes_after[code] - codes_before[code]) for code in codes_after
                   if codes_after[code] > codes_before[code]} if codes_before and codes_after else {}
        summary = measurement.summary()
        calls = max(summary["calls"], 1)
        result = {
            "scenario": label, "loadgen": loadgen, "concurrency": concurrency, "rate": rate, **summary,
            "server_codes": by_code,
            # h2load counts HTTP 200; the server's own count of OK replies is the truth. A timed
            # run ends by resetting the calls still in flight: those count CANCELLED, at most
            # one per concurrent call, and are not failures. A server that counts nothing cannot
            # vouch for its replies: None, shown as unverified.
            "verified": None if codes_after is None else (
                by_code.get("OK", 0) >= summary["ok"] and not summary["errors"]
                and set(by_code) <= {"OK", "CANCELLED"} and by_code.get("CANCELLED", 0) <= concurrency),
            "cpu_us_per_call": {**{name: round((cpu_after[name] - cpu_before[name]) / calls * 1e6, 1)
                                   for name in cpu_before}, "loadgen": round(loadgen_cpu / calls * 1e6, 1)},
            "rss_mb": self.rss_mb(),
        }
        print(f"    {result['rps']:.0f} calls/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
              f"server codes {by_code}", file=sys.stderr, flush=True)
        return result

    def _needs_certificate(self, endpoint: Endpoint) -> bool:
        """A direct call into an mTLS mesh: h2load cannot present a client certificate."""
        return endpoint.service is not None and operator.has_identities(self.state_dir)

    def _builtin(self, endpoint: Endpoint, concurrency: int, duration_s: float) -> Measurement:
        if not endpoint.web:
            channel = (partial(operator.aio_channel, self.state_dir, pool=endpoint.service[0],
                               service=endpoint.service[1]) if endpoint.service else grpc.aio.insecure_channel)
            target = Target(endpoint.name, endpoint.address, endpoint.path, endpoint.message,
                            metadata=tuple(tuple(h.split(": ", 1)) for h in endpoint.headers), channel=channel)
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
            url = f"http://{gateway.address}{AUTOMATION_EXECUTE}"
            hold = lambda: slow_result.setdefault("m", h2load.run(  # noqa: E731
                url, SLOW, clients=4, streams=slow_calls, duration_s=duration_s + 4,
                rate_per_client=slow_calls / 2 / 4, headers=PIN_STABLE)[0])
        else:
            slow_target = Target("slow", gateway.address, AUTOMATION_EXECUTE, SLOW, expect=b"slept",
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


def start_stack(state_dir: Path, **spec: object) -> Stack:
    """A mesh on free ports for measuring: no page, no Prometheus; `spec` overrides the rest."""
    ports = Ports(**{name: free_port() for name in vars(Ports())})
    stack = Stack(StackSpec(**{"state_dir": state_dir, "ports": ports, "with_prometheus": False, "with_page": False,
                               "auto_service_ports": True, **spec}),
                  echo=lambda line: print(line, file=sys.stderr))
    stack.start()
    return stack


def run_benchmark(options: BenchOptions) -> dict:
    """Starts a mesh on free ports, runs every scenario (or the soak) on it, stops it; the report."""
    use_h2load = h2load.available() and not options.builtin_client
    report: dict = {"machine": machine(), "loadgen": "h2load" if use_h2load else "asyncio client",
                    "duration_s": options.duration_s, "concurrency": options.concurrency}
    with tempfile.TemporaryDirectory(prefix="opsconductor-bench-") as tmp:
        print("starting a mesh for the benchmark …", file=sys.stderr, flush=True)
        # Its floor scenario calls a pipeline directly, which `up` lets no operator do.
        stack = start_stack(Path(tmp), tls=TlsSpec(operator_calls_pipeline=True))
        try:
            bench = Bench(stack, use_h2load)
            if options.soak:
                report["soak"] = bench.soak(options.soak_calls)
            else:
                report["results"] = [bench.measure(name, endpoint, concurrency=options.concurrency,
                                                   duration_s=options.duration_s)
                                     for name, endpoint in bench.endpoints.items()]
                report["results"].append(bench.measure(
                    f"gateway gRPC at {options.rate:g}/s", bench.endpoints["gateway gRPC"], concurrency=16,
                    duration_s=options.duration_s, rate=options.rate))
                report["results"].append(bench.slow_and_fast(options.slow_calls, 200, options.duration_s))
                report["targets"] = targets(report["results"], options.rate, options.slow_calls)
        finally:
            stack.stop()
    return report


def verified(report: dict) -> bool:
    """Whether every scenario's replies were OK by the serving process's own count."""
    return all(r["verified"] is not False for r in report.get("results", [report.get("soak")]))


# --- per-call telemetry cost ---------------------------------------------------------------------

def telemetry_cost(options: BenchOptions) -> dict:
    """Direct to the automation service, TELEMETRY on and off, same load generator."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="opsconductor-bench-") as tmp:
        for mode in ("on", "off"):
            pair = service_pair(Path(tmp), f"telemetry-{mode}", env={"TELEMETRY": mode})
            try:
                pair.start()
                if h2load.available():
                    measurement, _ = h2load.run(f"http://{pair.automation_target}{AUTOMATION_EXECUTE}", PING,
                                                clients=4, streams=8, duration_s=options.duration_s)
                else:
                    measurement = asyncio.run(closed_loop(Target("automation", pair.automation_target),
                                                          options.concurrency, options.duration_s))
                results[mode] = measurement.summary()
                print(f"  telemetry {mode}: {results[mode]['rps']} calls/s, p99 {results[mode]['p99_ms']} ms",
                      file=sys.stderr)
            finally:
                pair.stop()
    return {"telemetry": results, "cost": 1 - results["on"]["rps"] / results["off"]["rps"]}
