"""What `up` makes of its trace flags: the store or a real backend, the edge's sampling rate,
the OTEL_* environment every service gets, and the store as a supervised component (bad flag
values are in tests/unit/test_cli.py with every other command's)."""

from __future__ import annotations


from opsconductor.cli.commands import build_parser
from opsconductor.cli.up import spec_from_args
from opsconductor.gateway.settings import DEFAULT_SAMPLE_PERCENT
from opsconductor.stack import traces
from opsconductor.stack.components import RestartPolicy
from opsconductor.stack.ports import Ports
from opsconductor.stack.status import PROBES
from services.common.config import tracing_config


def spec(*flags: str):
    return spec_from_args(build_parser().parse_args(["up", *flags]))


def test_by_default_the_local_store_gets_every_span_and_the_edge_samples_the_documented_share():
    trace_spec = spec().traces
    assert trace_spec.local_store and trace_spec.sample_percent == DEFAULT_SAMPLE_PERCENT
    env = traces.service_env(trace_spec, Ports())
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    config = tracing_config(env, "automation")  # what the services will read: valid
    assert (config.sampler, config.sampler_arg) == ("parentbased_traceidratio", DEFAULT_SAMPLE_PERCENT / 100)
    gateway = traces.envoy_tracing(trace_spec, Ports())
    assert gateway.collector == ("127.0.0.1", 4317) and gateway.sample_percent == DEFAULT_SAMPLE_PERCENT


def test_a_real_backend_replaces_the_store():
    trace_spec = spec("--otlp-endpoint", "http://collector.example:4317", "--trace-sample", "100").traces
    assert not trace_spec.local_store
    assert traces.service_env(trace_spec, Ports())["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.example:4317"
    gateway = traces.envoy_tracing(trace_spec, Ports())
    assert (gateway.collector, gateway.discovery, gateway.sample_percent) == (("collector.example", 4317),
                                                                             "STRICT_DNS", 100)


def test_off_means_no_spans_anywhere():
    trace_spec = spec("--trace-sample", "off").traces
    assert not trace_spec.enabled and not trace_spec.local_store
    assert traces.service_env(trace_spec, Ports()) == {"OTEL_SDK_DISABLED": "true"}
    assert traces.envoy_tracing(trace_spec, Ports()) is None


def test_the_tools_never_reach_the_store_or_a_real_backend_s_collector():
    ports = Ports()
    local = spec().traces
    # The store's ports are the stack's own (checked free, in MESH_PORTS through them).
    assert set(traces.required_ports(local, ports).values()) == {ports.traces_otlp, ports.traces_query,
                                                                  ports.traces_metrics}
    assert traces.mesh_ports(local) == set()
    backend = spec("--otlp-endpoint", "http://collector.example:4318").traces
    # Another process's port: never checked free, but still never a tool's destination.
    assert traces.required_ports(backend, ports) == {} and traces.mesh_ports(backend) == {4318}
    assert traces.page_args(backend, ports) == [] and traces.page_args(local, ports) == [
        "--traces-url", f"http://127.0.0.1:{ports.traces_query}"]
    off = spec("--trace-sample", "off").traces
    assert traces.required_ports(off, ports) == {} and traces.mesh_ports(off) == set()


def test_the_store_is_a_supervised_component_of_the_stack_s_state_dir(tmp_path):
    ports = Ports(traces_otlp=24317, traces_query=23210, traces_metrics=29095)
    component = traces.store_spec(ports, tmp_path, RestartPolicy(backoff_s=0.1))
    assert (component.name, component.kind, component.essential) == ("traces", "traces", False)
    assert dict(component.ports) == {"otlp": 24317, "query": 23210, "metrics": 29095}
    assert component.restart.backoff_s == 0.1 and component.argv[-2:] == ("services", "traces")
    assert component.env["TRACES_DB"] == str(tmp_path / "traces.sqlite")
    assert component.env["TRACES_GRPC_ADDR"] == "127.0.0.1:24317"
    assert not component.ready()  # nothing listens there: not ready, and no exception
    assert "traces" in PROBES  # `status` checks it as it checks the others
