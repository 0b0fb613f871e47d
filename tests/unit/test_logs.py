"""Logs for people and for programs: readable lines on a terminal (coloured unless NO_COLOR),
JSON lines otherwise; the same for the services and for what `opsconductor up` streams."""

from __future__ import annotations

import io
import json
import logging

import pytest

from opsconductor.stack.console import Console
from services.common import logs
from services.common.config import ConfigError, log_format, pipeline_config

ENTRY = {"time": "2026-12-01T10:00:01.250000+00:00", "level": "WARNING", "logger": "services.x",
         "message": "pipeline readiness", "service": "automation", "serving": False, "target": "127.0.0.1:8010"}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_json_entry_reads_as_one_line_with_its_fields():
    line = logs.render_text(ENTRY, colour=False, source="stable-1-automation")
    assert "WARNING" in line and "stable-1-automation" in line and "pipeline readiness" in line
    assert "serving=false" in line and "target=127.0.0.1:8010" in line and "\033[" not in line
    assert "services.x" not in line  # the logger name is noise at a terminal


def test_colour_marks_the_level_and_the_source():
    line = logs.render_text(ENTRY, colour=True, source="envoy")
    assert "\033[33m" in line  # WARNING in yellow
    assert f"\033[{logs.source_colour('envoy')}m" in line


@pytest.mark.parametrize(("log_format_", "stream", "text"), [
    ("auto", Terminal(), True), ("auto", io.StringIO(), False), ("json", Terminal(), False),
    ("text", io.StringIO(), True)])
def test_auto_means_readable_on_a_terminal_only(log_format_, stream, text):
    assert logs.use_text(log_format_, stream) is text


def test_a_service_logs_json_lines_or_readable_ones(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for log_format_, stream, no_color in (("json", io.StringIO(), False), ("auto", Terminal(), False),
                                              ("auto", Terminal(), True)):
            logs.configure("INFO", "pipeline", log_format_, no_color=no_color, stream=stream)
            logging.getLogger("t").info("selector evaluated", extra={"cases": 24})
            written = stream.getvalue().strip()
            if log_format_ == "json":
                assert json.loads(written)["cases"] == 24
            else:
                assert "selector evaluated" in written and "cases=24" in written
                assert ("\033[" in written) is not no_color
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


def test_log_format_and_no_color_are_read_with_the_config():
    assert log_format({}) == "auto" and log_format({"LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        log_format({"LOG_FORMAT": "xml"})
    assert pipeline_config({"NO_COLOR": "1"}).common.no_color
    assert not pipeline_config({}).common.no_color


def test_up_streams_components_as_json_lines_when_not_at_a_terminal():
    out = io.StringIO()
    console = Console(out, "auto")
    console.component_line("canary-1-pipeline", json.dumps(ENTRY))
    console.component_line("envoy", "[warning] plain text from envoy")
    console.message("canary-1-pipeline exited (signal 9 (SIGKILL)); restarting in 0.5 s", "WARNING")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["component"] == "canary-1-pipeline" and first["serving"] is False
    assert second == {**second, "component": "envoy", "message": "[warning] plain text from envoy"}
    assert third["component"] == "supervisor" and third["level"] == "WARNING"


def test_up_streams_readable_lines_at_a_terminal_without_colour_under_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    out = Terminal()
    console = Console(out, "auto")
    console.component_line("stable-1-pipeline", json.dumps(ENTRY))
    assert "stable-1-pipeline" in out.getvalue() and "\033[" not in out.getvalue()
    monkeypatch.delenv("NO_COLOR")
    coloured = Terminal()
    Console(coloured, "auto").message("the mesh is up")
    assert "\033[" in coloured.getvalue()


def test_a_closed_terminal_does_not_stop_the_console():
    class Closed(io.StringIO):
        def write(self, text):
            raise OSError(5, "Input/output error")

    console = Console(Closed(), "json")
    console.message("stopping the mesh …")  # no exception
    assert console.broken
