"""
Errors raised for session descriptions a peer sent us.

Both are :class:`realtime.errors.DecodeError` subclasses, so the HTTPS API maps
either to ``invalid_session_description`` and adapters never crash on them.

* :class:`SdpError` -- the text is not a well-formed RFC 8866 description
  (or an attribute value breaks its RFC grammar).
* :class:`NegotiationError` -- the description parses but cannot be answered
  or applied under the offer/answer rules of RFC 3264 and JSEP (RFC 8829).
"""

from __future__ import annotations

from realtime.errors import DecodeError

#: longest excerpt of a bad line quoted in an error message
QUOTE_LIMIT = 80


class SdpError(DecodeError):
    """Raised when SDP text is malformed; the message names the bad line or value."""


class NegotiationError(SdpError):
    """Raised when a well-formed description breaks the offer/answer rules we apply."""


def quote(text: str) -> str:
    """Return ``repr(text)``, cut to :data:`QUOTE_LIMIT` characters for messages."""
    if len(text) > QUOTE_LIMIT:
        text = text[:QUOTE_LIMIT] + "..."
    return repr(text)
