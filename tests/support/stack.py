"""The whole mesh started the way users start it (`opsconductor up --detach`), on free ports."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from opsconductor.automation.v1 import automation_pb2_grpc
from opsconductor.identity import operator
from opsconductor.stack import control
from opsconductor.stack.ports import free_port, free_port_block
from opsconductor.stack.processes import BIN
from opsconductor.stack.state import ReplicaState, StackState, load


@dataclass
class RunningStack:
    state_dir: Path
    ports: dict[str, int]
    extra_args: list[str] = field(default_factory=list)

    @property
    def state(self) -> StackState:
        return load(self.state_dir)

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.ports['gateway']}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway}"

    @property
    def page_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['page']}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['envoy-admin']}"

    @property
    def traces_url(self) -> str:
        """The trace store's query API."""
        return f"http://127.0.0.1:{self.ports['traces-query']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    def service_channel(self, replica: ReplicaState, service: str) -> grpc.Channel:
        """A direct channel to one service of the stack, as the operator (mTLS under `up`)."""
        return operator.channel(self.state_dir, getattr(replica, service), replica.pool, service)

    def automation_stub(self, replica: ReplicaState) -> tuple[grpc.Channel, automation_pb2_grpc.AutomationServiceStub]:
        channel = self.service_channel(replica, "automation")
        return channel, automation_pb2_grpc.AutomationServiceStub(channel)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs `opsconductor ARGS --state-dir …`."""
        return subprocess.run([str(BIN / "opsconductor"), *args, "--state-dir", str(self.state_dir)],
                              capture_output=True, text=True, timeout=timeout)

    def control(self, command: str, **args: object) -> dict:
        """Has the supervisor carry out `command` (waiting for any change in progress); returns
        the finished operation, or fails the test with the supervisor's answer."""
        events = list(control.request(Path(self.state.control_socket),
                                      {"op": "run", "command": command, "args": args, "wait": True}))
        finished = [event["operation"] for event in events if event["event"] == "finished"]
        assert finished and finished[0]["state"] == "succeeded", events
        return finished[0]

    def stop_components(self, *names: str) -> None:
        self.control("stop-components", components=list(names))

    def start_components(self, *names: str) -> None:
        self.control("start-components", components=list(names))

    def pipelines(self) -> list[str]:
        return [name for name in self.state.components if name.endswith("-pipeline")]


def free_block(count: int) -> int:
    """The first of `count` consecutive ports that are free right now (never one free_port gave)."""
    return free_port_block(count)


def stack_ports() -> dict[str, int]:
    return {name: free_port() for name in ("gateway", "page", "prometheus", "envoy-admin", "envoy-stats",
                                           "traces-otlp", "traces-query", "traces-metrics")}


def up_argv(state_dir: Path, ports: dict[str, int], *extra: str) -> list[str]:
    """`opsconductor up` on `ports`, the services on free ports unless `extra` gives base ports."""
    argv = [str(BIN / "opsconductor"), "up", "--state-dir", str(state_dir)]
    if not any(arg in ("--stable-base-port", "--canary-base-port") for arg in extra):
        argv += ["--service-ports", "auto"]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    return argv + list(extra)


def start_stack(state_dir: Path, *extra: str) -> RunningStack:
    ports = stack_ports()
    result = subprocess.run(up_argv(state_dir, ports, "--detach", *extra), capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return RunningStack(state_dir, ports, list(extra))


def stop_stack(stack: RunningStack) -> None:
    result = stack.cli("down")
    assert result.returncode == 0, result.stderr
