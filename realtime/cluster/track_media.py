"""
A published track's RTP parameters as the directory keeps them (``TrackRecord.media``).

A node that mirrors another node's track (:mod:`realtime.cluster.pulls`) must
read its packets exactly as the owner does: payload types with their
``a=fmtp`` and ``a=rtcp-fb`` (RFC 8866 §6.6, RFC 4585 §4.2), header extension
ids (RFC 8285), SSRCs with their RTX SSRCs (RFC 4588) and simulcast rids
(RFC 8853).  This pure codec turns a
:class:`~realtime.sdp.negotiated.NegotiatedMedia` into compact JSON and back::

    {"mid": "1", "kind": "video",
     "codecs": [[96, "VP8", 90000, null, "", [["nack", null], ["nack", "pli"]]], ...],
     "extensions": [[4, "urn:ietf:params:rtp-hdrext:sdes:mid"], ...],
     "streams": [[2222, 2223]], "rids": []}

The directory is shared by many nodes, so what is read is checked like any
hostile input: a bad value is a :class:`~realtime.errors.DecodeError`, never
an exception of another kind.
"""

from __future__ import annotations

import json
from typing import Any

from realtime.errors import DecodeError
from realtime.sdp.attributes import HeaderExtension
from realtime.sdp.codecs import Codec
from realtime.sdp.negotiated import NegotiatedMedia
from realtime.sdp.negotiation import RtpStream

__all__ = ["media_from_json", "media_to_json"]



def media_to_json(media: NegotiatedMedia) -> str:
    """Return what a mirror needs of a publisher's section: codecs, extension ids, SSRCs, rids."""
    return json.dumps({
        "mid": media.mid, "kind": media.kind,
        "codecs": [[c.payload_type, c.name, c.clock_rate, c.channels, c.parameters,
                    [list(fb) for fb in c.feedback]] for c in media.codecs],
        "extensions": [[e.id, e.uri] for e in media.extensions],
        "streams": [[s.ssrc, s.rtx_ssrc] for s in media.remote_streams],
        "rids": list(media.remote_rids),
    }, separators=(",", ":"))


def _bounded(value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{value!r} is not an integer in {low}-{high}")
    return value


def _text(value: Any, limit: int = 256) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"not a string of at most {limit} characters")
    return value


def media_from_json(text: str) -> NegotiatedMedia:
    """Parse :func:`media_to_json`'s text (from the shared directory: checked, DecodeError if bad).

    Payload types 0-127 (RFC 3550 §5.1: 7 bits), header extension ids 1-255
    (RFC 8285 §4.2/§4.3), SSRCs 32 bits; strings and lists bounded.
    """
    try:
        body = json.loads(text)
        if len(body["codecs"]) > 64 or len(body["extensions"]) > 32 \
                or len(body["streams"]) > 16 or len(body["rids"]) > 8:
            raise ValueError("too many codecs, extensions, streams or rids")
        codecs = tuple(
            Codec(_bounded(pt, 0, 127), _text(name, 64), _bounded(rate, 1, 2**32 - 1),
                  None if channels is None else _bounded(channels, 1, 255),
                  _text(parameters, 1024),
                  tuple((_text(a, 64), None if b is None else _text(b, 64)) for a, b in feedback))
            for pt, name, rate, channels, parameters, feedback in body["codecs"])
        extensions = tuple(HeaderExtension(_bounded(i, 1, 255), _text(uri))
                           for i, uri in body["extensions"])
        streams = tuple(RtpStream(_bounded(ssrc, 0, 2**32 - 1), "",
                                  rtx_ssrc=None if rtx is None else _bounded(rtx, 0, 2**32 - 1))
                        for ssrc, rtx in body["streams"])
        rids = tuple(_text(rid, 64) for rid in body["rids"])
        kind = _text(body["kind"])
        mid = _text(body["mid"], 64)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise DecodeError(f"track media description does not decode: {error}") from None
    if kind not in ("audio", "video") or not codecs:
        raise DecodeError("track media description has no audio/video codecs")
    return NegotiatedMedia(mid, kind, True, "recvonly", codecs, extensions, (), streams, rids)
