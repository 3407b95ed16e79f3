"""DataChannel PPIDs and the stream-id table."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from realtime.datachannel.channels import (
    ChannelTable, DataChannel, Ppid, decode_message, encode_message,
)
from realtime.errors import DecodeError, LocalProtocolError


@pytest.mark.parametrize("message, ppid, payload", [
    ("hé", Ppid.STRING, "hé".encode()),
    ("", Ppid.STRING_EMPTY, b"\0"),  # SCTP cannot carry an empty message
    (b"\x01\x02", Ppid.BINARY, b"\x01\x02"),
    (b"", Ppid.BINARY_EMPTY, b"\0"),
])
def test_ppids(message, ppid, payload):
    assert encode_message(message) == (ppid, payload)
    assert decode_message(ppid, payload) == message
    assert type(decode_message(ppid, payload)) is type(message)


def test_deprecated_partial_ppids_read_like_whole_ones():
    assert decode_message(Ppid.BINARY_PARTIAL, b"ab") == b"ab"
    assert decode_message(Ppid.STRING_PARTIAL, b"ab") == "ab"


@pytest.mark.parametrize("ppid, payload, message", [
    (Ppid.DCEP, b"\x02", "PPID 50 is not a WebRTC DataChannel message"),
    (0, b"x", "PPID 0 is not a WebRTC DataChannel message"),
    (Ppid.STRING, b"\xff", "WebRTC String message is not UTF-8"),
])
def test_undecodable_messages(ppid, payload, message):
    with pytest.raises(DecodeError) as info:
        decode_message(ppid, payload)
    assert str(info.value) == message


@given(st.one_of(st.text(), st.binary()))
def test_message_round_trip(message):
    assert decode_message(*encode_message(message)) == message


def test_dtls_client_allocates_even_ids_and_server_odd():
    client, server = ChannelTable(dtls_client=True), ChannelTable(dtls_client=False)
    assert [client.allocate(), server.allocate()] == [0, 1]
    client.add(DataChannel(0, "a"))
    client.add(DataChannel(2, "b"))
    assert client.allocate() == 4
    client.remove(0)
    assert client.allocate() == 0


@pytest.mark.parametrize("channel, message", [
    (DataChannel(65535, "x"), "stream id 65535 is out of range"),
    (DataChannel(4, "x"), "stream id 4 is already in use"),
])
def test_add_refuses(channel, message):
    table = ChannelTable(dtls_client=True)
    table.add(DataChannel(4, "first"))
    with pytest.raises(LocalProtocolError, match=message):
        table.add(channel)


def test_table_is_bounded():
    table = ChannelTable(dtls_client=True, limit=2)
    table.add(DataChannel(0, "a"))
    table.add(DataChannel(1, "b"))
    with pytest.raises(LocalProtocolError, match="too many DataChannels"):
        table.add(DataChannel(2, "c"))


def test_open_message_round_trips_options():
    channel = DataChannel(6, "lbl", "proto", ordered=False, max_packet_life_time=300, priority=2)
    assert DataChannel.from_open(6, channel.open_message()) == channel
