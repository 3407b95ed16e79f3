"""
Errors of the HTTPS API, in Cloudflare Realtime's shape.

Every error response of the API is JSON with two top-level strings and an
HTTP status (docs/cloudflare-api.md §1.1, §3.1)::

    HTTP/1.1 401 Unauthorized
    Content-Type: application/json
    Vary: Origin

    {"errorCode": "unauthorized", "errorDescription": "..."}

A route raises :class:`ApiError`; the Klein app turns it into that response.
The codes are the strings Cloudflare documents (error-codes.mdx, quoted in
docs/cloudflare-api.md §3.1); :class:`ErrorCode` lists the request-level ones.  Per-item
failures (``tracks[].errorCode``) are not exceptions: they travel in HTTP 200
bodies and are built by the routes themselves.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Request-level ``errorCode`` strings of Cloudflare Realtime (docs/cloudflare-api.md §3.1)."""

    #: bad or missing app secret
    UNAUTHORIZED = "unauthorized"
    #: the SFU app (or here: the route) was not found
    NOT_FOUND = "not_found"
    #: the body is not the JSON the route expects
    DECODING_ERROR = "decoding_error"
    #: the JSON decodes but its values are unacceptable
    INVALID_PARAMS = "invalid_params"
    #: the request body is larger than the server accepts
    PAYLOAD_TOO_LARGE = "payload_too_large"
    #: the session is not ready (425) or has gone (410)
    SESSION_ERROR = "session_error"
    #: SDP could not be parsed or arrived in the wrong order
    INVALID_SESSION_DESCRIPTION = "invalid_session_description"
    #: the server failed; the description says what
    INTERNAL_ERROR = "internal_error"
    #: the method is not allowed on this route (ours; Cloudflare names none)
    METHOD_NOT_ALLOWED = "method_not_allowed"


class ApiError(Exception):
    """Raised by a route to answer with a JSON error and an HTTP status.

    :param status: the HTTP status code.
    :param code: the ``errorCode`` string.
    :param description: the ``errorDescription`` for humans.
    """

    def __init__(self, status: int, code: ErrorCode | str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code.value if isinstance(code, ErrorCode) else code
        self.description = description

    def body(self) -> dict[str, str]:
        """Return the JSON body: ``{"errorCode": ..., "errorDescription": ...}``."""
        return {"errorCode": self.code, "errorDescription": self.description}

    @classmethod
    def unauthorized(cls, description: str = "Invalid or missing bearer token") -> ApiError:
        """Return a 401 ``unauthorized`` error."""
        return cls(401, ErrorCode.UNAUTHORIZED, description)

    @classmethod
    def not_found(cls, description: str) -> ApiError:
        """Return a 404 ``not_found`` error."""
        return cls(404, ErrorCode.NOT_FOUND, description)

    @classmethod
    def decoding_error(cls, description: str) -> ApiError:
        """Return a 400 ``decoding_error`` error."""
        return cls(400, ErrorCode.DECODING_ERROR, description)

    @classmethod
    def payload_too_large(cls, limit: int) -> ApiError:
        """Return a 413 ``payload_too_large`` error naming the limit."""
        return cls(413, ErrorCode.PAYLOAD_TOO_LARGE, f"Request body exceeds {limit} bytes")
