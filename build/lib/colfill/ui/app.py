"""The dashboard's web application (Starlette): pages, our static files, the charting bundle, and the API routes.

Pages are static HTML of our own (`colfill/ui/static/`) that fetch the JSON API; the chart page of a ticker
the store does not hold answers 404 with the message in the page. The charting libraries are JavaScript
bundles as their wheels ship them (colfill.ui.dashboard.BUNDLES), served under /vendor/ from memory,
gzip-compressed once, so the pages need no internet and nothing is copied into this repository.
Every answer carries a Content-Security-Policy that allows only this server as a source.
"""

from __future__ import annotations

import gzip
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from colfill.errors import ColfillError, InvalidArgument, StoreError
from colfill.ui import api
from colfill.ui.dashboard import BUNDLES, Dashboard

STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def _json_route(dash: Dashboard, handler: Callable[[Dashboard, Request], Any]) -> Callable[[Request], Any]:
    """A sync handler as a route (run in the thread pool): its dict as JSON, bad input as a 4xx."""
    from starlette.concurrency import run_in_threadpool

    async def endpoint(request: Request) -> Response:
        try:
            body = await run_in_threadpool(handler, dash, request)
        except api.BadRequest as exc:
            return api.error(exc.status, str(exc))
        except InvalidArgument as exc:
            return api.error(400, str(exc))
        except StoreError as exc:
            return api.error(503, str(exc))
        except ColfillError as exc:
            return api.error(500, str(exc))
        except Exception as exc:  # a bug: the traceback goes to the server's stderr, a short message to the page
            import traceback

            traceback.print_exc()
            return api.error(500, f"internal error ({type(exc).__name__}); the server's output has the traceback")
        if isinstance(body, Response):
            return body
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return endpoint


def _page(name: str, status: int = 200, message: str = "") -> HTMLResponse:
    text = (STATIC / name).read_text()
    text = text.replace("{{message}}", html.escape(message))
    return HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


def create_app(dash: Dashboard, hosts: tuple[str, ...] | list[str] = LOOPBACK_HOSTS) -> Starlette:
    """The application for `dash`; `allowed_hosts` keeps other sites' pages from reaching it by DNS rebinding."""

    async def overview_page(request: Request) -> Response:
        return _page("overview.html")

    async def coverage_page(request: Request) -> Response:
        return _page("coverage.html")

    async def ticker_page(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            ticker = api.check_ticker(request.path_params["ticker"])
            await run_in_threadpool(api.meta, dash, request)
        except api.BadRequest as exc:
            return _page("chart.html", exc.status, str(exc))
        except StoreError as exc:
            return _page("chart.html", 503, str(exc))
        del ticker
        return _page("chart.html")

    async def vendor_js(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        name = request.path_params["name"]
        if name not in BUNDLES:
            return Response("not found", status_code=404, media_type="text/plain")
        data, etag = await run_in_threadpool(dash.bundle, name)
        headers = {"Cache-Control": "public, max-age=86400", "ETag": f'"{etag}"'}
        if request.headers.get("if-none-match") == f'"{etag}"':
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(data, media_type="application/javascript", headers={**headers, "Content-Encoding": "gzip",
                                                                               "Vary": "Accept-Encoding"})
        return Response(gzip.decompress(data), media_type="application/javascript", headers=headers)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return api.error(404, f"no such API route: {request.url.path}")
        return _page("chart.html", 404, f"no such page: {request.url.path}")

    async def live(request: Request) -> Response:
        return api.live(dash, request)

    routes = [
        Route("/", overview_page),
        Route("/coverage", coverage_page),
        Route("/ticker/{ticker:path}", ticker_page),
        Route("/vendor/{name}", vendor_js),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/api/overview", _json_route(dash, api.overview)),
        Route("/api/status", _json_route(dash, api.status)),
        Route("/api/rejects", _json_route(dash, api.rejects)),
        Route("/api/tickers", _json_route(dash, api.tickers)),
        Route("/api/coverage", _json_route(dash, api.coverage)),
        Route("/api/meta/{ticker:path}", _json_route(dash, api.meta)),
        Route("/api/bars/{ticker:path}", _json_route(dash, api.bars)),
        Route("/api/live/{ticker:path}", live),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found},
                     middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)),
                                 Middleware(SecurityHeaders)])



def allowed_hosts(host: str) -> list[str]:
    """Host headers to accept: loopback names, plus `host` when the dashboard is bound elsewhere ("*" for a
    wildcard address, where the Host cannot be known)."""
    hosts = list(LOOPBACK_HOSTS)
    if host in ("0.0.0.0", "::", ""):
        hosts.append("*")
    elif host not in hosts:
        hosts.append(host)
    return hosts


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every answer (streaming ones too)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                         if k.lower().encode() not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
