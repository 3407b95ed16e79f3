"""
A node drops its copy of an SFU session another node took over (docs/cluster.md).

The copy never connected here: it leaves the PeerHost and the switchboard, its
tracks are unpublished here, and the id is not remembered as gone (the session
lives on, on the other node, where the API forwards later calls).  A copy
that is connected here is kept.
"""

from __future__ import annotations

from tests.api.test_sessions import APP, api  # noqa: F401  (fixture)


def test_an_unconnected_copy_is_dropped_without_410(api) -> None:  # noqa: F811
    publisher = api.publish(send=False)
    session = api.board.get(publisher)
    session.connection.state = "checking"        # never connected on this node
    assert api.board.find(APP.app_id, publisher, "mic") is not None
    assert api.api.sessions.release(publisher) is True
    assert api.board.get(publisher) is None and not api.board.is_gone(publisher)
    assert publisher not in api.api.peers.sessions
    assert api.board.find(APP.app_id, publisher, "mic") is None     # unpublished here
    assert api.call("GET", f"/sessions/{publisher}")[0] == 404       # not 410: it lives on
    assert api.api.sessions.release(publisher) is False                      # nothing left to drop


def test_a_connected_copy_is_kept(api) -> None:  # noqa: F811
    publisher = api.publish(send=False)              # the helper marks it connected
    assert api.api.sessions.release(publisher) is False
    assert api.board.get(publisher) is not None and publisher in api.api.peers.sessions
