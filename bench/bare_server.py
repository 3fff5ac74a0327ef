"""``python -m bench.bare_server PORT``: answers every request 200 and does nothing else.

The baseline of ``bench.cluster``'s LINE burst: the same deliveries, from the same
client, to a server that only reads each request and answers ``{}``, served as the
intake is served (aiohttp on uvloop, one process, the same listen backlog, its
start-up objects frozen), on loopback. What the intake's acknowledgement takes beyond
this server's is the intake's own work (and nginx's); what this server takes is the
machine's and the client's.
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

from bench.servers import LOOPBACK
from bot.channels.line.intake import BACKLOG
from bot.core.heap import freeze_startup_objects


async def answer(request: web.Request) -> web.Response:
    """``{}`` with 200, once the body is read."""
    await request.read()
    return web.Response(body=b"{}", content_type="application/json")


def main(argv: list[str] | None = None) -> int:
    """Serve on ``PORT`` of the loopback address until stopped."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m bench.bare_server PORT", file=sys.stderr)
        return 2
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    uvloop.install()
    freeze_startup_objects()
    web.run_app(app, host=LOOPBACK, port=int(args[0]), backlog=BACKLOG, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
