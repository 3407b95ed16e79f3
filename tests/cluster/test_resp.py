"""RESP2 codec: annotated bytes, malformed replies (one row per message), Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.cluster.resp import (
    MAX_DEPTH, NEED_MORE, RespDecodeError, RespError, RespReader, decode_replies,
    encode_command, encode_reply,
)
from realtime.errors import DecodeError, LocalProtocolError


def test_command_is_an_array_of_bulk_strings() -> None:
    assert encode_command("SET", b"k", 42) == (
        b"*3\r\n"          # array of 3 elements
        b"$3\r\nSET\r\n"   # bulk string of 3 bytes: the command name
        b"$1\r\nk\r\n"     # bulk string of 1 byte: the key
        b"$2\r\n42\r\n"    # integers travel as decimal bulk strings
    )


def test_binary_arguments_are_length_prefixed_not_escaped() -> None:
    assert encode_command(b"\r\n\x00") == b"*1\r\n$3\r\n\r\n\x00\r\n"


@pytest.mark.parametrize("args", [(), (True,), (1.5,), (None,), ("\ud800",)])
def test_bad_arguments_are_our_bug(args) -> None:
    with pytest.raises(LocalProtocolError):
        encode_command(*args)


@pytest.mark.parametrize("data, value", [
    (b"+OK\r\n", "OK"),                                      # simple string
    (b"-ERR unknown command\r\n", RespError("ERR unknown command")),
    (b":-7\r\n", -7),                                        # integer
    (b"$5\r\nhello\r\n", b"hello"),                          # bulk string
    (b"$0\r\n\r\n", b""),                                    # empty bulk string
    (b"$-1\r\n", None),                                      # null bulk (GET of a missing key)
    (b"*-1\r\n", None),                                      # null array
    (b"*2\r\n$1\r\na\r\n:1\r\n", [b"a", 1]),                 # mixed array
    (b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",      # a pub/sub push
     [b"message", b"ch", b"x"]),
])
def test_replies(data, value) -> None:
    assert decode_replies(data) == [value]
    if data != b"*-1\r\n":                 # both nulls decode to None; None encodes as $-1
        assert encode_reply(value) == data


def test_unencodable_reply_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        encode_reply("\ud800")


def test_error_kind() -> None:
    assert RespError("WRONGPASS invalid username-password pair").kind == "WRONGPASS"


def test_replies_arrive_in_pieces() -> None:
    reader = RespReader()
    stream = b"+OK\r\n*2\r\n$3\r\nabc\r\n:5\r\n"
    got = []
    for i in range(len(stream)):
        reader.feed(stream[i:i + 1])
        got += reader.replies()
    assert got == ["OK", [b"abc", 5]]
    assert reader.next_reply() is NEED_MORE


@pytest.mark.parametrize("data, message", [
    (b"!3\r\nabc\r\n", "RESP type byte 0x21 is not one of + - : $ *"),
    (b":12x\r\n", "RESP integer is not a decimal integer: b'12x'"),
    (b":\r\n", "RESP integer is not a decimal integer: b''"),
    (b"$-2\r\n", "RESP bulk length is negative: -2"),
    (b"$99999999999\r\n", "RESP bulk length 99999999999 exceeds the limit 16777216"),
    (b"*99999999\r\n", "RESP array length 99999999 exceeds the limit 1048576"),
    (b"$3\r\nabcd\r\n", "RESP bulk string is not followed by CRLF"),
    (b"+a\rb\r\n", "RESP line contains a bare CR or LF"),
    (b"+\xff\r\n", "RESP simple string is not UTF-8"),
    (b"*1\r\n" * (MAX_DEPTH + 1), f"RESP arrays nested deeper than {MAX_DEPTH}"),
    (b"+" + b"a" * (64 * 1024 + 2), "RESP line longer than 65536 bytes"),
])
def test_malformed(data, message) -> None:
    reader = RespReader()
    reader.feed(data)
    with pytest.raises(RespDecodeError) as caught:
        reader.next_reply()
    assert str(caught.value) == message
    with pytest.raises(RespDecodeError):     # the reader stays failed
        reader.next_reply()


def test_truncated_whole_input() -> None:
    with pytest.raises(RespDecodeError, match="truncated: 4 bytes left over"):
        decode_replies(b"$5\r\n")


# one line of UTF-8: no CR/LF, no lone surrogates (those are our bug, tested above)
line = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
               max_size=20)
values = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=40) | line
    | st.builds(RespError, line),
    lambda children: st.lists(children, max_size=5), max_leaves=20)


@settings(deadline=None)  # no per-example deadline: the machine is shared
@given(values)
def test_round_trip(value) -> None:
    assert decode_replies(encode_reply(value)) == [value]


@settings(deadline=None)  # no per-example deadline: the machine is shared
@given(st.binary(max_size=200))
def test_hostile_bytes_raise_only_decode_error(data) -> None:
    reader = RespReader()
    reader.feed(data)
    try:
        reader.replies()
    except DecodeError:
        pass


@settings(deadline=None)  # no per-example deadline: the machine is shared
@given(st.lists(values, min_size=1, max_size=4), st.integers(1, 7))
def test_any_split_gives_the_same_replies(replies, step) -> None:
    stream = b"".join(encode_reply(v) for v in replies)
    reader = RespReader()
    got = []
    for i in range(0, len(stream), step):
        reader.feed(stream[i:i + step])
        got += reader.replies()
    assert got == replies
