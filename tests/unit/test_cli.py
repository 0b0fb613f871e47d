"""The `opsconductor` command's conventions, in-process (no stack runs): --version, --help of
every subcommand with examples and exit codes, one-line exit-2 answers to bad flag values,
and an exit-code entry for every command."""

from __future__ import annotations

import argparse

import pytest

from opsconductor.cli import commands, exits
from services.common.config import package_version


def subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path the parser knows: ("up",), ("canary", "set"), …"""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += subcommands(sub, (*prefix, name))
    return found


ALL = subcommands(commands.build_parser())


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = commands.run(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_walk_finds_every_command():
    assert {("up",), ("status",), ("down",), ("canary",), ("canary", "promote"), ("gate",), ("bench",),
            ("automation",), ("smoke",), ("frontend-check",)} <= set(ALL)


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"opsconductor {package_version()}"


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help_of_every_subcommand_shows_examples_and_exit_codes(path, capsys):
    code, out, err = run([*path, "--help"], capsys)
    assert code == 0, err
    assert "usage: opsconductor " + " ".join(path) in out
    examples = out.split("examples:\n", 1)[1].split("\n\n", 1)[0]
    assert f"opsconductor {' '.join(path[:1])}" in examples, out  # at least one example of the command
    assert "exit codes:" in out and "  130  " in out or path in (("automation",), ("pipeline",)), out


def test_every_command_has_an_exit_code_entry():
    leaves = {" ".join(path) for path in ALL if not any(other[:len(path)] == path and other != path for other in ALL)}
    assert leaves <= set(exits.EXIT_CODES), leaves - set(exits.EXIT_CODES)
    assert all(exits.USAGE in codes for codes in exits.EXIT_CODES.values())


BAD_VALUES = [
    # ports out of range, or clashing
    (["up", "--gateway-port", "99999"], "--gateway-port"),
    (["up", "--page-port", "0"], "--page-port"),
    (["up", "--envoy-admin-port", "-5"], "--envoy-admin-port"),
    (["up", "--prometheus-port", "http"], "--prometheus-port"),
    (["up", "--stable-base-port", "70000"], "--stable-base-port"),
    (["up", "--canary-base-port", "65530", "--canary-replicas", "3"], "port 65536"),
    (["up", "--stable-base-port", "3000"], "port 3000"),
    (["up", "--gateway-port", "9901"], "port 9901"),
    # negative or zero durations
    (["up", "--scrape-interval", "-1"], "--scrape-interval"),
    (["up", "--restart-backoff", "0"], "--restart-backoff"),
    (["gate", "local", "-2"], "minutes"),
    (["gate", "--interval", "-30"], "--interval"),
    (["gate", "--max-p99", "0"], "--max-p99"),
    (["gate", "--window", "-5m"], "--window"),
    (["canary", "rollout", "--interval", "-1"], "--interval"),
    (["canary", "rollout", "--hold-timeout", "nan"], "--hold-timeout"),
    (["bench", "--duration", "-3"], "--duration"),
    (["status", "--logs", "-1"], "--logs"),
    # unknown pools and choices
    (["automation", "--pool", "purple"], "--pool"),
    (["pipeline", "--pool", "Stable"], "--pool"),
    (["canary", "bypass", "maybe"], "state"),
    (["up", "--log-format", "xml"], "--log-format"),
    # bad percentages and counts
    (["canary", "set", "101"], "PERCENT"),
    (["canary", "set", "12.5"], "PERCENT"),
    (["canary", "set", "-1"], "PERCENT"),
    (["canary", "set", "ten"], "PERCENT"),
    (["canary", "rollout", "--steps", "10,200"], "--steps"),
    (["canary", "rollout", "--steps", "50,10"], "--steps"),
    (["gate", "--max-error-rate", "5"], "--max-error-rate"),
    (["up", "--stable-replicas", "0"], "--stable-replicas"),
    (["up", "--canary-replicas", "21"], "between 1 and 20"),
    (["up", "--crash-loop-limit", "-1"], "--crash-loop-limit"),
    # missing files and directories
    (["up", "--jwt-jwks", "/nonexistent/jwks.json"], "--jwt-jwks"),
    (["up", "--canary-source", "/nonexistent/checkout"], "--canary-source"),
    (["smoke", "--config", "/nonexistent/environments.toml"], "--config"),
    (["gate", "staging", "--config", "/nonexistent.toml"], "--config"),
    (["bench", "--baseline-source", "/nonexistent"], "--baseline-source"),
    # no such environment
    (["smoke", "nowhere"], "unknown environment"),
    # the golden metrics' window and pace, the certificates' lifetime and files
    (["stat", "--window", "soon"], "--window"),
    (["stat", "--window", "0s"], "--window"),
    (["canary", "status", "--window", "-5m"], "--window"),
    (["stat", "--interval", "-1"], "--interval"),
    (["up", "--cert-lifetime", "2"], "--cert-lifetime"),
    (["up", "--cert-lifetime", "-60"], "--cert-lifetime"),
    (["up", "--tls", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"], "--tls-cert"),
    (["certs", "show", "-o", "xml"], "--output"),
    # traces: the sampling share, the collector's address, trace ids and counts
    (["up", "--trace-sample", "150"], "--trace-sample"),
    (["up", "--trace-sample", "-1"], "--trace-sample"),
    (["up", "--trace-sample", "lots"], "--trace-sample"),
    (["up", "--trace-sample", "nan"], "--trace-sample"),
    (["up", "--otlp-endpoint", "collector:4317"], "--otlp-endpoint"),
    (["up", "--otlp-endpoint", "https://c:4317"], "--otlp-endpoint"),
    (["up", "--otlp-endpoint", "http://c"], "--otlp-endpoint"),
    (["up", "--traces-otlp-port", "0"], "--traces-otlp-port"),
    (["up", "--traces-query-port", "9090"], "port 9090"),
    (["trace", "not-an-id"], "TRACE_ID"),
    (["trace", "--slowest", "0"], "--slowest"),
    (["trace", "--slowest", "101"], "--slowest"),
    (["trace"], "TRACE_ID or --slowest"),
]


@pytest.mark.parametrize(("argv", "named"), BAD_VALUES, ids=lambda value: " ".join(value) if isinstance(value, list)
                         else "")
def test_a_bad_flag_value_gets_one_line_and_exit_code_2(argv, named, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCONDUCTOR_STATE_DIR", str(tmp_path))  # no stack, and nothing may start
    code, out, err = run(argv, capsys)
    assert code == exits.USAGE, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert named in lines[0] and lines[0].startswith("opsconductor"), lines[0]
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def test_commands_that_need_a_stack_say_there_is_none(capsys, tmp_path):
    for argv, code in ((["status"], exits.NO_STACK), (["canary", "status"], exits.NO_STACK),
                       (["canary", "promote"], exits.NO_STACK), (["smoke"], exits.NO_STACK),
                       (["stat"], exits.NO_STACK), (["certs", "rotate"], exits.NO_STACK),
                       (["gate", "local", "0.1"], exits.NO_STACK), (["trace", "--slowest", "5"], exits.NO_STACK),
                       (["down"], exits.OK)):
        got, out, err = run([*argv, "--state-dir", str(tmp_path)], capsys)
        assert got == code, (argv, out, err)
        assert "no stack is running from" in out + err and "Traceback" not in err


def test_status_honours_the_state_dir_variable(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCONDUCTOR_STATE_DIR", str(tmp_path / "elsewhere"))
    code, out, _ = run(["status", "-o", "json"], capsys)
    assert code == exits.NO_STACK and str(tmp_path / "elsewhere") in out and '"running": false' in out
