"""RFC 8285 §5: carrying header extensions from one session's ids to another's, on the bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError
from realtime.rtp.extensions import HeaderExtension
from realtime.rtp.packet import RtpPacket
from realtime.rtp.rewrite import ExtensionRewrite


def expected(packet: RtpPacket, rewrite: ExtensionRewrite) -> RtpPacket:
    """The value-form answer: renumber kept elements, drop the rest, append."""
    kept = [HeaderExtension(rewrite.ids[e.id], e.value) for e in packet.header_extensions
            if e.id in rewrite.ids]
    kept += [HeaderExtension(i, v) for i, v in rewrite.append]
    return packet.with_extensions(kept)


def test_fast_path_renumbers_drops_and_appends() -> None:
    packet = RtpPacket(96, 1, 2, 3, payload=b"x").with_extensions(
        [HeaderExtension(1, b"0"), HeaderExtension(2, b"\x01\x02\x03"), HeaderExtension(10, b"f")])
    rewrite = ExtensionRewrite({2: 5}, ((4, b"7"),))
    assert rewrite.one_byte
    out = rewrite.apply(packet.encode())
    assert bytes(out) == expected(packet, rewrite).encode()
    assert RtpPacket.decode(out).header_extensions == (
        HeaderExtension(5, b"\x01\x02\x03"), HeaderExtension(4, b"7"))


def test_nothing_left_clears_the_x_bit() -> None:
    packet = RtpPacket(96, 1, 2, 3, payload=b"x").with_extensions([HeaderExtension(1, b"0")])
    out = ExtensionRewrite({}).apply(packet.encode())
    assert not out[0] & 0x10 and bytes(out) == RtpPacket(96, 1, 2, 3, payload=b"x").encode()


element = st.builds(HeaderExtension, st.integers(1, 14), st.binary(min_size=1, max_size=16))
big_element = st.builds(HeaderExtension, st.integers(1, 255), st.binary(max_size=40))


@settings(max_examples=200)
@given(
    st.lists(element | big_element, max_size=5),
    st.dictionaries(st.integers(1, 255), st.integers(1, 255), max_size=6),
    st.lists(st.tuples(st.integers(1, 20), st.binary(min_size=1, max_size=20)), max_size=2),
    st.integers(0, 3),
)
def test_matches_the_value_form(elements: list[HeaderExtension], ids: dict[int, int],
                                append: list[tuple[int, bytes]], csrcs: int) -> None:
    packet = RtpPacket(96, 1, 2, 3, csrc=tuple(range(csrcs)), payload=b"pay",
                       padding_size=3).with_extensions(elements)
    rewrite = ExtensionRewrite(ids, tuple(append))
    assert RtpPacket.decode(rewrite.apply(packet.encode())) == RtpPacket.decode(
        expected(packet, rewrite).encode())


@given(st.binary(min_size=12, max_size=64))
def test_hostile_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        ExtensionRewrite({1: 2, 3: 200}, ((4, b"m"),)).apply(data)
    except DecodeError:
        pass


def test_the_same_bytes_object_gets_a_fresh_copy_of_the_remembered_output() -> None:
    """The SFU's fan-out applies one rewrite to one packet object per subscriber."""
    packet = RtpPacket(96, 1, 2, 3, payload=b"x" * 50).with_extensions(
        [HeaderExtension(1, b"0"), HeaderExtension(2, b"\x01\x02\x03")]).encode()
    rewrite = ExtensionRewrite({2: 5}, ((4, b"7"),))
    first = rewrite.apply(packet)
    first[-1] = 0  # a subscriber's own rewriting and SRTP happen on its copy
    second = rewrite.apply(packet)
    assert second is not first
    assert bytes(second) == bytes(ExtensionRewrite({2: 5}, ((4, b"7"),)).apply(packet))


def test_a_bytearray_is_read_again_every_time() -> None:
    """A bytearray may change between calls: its output is never remembered."""
    packet = bytearray(RtpPacket(96, 1, 2, 3, payload=b"abc").with_extensions(
        [HeaderExtension(2, b"\x01")]).encode())
    rewrite = ExtensionRewrite({2: 5})
    before = bytes(rewrite.apply(packet))
    packet[-1] = ord("z")
    after = bytes(rewrite.apply(packet))
    assert before.endswith(b"abc") and after.endswith(b"abz")


@settings(max_examples=100)
@given(st.lists(st.tuples(st.lists(element, max_size=4), st.binary(max_size=30),
                          st.integers(1, 3)), min_size=1, max_size=6))
def test_remembering_never_changes_the_output(runs) -> None:
    """Packets in turn, each applied 1-3 times: every output is what a fresh rewrite gives."""
    rewrite = ExtensionRewrite({1: 3, 2: 2, 9: 14}, ((4, b"1"),))
    for elements, payload, times in runs:
        packet = RtpPacket(96, 1, 2, 3, payload=payload).with_extensions(elements).encode()
        fresh = bytes(ExtensionRewrite({1: 3, 2: 2, 9: 14}, ((4, b"1"),)).apply(packet))
        for _ in range(times):
            assert bytes(rewrite.apply(packet)) == fresh
