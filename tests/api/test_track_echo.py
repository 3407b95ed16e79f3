"""
:func:`realtime.api.tracks.track_echo`: result items repeat only well-typed TrackObject fields.

Found by schemathesis (tests/interop/test_schemathesis.py): error items used
to echo the request item verbatim, so a 200 answer broke the contract's schema.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.api.tracks import track_echo

ORDERINGS = ("none", "asciibetical")


@pytest.mark.parametrize(("item", "echo"), [
    ({"location": "remote", "sessionId": "s", "trackName": "t", "mid": "0", "kind": "audio",
      "bidirectionalMediaStream": True},
     {"location": "remote", "sessionId": "s", "trackName": "t", "mid": "0", "kind": "audio",
      "bidirectionalMediaStream": True}),                                   # kept whole
    ({"location": "elsewhere", "mid": 5, "kind": "AAA"}, {}),               # bad enum, type
    ({"sessionId": None, "trackName": ["t"], "bidirectionalMediaStream": 1}, {}),
    ({"unknown": {"x": 1}, "trackName": "t"}, {"trackName": "t"}),          # unknown key
    ({"simulcast": {"preferredRid": "h", "priorityOrdering": "asciibetical",
                    "ridNotAvailable": None, "extra": 1}},
     {"simulcast": {"preferredRid": "h", "priorityOrdering": "asciibetical"}}),
    ({"simulcast": {"preferredRid": 3, "ridNotAvailable": ["none"]}}, {"simulcast": {}}),
    ({"simulcast": "h"}, {}),
])
def test_echo_keeps_only_typed_fields(item, echo) -> None:
    assert track_echo(item) == echo


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)
keys = st.sampled_from(["location", "mid", "sessionId", "trackName", "kind",
                        "bidirectionalMediaStream", "simulcast", "other"])
simulcast_keys = st.sampled_from(["preferredRid", "priorityOrdering", "ridNotAvailable", "x"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, json_values | st.dictionaries(simulcast_keys, json_values)))
def test_any_item_echoes_a_valid_track_object(item) -> None:
    echo = track_echo(item)
    assert echo.get("location", "local") in ("local", "remote")
    assert echo.get("kind", "audio") in ("audio", "video")
    assert all(isinstance(echo[k], str) for k in ("mid", "sessionId", "trackName") if k in echo)
    assert isinstance(echo.get("bidirectionalMediaStream", False), bool)
    simulcast = echo.get("simulcast", {})
    assert set(simulcast) <= {"preferredRid", "priorityOrdering", "ridNotAvailable"}
    assert isinstance(simulcast.get("preferredRid", ""), str)
    assert simulcast.get("priorityOrdering", "none") in ORDERINGS
    assert simulcast.get("ridNotAvailable", "none") in ORDERINGS
    assert all(item[k] == v for k, v in echo.items() if k != "simulcast")
