"""
The demo page (``--demo``): one URL that shows the SFU working, and the proxy it talks to.

A person who just ran ``make run`` opens ``https://127.0.0.1:8443/`` and sees
their camera go out to the SFU and come back: the page (``realtime/demo/``,
plain JavaScript, no CDN) pushes camera and microphone in three simulcast
layers, pulls them back in a second PeerConnection, switches the layer with
``tracks/update``, echoes DataChannel messages through the SFU and shows the
browser's own statistics.  It uses only the public sessions API, through a
same-origin proxy that adds the app's bearer secret on the server, as
Cloudflare's Orange app does: the browser never sees the secret.

:class:`DemoResource` is the site's root, in front of the API resource::

    browser (the page, same origin)             DemoResource             the API's root
      GET /, /demo/demo.js, /demo/demo.css ──> realtime/demo/ files
      POST /demo/api/sessions/new ──────────> allowed? same origin? ──> POST /v1/apps/{appId}/sessions/new
      PUT  /demo/api/sessions/{id}/tracks/update                         Authorization: Bearer <secret>
      ...  only the calls of FORWARDED; any other /demo/api path: JSON 404
      anything else ────────────────────────────────────────────────> unchanged

The rewritten request goes through the very resource every client reaches:
authentication, the per-session call rate, ``--session-rate`` and every other
limit apply unchanged, and with ``--cluster`` or ``--workers`` a call for a
session held by another node is forwarded to it like any other
(realtime/cluster/forward.py).

The trade-off: anyone who can load the page can make sessions (and use media
bandwidth) in the name of that app.  That is why the demo is on by default
only when the API listens on a loopback address (``--demo`` / ``--no-demo``
override; docs/operations.md).  The proxy answers same-origin requests only
(a cross-site ``Origin`` or ``Sec-Fetch-Site`` is 403, preflights too, and its
own answers carry no CORS headers), so another web site open in the same
browser cannot drive it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import json_response
from realtime.storage import App

#: Where the page's files are (package data of ``realtime``, see setup.cfg).
ASSETS = Path(__file__).resolve().parent.parent / "demo"

#: URL path -> (file in :data:`ASSETS`, Content-Type).
PAGES = {
    b"/": ("index.html", "text/html; charset=utf-8"),
    b"/demo/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    b"/demo/demo.css": ("demo.css", "text/css; charset=utf-8"),
}

#: Where the proxy is mounted; the path after it is the one after ``/v1/apps/{appId}``.
PROXY_PREFIX = b"/demo/api"

_SESSION = rb"/sessions/[0-9A-Za-z_-]{1,64}"

#: The sessions API calls the page makes, and the only ones the proxy forwards:
#: (method, the path after the prefix).  A session id is letters, digits, ``-``, ``_``
#: (no ``.``, no ``%``: nothing that could climb out of ``/sessions/``).
FORWARDED = (
    (b"POST", re.compile(rb"/sessions/new")),
    (b"POST", re.compile(_SESSION + rb"/tracks/new")),
    (b"PUT", re.compile(_SESSION + rb"/renegotiate")),
    (b"PUT", re.compile(_SESSION + rb"/tracks/update")),
    (b"POST", re.compile(_SESSION + rb"/datachannels/establish")),
    (b"POST", re.compile(_SESSION + rb"/datachannels/new")),
    (b"GET", re.compile(_SESSION)),
)

#: The page may load only itself: scripts, styles and fetches from this origin;
#: video from MediaStreams.  No inline script, no frame may embed it.
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    b"img-src 'self' data:; media-src 'self' blob: mediastream:; base-uri 'none'; "
    b"form-action 'none'; frame-ancestors 'none'"
)


class DemoResource(Resource):
    """Serve the demo page, forward its sessions API calls as ``app``, pass the rest to ``api``.

    :param api: the API's root resource (what the site served before).
    :param app: the app the page's sessions belong to (the service's own default app:
        the first ``--app``, else the stored one).
    :param assets: the directory holding the page's files (read once, here).
    """

    isLeaf = True

    def __init__(self, api: Any, app: App, assets: Path = ASSETS) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.api = api
        self.app = app
        self.files = {path: ((assets / name).read_bytes(), kind.encode())
                      for path, (name, kind) in PAGES.items()}
        self._prefix = f"/v1/apps/{app.app_id}".encode()
        self._authorization = f"Bearer {app.secret}".encode()

    def render(self, request: IRequest) -> Any:
        """Answer a page, forward a proxy call, or hand the request to the API unchanged."""
        path = request.path or b""
        if path in self.files:
            return self._page(request, path)
        if path == PROXY_PREFIX or path.startswith(PROXY_PREFIX + b"/"):
            return self._forward(request, path[len(PROXY_PREFIX):])
        return self.api.render(request)

    def _page(self, request: IRequest, path: bytes) -> bytes:
        """Answer with one of the page's files (never cached: it changes with the server)."""
        if request.method not in (b"GET", b"HEAD"):
            error = ApiError(405, ErrorCode.METHOD_NOT_ALLOWED, "Only GET is allowed here")
            return json_response(request, 405, error.body())
        body, kind = self.files[path]
        request.setHeader(b"content-type", kind)
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"referrer-policy", b"no-referrer")
        return body

    def _forward(self, request: IRequest, rest: bytes) -> Any:
        """Rewrite an allowed same-origin call to the app's API path with its secret; pass it on."""
        if not any(method == request.method and pattern.fullmatch(rest)
                   for method, pattern in FORWARDED):  # OPTIONS too: no preflight passes
            error = ApiError.not_found(f"No route for {path_text(request)}")
            return json_response(request, 404, error.body())
        if not same_origin(request):
            error = ApiError(403, "forbidden", "The demo API answers its own page only")
            return json_response(request, 403, error.body())
        target = self._prefix + rest
        request.path = target
        request.uri = target                      # the page sends no query string
        request.prepath = []
        request.postpath = target.split(b"/")[1:]
        request.requestHeaders.setRawHeaders(b"authorization", [self._authorization])
        request.requestHeaders.removeHeader(b"origin")   # same origin: no CORS headers back
        return self.api.render(request)


def same_origin(request: IRequest) -> bool:
    """Return whether ``request`` comes from a page of this origin (or from no page at all).

    Browsers send ``Origin`` on every POST/PUT and ``Sec-Fetch-Site`` on every
    fetch (Fetch Metadata); a tool like curl sends neither, and is let through
    like the page (it could load the page anyway).  ``Origin`` is compared with
    ``Host``, so a reverse proxy in front must pass ``Host`` through.
    """
    site = request.getHeader(b"sec-fetch-site")
    if site is not None and site not in (b"same-origin", b"none"):
        return False
    origin = request.getHeader(b"origin")
    if origin is None:
        return True
    host = request.getHeader(b"host") or b""
    return urlsplit(origin.decode("latin-1")).netloc.encode("latin-1").lower() == host.lower()


def path_text(request: IRequest) -> str:
    """Return the request's path for an error message."""
    return (request.path or b"").decode("ascii", "replace")
