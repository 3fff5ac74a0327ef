"""The website chat's page server: headers, the page it renders, what it refuses to serve."""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.channels import webpage as webserver
from bot.channels.webpage import (
    WebchatError,
    content_security_policy,
    create_app,
    rasa_origin,
    render_page,
    session_idle_minutes,
)
from bot.launcher import RunningAssistant, _print_how_to_talk, running
from bot.settings import SettingsError, load_settings
from tests.conftest import ROOT

ORG = "国際興業健康保険組合"


class Fetched:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status, self.headers, self.body = status, headers, body


def fetch(path: str, org: str = ORG, headers: dict[str, str] | None = None, **env: str):
    """GET ``path`` from a web chat app built on ``env`` (through a real HTTP server)."""
    settings = load_settings({"RASA_PORT": "5005", **env})

    async def go() -> Fetched:
        async with TestClient(TestServer(create_app(settings, org))) as client:
            # As a browser that opened http://localhost:8080/ sends it, unless given.
            sent = {"Host": "localhost:8080", **(headers or {})}
            response = await client.get(path, headers=sent)
            return Fetched(response.status, dict(response.headers), await response.text())

    return asyncio.run(go())


def csp_directives(header: str) -> dict[str, str]:
    directives = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


@pytest.mark.parametrize("path", ["/", "/chat.js", "/chat.css", "/vendor/socket.io.min.js", "/x"])
def test_every_response_carries_the_strict_policy_and_the_other_headers(path):
    response = fetch(path)
    directives = csp_directives(response.headers["Content-Security-Policy"])
    assert directives == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "connect-src": "'self' http://localhost:5005 ws://localhost:5005",
        "img-src": "'self' data:",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_page_is_japanese_names_the_organization_and_carries_its_configuration():
    response = fetch("/")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.body
    assert '<html lang="ja">' in body
    assert f"<title>{ORG} " in body
    assert f'id="org-name">{ORG}</span>' in body
    assert 'data-socket-url="http://localhost:5005"' in body
    assert 'data-max-chars="2000"' in body and 'maxlength="2000"' in body
    assert 'data-idle-minutes="15"' in body
    assert 'role="log" aria-live="polite"' in body
    assert '<label class="chat__label" for="message">メッセージ</label>' in body
    assert "{{" not in body


def test_the_organization_name_is_escaped_into_the_page():
    body = fetch("/", org='<script>alert("x")</script>').body
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


class _InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.external: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style" or "style" in names:
            self.found.append(f"style on <{tag}>")
        self.found += [f"{name} on <{tag}>" for name in names if name.startswith("on")]
        for attribute in ("src", "href"):
            value = names.get(attribute) or ""
            if re.match(r"(https?:)?//", value):
                self.external.append(value)
        self._in_script = tag == "script" and not names.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("inline <script>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def test_the_page_has_no_inline_code_and_loads_nothing_from_elsewhere():
    parser = _InlineCode()
    parser.feed(fetch("/").body)
    assert parser.found == []
    assert parser.external == []


def test_the_widget_never_parses_text_as_html():
    script = (ROOT / "web" / "chat.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "new Function" not in script
    assert 'url.protocol !== "http:" && url.protocol !== "https:"' in script


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/chat.js", "text/javascript"),
        ("/chat.css", "text/css"),
        ("/vendor/socket.io.min.js", "text/javascript"),
        ("/favicon.svg", "image/svg+xml"),
    ],
)
def test_the_assets_are_served_from_this_server_with_their_types(path, media):
    response = fetch(path)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(media)
    assert response.body


@pytest.mark.parametrize(
    "path",
    [
        "/package.json",
        "/web/chat.js",
        "/tests/webchat.spec.mjs",
        "/node_modules/socket.io-client/package.json",
        "/vendor/../../credentials.yml",
        "/index.html",
    ],
)
def test_nothing_but_the_page_and_its_assets_is_served(path):
    assert fetch(path).status == 404


def test_the_socket_url_follows_the_host_the_browser_used():
    response = fetch("/", headers={"Host": "192.168.1.20:8080"})
    assert 'data-socket-url="http://192.168.1.20:5005"' in response.body
    policy = response.headers["Content-Security-Policy"]
    assert "connect-src 'self' http://192.168.1.20:5005 ws://192.168.1.20:5005;" in policy


@pytest.mark.parametrize(
    "host", ["evil.example; script-src *", "a b", 'x"><script>', "[::1", "bad/host"]
)
def test_a_host_header_that_is_not_a_plain_host_falls_back_to_localhost(host):
    response = fetch("/", headers={"Host": host})
    assert 'data-socket-url="http://localhost:5005"' in response.body
    assert (
        "connect-src 'self' http://localhost:5005 ws://localhost:5005;"
        in (response.headers["Content-Security-Policy"])
    )


def test_ipv6_hosts_keep_their_brackets():
    settings = load_settings({"RASA_PORT": "5005"})
    assert rasa_origin(settings, "[::1]:8080") == "http://[::1]:5005"
    assert rasa_origin(settings, "[::1]") == "http://[::1]:5005"


def test_a_configured_public_rasa_url_is_used_with_its_secure_websocket():
    response = fetch("/", WEBCHAT_RASA_URL="https://chat.example.jp/")
    assert 'data-socket-url="https://chat.example.jp"' in response.body
    assert (
        "https://chat.example.jp wss://chat.example.jp;"
        in (response.headers["Content-Security-Policy"])
    )


def test_content_security_policy_allows_websocket_only_to_the_rasa_origin():
    policy = content_security_policy("http://localhost:5005")
    assert "connect-src 'self' http://localhost:5005 ws://localhost:5005" in policy
    assert "unsafe" not in policy


def test_render_page_escapes_every_value():
    page = render_page(
        "{{org_name}}|{{socket_url}}|{{max_chars}}|{{idle_minutes}}|{{socket_path}}",
        org_name="A&B",
        socket_url='http://x"y',
        max_chars=10,
        idle_minutes=5,
    )
    assert page == "A&amp;B|http://x&quot;y|10|5|/socket.io"


def test_the_idle_time_is_the_session_expiration_of_the_domain(tmp_path):
    assert session_idle_minutes() == 15
    domain = tmp_path / "domain.yml"
    domain.write_text("session_config:\n  session_expiration_time: 30\n", "utf-8")
    assert session_idle_minutes(domain) == 30


def test_missing_npm_packages_stop_the_server_with_a_clear_error(monkeypatch, tmp_path):
    missing = tmp_path / "socket.io.min.js"
    monkeypatch.setitem(webserver.ASSETS, "/vendor/socket.io.min.js", (missing, "text/javascript"))
    with pytest.raises(WebchatError, match="make install"):
        create_app(load_settings({}), ORG)


def test_the_server_answers_health():
    response = fetch("/health")
    assert response.status == 200
    assert '"ok"' in response.body


# --- settings and launcher


def test_webchat_settings_default_and_validate():
    settings = load_settings({})
    assert (settings.webchat_port, settings.webchat_rasa_url) == (8080, None)
    assert load_settings({"WEBCHAT_PORT": "9090"}).webchat_port == 9090
    with pytest.raises(SettingsError, match="WEBCHAT_PORT"):
        load_settings({"WEBCHAT_PORT": "http"})
    assert (
        load_settings({"WEBCHAT_RASA_URL": "https://chat.example.jp:8443"}).webchat_rasa_url
        == "https://chat.example.jp:8443"
    )
    for bad in (
        "chat.example.jp",
        "ftp://chat.example.jp",
        "https://chat.example.jp/path",
        "https://chat.example.jp;script-src",
        "https://user@chat.example.jp",
        "https://chat.example.jp?x=1",
    ):
        with pytest.raises(SettingsError, match="WEBCHAT_RASA_URL"):
            load_settings({"WEBCHAT_RASA_URL": bad})


def test_run_prints_the_page_url(capsys, tmp_path):
    settings = replace(load_settings({}), var_dir=tmp_path)
    assistant = RunningAssistant(
        "http://localhost:5005",
        "http://localhost:5055",
        "token",
        [],
        settings,
        "http://localhost:8080/",
    )
    _print_how_to_talk(settings, assistant)
    assert "ブラウザでチャット: http://localhost:8080/" in capsys.readouterr().out


def test_a_taken_webchat_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = replace(load_settings({}), var_dir=tmp_path, webchat_port=port)
        with (
            pytest.raises(WebchatError, match=str(port)),
            running(settings, Path("no-model.tar.gz"), webchat=True),
        ):
            pass  # pragma: no cover - never reached
    assert not (tmp_path / "rasa_token").exists()
