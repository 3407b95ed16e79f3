"""
The demo page (``--demo``): one URL that shows the SFU working, and the proxy it talks to.

A person who just ran ``make run`` opens ``https://127.0.0.1:8443/`` and sees
their camera go out to the SFU and come back: the page (``realtime/demo/``,
plain JavaScript, no CDN) pushes camera and microphone in three simulcast
layers, pulls them back in a second PeerConnection, switches the layer with
``tracks/update``, echoes DataChannel messages through the SFU and shows the
browser's own statistics.  It uses only the public sessions API, through a
same-origin proxy that acts as one app (Cloudflare's Orange app does the same:
its server holds the app secret, the browser never sees it)::

    browser (the page, same origin)                 this server
      GET /                         ──────────────> index.html (CSP: only 'self')
      GET /demo/demo.js, demo.css   ──────────────> static files of realtime/demo/
      POST /demo/api/sessions/new   ──> DemoSite ──> SessionRoutes.sessions_new(request, app)
      PUT  /demo/api/sessions/{id}/tracks/update ─> TrackRoutes.tracks_update(request, app, ...)
      ...  (only the rows of FORWARDED; anything else under /demo/api is a JSON 404)

A forwarded call runs the very handler ``/v1/apps/{appId}/...`` runs, with the
demo app as the caller, so the per-session call rate, ``--session-rate`` and
every other limit apply unchanged.  No HTTP hop, no secret in any page: the
proxy needs none.

The trade-off: anyone who can load the page can make sessions (and use media
bandwidth) in the name of that app.  That is why the demo is on by default
only when the API listens on a loopback address (``--demo`` / ``--no-demo``
override; docs/operations.md).  The proxy answers same-origin requests only
(a cross-site ``Origin`` or ``Sec-Fetch-Site`` is 403, and it sends no CORS
headers), so another web site open in the same browser cannot drive it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from inspect import isawaitable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.web.iweb import IRequest

from realtime.api.errors import ApiError
from realtime.api.http import json_response, render
from realtime.storage import App

#: Where the page's files are (package data of ``realtime``, see setup.cfg).
ASSETS = Path(__file__).resolve().parent.parent / "demo"

#: URL path -> (file in :data:`ASSETS`, Content-Type).
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/demo/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    "/demo/demo.css": ("demo.css", "text/css; charset=utf-8"),
}

#: Where the proxy is mounted; the path after it is the one after ``/v1/apps/{appId}``.
PROXY_PREFIX = "/demo/api"

#: The sessions API calls the page makes, and the only ones the proxy forwards.
FORWARDED = (
    ("POST", "/sessions/new"),
    ("POST", "/sessions/<session_id>/tracks/new"),
    ("PUT", "/sessions/<session_id>/renegotiate"),
    ("PUT", "/sessions/<session_id>/tracks/update"),
    ("POST", "/sessions/<session_id>/datachannels/establish"),
    ("POST", "/sessions/<session_id>/datachannels/new"),
    ("GET", "/sessions/<session_id>"),
)

#: The page may load only itself: scripts, styles and fetches from this origin;
#: video from MediaStreams.  No inline script, no frame may embed it.
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    b"img-src 'self' data:; media-src 'self' blob: mediastream:; base-uri 'none'; "
    b"form-action 'none'; frame-ancestors 'none'"
)

#: ``(method, path, endpoint)``: a row :class:`realtime.api.app.RealtimeAPI` mounts
#: as a public route (``endpoint(request, **path_args)``).
Row = tuple[str, str, Callable[..., Any]]


class DemoSite:
    """Serve the demo page and forward its sessions API calls as ``app``.

    :param app: the app the page's sessions belong to (the service's own default app:
        the first ``--app``, else the stored one).
    :param assets: the directory holding the page's files (read once, here).
    """

    def __init__(self, app: App, assets: Path = ASSETS) -> None:
        self.app = app
        self.files = {path: ((assets / name).read_bytes(), kind.encode())
                      for path, (name, kind) in PAGES.items()}

    def routes(self, handlers: Mapping[tuple[str, str], Callable[..., Any]]) -> list[Row]:
        """Return the page's routes and one proxy route per :data:`FORWARDED` call.

        :param handlers: ``(method, path) -> handler(request, app, **path_args)`` of the
            app routes (the ones mounted under ``/v1/apps/{appId}``).
        """
        rows: list[Row] = [("GET", path, self._page(path)) for path in self.files]
        for method, path in FORWARDED:
            rows.append((method, PROXY_PREFIX + path, self._forward(handlers[method, path])))
        return rows

    def _page(self, path: str) -> Callable[[IRequest], bytes]:
        body, kind = self.files[path]

        def page(request: IRequest) -> bytes:
            """Answer with one of the page's files (never cached: it changes with the server)."""
            if request.method != b"GET":
                return _refuse(request, 405, "method_not_allowed", "Only GET is allowed here")
            request.setHeader(b"content-type", kind)
            request.setHeader(b"cache-control", b"no-store")
            request.setHeader(b"x-content-type-options", b"nosniff")
            request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
            request.setHeader(b"referrer-policy", b"no-referrer")
            return body

        return page

    def _forward(self, handler: Callable[..., Any]) -> Callable[..., bytes | Deferred[bytes]]:
        app = self.app

        def forward(request: IRequest, **path_args: Any) -> bytes | Deferred[bytes]:
            """Run the app route's handler as the demo app, for a same-origin caller only."""
            if request.method == b"OPTIONS" or not same_origin(request):
                return _refuse(request, 403, "forbidden", "The demo API answers its own page only")
            try:
                result = handler(request, app, **path_args)
            except ApiError as error:
                return json_response(request, error.status, error.body())
            if isawaitable(result):
                return ensureDeferred(_settled(result)).addCallback(render, request)
            return render(result, request)

        return forward


def same_origin(request: IRequest) -> bool:
    """Return whether ``request`` comes from a page of this origin (or from no page at all).

    Browsers send ``Origin`` on every POST/PUT and ``Sec-Fetch-Site`` on every
    fetch (Fetch Metadata); a tool like curl sends neither, and is let through
    like the page (it could read the page anyway).
    """
    site = request.getHeader(b"sec-fetch-site")
    if site is not None and site not in (b"same-origin", b"none"):
        return False
    origin = request.getHeader(b"origin")
    if origin is None:
        return True
    host = request.getHeader(b"host") or b""
    return urlsplit(origin.decode("latin-1")).netloc.encode("latin-1").lower() == host.lower()


def _refuse(request: IRequest, status: int, code: str, description: str) -> bytes:
    """Answer ``status`` with a JSON error body and no CORS headers."""
    return json_response(request, status, ApiError(status, code, description).body())


async def _settled(result: Any) -> Any:
    """Await a route's result; an :class:`ApiError` it raised becomes its result."""
    try:
        return await result
    except ApiError as error:
        return error
