"""Tests for RFC 8851 ``a=rid`` and RFC 8853 ``a=simulcast``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.sdp import RidDescription, SdpError, Simulcast, SimulcastStream

S = SimulcastStream


@pytest.mark.parametrize(("text", "value"), [
    ("send f;h;q", Simulcast(send=((S("f"),), (S("h"),), (S("q"),)))),
    ("recv 1", Simulcast(recv=((S("1"),),))),
    # alternatives with "," and a paused stream with "~" (RFC 8853 §5.1)
    ("send a,b;~c", Simulcast(send=((S("a"), S("b")), (S("c", True),)))),
    ("send a;b recv c", Simulcast(send=((S("a"),), (S("b"),)), recv=((S("c"),),))),
    ("recv c send a", Simulcast(send=((S("a"),),), recv=((S("c"),),), recv_first=True)),
])
def test_simulcast_grammar(text, value):
    assert Simulcast.parse(text) == value
    assert value.value() == text
    assert value.line() == "a=simulcast:" + text


def test_simulcast_mirror_and_rids():
    offered = Simulcast.parse("send f;h;~q")
    assert offered.send_rids == ("f", "h", "q")
    answer = offered.reversed()
    assert answer.value() == "recv f;h;~q" and answer.recv_rids == ("f", "h", "q")
    both = Simulcast.parse("recv x send y")
    assert both.reversed().value() == "send x recv y"
    assert both.reversed().reversed() == both


@pytest.mark.parametrize(("text", "value"), [
    ("f send", RidDescription("f", "send")),
    ("h recv pt=96,97", RidDescription("h", "recv", (96, 97))),
    ("q send pt=96;max-width=320;max-height=180",
     RidDescription("q", "send", (96,), (("max-width", "320"), ("max-height", "180")))),
    ("lo send max-fps=15", RidDescription("lo", "send", (), (("max-fps", "15"),))),
])
def test_rid_grammar(text, value):
    assert RidDescription.parse(text) == value
    assert value.value() == text
    assert value.reversed().direction == ("recv" if value.direction == "send" else "send")


@pytest.mark.parametrize(("cls", "text"), [
    (Simulcast, "send"),
    (Simulcast, "both a"),
    (Simulcast, "send a recv"),
    (Simulcast, "send a send b"),
    (Simulcast, "send a;;b"),
    (Simulcast, "send ~"),
    (Simulcast, "send a b"),
    (RidDescription, "f"),
    (RidDescription, "f sideways"),
    (RidDescription, "f/x send"),
    (RidDescription, "f send pt=x"),
    (RidDescription, "f send pt=200"),
    (RidDescription, "f send a b"),
])
def test_malformed(cls, text):
    with pytest.raises(SdpError) as caught:
        cls.parse(text)
    assert str(caught.value) == f"malformed a={cls.name}: {text!r}"


rid = st.text("abcXYZ019-_", min_size=1, max_size=6)
streams = st.lists(st.lists(st.builds(SimulcastStream, rid, st.booleans()), min_size=1,
                            max_size=3).map(tuple), min_size=1, max_size=4).map(tuple)


@settings(max_examples=200)
@given(st.one_of(
    st.builds(Simulcast, send=streams),
    st.builds(Simulcast, recv=streams),
    st.builds(Simulcast, streams, streams, st.booleans()),
))
def test_simulcast_round_trip(value):
    assert Simulcast.parse(value.value()) == value


@settings(max_examples=200)
@given(st.builds(RidDescription, rid, st.sampled_from(["send", "recv"]),
                 st.lists(st.integers(0, 127), max_size=3).map(tuple),
                 st.lists(st.tuples(st.sampled_from(["max-width", "max-fps", "max-br"]),
                                    st.none() | st.text("0123456789", min_size=1, max_size=5)),
                          max_size=3).map(tuple)))
def test_rid_round_trip(value):
    assert RidDescription.parse(value.value()) == value
