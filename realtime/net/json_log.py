"""
``--log-format json``: one JSON object per log event, one per line.

twisted.logger events are dictionaries: the format string (``log_format``),
its fields (``session_id=...``, ``reason=...``) and the logger's own keys
(``log_level``, ``log_namespace``, ``log_time``).  Twisted's JSON observer
(:func:`twisted.logger.jsonFileLogObserver`) writes them as they are, so a log
shipper can filter on ``session_id`` without parsing prose.  This observer
adds one key, ``text``, the event formatted as the text log would show it,
and ends each object with a newline (JSON Lines) instead of Twisted's default
RS separator (RFC 7464), which line-oriented tools do not expect::

    {"log_format": "session {session_id} connected", "session_id": "5f0c...",
     "app_id": "...", "log_level": {"name": "info", ...}, "log_namespace": "...",
     "log_time": 1765050000.1, "text": "session 5f0c... connected"}

``twistd`` asks the application for an ``ILogObserver`` component before it
makes its own (``twisted.application.app.AppLogger.start``): the service sets
that component when it joins the application, so the choice is an option of
``twistd realtime`` rather than of ``twistd``.
"""

from __future__ import annotations

from typing import IO, Any

from twisted.logger import ILogObserver, eventAsJSON, formatEvent
from zope.interface import implementer

__all__ = ["JsonLinesObserver", "LOG_FORMATS"]

#: the values of ``--log-format``
LOG_FORMATS = ("text", "json")


@implementer(ILogObserver)
class JsonLinesObserver:
    """Write each log event to ``out`` as one JSON object on one line.

    :param out: a text stream (``sys.stdout`` under ``twistd -n``).
    """

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        """Write ``event`` with its formatted ``text``; flush so a pipe sees it at once."""
        try:
            text = formatEvent(event)
        except Exception:  # a broken format string must not lose the event
            text = str(event.get("log_format", ""))
        self.out.write(eventAsJSON({**event, "text": text}) + "\n")
        self.out.flush()
