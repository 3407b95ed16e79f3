"""
What the server keeps across restarts, and what it announces.

* :mod:`realtime.storage.store` -- :class:`StateStore`, one SQLite file in the
  state directory with versioned migrations and the apps table;
  :class:`ServerConfig`, the non-persistent announced addresses and
  command-line apps.
* :mod:`realtime.storage.turn` -- :class:`TurnTables`: TURN keys, issued
  credentials, TURN usage (a component of the store).
* :mod:`realtime.storage.usage` -- :class:`SfuUsageTables`: SFU usage per app,
  session and track (a component of the store).

The store is used by the service's edges (``service.py``, ``api/``,
``net/turn_service.py``), never on the media path.
"""

from realtime.storage.store import App, ServerConfig, StateStore, generate_app
from realtime.storage.turn import TurnKey, generate_turn_key

__all__ = ["App", "ServerConfig", "StateStore", "TurnKey", "generate_app", "generate_turn_key"]
