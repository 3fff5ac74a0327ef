"""deploy/nginx/privacy-assistant.conf under a real nginx in front of the running servers.

The configuration file is used as shipped, with only what differs on a test machine
replaced: the upstream ports (the test servers have ports of their own), the listening
addresses (loopback, free ports) and the certificate paths (a self-signed certificate
made for the run). What a member or an attacker reaches through it is then asked over
real HTTPS, by host name, as the outside world would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import urllib3

from bot.launcher import RunningAssistant
from bot.settings import PROJECT_ROOT
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

CONF = PROJECT_ROOT / "deploy" / "nginx" / "privacy-assistant.conf"
NGINX = "/usr/sbin/nginx"
CHAT, CONSOLE = "chat.example.jp", "console.example.jp"


@dataclass(frozen=True)
class Edge:
    """nginx as started for the test: its HTTPS and plain HTTP ports."""

    https_port: int
    http_port: int

    def get(self, host: str, path: str, **options) -> requests.Response:
        return self.request("GET", host, path, **options)

    def request(self, method: str, host: str, path: str, **options) -> requests.Response:
        return requests.request(
            method,
            f"https://127.0.0.1:{self.https_port}{path}",
            headers={"Host": host, **options.pop("headers", {})},
            verify=False,
            allow_redirects=False,
            timeout=30,
            **options,
        )


def adapted(conf: str, assistant: RunningAssistant, https: int, http: int, certs: Path) -> str:
    """The shipped configuration with this machine's ports, addresses and certificates."""
    settings = assistant.settings
    replacements = {
        "127.0.0.1:5005;": f"127.0.0.1:{settings.rasa_port};",
        "127.0.0.1:8080;": f"127.0.0.1:{settings.webchat_port};",
        "127.0.0.1:5002;": f"127.0.0.1:{settings.console_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        "listen 80 default_server;": f"listen 127.0.0.1:{http} default_server;",
    }
    for name in (CHAT, CONSOLE):
        replacements[f"/etc/ssl/certs/{name}.pem"] = str(certs / "cert.pem")
        replacements[f"/etc/ssl/private/{name}.key"] = str(certs / "key.pem")
    for old, new in replacements.items():
        assert old in conf, f"{old} is no longer in {CONF.name}: update this test"
        conf = conf.replace(old, new)
    return conf


@pytest.fixture(scope="module")
def edge(assistant: RunningAssistant, tmp_path_factory) -> Iterator[Edge]:
    if not os.path.exists(NGINX):
        if os.environ.get("PRIVACY_BOT_REQUIRE_BROWSER"):
            pytest.fail("nginx is missing (make test installs Debian's nginx as root)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    root = tmp_path_factory.mktemp("nginx")
    subprocess.run(
        [
            shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048",
            "-nodes", "-days", "1", "-subj", f"/CN={CHAT}",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    https, http = free_port(), free_port()
    (root / "site.conf").write_text(
        adapted(CONF.read_text("utf-8"), assistant, https, http, root), "utf-8"
    )
    temp = root / "temp"
    temp.mkdir()
    (root / "nginx.conf").write_text(
        f"""
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"};
events {{ worker_connections 256; }}
http {{
    access_log {root / "access.log"};
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    include {root / "site.conf"};
}}
""",
        "utf-8",
    )
    command = [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"]
    tested = subprocess.run([*command[:-2], "-t"], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stderr
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    edge = Edge(https, http)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                edge.get(CHAT, "/")
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield edge
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_members_reach_the_chat_page_and_its_assets(edge):
    page = edge.get(CHAT, "/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    for path in ("/chat.js", "/chat.css", "/favicon.svg", "/vendor/socket.io.min.js"):
        assert edge.get(CHAT, path).status_code == 200, path


def test_members_reach_the_chat_socket(edge):
    handshake = edge.get(CHAT, "/socket.io/?EIO=4&transport=polling")
    assert handshake.status_code == 200
    assert handshake.text.startswith("0{") and '"sid"' in handshake.text


def test_line_reaches_its_webhook_and_nothing_else_of_it(edge):
    # The test servers have LINE off: the channel itself answers 503, so the request
    # went through nginx to the rasa server (a 404 would be nginx's).
    assert edge.request("POST", CHAT, "/webhooks/line/webhook", data=b"{}").status_code == 503
    assert edge.get(CHAT, "/webhooks/line/webhook").status_code == 403


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/webhooks/rest/webhook"),
        ("GET", "/webhooks/rest/"),
        ("GET", "/status"),
        ("GET", "/version"),
        ("GET", "/conversations/rest:someone/tracker"),
        ("POST", "/conversations/line:U0/execute"),
        ("POST", "/model/parse"),
        ("POST", "/webhook"),  # the action server's path
        ("GET", "/health"),
        ("GET", "/webhooks/socketio/"),
        ("GET", "/package.json"),
    ],
)
def test_everything_else_is_not_found_on_the_members_side(edge, assistant, method, path):
    answer = edge.request(
        method, CHAT, path, params={"token": assistant.token}, headers=assistant.rest_headers
    )
    assert answer.status_code == 404


def test_staff_reach_the_console_on_its_own_name_only(edge):
    login = edge.get(CONSOLE, "/login")
    assert login.status_code == 200 and "サインイン" in login.text
    # The console is not reachable under the members' name.
    assert edge.get(CHAT, "/login").status_code == 404
    assert edge.get(CHAT, "/queue").status_code == 404


def test_plain_http_only_redirects_to_tls(edge):
    answer = requests.get(
        f"http://127.0.0.1:{edge.http_port}/webhooks/rest/webhook",
        headers={"Host": CHAT},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 301
    assert answer.headers["Location"].startswith("https://")
