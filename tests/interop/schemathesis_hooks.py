"""
schemathesis hooks for tests/interop/test_schemathesis.py (``SCHEMATHESIS_HOOKS``).

The WHIP/WHEP routes (realtime/api/whip.py) take SDP bodies: ``application/sdp``
and ``application/trickle-ice-sdpfrag`` (RFC 8840) are text, sent as they are
generated, like ``text/plain``; without a serializer schemathesis reports
"Serialization not possible" and never calls those operations.
"""

import schemathesis

schemathesis.serializer.alias(["application/sdp", "application/trickle-ice-sdpfrag"],
                              "text/plain")


@schemathesis.hook
def before_call(context, case, kwargs):
    """Point every generated adapter ``endpoint`` at 127.0.0.1 (traffic stays here).

    ``adapters/websocket/new`` makes the server open a WebSocket to the body's
    ``endpoint``: a generated host name would be resolved and dialled.  The
    interop server refuses loopback endpoints (no ``--allow-loopback-adapters``),
    so the item fails at once with ``websocket_localhost_not_allowed``.
    """
    body = case.body
    tracks = body.get("tracks") if isinstance(body, dict) else None
    for item in tracks if isinstance(tracks, list) else ():
        endpoint = item.get("endpoint") if isinstance(item, dict) else None
        if isinstance(endpoint, str) and endpoint.lower().startswith(("ws://", "wss://")):
            item["endpoint"] = "ws://127.0.0.1:9/adapter"
