"""The Exec Sandbox page in headless Chromium, through Envoy's gRPC-Web, against the whole mesh.

Uses the shared `mesh_stack` fixture (tests/conftest.py: `opsconductor up --detach` on free
ports), which serves web_client/dist when it is built, so this module builds the page first.
From the stack it needs `gateway_url`, `page_url`, `pipelines()`, `stop_components(...)` and
`start_components(...)` (the latter returns once the processes serve again).

Uses the system's Chromium (/usr/bin/chromium) through the Python `playwright` package; no
browser is ever downloaded. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from grpc_health.v1 import health_pb2
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect

from opsconductor.release.browser import chromium
from opsconductor.automation.v1 import automation_pb2
from tests.support.procs import health_status, wait_for
from services.common.names import AUTOMATION_SERVICE

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EXECUTE_PATH = "/opsconductor.automation.v1.AutomationService/Execute"
TRACE_ID = re.compile(r"[0-9a-f]{32}")

pytestmark = pytest.mark.slow


class MeshStack(Protocol):
    """What these tests use of tests.support.stack.RunningStack."""

    @property
    def gateway_url(self) -> str: ...
    @property
    def page_url(self) -> str: ...
    def pipelines(self) -> list[str]: ...
    def stop_components(self, *names: str) -> None: ...
    def start_components(self, *names: str) -> None: ...


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Sandbox:
    """The page plus what the browser reported while it ran."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.page_errors: list[str] = []
        self.csp_violations: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    @property
    def result(self) -> Locator:
        return self.page.locator("#result")

    def choose_tool(self, tool: str) -> None:
        self.page.get_by_label("Tool", exact=True).select_option(tool)

    def run(self, timeout_ms: float = 15_000) -> str:
        """Clicks Execute and returns how that run ended ("done", "error" or "cancelled")."""
        trace = self.page.locator("#trace-id")
        previous = trace.inner_text() if trace.count() else None
        self.page.get_by_role("button", name="Execute", exact=True).click()
        # Every run shows its own new trace id at once, which tells the new run from the last.
        if previous is None:
            expect(trace).to_have_count(1)
        else:
            expect(trace).not_to_have_text(previous)
        return self.wait_finished(timeout_ms)

    def wait_finished(self, timeout_ms: float = 15_000) -> str:
        expect(self.result).to_have_attribute("data-state", re.compile("done|error|cancelled"), timeout=timeout_ms)
        return self.result.get_attribute("data-state") or ""

    def assert_healthy(self) -> None:
        assert self.page_errors == [], self.page_errors
        assert self.csp_violations == [], self.csp_violations


@pytest.fixture
def sandbox(browser: Browser, mesh_stack: MeshStack) -> Iterator[Sandbox]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    sandbox = Sandbox(page)
    page.goto(mesh_stack.page_url)
    app = page.locator("#app")
    expect(app).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(app).to_have_attribute("data-tools", "loaded")
    try:
        yield sandbox
    finally:
        context.close()


def _execute_response(body: bytes) -> automation_pb2.ExecuteResponse:
    """The message in a gRPC-Web response body (a 0x00 data frame comes before the trailers)."""
    flag, length = struct.unpack(">BI", body[:5])
    assert flag == 0, f"first gRPC-Web frame is not a message (flag {flag:#x})"
    return automation_pb2.ExecuteResponse.FromString(body[5:5 + length])


def test_ping_shows_pong_and_the_trace_id_the_server_returned(sandbox: Sandbox, mesh_stack: MeshStack) -> None:
    page = sandbox.page
    page.get_by_label("Input", exact=True).fill("ping")
    with page.expect_response(lambda r: r.url.endswith(EXECUTE_PATH)) as answer:
        page.get_by_label("Input", exact=True).press("Enter")  # the keyboard path
    assert sandbox.wait_finished() == "done"

    response = answer.value
    sent_trace_id = response.request.all_headers()["x-trace-id"]
    on_the_wire = _execute_response(response.body())
    assert TRACE_ID.fullmatch(sent_trace_id)
    assert on_the_wire.output == "pong"
    assert on_the_wire.trace_id == sent_trace_id
    # The page shows the id it made, and it is the one the server returned.
    trace = page.locator("#trace-id")
    expect(trace).to_have_text(sent_trace_id)
    expect(trace).to_have_attribute("data-server-trace-id", on_the_wire.trace_id)
    expect(page.locator("#server-trace-id")).to_have_count(0)  # shown only when they differ

    expect(page.locator("#output")).to_have_text("pong")
    expect(page.locator("#fact-tool")).to_have_text(on_the_wire.tool)
    expect(page.locator("#fact-pool")).to_have_text(on_the_wire.pool)
    assert on_the_wire.pool in ("stable", "canary")
    expect(page.locator("#fact-instance")).to_have_text(on_the_wire.instance)
    expect(page.locator("#fact-duration")).to_have_text(re.compile(r"\d+(\.\d)? ms"))
    expect(page.locator("#fact-round-trip")).to_have_text(re.compile(r"\d+(\.\d)? ms"))
    expect(page.get_by_role("button", name="Execute", exact=True)).to_be_enabled()

    page.get_by_role("button", name="Copy trace id", exact=True).click()
    expect(page.locator("#copy-status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == sent_trace_id

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "exec-sandbox-ping.png"), full_page=True)
    sandbox.assert_healthy()


def test_each_run_shows_the_timeline_of_its_call(sandbox: Sandbox, mesh_stack: MeshStack) -> None:
    page = sandbox.page
    lookups: list[tuple[str, int]] = []
    page.on("response", lambda r: lookups.append((r.url, r.status)) if "/api/traces/" in r.url else None)
    sandbox.choose_tool("tcp_check")
    # An open port of the test's own: every port of the stack is refused to the tools.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        page.get_by_label("Input", exact=True).fill(f"127.0.0.1:{listener.getsockname()[1]}")
        with page.expect_request(lambda r: r.url.endswith(EXECUTE_PATH)) as sent:
            assert sandbox.run() == "done"
    traceparent = sent.value.all_headers()["traceparent"]
    trace_id = page.locator("#trace-id").inner_text()
    assert re.fullmatch(rf"00-{trace_id}-[0-9a-f]{{16}}-01", traceparent)  # the page forces its runs' traces

    timeline = page.locator("#waterfall")
    expect(timeline).to_have_attribute("data-settled", "true", timeout=15_000)
    expect(timeline).to_have_attribute("data-state", "shown")
    # Fetched through the page's own server: the browser never talks to the store.
    assert (f"{mesh_stack.page_url}/api/traces/{trace_id}", 200) in lookups, lookups
    expect(timeline).to_have_attribute("data-trace-id", trace_id)
    rows = timeline.locator(".span-row")
    services = [rows.nth(i).get_attribute("data-service") for i in range(rows.count())]
    assert services[:2] == ["gateway", "gateway"] and {"automation", "pipeline"} <= set(services)
    depths = [int(rows.nth(i).get_attribute("data-depth") or "0") for i in range(rows.count())]
    assert depths[0] == 0 and max(depths) >= 4
    expect(timeline.locator(".span-row[data-slowest=true]")).to_have_count(1)
    expect(timeline.locator(".span-row", has_text="run tcp_check")).to_have_count(1)
    # Bars to scale: the gateway's spans the whole track, the tool's a small part of it.
    track = rows.nth(0).locator(".span-track").bounding_box()
    gateway_bar = rows.nth(0).locator(".span-bar").bounding_box()
    tool_bar = timeline.locator(".span-row", has_text="run tcp_check").locator(".span-bar").bounding_box()
    assert track and gateway_bar and tool_bar
    assert gateway_bar["width"] >= 0.95 * track["width"] and tool_bar["width"] < 0.9 * gateway_bar["width"]
    assert tool_bar["x"] > gateway_bar["x"]
    expect(timeline.locator("#waterfall-summary")).to_contain_text("spans from automation, gateway, pipeline")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "exec-sandbox-timeline.png"), full_page=True)

    # A link with ?trace= opens that trace's timeline (the mesh view links exemplars there).
    linked = page.context.new_page()
    linked.goto(f"{mesh_stack.page_url}/?trace={trace_id}")
    expect(linked.locator("#waterfall")).to_have_attribute("data-state", "shown", timeout=15_000)
    expect(linked.locator("#waterfall")).to_have_attribute("data-trace-id", trace_id)
    expect(linked.locator("#waterfall .span-row")).to_have_count(rows.count())
    sandbox.assert_healthy()


def test_unknown_tool_gives_a_friendly_message_and_recent_runs_recall(sandbox: Sandbox) -> None:
    page = sandbox.page
    page.get_by_label("Input", exact=True).fill("ping")
    assert sandbox.run() == "done"
    ping_trace_id = page.locator("#trace-id").inner_text()

    sandbox.choose_tool("__other__")
    page.get_by_label("Tool name").fill("no_such_tool")
    assert sandbox.run() == "error"
    expect(sandbox.result).to_have_attribute("data-error-kind", "unknown_tool")
    expect(page.locator("#error-title")).to_have_text("There is no tool named “no_such_tool”.")
    # The raw status stays visible for debugging, with the call's trace id.
    expect(page.locator("#fact-code")).to_have_text("NOT_FOUND")
    expect(page.locator("#fact-reason")).to_have_text("UNKNOWN_TOOL")
    expect(page.locator("#fact-message")).not_to_be_empty()
    expect(page.locator("#trace-id")).to_have_text(TRACE_ID)
    expect(page.locator("#trace-id")).not_to_have_text(ping_trace_id)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "exec-sandbox-unknown-tool.png"), full_page=True)

    recent = page.locator("#recent button")
    expect(recent).to_have_count(2)
    recent.nth(1).click()  # newest first: the ping
    expect(sandbox.result).to_have_attribute("data-state", "done")
    expect(page.locator("#output")).to_have_text("pong")
    expect(page.locator("#trace-id")).to_have_text(ping_trace_id)
    expect(recent.nth(1)).to_have_attribute("aria-current", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "exec-sandbox-recent.png"), full_page=True)
    sandbox.assert_healthy()


def test_cancel_stops_a_running_delay(sandbox: Sandbox) -> None:
    page = sandbox.page
    sandbox.choose_tool("delay")
    page.get_by_label("ms").fill("5000")
    page.get_by_label("Input", exact=True).fill("wait for it")
    with page.expect_request(lambda r: r.url.endswith(EXECUTE_PATH)):
        page.get_by_role("button", name="Execute", exact=True).click()
    expect(sandbox.result).to_have_attribute("data-state", "running")
    execute_button = page.locator("#execute")
    expect(execute_button).to_be_disabled()
    expect(execute_button).to_have_text("Running…")

    started = time.monotonic()
    # The browser really drops the request, which is what makes the server see CANCELLED.
    with page.expect_event("requestfailed", lambda r: r.url.endswith(EXECUTE_PATH), timeout=2_000) as failed:
        page.get_by_role("button", name="Cancel", exact=True).click()
    assert failed.value.failure == "net::ERR_ABORTED"
    # Well before the 5 s delay could have ended by itself.
    expect(sandbox.result).to_have_attribute("data-state", "cancelled", timeout=2_000)
    assert time.monotonic() - started < 2.5
    expect(page.locator("#fact-code")).to_have_text("CANCELLED")
    expect(page.locator("#error-title")).to_have_text("The call was cancelled.")
    expect(execute_button).to_be_enabled()
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_disabled()
    sandbox.assert_healthy()


def test_narrow_screen_has_no_sideways_scroll(browser: Browser, mesh_stack: MeshStack) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 800}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(mesh_stack.page_url)
        expect(page.locator("#app")).to_have_attribute("data-ready", "true", timeout=15_000)
        page.get_by_label("Input", exact=True).fill("ping")
        page.get_by_role("button", name="Execute", exact=True).click()
        expect(page.locator("#result")).to_have_attribute("data-state", "done", timeout=15_000)
        # The run's timeline too fits the width (each span on two lines).
        expect(page.locator("#waterfall")).to_have_attribute("data-settled", "true", timeout=15_000)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # One column: the result sits below the request form, not beside it.
        form_box = page.locator("#run-form").bounding_box()
        result_box = page.locator("#result").bounding_box()
        assert form_box and result_box and result_box["y"] > form_box["y"] + form_box["height"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "exec-sandbox-narrow.png"), full_page=True)
    finally:
        context.close()


def test_pipelines_down_reads_as_service_unavailable(sandbox: Sandbox, mesh_stack: MeshStack) -> None:
    page = sandbox.page
    page.get_by_label("Input", exact=True).fill("ping")
    pipelines = mesh_stack.pipelines()
    assert pipelines, "the stack runs no pipeline"
    mesh_stack.stop_components(*pipelines)
    try:
        assert sandbox.run(timeout_ms=40_000) == "error"
        expect(sandbox.result).to_have_attribute("data-error-kind", "unavailable")
        expect(page.locator("#error-title")).to_have_text("The service is unavailable right now.")
        expect(page.locator("#fact-code")).to_have_text("UNAVAILABLE")
    finally:
        mesh_stack.start_components(*pipelines)

    # Back to normal once the gateway reports the service ready again.
    gateway = mesh_stack.gateway_url.split("://", 1)[-1].rstrip("/")
    wait_for(lambda: health_status(gateway, AUTOMATION_SERVICE) == health_pb2.HealthCheckResponse.SERVING, 30,
             "the automation service to be ready through the gateway again")
    assert sandbox.run() == "done", page.locator("#error-title").inner_text()
    expect(page.locator("#output")).to_have_text("pong")
    sandbox.assert_healthy()


def test_one_pool_down_the_page_still_gets_answers(sandbox: Sandbox, mesh_stack) -> None:
    """The gateway hands a dead pool's share to the other pool: the page sees no failure."""
    page = sandbox.page
    assert mesh_stack.cli("canary", "set", "50").returncode == 0
    mesh_stack.stop_components("canary-1-pipeline")
    try:
        page.get_by_label("Input", exact=True).fill("ping")
        for _ in range(8):  # at 50/50, eight calls would all but surely reach the canary's share
            assert sandbox.run() == "done", page.locator("#error-title").inner_text()
            expect(page.locator("#output")).to_have_text("pong")
            expect(page.locator("#fact-pool")).to_have_text("stable")
    finally:
        mesh_stack.start_components("canary-1-pipeline")
        mesh_stack.cli("canary", "set", "10")
    sandbox.assert_healthy()
