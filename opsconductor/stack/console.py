"""What `opsconductor up` prints: the supervisor's own messages and every component's log lines,
readable on a terminal (coloured unless NO_COLOR is set), JSON lines otherwise or when asked
(`--log-format`). Output that can no longer be written (the terminal was closed) is dropped
rather than allowed to stop the supervisor while it cleans up."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from services.common.logs import render_text, use_text

SUPERVISOR = "supervisor"
SKIPPED_LOGS = ("envoy-access.log",)  # every call's line: read it as a file, not in the stream


class Console:
    def __init__(self, stream: IO | None = None, log_format: str = "auto", no_color: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.text = use_text(log_format, self.stream)
        no_color = bool(os.environ.get("NO_COLOR")) if no_color is None else no_color
        self.colour = self.text and not no_color and _isatty(self.stream)
        self.width = len(SUPERVISOR)
        self.broken = False
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed terminal or pipe: keep going without output
                self.broken = True

    def message(self, text: str, level: str = "INFO", **fields: Any) -> None:
        """One of the supervisor's own lines."""
        entry = {"time": datetime.now().astimezone().isoformat(), "level": level, "component": SUPERVISOR,
                 "message": text, **fields}
        self._write(render_text(entry, self.colour, SUPERVISOR, self.width) if self.text else json.dumps(entry))

    def component_line(self, component: str, line: str) -> None:
        """One line a component logged (its JSON, or plain text such as Envoy's)."""
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            entry = {"time": datetime.now().astimezone().isoformat(), "level": "INFO", "message": line}
        if self.text:
            self._write(render_text(entry, self.colour, component, self.width))
        else:
            self._write(json.dumps({**entry, "component": component}))

    def endpoints(self, rows: list[tuple[str, str]]) -> None:
        """The endpoint table once every component is ready."""
        if not self.text:
            self.message("the mesh is up", endpoints=dict(rows))
            return
        width = max(len(name) for name, _ in rows)
        lines = ["", "the mesh is up:", *(f"  {name:<{width}}  {address}" for name, address in rows), ""]
        self._write("\n".join(lines))

    def handler(self) -> logging.Handler:
        """A logging handler that prints records as the supervisor's lines."""
        console = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                # For a program reading the JSON lines: which component the line is about.
                about = getattr(record, "component", None)
                fields = {"subject": about} if about and not console.text else {}
                console.message(record.getMessage(), record.levelname, **fields)

        return _Handler()

    def follow_logs(self, logs: Path, stop: threading.Event, names: list[str]) -> None:
        """Prints every component's new log lines until `stop` is set (run it on a thread)."""
        self.width = max([self.width, *map(len, names)])
        offsets: dict[Path, int] = {}
        while not stop.wait(0.2):
            for path in sorted(logs.glob("*.log")):
                if path.name in SKIPPED_LOGS:
                    continue
                with open(path, "rb") as log:
                    log.seek(offsets.get(path, 0))
                    data = log.read()
                complete = data.rfind(b"\n") + 1
                offsets[path] = offsets.get(path, 0) + complete
                for line in data[:complete].decode(errors="replace").splitlines():
                    if line.strip():
                        self.component_line(path.stem, line)


def _isatty(stream: IO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
