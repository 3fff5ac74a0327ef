"""deploy/nginx/compose.conf.template under a real nginx in front of two stand-in replicas.

The compose edge is the one-machine edge with two rasa servers behind it; what it adds
is stickiness: socket.io keeps a long-polling session in the process that opened it,
so every request of one browser must reach the same replica, and a websocket upgrade
must pass; and LINE's intake in front of the rasa servers for LINE's webhook, with a
rasa server taking a delivery the intake fails. Small HTTP servers on loopback stand
in for rasa-1 and rasa-2 (each answers with its name), the intake (whose answer a test
may change), the chat page and the console; the template is used as shipped with only
the names, ports and certificates of the test replaced.

Marked e2e: it needs Debian's nginx, which `make test` installs (as root) just before
the end-to-end tests; no model or rasa server is involved.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import urllib3

from bot.channels.line.webhook import INTAKE_FALLBACK_HEADER
from bot.settings import PROJECT_ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

TEMPLATE = PROJECT_ROOT / "deploy" / "nginx" / "compose.conf.template"
NGINX = "/usr/sbin/nginx"
CHAT, CONSOLE = "chat.example.jp", "console.example.jp"
ROUTE_COOKIE = "privacy_route"


class _StandIn(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's name and its status (200 unless a test
    sets another; None: the connection is closed unanswered, as by a crash); a
    websocket upgrade with 101."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        if getattr(self.server, "stopped", False):
            # A stopped server's kept-alive connection: a dead process answers nothing.
            self.close_connection = True
            return
        name = self.server.name  # type: ignore[attr-defined]
        status = getattr(self.server, "status", 200)
        time.sleep(getattr(self.server, "hang_s", 0.0))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if status is None:
            self.close_connection = True
            return
        upgrade = self.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade and self.headers.get("Connection", "").lower() == "upgrade":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("X-Backend", name)
            self.end_headers()
            self.close_connection = True
            return
        body = name.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        # What the edge told the backend about the delivery, for the tests to read.
        self.send_header("X-Saw-Fallback", self.headers.get(INTAKE_FALLBACK_HEADER, ""))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 - the standard library's names

    def log_message(self, *args: object) -> None:
        pass


def _serve(name: str, port: int = 0) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _StandIn)
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Edge:
    https_port: int
    http_port: int
    intake: http.server.ThreadingHTTPServer

    def request(self, method: str, host: str, path: str, **options) -> requests.Response:
        return requests.request(
            method,
            f"https://127.0.0.1:{self.https_port}{path}",
            headers={"Host": host, **options.pop("headers", {})},
            verify=False,
            allow_redirects=False,
            timeout=10,
            **options,
        )


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[Edge]:
    if not os.path.exists(NGINX):
        if os.environ.get("PRIVACY_BOT_REQUIRE_BROWSER"):
            pytest.fail("nginx is missing (make test installs Debian's nginx as root)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    root = tmp_path_factory.mktemp("compose-edge")
    subprocess.run(
        [
            shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048",
            "-nodes", "-days", "1", "-subj", f"/CN={CHAT}",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    servers = [_serve("rasa-1"), _serve("rasa-2"), _serve("page-or-console")]
    rasa_1, rasa_2, other = (f"127.0.0.1:{s.server_address[1]}" for s in servers)
    intake = _serve("line-intake")
    https, http_port = _free_port(), _free_port()
    replacements = {
        "rasa-1:5005": rasa_1,
        "rasa-2:5005": rasa_2,
        "webchat:8080": other,
        "console:5002": other,
        "line-intake:5006": f"127.0.0.1:{intake.server_address[1]}",
        "${PRIVACY_CHAT_HOST}": CHAT,
        "${PRIVACY_CONSOLE_HOST}": CONSOLE,
        "listen 443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        "listen 80 default_server;": f"listen 127.0.0.1:{http_port} default_server;",
        "/etc/nginx/certs/chat.pem": str(root / "cert.pem"),
        "/etc/nginx/certs/chat.key": str(root / "key.pem"),
        "/etc/nginx/certs/console.pem": str(root / "cert.pem"),
        "/etc/nginx/certs/console.key": str(root / "key.pem"),
    }
    conf = TEMPLATE.read_text("utf-8")
    for old, new in replacements.items():
        assert old in conf, f"{old} is no longer in {TEMPLATE.name}: update this test"
        conf = conf.replace(old, new)
    (root / "site.conf").write_text(conf, "utf-8")
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
    nginx = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    edge = Edge(https, http_port, intake)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                edge.request("GET", CHAT, "/")
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield edge
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        for server in [*servers, edge.intake]:
            server.shutdown()
            server.server_close()


def _polling(edge: Edge, cookie: str | None = None) -> requests.Response:
    cookies = {ROUTE_COOKIE: cookie} if cookie else None
    return edge.request("GET", CHAT, "/socket.io/?EIO=4&transport=polling", cookies=cookies)


def test_a_browser_stays_on_the_replica_of_its_first_request(edge):
    for _ in range(6):
        first = _polling(edge)
        cookie = first.cookies.get(ROUTE_COOKIE)
        assert cookie and len(cookie) == 32
        header = first.headers["Set-Cookie"]
        assert "Path=/socket.io/" in header and "Secure" in header and "HttpOnly" in header
        # Every later request of that browser (the cookie sent back) reaches the same one.
        assert {_polling(edge, cookie).text for _ in range(10)} == {first.text}


def test_browsers_are_spread_over_both_replicas(edge):
    replicas = {_polling(edge).text for _ in range(40)}
    assert replicas == {"rasa-1", "rasa-2"}


def test_a_forged_route_cookie_is_replaced_with_one_of_the_edges(edge):
    answer = _polling(edge, "../../etc; Path=/")
    cookie = answer.cookies.get(ROUTE_COOKIE)
    assert cookie and cookie != "../../etc" and len(cookie) == 32


def test_a_websocket_upgrade_reaches_the_same_replica(edge):
    first = _polling(edge)
    cookie = first.cookies[ROUTE_COOKIE]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", edge.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=CHAT) as tls,
    ):
        tls.sendall(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {CHAT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Cookie: {ROUTE_COOKIE}={cookie}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = tls.recv(4096)
            if not chunk:
                break
            head += chunk
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101"), lines[0]
    assert f"X-Backend: {first.text}" in lines


def test_line_and_the_page_reach_their_servers_and_the_rest_is_404(edge):
    line = edge.request("POST", CHAT, "/webhooks/line/webhook", data=b"{}")
    assert line.status_code == 200 and line.text == "line-intake"
    assert edge.request("GET", CHAT, "/").text == "page-or-console"
    assert edge.request("GET", CONSOLE, "/cases").text == "page-or-console"
    for path in ("/webhooks/rest/webhook", "/conversations/x/tracker", "/status", "/model"):
        assert edge.request("GET", CHAT, path).status_code == 404, path


def test_the_edge_answers_its_health_route_and_redirects_the_rest_to_tls(edge):
    base = f"http://127.0.0.1:{edge.http_port}"
    health = requests.get(f"{base}/nginx-health", timeout=10)
    assert health.status_code == 200 and health.text == "ok\n"
    moved = requests.get(f"{base}/", headers={"Host": CHAT}, allow_redirects=False, timeout=10)
    assert moved.status_code == 301 and moved.headers["Location"] == f"https://{CHAT}/"


def _line(edge: Edge) -> requests.Response:
    return edge.request("POST", CHAT, "/webhooks/line/webhook", data=b'{"events":[]}')


@pytest.mark.parametrize(
    "failure",
    [{"status": 503}, {"status": 502}, {"status": None}, {"hang_s": 5.0}],
    ids=["503", "502", "closed", "hung"],
)
def test_a_delivery_the_intake_fails_is_taken_by_a_rasa_server(edge, failure):
    # 503: Redis did not take the body; 502, or the connection closed unanswered: the
    # intake is broken; hung: it took the connection and answers after 5 s, long after
    # nginx's second. Either way a rasa server acknowledges the delivery itself.
    healthy = {"status": 200, "hang_s": 0.0}
    for name, value in failure.items():
        setattr(edge.intake, name, value)
    try:
        line = _line(edge)
    finally:
        for name in failure:
            setattr(edge.intake, name, healthy[name])
    assert line.status_code == 200 and line.text in {"rasa-1", "rasa-2"}
    # Marked, so that the rasa server skips an event the intake did queue after all.
    assert line.headers["X-Saw-Fallback"] == "1"
    direct = _line(edge)
    assert direct.text == "line-intake" and direct.headers["X-Saw-Fallback"] == ""


@pytest.mark.parametrize("refusal", [400, 401, 413])
def test_the_intakes_refusals_reach_line_as_they_are(edge, refusal):
    # A wrong signature is not given a second chance at a rasa server.
    edge.intake.status = refusal
    try:
        line = _line(edge)
    finally:
        edge.intake.status = 200
    assert line.status_code == refusal and line.text == "line-intake"


def test_while_the_intake_is_down_a_rasa_server_takes_lines_deliveries(edge):
    port = edge.intake.server_address[1]
    edge.intake.stopped = True
    edge.intake.shutdown()
    edge.intake.server_close()
    try:
        answers = [_line(edge) for _ in range(4)]
    finally:
        edge.intake = _serve("line-intake", port)
    assert {(a.status_code, a.text in {"rasa-1", "rasa-2"}) for a in answers} == {(200, True)}
    assert _line(edge).text == "line-intake"
