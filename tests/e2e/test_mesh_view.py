"""The mesh view (/mesh) in headless Chromium and `opsconductor stat` on the whole mesh, with
traffic on both pools: every chart has points, the figures the page shows are what the same
queries give when run against Prometheus at the same instant, and the terminal shows the same
golden metrics (from Prometheus, from /metrics, redrawn with --watch). Screenshots at desktop
and narrow widths go to test-artifacts/."""

from __future__ import annotations

import json
import math
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from opsconductor.automation.v1 import automation_pb2
from opsconductor.cli import exits
from opsconductor.observability import view
from opsconductor.observability.prometheus import query
from opsconductor.release.browser import chromium
from opsconductor.stack.ports import free_port
from opsconductor.stack.processes import BIN
from tests.support.procs import wait_for
from tests.support.traffic import PING, Traffic

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHARTS = ("share", "requestRate", "successRatio", "latency-stable", "latency-canary", "healthyHosts")
COMPARED = ("share", "requestRate", "successRatio", "p50", "p95", "p99")
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def traffic(mesh_stack) -> Iterator[None]:
    """Calls on both pools, calls the selector answers (no tool named), and caller mistakes (an
    unknown tool) so errors have reasons."""
    canary = (("x-canary", "always"),)
    stable = (("x-canary", "never"),)
    unknown = automation_pb2.ExecuteRequest(input="ping", tool="no_such_tool")
    selected = automation_pb2.ExecuteRequest(input="localhost")
    with Traffic(mesh_stack.gateway, 15, PING, stable), Traffic(mesh_stack.gateway, 10, PING, canary), \
            Traffic(mesh_stack.gateway, 3, unknown, canary), Traffic(mesh_stack.gateway, 3, unknown, stable), \
            Traffic(mesh_stack.gateway, 2, selected):
        prometheus = mesh_stack.prometheus_url
        rate = view.view_queries()[3].expr.replace(view.WINDOW, "1m")
        wait_for(lambda: {s.labels["pool"] for s in query(prometheus, rate) if s.value > 0} == {"stable", "canary"},
                 60, "Prometheus to see calls on both pools")
        yield


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _open(browser: Browser, url: str, width: int) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(url)
    expect(page.locator("#mesh")).to_have_attribute("data-ready", "true", timeout=20_000)
    return page, problems


def _wait_all_charts_drawn(page: Page) -> None:
    for name in CHARTS:
        expect(page.locator(f'figure[data-chart="{name}"]')).to_have_attribute("data-state", "ok", timeout=30_000)


# One consistent read of the page: the evaluation time and every pool's figures together.
_READ = """() => {
  const root = document.getElementById("mesh");
  const pools = {};
  for (const row of document.querySelectorAll("#pools-body tr")) {
    const cells = {};
    for (const cell of row.querySelectorAll("td[data-field]")) cells[cell.dataset.field] = cell.dataset.value ?? null;
    pools[row.dataset.pool] = { state: row.dataset.state, cells };
  }
  const charts = {};
  for (const chart of document.querySelectorAll("figure.chart")) {
    charts[chart.dataset.chart] = Number(chart.dataset.points);
  }
  return { at: Number(root.dataset.at), window: root.dataset.rateWindow, pools, charts };
}"""


def test_every_chart_has_points_and_the_figures_are_prometheus_s(browser, mesh_stack, traffic) -> None:
    page, problems = _open(browser, f"{mesh_stack.page_url}/mesh", 1280)
    try:
        _wait_all_charts_drawn(page)
        seen = page.evaluate(_READ)
        assert all(seen["charts"][name] > 0 for name in CHARTS), seen["charts"]
        expressions = {v.name: v.expr.replace(view.WINDOW, seen["window"]) for v in view.view_queries()}
        for name in COMPARED:
            # The same query, run against Prometheus at the instant the page evaluated it.
            truth = {s.labels["pool"]: s.value for s in query(mesh_stack.prometheus_url, expressions[name],
                                                              at=seen["at"])}
            for pool in ("stable", "canary"):
                shown = seen["pools"][pool]["cells"][name]
                assert shown is not None and not math.isnan(truth[pool]), (name, pool, shown, truth)
                assert float(shown) == pytest.approx(truth[pool], rel=1e-6), (name, pool)
        assert {pool["state"] for pool in seen["pools"].values()} == {"ok"}
        # Caller mistakes are listed by reason, each with trace ids of recent calls.
        unknown_tool = page.locator('#errors-body tr[data-reason="UNKNOWN_TOOL"]')
        expect(unknown_tool.first).to_be_visible(timeout=20_000)
        expect(unknown_tool.first.locator("td").nth(2)).to_have_text("caller mistake")
        expect(unknown_tool.first.locator(".trace-id").first).to_be_visible(timeout=20_000)
        # `up` runs the trace store, so config.json says "traces": true and each id links to its
        # timeline in the Exec Sandbox (shortened on screen, whole in its title and link).
        links = unknown_tool.locator("a.trace-id")
        ids = [links.nth(i).get_attribute("title") or "" for i in range(links.count())]
        assert ids and all(TRACE_ID.match(text) for text in ids), ids
        assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [f"./?trace={i}" for i in ids]
        assert unknown_tool.locator("code.trace-id").count() == 0
        expect(page.locator("#rollout-headline")).to_have_text("no rollout running")
        expect(page.locator("#tools li").first).not_to_have_text("no selections yet")
        for label in ("15 m", "1 h"):
            page.get_by_role("button", name=label).click()
            expect(page.locator("#mesh")).to_have_attribute("data-range", label, timeout=10_000)
        _wait_all_charts_drawn(page)
        assert problems == []
    finally:
        page.close()


def test_without_a_trace_store_ids_are_shown_not_linked(browser, mesh_stack, traffic) -> None:
    # The page server of a stack without a store (`up --trace-sample off`, or compose's nginx)
    # serves config.json without "traces": played here by answering that request differently.
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.route("**/config.json", lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps({"gatewayUrl": mesh_stack.gateway_url})))
        page.goto(f"{mesh_stack.page_url}/mesh")
        expect(page.locator("#mesh")).to_have_attribute("data-ready", "true", timeout=20_000)
        unknown_tool = page.locator('#errors-body tr[data-reason="UNKNOWN_TOOL"]')
        expect(unknown_tool.first.locator(".trace-id").first).to_be_visible(timeout=20_000)
        ids = unknown_tool.locator(".trace-id").all_text_contents()
        assert ids and all(TRACE_ID.match(text) for text in ids), ids
        assert page.locator("a.trace-id").count() == 0
    finally:
        page.close()


def test_the_view_fits_a_narrow_screen(browser, mesh_stack, traffic) -> None:
    page, problems = _open(browser, f"{mesh_stack.page_url}/mesh", 390)
    try:
        _wait_all_charts_drawn(page)
        # Charts fold to one column and tables into labelled cards: nothing runs off the screen.
        widths = page.evaluate(
            "() => [...document.querySelectorAll('figure.chart')].map(f => f.getBoundingClientRect().right)")
        assert max(widths) <= 390, widths
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        assert problems == []
    finally:
        page.close()


def test_the_exec_sandbox_links_to_the_mesh_view(browser, mesh_stack) -> None:
    page = browser.new_page()
    try:
        page.goto(mesh_stack.page_url)
        page.locator("#mesh-link").click()
        expect(page).to_have_url(f"{mesh_stack.page_url}/mesh")
        expect(page.locator("#mesh")).to_have_attribute("data-ready", "true", timeout=20_000)
    finally:
        page.close()


# --- the terminal ------------------------------------------------------------------------------

def _stat(mesh_stack, *args: str) -> dict:
    result = mesh_stack.cli(*args, "-o", "json", timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("command", [("stat",), ("canary", "status")])
def test_stat_and_canary_status_show_the_same_golden_metrics(mesh_stack, traffic, command) -> None:
    report = _stat(mesh_stack, *command, "--window", "30s")
    assert report["source"].startswith("Prometheus") and report["window"] == "30s"
    rows = {row["name"]: row for row in report["rows"]}
    assert set(rows) == {"stable", "canary"}
    for row in rows.values():
        assert row["state"] == "ok" and row["rps"] > 0 and row["hosts"] == row["healthy_hosts"] == 1, row
        # Caller mistakes (the unknown tool) are not failures.
        assert row["success_ratio"] == 1.0 and 0 < row["p50_s"] <= row["p95_s"] <= row["p99_s"], row
    assert rows["stable"]["weight"] + rows["canary"]["weight"] == 100


def test_stat_reads_each_process_s_metrics_without_prometheus(mesh_stack, traffic) -> None:
    report = _stat(mesh_stack, "stat", "--replicas", "--source", "metrics")
    assert report["source"].startswith("/metrics")
    rows = {row["name"]: row for row in report["rows"]}
    assert set(rows) == {"stable-1", "canary-1"}
    assert all(row["rps"] > 0 and row["success_ratio"] == 1.0 and row["state"] == "ok" for row in rows.values()), rows
    # A Prometheus that does not answer: the same figures from /metrics, and a line saying so.
    report = _stat(mesh_stack, "stat", "--prometheus", f"http://127.0.0.1:{free_port()}")
    assert report["source"].startswith("/metrics") and "not answering" in report["problems"][0]
    assert all(row["rps"] is not None for row in report["rows"])


def test_stat_watch_redraws_in_place_and_ends_on_ctrl_c(mesh_stack, traffic) -> None:
    leader, follower = pty.openpty()
    argv = [str(BIN / "opsconductor"), "stat", "--watch", "--interval", "0.5", "--state-dir", str(mesh_stack.state_dir)]
    child = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, close_fds=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(follower)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while output.count(b"\x1b[H") < 3 and time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                output += os.read(leader, 65536)
        assert output.count(b"\x1b[H") >= 3, output[-2000:]
        child.send_signal(signal.SIGINT)
        assert child.wait(10) == 130
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
        os.close(leader)
    frame = output.rsplit(b"\x1b[H", 1)[1].decode()
    assert "NAME" in frame and "stable" in frame and "canary" in frame and "Traceback" not in output.decode()


def test_stat_refuses_a_bad_window_and_a_missing_stack_in_one_line(mesh_stack, tmp_path) -> None:
    bad = mesh_stack.cli("stat", "--window", "soon")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "window" in bad.stderr
    missing = subprocess.run([str(BIN / "opsconductor"), "stat", "--state-dir", str(tmp_path)], capture_output=True,
                             text=True, timeout=30)
    assert missing.returncode == exits.NO_STACK and "no stack is running" in missing.stderr


def test_screenshots_at_desktop_and_narrow_widths(browser, mesh_stack, traffic) -> None:
    """Last in the module, so the charts hold a minute or so of traffic when they are taken."""
    ARTIFACTS.mkdir(exist_ok=True)
    for name, width in (("mesh-desktop.png", 1280), ("mesh-narrow.png", 390)):
        page, problems = _open(browser, f"{mesh_stack.page_url}/mesh", width)
        try:
            _wait_all_charts_drawn(page)
            expect(page.locator('figure[data-chart="requestRate"]')).to_have_attribute(
                "data-points", re.compile(r"^(?:[2-9]\d|\d{3,})$"), timeout=60_000)  # 20+ points of two lines
            page.screenshot(path=str(ARTIFACTS / name), full_page=True)
            assert problems == []
        finally:
            page.close()
