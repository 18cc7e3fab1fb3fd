"""integrations/front/plugin.html in Chromium: it forwards Front's auth_secret, shows the panel.

The Front Plugin SDK is replaced (Playwright routes its CDN URL) by a stub
that lets the test play Front's part: select a conversation. The page is
served next to a ``/sidebar`` that authenticates with the real
:class:`FrontSidebarVerifier`, as the lead's route will.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask, Response, request

from mailbridge.helpdesks.external import HelpdeskAuthError
from mailbridge.helpdesks.front import FrontSidebarVerifier
from tests.browser import chromium, live_server, screenshot

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).resolve().parent.parent / "integrations" / "front" / "plugin.html"
SDK_URL = "https://dl.frontapp.com/libs/plugin-sdk-1.0.1.min.js"
STUB_SDK = "window.Front = {contextUpdates: {subscribe: function (cb) { window.emit = cb; }}};"


def site(seen: list[dict[str, str]]) -> Flask:
    app = Flask(__name__)
    verifier = FrontSidebarVerifier("plug-secret")

    @app.get("/integrations/front/plugin.html")
    def plugin() -> Response:
        return Response(PLUGIN.read_text(), mimetype="text/html")

    @app.get("/sidebar")
    def sidebar() -> Response:
        seen.append(
            {
                "url": request.url,
                "email": request.args.get("email", ""),
                "auth": request.headers.get("Authorization", ""),
            }
        )
        try:
            email = verifier.verify(dict(request.headers), dict(request.args), b"")
        except HelpdeskAuthError:
            return Response("no", status=401)
        body = f'<p id="who">{email}</p><script>document.body.dataset.ran = "yes"</script>'
        return Response(body, mimetype="text/html")

    return app


def test_the_plugin_page_shows_the_panel_for_the_selected_conversation() -> None:
    """Selecting a conversation loads its customer's panel with the secret as a bearer header."""
    seen: list[dict[str, str]] = []
    with live_server(site(seen)) as url, chromium() as browser:
        page = browser.new_page()
        page.route(
            SDK_URL, lambda route: route.fulfill(body=STUB_SDK, content_type="text/javascript")
        )
        page.goto(f"{url}/integrations/front/plugin.html?auth_secret=plug-secret")
        page.wait_for_function("typeof window.emit === 'function'")
        page.evaluate(
            "emit({type: 'singleConversation',"
            " conversation: {recipient: {handle: 'ana@example.com'}}})"
        )
        frame = page.frame_locator("#panel")
        assert frame.locator("#who").inner_text(timeout=5000) == "ana@example.com"
        # The panel is sandboxed: its script never ran.
        assert frame.locator("body").get_attribute("data-ran") is None
        screenshot(page, "front-plugin-panel")
        page.evaluate("emit({type: 'noConversation'})")
        assert page.locator("#status").inner_text() == "Select a conversation."
    assert len(seen) == 1
    assert seen[0]["auth"] == "Bearer plug-secret"
    assert "plug-secret" not in seen[0]["url"]
    assert seen[0]["email"] == "ana@example.com"


def test_the_plugin_page_without_front_secret_asks_nothing() -> None:
    """Opened outside Front (no auth_secret), the page says so and never calls /sidebar."""
    seen: list[dict[str, str]] = []
    with live_server(site(seen)) as url, chromium() as browser:
        page = browser.new_page()
        page.route(
            SDK_URL, lambda route: route.fulfill(body=STUB_SDK, content_type="text/javascript")
        )
        page.goto(f"{url}/integrations/front/plugin.html")
        assert "Missing auth_secret" in page.locator("#status").inner_text()
    assert seen == []


def test_a_wrong_secret_shows_billboxs_refusal() -> None:
    """A plugin configured with another secret gets 401 and shows it, not a panel."""
    seen: list[dict[str, str]] = []
    with live_server(site(seen)) as url, chromium() as browser:
        page = browser.new_page()
        page.route(
            SDK_URL, lambda route: route.fulfill(body=STUB_SDK, content_type="text/javascript")
        )
        page.goto(f"{url}/integrations/front/plugin.html?auth_secret=other")
        page.wait_for_function("typeof window.emit === 'function'")
        page.evaluate(
            "emit({type: 'singleConversation',"
            " conversation: {recipient: {handle: 'ana@example.com'}}})"
        )
        page.wait_for_function("document.getElementById('status').textContent.includes('401')")
        assert page.locator("#panel").is_hidden()
