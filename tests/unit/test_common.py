"""Trace ids, request validation, configuration and error statuses."""

from __future__ import annotations

import re

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from services.common import tracing
from services.common.config import ConfigError, automation_config, pipeline_config
from services.common.errors import UnknownToolError, ValidationError
from services.common.status import TRACE_ID_KEY, status_for
from services.common.validation import MAX_INPUT_BYTES, check_execute


@pytest.mark.parametrize("trace_id", ["a", "abc-123", "A.b_c-9", "x" * 64])
def test_valid_trace_ids(trace_id):
    assert tracing.is_valid(trace_id)


@pytest.mark.parametrize("trace_id", ["", "x" * 65, "has space", "semi;colon", "ünïcode", "new\nline"])
def test_invalid_trace_ids(trace_id):
    assert not tracing.is_valid(trace_id)


def test_new_trace_id_is_w3c_shaped_and_unique():
    ids = {tracing.new_trace_id() for _ in range(100)}
    assert len(ids) == 100 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_traceparent_gives_the_trace_id_only_when_valid():
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert tracing.from_traceparent([("x-trace-id", "mine"), ("traceparent", parent)]) == \
        "4bf92f3577b34da6a3ce929d0e0e4736"
    for bad in ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "garbage", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"):
        assert tracing.from_traceparent([("traceparent", bad)]) is None
    assert tracing.from_traceparent([]) is None


def test_a_callers_id_never_names_the_trace_but_is_kept_when_valid_and_different():
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert tracing.resolve("mine", [("traceparent", parent)]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "mine")
    # The field wins over the header; a header id equal to the trace's is no extra information.
    assert tracing.resolve("", [("traceparent", parent), ("x-trace-id", "hdr")])[1] == "hdr"
    assert tracing.resolve("", [("traceparent", parent), ("x-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736")])[1] == ""
    # Invalid ids are never kept (the servicer refuses an invalid field with INVALID_ARGUMENT).
    assert tracing.resolve("bad id!", [("traceparent", parent)])[1] == ""
    assert tracing.current_caller_trace_id.get() == ""
    trace_id, caller = tracing.resolve("t-1", [])
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and caller == "t-1"
    assert tracing.current_trace_id.get() == trace_id


def test_without_the_sdk_the_next_hop_gets_a_traceparent_of_the_same_trace():
    (key, value), = tracing.outgoing_metadata("4bf92f3577b34da6a3ce929d0e0e4736")
    assert key == "traceparent" and re.fullmatch(r"00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00", value)


@pytest.mark.parametrize(("fields", "message"), [
    (("", "", "", {}), "input is empty"),
    ((" \t\n", "", "", {}), "input is empty"),
    (("x" * (MAX_INPUT_BYTES + 1), "", "", {}), "limit is 65536"),
    (("é" * (MAX_INPUT_BYTES // 2 + 1), "", "", {}), "limit is 65536"),
    (("ping", "Echo", "", {}), "malformed"),
    (("ping", "e" * 65, "", {}), "malformed"),
    (("ping", "", "Linux!", {}), "platform"),
    (("ping", "", "", {"Bad-Name": "1"}), "argument name"),
    (("ping", "", "", {"a": "x" * 5000}), "over 4096"),
    (("ping", "", "", {f"a{i}": "1" for i in range(17)}), "limit is 16"),
])
def test_validation_rejects_with_a_clear_message(fields, message):
    with pytest.raises(ValidationError, match=message):
        check_execute(*fields)


def test_validation_accepts_a_normal_request():
    check_execute("x" * MAX_INPUT_BYTES, "tcp_check", "linux", {"timeout_ms": "100"})


def test_config_defaults_bind_loopback_with_documented_ports():
    automation, pipeline = automation_config({}), pipeline_config({})
    assert (automation.grpc_addr, automation.metrics_addr, automation.pipeline_target) == \
        ("127.0.0.1:3003", "127.0.0.1:9091", "127.0.0.1:8001")
    assert (pipeline.grpc_addr, pipeline.metrics_addr) == ("127.0.0.1:8001", "127.0.0.1:9092")
    assert automation.execute_timeout_s == 30 and automation.common.shutdown_grace_s == 10
    assert automation.common.pool == "stable" and not pipeline.bypass_llm and not pipeline.faults.enabled
    assert pipeline.allowlist == ("127.0.0.0/8", "::1", "localhost")


@pytest.mark.parametrize(("env", "message"), [
    ({"POOL": "blue"}, "POOL"),
    ({"EXECUTE_TIMEOUT_S": "soon"}, "EXECUTE_TIMEOUT_S"),
    ({"EXECUTE_TIMEOUT_S": "-1"}, "between"),
    ({"AUTOMATION_GRPC_ADDR": "nowhere"}, "host:port"),
    ({"FEATURE_BYPASS_LLM": "maybe"}, "FEATURE_BYPASS_LLM"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"TOOL_ALLOWLIST": "10.0.0.0/33"}, "TOOL_ALLOWLIST"),
    ({"FAULT_INJECT_EVERY_N": "1.5"}, "integer"),
    ({"FAULT_INJECT_RATE": "2"}, "between"),
])
def test_bad_config_fails_with_the_variable_named(env, message):
    with pytest.raises(ConfigError, match=message):
        automation_config(env)
        pipeline_config(env)


def test_status_for_a_domain_error_carries_error_info_and_trace_id():
    status = status_for(UnknownToolError("tool 'x' is not in the catalogue", tool="x"), "t-1")
    assert status.code == grpc.StatusCode.NOT_FOUND
    trailers = dict(status.trailing_metadata)
    assert trailers[TRACE_ID_KEY] == "t-1"
    proto = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    proto.details[0].Unpack(info)
    assert (proto.code, info.domain, info.reason) == (5, "opsconductor", "UNKNOWN_TOOL")
    assert dict(info.metadata) == {"tool": "x", "trace_id": "t-1"}
