"""The release check of the Exec Sandbox page: it is served, its assets load, the HTML has the
app root, its runtime config names a gateway, and the app initialises in headless Chromium
without errors."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

from opsconductor.release.browser import chromium
from opsconductor.release.checks import Check

_ASSET = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', re.IGNORECASE)
APP_ROOT = '<div id="app"'


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


def checks(page_url: str) -> list[Check]:
    base = page_url.rstrip("/") + "/"
    found: dict[str, str] = {}

    def page_served() -> str:
        status, content_type, body = _get(base)
        assert status == 200 and content_type.startswith("text/html"), f"HTTP {status}, {content_type}"
        found["html"] = body.decode(errors="replace")
        return f"{base} ({len(body)} bytes)"

    def app_root() -> str:
        assert APP_ROOT in found.get("html", ""), f"the HTML has no {APP_ROOT}>"
        return "found"

    def assets_load() -> str:
        assets = [a for a in _ASSET.findall(found.get("html", "")) if not a.startswith(("http:", "https:", "data:"))]
        assert assets, "the HTML references no script or stylesheet"
        for asset in assets:
            status, _, body = _get(urllib.parse.urljoin(base, asset))
            assert status == 200 and body, f"{asset}: HTTP {status}"
        return ", ".join(assets)

    def runtime_config() -> str:
        _, _, body = _get(urllib.parse.urljoin(base, "config.json"))
        gateway = json.loads(body).get("gatewayUrl")
        assert gateway, "config.json names no gatewayUrl"
        return f"gateway {gateway}"

    def app_initialises() -> str:
        with chromium() as browser:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(base)
            page.wait_for_selector('#app[data-ready="true"], #app[data-ready="error"]', timeout=20_000)
            ready = page.get_attribute("#app", "data-ready")
            tools = page.locator("select option").count()
            page.close()
        assert ready == "true", f"the app reported data-ready={ready!r}: {'; '.join(errors)}"
        assert not errors, f"browser errors: {'; '.join(errors)}"
        return f"ready in Chromium, {tools} tool options"

    return [("page served", page_served), ("app root in HTML", app_root), ("assets load", assets_load),
            ("runtime config", runtime_config), ("app initialises", app_initialises)]
