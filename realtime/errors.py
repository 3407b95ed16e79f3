"""
The two kinds of failure in this code base.

* :class:`DecodeError` -- the *peer* sent bytes we cannot accept.  Adapters
  catch it, count the drop by kind and carry on: hostile input never crashes
  the reactor.  Every decoder raises only subclasses of it (never
  ``IndexError`` or ``struct.error``); the Hypothesis tests enforce that.
* :class:`LocalProtocolError` -- *we* misused an API (encoding an impossible
  value, calling a machine in the wrong state).  It is a bug, so it is never
  swallowed.
"""


class DecodeError(ValueError):
    """Raised when received bytes are malformed; the message says exactly why."""


class Truncated(DecodeError):
    """Raised when a field runs past the end of the buffer."""


class LocalProtocolError(Exception):
    """Raised when our own code asks for something the protocol forbids."""
