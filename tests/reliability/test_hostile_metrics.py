"""Callers cannot mint Prometheus series: a thousand calls with made-up platforms, tool names,
argument names and trace ids through the gateway leave every service's series count as it
was, and its /metrics page the same size."""

from __future__ import annotations

import random
import string
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub

pytestmark = pytest.mark.slow

PIN = ("x-canary", "never")
CALLS = 1000


def series(address: str) -> tuple[int, int]:
    """(samples, bytes) of the /metrics page at `address`."""
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    return sum(len(family.samples) for family in text_string_to_metric_families(text)), len(text)


def made_up(rng: random.Random, alphabet: str = string.ascii_lowercase + string.digits + "_") -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 32)))


def hostile_requests(seed: int = 10) -> list[automation_pb2.ExecuteRequest]:
    rng = random.Random(seed)
    requests = []
    for index in range(CALLS):
        kind = index % 4
        if kind == 0:  # no tool, a platform that passes the [a-z0-9_]{1,32} check
            requests.append(automation_pb2.ExecuteRequest(input="ping " + made_up(rng), platform=made_up(rng)))
        elif kind == 1:  # a tool name that passes the name check but is no tool
            requests.append(automation_pb2.ExecuteRequest(input="x", tool="t" + made_up(rng)[:40]))
        elif kind == 2:  # a made-up argument name on a real tool, a made-up trace id
            requests.append(automation_pb2.ExecuteRequest(input="ping", tool="echo", trace_id=made_up(rng),
                                                          arguments={made_up(rng, string.ascii_lowercase): "1"}))
        else:  # a real tool on a made-up platform
            requests.append(automation_pb2.ExecuteRequest(input="ping", tool="echo", platform=made_up(rng)))
    return requests


def test_a_thousand_made_up_labels_mint_no_series(mesh, figure):
    pair = mesh.stable[0]
    channel, stub = automation_stub(mesh.gateway.target)
    with channel:
        stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=10, metadata=(PIN,))
        before = {name: series(address) for name, address in (("pipeline", pair.pipeline_metrics),
                                                              ("automation", pair.automation_metrics))}

        def send(message: automation_pb2.ExecuteRequest) -> str:
            try:
                stub.Execute(message, timeout=10, metadata=(PIN,))
            except grpc.RpcError as error:
                return error.code().name
            return "OK"

        with ThreadPoolExecutor(16) as workers:
            codes = set(workers.map(send, hostile_requests()))
    after = {name: series(address) for name, address in (("pipeline", pair.pipeline_metrics),
                                                         ("automation", pair.automation_metrics))}
    assert codes <= {"OK", "NOT_FOUND", "INVALID_ARGUMENT"}, codes
    for name in before:
        assert after[name][0] == before[name][0], (name, before[name], after[name])
        assert after[name][1] < before[name][1] * 1.05, (name, before[name], after[name])  # sample values grow only
    figure("metrics.pipeline_series_after_1000_made_up_calls", after["pipeline"][0],
           f"(before {before['pipeline'][0]})")
    figure("metrics.pipeline_page_bytes_after_1000_made_up_calls", after["pipeline"][1],
           f"(before {before['pipeline'][1]})")


def test_made_up_method_names_mint_no_series(mesh):
    pair = mesh.stable[0]
    before = {address: series(address)[0] for address in (pair.pipeline_metrics, pair.automation_metrics)}
    for target, service in ((mesh.gateway.target, "opsconductor.automation.v1.AutomationService"),
                            (pair.automation_target, "opsconductor.automation.v1.AutomationService"),
                            (pair.pipeline_target, "opsconductor.pipeline.v1.PipelineService")):
        with grpc.insecure_channel(target) as channel:
            for index in range(20):
                method = channel.unary_unary(f"/{service}/Made{index}Up")
                with pytest.raises(grpc.RpcError) as refused:
                    method(b"", timeout=5, metadata=(PIN,))
                assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert {address: series(address)[0] for address in before} == before
