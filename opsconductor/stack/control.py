"""The running stack's control channel: a Unix socket in the state directory (its owner only),
one JSON object per line each way. A command that changes the stack becomes an operation the
supervisor runs (opsconductor/stack/operations.py); a connection only submits it and follows
its progress, so a client that goes away — Ctrl-C, a closed terminal, a killed script — leaves
the operation and the channel running.

Requests: {"op": "run", "command": KIND, "args": {…}, "wait": false, "follow": true},
{"op": "follow", "id": N}, {"op": "operations"}, {"op": "signal", "command": NAME, "args": {…}}
(a word to the running operation, answered at once: pause, resume or abort a rollout).
Events: busy, waiting, started, progress, alive (a heartbeat while nothing happens), finished,
signalled, error, operations."""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from opsconductor.stack.operations import Busy, Operations, Work
from opsconductor.stack.state import OperationState

_LOGGER = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 64 * 1024
HEARTBEAT_S = 5.0

# A command: its arguments → what it does (a sentence) and the work; ValueError for bad arguments.
Command = Callable[[dict], tuple[str, Work]]
# A signal: its arguments → what it did, at once; ValueError when it does not apply.
Signal = Callable[[dict], dict]


class ControlError(RuntimeError):
    """The supervisor could not be reached, or stopped answering."""


class ControlServer:
    def __init__(self, path: Path, operations: Operations, commands: dict[str, Command],
                 signals: dict[str, Signal] | None = None) -> None:
        self.path, self.operations, self.commands = path, operations, commands
        self.signals = signals or {}
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    def start(self) -> ControlServer:
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        handler = type("Handler", (_Handler,), {"control": self})
        old_umask = os.umask(0o077)
        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(self.path), handler)
        finally:
            os.umask(old_umask)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="control",
                         daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self.path.unlink(missing_ok=True)


class _Handler(socketserver.StreamRequestHandler):
    control: ControlServer

    def handle(self) -> None:
        try:
            self._handle(json.loads(self.rfile.readline(MAX_REQUEST_BYTES)))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; whatever it started goes on
        except (ValueError, TypeError, KeyError) as error:
            self._reply_quietly({"event": "error", "message": f"bad request: {error}"})
        except Exception as error:  # one bad request must not end the channel
            _LOGGER.exception("control request failed")
            self._reply_quietly({"event": "error", "message": str(error)})

    def _send(self, event: dict) -> None:
        self.wfile.write(json.dumps(event, default=str).encode() + b"\n")
        self.wfile.flush()

    def _reply_quietly(self, event: dict) -> None:
        try:
            self._send(event)
        except OSError:
            pass

    def _handle(self, request: dict) -> None:
        operations = self.control.operations
        op = request.get("op")
        if op == "operations":
            current = operations.current()
            self._send({"event": "operations", "current": current and asdict(current)})
        elif op == "follow":
            self._follow(int(request["id"]))
        elif op == "run":
            self._run(request)
        elif op == "signal":
            self._signal(request)
        else:
            self._send({"event": "error", "message": f"unknown request {op!r}"})

    def _run(self, request: dict) -> None:
        kind = request.get("command")
        found = self._handled(self.control.commands, request, "command")
        if found is None:
            return
        description, work = found
        waiting = False
        while True:
            if waiting and self._client_gone():
                return  # nobody wants it any more: it is never started
            try:
                operation = self.control.operations.submit(kind, description, work)
                break
            except Busy as busy:
                if not request.get("wait"):
                    self._send({"event": "busy", "message": str(busy), "operation": asdict(busy.running)})
                    return
                if not waiting:
                    self._send({"event": "waiting", "message": f"waiting: {busy}"})
                    waiting = True
                self.control.operations.wait_idle(0.5)
        self._send({"event": "started", "operation": asdict(operation)})
        if request.get("follow", True):
            self._follow(operation.id)

    def _signal(self, request: dict) -> None:
        result = self._handled(self.control.signals, request, "signal")
        if result is not None:
            self._send({"event": "signalled", "result": result})

    def _handled(self, table: dict, request: dict, what: str):
        """What the handler `request` names in `table` returns for its args; None once the
        client has been told why there is none (an unknown name, bad args)."""
        name = request.get("command")
        if name not in table:
            self._send({"event": "error", "message": f"unknown {what} {str(name)[:64]!r}"})
            return None
        try:
            return table[name](dict(request.get("args") or {}))
        except ValueError as error:
            self._send({"event": "error", "message": str(error)})
            return None

    def _follow(self, operation_id: int) -> None:
        if self.control.operations.get(operation_id) is None:
            self._send({"event": "error", "message": f"no operation {operation_id}"})
            return
        for item in self.control.operations.follow(operation_id, HEARTBEAT_S):
            if item is None:
                self._send({"event": "alive"})
            elif isinstance(item, str):
                self._send({"event": "progress", "line": item})
            else:
                self._send({"event": "finished", "operation": asdict(item)})

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""


def request(path: Path, message: dict, timeout: float = 4 * HEARTBEAT_S) -> Iterator[dict]:
    """Sends `message` and yields each event the supervisor answers, until it closes the
    connection; raises ControlError when it cannot be reached or stays silent for `timeout` s."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as error:
            raise ControlError(f"the supervisor's control socket {path} does not answer: {error}") from None
        reader = sock.makefile("rb")
        while True:
            try:
                line = reader.readline()
            except TimeoutError:
                raise ControlError(f"the supervisor said nothing for {timeout:g} s") from None
            except OSError as error:
                raise ControlError(f"the control connection broke: {error}") from None
            if not line:
                return
            event = json.loads(line)
            if event.get("event") != "alive":
                yield event


def operation_of(event: dict) -> OperationState:
    """The OperationState an event carries."""
    return OperationState(**event["operation"])
