"""The running stack's control socket: `opsconductor canary` asks the supervisor, which owns
the processes, to restart a pool or promote the canary. A Unix socket in the state directory,
readable by its owner only."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Client, Listener
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[dict, Callable[[str], None]], None]


def serve(path: Path, handle: Handler) -> Listener:
    """Answers commands on a daemon thread; each gets progress lines, then done or an error."""
    if path.exists():
        path.unlink()
    old_umask = os.umask(0o077)
    try:
        listener = Listener(str(path), family="AF_UNIX")
    finally:
        os.umask(old_umask)

    def loop() -> None:
        while True:
            try:
                connection = listener.accept()
            except OSError:
                return  # the listener was closed
            with connection:
                try:
                    command = connection.recv()
                    handle(command, connection_progress(connection))
                    connection.send({"done": True})
                except Exception as error:  # the caller gets the message; the stack goes on
                    _LOGGER.exception("control command failed")
                    connection.send({"error": str(error)})

    threading.Thread(target=loop, name="control", daemon=True).start()
    return listener


def connection_progress(connection) -> Callable[[str], None]:
    """Sends each progress line to the client as it happens."""
    return lambda line: connection.send({"progress": line})


def send(path: Path, command: dict) -> Iterator[str]:
    """Sends `command`; yields progress lines; raises RuntimeError with the supervisor's error."""
    with Client(str(path), family="AF_UNIX") as connection:
        connection.send(command)
        while True:
            reply = connection.recv()
            if "progress" in reply:
                yield reply["progress"]
            elif "error" in reply:
                raise RuntimeError(reply["error"])
            else:
                return
