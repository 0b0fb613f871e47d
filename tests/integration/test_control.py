"""The control channel on a real Unix socket: clients that go away leave the operation and the
channel running, two changes at once are serialised ("busy", or waiting), a waiting client
that leaves never gets its change run, and bad requests are answered without harm."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from opsconductor.stack import control, state
from opsconductor.stack.operations import Operations


class Gate:
    """The work of a "slow" command: it says a step, then waits until the test lets it go."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.ran: list[str] = []

    def command(self, args: dict):
        name = args.get("name", "slow")

        def work(say):
            say(f"{name}: step 1")
            self.go.wait(20)
            self.ran.append(name)
            say(f"{name}: step 2")
            return {"name": name}

        return f"the {name} change", work


@pytest.fixture
def channel(tmp_path) -> Iterator[tuple[control.ControlServer, Gate]]:
    gate = Gate()

    def quick(args: dict):
        if not isinstance(args.get("value"), int):
            raise ValueError("value must be a whole number")
        return "a quick change", lambda say: {"value": args["value"]}

    server = control.ControlServer(tmp_path / "control.sock", Operations(tmp_path),
                                   {"slow": gate.command, "quick": quick}).start()
    yield server, gate
    gate.go.set()
    server.operations.wait_idle(10)
    server.close()


def events(server: control.ControlServer, message: dict) -> list[dict]:
    return list(control.request(server.path, message))


class Client:
    """A client on a raw socket, to read its events one by one and to go away mid-way."""

    def __init__(self, server: control.ControlServer, message: dict) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(server.path))
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        self.reader = self.sock.makefile("rb")

    def next(self) -> dict:
        return json.loads(self.reader.readline())

    def leave(self) -> None:
        self.reader.close()  # the socket stays open while a file made from it is
        self.sock.close()


def test_a_client_that_goes_away_leaves_the_operation_and_the_channel_running(channel):
    server, gate = channel
    client = Client(server, {"op": "run", "command": "slow"})
    assert client.next()["event"] == "started"
    assert client.next() == {"event": "progress", "line": "slow: step 1"}
    client.leave()  # Ctrl-C, a closed terminal, a killed script
    gate.go.set()
    assert server.operations.wait_idle(10)
    assert state.read_operations(server.operations.state_dir)[-1].state == "succeeded" and gate.ran == ["slow"]
    # The channel still answers, at once.
    answered = events(server, {"op": "run", "command": "quick", "args": {"value": 3}})
    assert answered[-1]["event"] == "finished" and answered[-1]["operation"]["result"] == {"value": 3}


def test_a_second_change_is_told_busy_and_changes_nothing(channel):
    server, gate = channel
    first = Client(server, {"op": "run", "command": "slow"})
    assert first.next()["event"] == "started"
    busy = events(server, {"op": "run", "command": "quick", "args": {"value": 1}})
    assert [event["event"] for event in busy] == ["busy"]
    assert busy[0]["message"].startswith("busy: slow in progress (operation 1")
    gate.go.set()
    first.leave()
    assert server.operations.wait_idle(10)
    assert [op.kind for op in state.read_operations(server.operations.state_dir)] == ["slow"]


def test_a_second_change_that_waits_runs_after_the_first(channel):
    server, gate = channel
    first = Client(server, {"op": "run", "command": "slow", "args": {"name": "first"}})
    assert first.next()["event"] == "started"
    second = Client(server, {"op": "run", "command": "slow", "args": {"name": "second"}, "wait": True})
    waiting = second.next()
    assert waiting["event"] == "waiting" and "busy: slow in progress" in waiting["message"], waiting
    gate.go.set()
    later = [second.next() for _ in range(4)]
    assert [event["event"] for event in later] == ["started", "progress", "progress", "finished"], later
    assert gate.ran == ["first", "second"]
    first.leave()
    second.leave()


def test_a_waiting_client_that_leaves_never_gets_its_change_run(channel):
    server, gate = channel
    first = Client(server, {"op": "run", "command": "slow", "args": {"name": "first"}})
    assert first.next()["event"] == "started"
    second = Client(server, {"op": "run", "command": "slow", "args": {"name": "second"}, "wait": True})
    assert second.next()["event"] == "waiting"
    second.leave()
    gate.go.set()
    assert server.operations.wait_idle(10)
    # Nothing to wait *for*: the change must not happen. The waiter looks twice a second, so
    # within a second it would have started it.
    threading.Event().wait(1.0)
    assert gate.ran == ["first"] and len(state.read_operations(server.operations.state_dir)) == 1
    first.leave()


def test_a_follower_that_comes_later_gets_the_whole_story(channel):
    server, gate = channel
    started = events(server, {"op": "run", "command": "slow", "follow": False})
    operation_id = started[0]["operation"]["id"]
    gate.go.set()
    followed = events(server, {"op": "follow", "id": operation_id})
    assert [e.get("line") for e in followed if e["event"] == "progress"] == ["slow: step 1", "slow: step 2"]
    assert followed[-1]["operation"]["state"] == "succeeded"


@pytest.mark.parametrize("message", [b"not json\n", b'{"op": "run", "command": "rm -rf"}\n', b'{"op": 7}\n',
                                     b'{"op": "run", "command": "quick", "args": {"value": "x"}}\n',
                                     b'{"op": "follow", "id": 99}\n', b"[1, 2]\n", b"{" + b"x" * 100_000 + b"\n"])
def test_bad_requests_are_answered_and_the_channel_goes_on(channel, message):
    server, _ = channel
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(server.path))
        sock.sendall(message)
        answer = json.loads(sock.makefile("rb").readline())
    assert answer["event"] == "error" and answer["message"]
    assert events(server, {"op": "run", "command": "quick", "args": {"value": 1}})[-1]["event"] == "finished"


def test_the_socket_is_its_owners_only(channel):
    server, _ = channel
    assert server.path.stat().st_mode & 0o077 == 0


def test_a_signal_reaches_the_running_operation_at_once_without_being_an_operation(tmp_path):
    gate = Gate()

    def release(args: dict) -> dict:
        if args.get("why") == "none":
            raise ValueError("no rollout is running")
        gate.go.set()
        return {"released": True}

    server = control.ControlServer(tmp_path / "control.sock", Operations(tmp_path), {"slow": gate.command},
                                   {"release": release}).start()
    try:
        client = Client(server, {"op": "run", "command": "slow"})
        assert client.next()["event"] == "started"
        assert events(server, {"op": "signal", "command": "release"}) == [
            {"event": "signalled", "result": {"released": True}}]  # answered while "slow" holds the slot
        assert client.next() == {"event": "progress", "line": "slow: step 1"}
        assert client.next() == {"event": "progress", "line": "slow: step 2"}
        assert events(server, {"op": "signal", "command": "release", "args": {"why": "none"}}) == [
            {"event": "error", "message": "no rollout is running"}]
        [unknown] = events(server, {"op": "signal", "command": "x" * 5000})
        assert unknown["event"] == "error" and unknown["message"].startswith("unknown signal")
        client.leave()
    finally:
        gate.go.set()
        server.operations.wait_idle(10)
        server.close()
