"""The website chat: the member-facing page and its assets, with strict security headers.

``python -m bot.channels.webpage`` serves ``web/`` on ``WEBCHAT_PORT``; the launcher starts it
with the other servers. The page talks to the rasa server's socketio channel directly
(``bot.channels.webchat``); this server only hands out files, so it holds no conversation
and needs no state. Everything the page loads comes from here: the widget
(``web/chat.js``, ``web/chat.css``) and socket.io-client, installed from the npm
registry by ``make install`` into ``web/node_modules``. Nothing is loaded from a CDN.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path

import yaml
from aiohttp import web

from bot.channels.guard import MAX_MESSAGE_CHARS
from bot.policy.profiles.loader import ProfileError, load_profile
from bot.settings import ORIGIN_NETLOC, PROJECT_ROOT, Settings, SettingsError, load_settings

WEB_DIR = PROJECT_ROOT / "web"
SOCKET_IO_CLIENT = WEB_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
DOMAIN_FILE = PROJECT_ROOT / "domain.yml"
# The path the socketio channel listens on (credentials.yml keeps Rasa's default).
SOCKET_PATH = "/socket.io"
HEALTH_PATH = "/health"

# URL path -> (file, media type). A fixed table rather than a static directory: only
# these files are ever served, so nothing else under web/ (tests, package files,
# node_modules) is reachable from a browser.
ASSETS: dict[str, tuple[Path, str]] = {
    "/chat.js": (WEB_DIR / "chat.js", "text/javascript"),
    "/chat.css": (WEB_DIR / "chat.css", "text/css"),
    "/favicon.svg": (WEB_DIR / "favicon.svg", "image/svg+xml"),
    "/vendor/socket.io.min.js": (SOCKET_IO_CLIENT, "text/javascript"),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebchatError(RuntimeError):
    """The web chat cannot start: a file it serves is missing."""


def session_idle_minutes(domain_file: Path = DOMAIN_FILE) -> int:
    """The idle time after which Rasa starts a new session (``domain.yml``).

    The page starts a fresh conversation after the same time, so the widget and the
    tracker agree on when a conversation is over.
    """
    domain = yaml.safe_load(domain_file.read_text(encoding="utf-8")) or {}
    minutes = (domain.get("session_config") or {}).get("session_expiration_time", 60)
    return int(minutes)


def rasa_origin(settings: Settings, host_header: str | None) -> str:
    """The origin the browser reaches the rasa server at, e.g. ``http://localhost:5005``.

    ``WEBCHAT_RASA_URL`` when set (a proxy in front of the rasa server); otherwise the
    host the browser used for this page, at the rasa port, so that a phone on the same
    network that opened ``http://192.168.1.20:8080/`` talks to ``192.168.1.20:5005``.
    The Host header comes from the client: anything but a plain host name or address
    falls back to ``localhost`` because the value ends up in a response header.
    """
    if settings.webchat_rasa_url:
        return settings.webchat_rasa_url
    netloc = host_header if host_header and ORIGIN_NETLOC.fullmatch(host_header) else ""
    if netloc.startswith("["):
        host = netloc[: netloc.index("]") + 1]
    else:
        host = netloc.partition(":")[0] or "localhost"
    return f"http://{host}:{settings.rasa_port}"


def websocket_origin(origin: str) -> str:
    """The ws:// (or wss://) twin of an http(s) origin."""
    return "ws" + origin.removeprefix("http")


def content_security_policy(origin: str) -> str:
    """A strict policy: this server's own files, and the rasa server for the socket.

    No inline script or style anywhere, so script-src and style-src need nothing but
    'self'; the page is never framed, never posts a form and never changes its base.
    """
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"connect-src 'self' {origin} {websocket_origin(origin)}",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def render_page(
    template: str, *, org_name: str, socket_url: str, max_chars: int, idle_minutes: int
) -> str:
    """Fill the page's ``{{placeholders}}``, every value HTML-escaped.

    The configuration travels in data attributes, not in an inline script, which the
    Content-Security-Policy would block.
    """
    values = {
        "org_name": org_name,
        "socket_url": socket_url,
        "socket_path": SOCKET_PATH,
        "max_chars": str(max_chars),
        "idle_minutes": str(idle_minutes),
    }
    page = template
    for name, value in values.items():
        page = page.replace("{{" + name + "}}", html.escape(value, quote=True))
    return page


def check_files() -> None:
    """Fail unless every file the web chat serves is there.

    Raises:
        WebchatError: Naming the missing files and how to get them.
    """
    missing = [str(path) for path, _ in ASSETS.values() if not path.is_file()]
    missing += [str(WEB_DIR / "index.html")] if not (WEB_DIR / "index.html").is_file() else []
    if missing:
        raise WebchatError(
            f"ウェブチャットのファイルがありません: {', '.join(missing)}"
            "（make install で web/ の npm パッケージを入れてください）"
        )


def create_app(settings: Settings, org_name: str) -> web.Application:
    """The web chat application for ``settings`` and the organization ``org_name``.

    Raises:
        WebchatError: If the page, the widget or socket.io-client is missing.
    """
    check_files()
    template = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    idle_minutes = session_idle_minutes()
    # Read once: the files do not change while the server runs, and serving bytes from
    # memory keeps a request from ever touching the file system.
    assets = {path: (file.read_bytes(), media) for path, (file, media) in ASSETS.items()}

    def secure(request: web.Request, headers: MutableMapping[str, str]) -> None:
        origin = rasa_origin(settings, request.headers.get("Host"))
        headers["Content-Security-Policy"] = content_security_policy(origin)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        headers.setdefault("Cache-Control", "no-cache")

    @web.middleware
    async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:  # 404s and 405s carry the headers too
            secure(request, error.headers)
            raise
        secure(request, response.headers)
        return response

    async def page(request: web.Request) -> web.Response:
        body = render_page(
            template,
            org_name=org_name,
            socket_url=rasa_origin(settings, request.headers.get("Host")),
            max_chars=MAX_MESSAGE_CHARS,
            idle_minutes=idle_minutes,
        )
        # The page carries this request's socket URL: no shared cache may keep it.
        return web.Response(
            text=body, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def asset(request: web.Request) -> web.Response:
        body, media = assets[request.path]
        return web.Response(body=body, content_type=media, charset="utf-8")

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=[security_headers])
    app.router.add_get("/", page)
    for path in assets:
        app.router.add_get(path, asset)
    app.router.add_get(HEALTH_PATH, health)
    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the web chat until stopped."""
    parser = argparse.ArgumentParser(prog="python -m bot.channels.webpage")
    # Loopback unless PRIVACY_BOT_BIND_HOST (or --host) says otherwise: the public face
    # is nginx (deploy/nginx/).
    parser.add_argument("--host", help="address to listen on (PRIVACY_BOT_BIND_HOST)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        profile = load_profile(settings.org_id, settings.profiles_dir)
        app = create_app(settings, profile.name)
    except (ProfileError, SettingsError, WebchatError) as error:
        print(f"設定エラー: {error}", file=sys.stderr)
        return 2
    web.run_app(app, host=args.host or settings.bind_host, port=settings.webchat_port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
