"""VP8 payload descriptor numbering (RFC 7741 §4.2) and its renumbering across switches."""

from __future__ import annotations

from hypothesis import given, strategies as st

from realtime.media.vp8 import PictureNumbering, picture_fields, rewrite_picture_fields
from realtime.rtp.packet import RtpPacket
from realtime.sfu.forwarder import Forwarder, PublishedStream


def descriptor(picture_id: int, tl0: int | None = 5, long: bool = True, start: bool = True,
               tid: bool = True) -> bytes:
    """X=1 I=1 [L=1] [T=1]: the layout Chromium sends (15-bit PictureID)."""
    x = 0x80 | (0x40 if tl0 is not None else 0) | (0x20 if tid else 0)
    out = bytes([0x80 | (0x10 if start else 0), x])
    out += bytes([0x80 | picture_id >> 8, picture_id & 0xFF]) if long else bytes([picture_id])
    if tl0 is not None:
        out += bytes([tl0])
    if tid:
        out += bytes([0x20])
    return out + b"\x00\x00\x00"  # VP8 payload header, not ours to read here


def test_picture_fields_of_each_layout() -> None:
    assert picture_fields(descriptor(0x1234, 7), 0) == (0x1234, 15, 7)
    assert picture_fields(descriptor(100, None, long=False), 0) == (100, 7, -1)
    assert picture_fields(b"\x10\x00\x00", 0) is None            # X=0: no PictureID
    assert picture_fields(b"\x80\x40\x05\x00", 0) is None        # X=1 but I=0
    assert picture_fields(b"\x80\x80\x81", 0) is None            # M=1, second octet missing
    assert picture_fields(b"\x80\xc0\x05", 0) is None            # L=1, TL0PICIDX missing
    assert picture_fields(b"\x00\x00" + descriptor(9, 1), 2) == (9, 15, 1)


def sent(numbering: PictureNumbering, packet: bytes) -> bytearray:
    """What the forwarder does with each packet it sends."""
    out = bytearray(packet)
    rewrite_picture_fields(out, 0, numbering.picture_delta, numbering.tl0_delta)
    numbering.last_packet, numbering.last_offset = out, 0
    return out


def test_switch_makes_the_new_source_follow_the_last_picture() -> None:
    numbering = PictureNumbering()
    first = descriptor(4101, 200)
    numbering.switch(first, 0)                                   # nothing sent yet: keep
    assert picture_fields(sent(numbering, first), 0) == (4101, 15, 200)
    layer_h = descriptor(977, 12)
    numbering.switch(layer_h, 0)
    out = sent(numbering, layer_h)
    assert picture_fields(out, 0) == (4102, 15, 201)
    assert len(out) == len(layer_h)                              # rewritten in place
    assert picture_fields(sent(numbering, descriptor(978, 12)), 0) == (4103, 15, 201)


def test_wraps_modulo_the_field_widths() -> None:
    numbering = PictureNumbering()
    sent(numbering, descriptor(0x7FFF, 0xFF))
    following = descriptor(10, 3)
    numbering.switch(following, 0)
    assert picture_fields(sent(numbering, following), 0) == (0, 15, 0)
    short = bytearray(descriptor(120, None, long=False))
    rewrite_picture_fields(short, 0, 10, 0)
    assert picture_fields(short, 0) == (2, 7, -1)                # (120 + 10) mod 128


def test_a_source_without_picture_ids_keeps_the_deltas() -> None:
    numbering = PictureNumbering()
    sent(numbering, descriptor(500, 1))
    numbering.switch(b"\x10\x00\x00", 0)                        # X=0: nothing to renumber
    assert (numbering.picture_delta, numbering.tl0_delta) == (0, 0)


@given(st.binary(max_size=12), st.integers(0, 0x7FFF), st.integers(0, 0xFF))
def test_hostile_descriptors_never_raise_nor_change_length(data, picture_delta, tl0_delta) -> None:
    numbering = PictureNumbering()
    numbering.last_packet = data
    numbering.switch(data, 0)
    packet = bytearray(data)
    rewrite_picture_fields(packet, 0, picture_delta, tl0_delta)
    assert len(packet) == len(data)
    picture_fields(data, len(data))


# -- through the forwarder: a simulcast switch and a retransmission ---------------------------


def rtp(seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return RtpPacket(96, seq, ts, ssrc, payload=payload).encode()


def test_forwarder_renumbers_pictures_across_a_switch_and_in_retransmissions() -> None:
    f, h = PublishedStream(0xF, 90000), PublishedStream(0x4, 90000)
    forwarder = Forwarder(0xCAFE, 90000, require_keyframe=True, random=bytes,
                          vp8_payload_types={96})
    sent = []
    for i in range(3):                                          # layer f: pictures 4101..4103
        packet = rtp(100 + i, 3000 * i, 0xF, descriptor(4101 + i, 60 + i))
        f.buffer.store(100 + i, packet)
        sent.append(forwarder.forward(packet, f, keyframe=i == 0, now=i / 30))
    for i in range(3):                                          # switch to h on its key frame
        packet = rtp(9000 + i, 500 + 3000 * i, 0x4, descriptor(977 + i, 12 + i))
        h.buffer.store(9000 + i, packet)
        sent.append(forwarder.forward(packet, h, keyframe=i == 0, now=(3 + i) / 30))
    pictures = [picture_fields(p, 12)[0] for p in sent]
    tl0s = [picture_fields(p, 12)[2] for p in sent]
    assert pictures == [4101, 4102, 4103, 4104, 4105, 4106]
    assert tl0s == [60, 61, 62, 63, 64, 65]
    seqs = [p[2] << 8 | p[3] for p in sent]
    again = forwarder.retransmit([seqs[1], seqs[4]], 1.0)      # one packet of each segment
    assert [picture_fields(p, 12)[0] for p in again] == [4102, 4105]
    assert [bytes(p) for p in again] == [bytes(sent[1]), bytes(sent[4])]


def test_forwarder_leaves_other_codecs_alone() -> None:
    source = PublishedStream(1, 90000)
    forwarder = Forwarder(2, 90000, random=bytes, vp8_payload_types={96})
    h264 = RtpPacket(102, 1, 0, 1, payload=descriptor(5)).encode()
    first = forwarder.forward(h264, source, keyframe=True, now=0.0)
    other = PublishedStream(3, 90000)
    second = forwarder.forward(RtpPacket(102, 50, 0, 3, payload=descriptor(900)).encode(),
                               other, keyframe=True, now=0.1)
    assert picture_fields(first, 12)[0] == 5 and picture_fields(second, 12)[0] == 900


# -- Chromium's own simulcast packets (the shared keyed capture) ------------------------------


def test_chromium_simulcast_layers_renumbered_into_one_picture_sequence(shared) -> None:
    """Chromium numbers each layer on its own; after two switches the output is one sequence.

    ``generated/webrtc/webrtc-chromium-aiortc-simulcast`` holds three VP8 layers (PT 96)
    whose key frames open the call: the forwarder starts on the first layer, switches to
    the second at its key frame, then to the third, and forwards the third to the end.
    """
    from realtime.media.keyframes import packet_starts_keyframe, vp8_keyframe
    from realtime.rtp.packet import payload_offset
    from realtime.testing.captures import read_capture
    from realtime.testing.srtp_keys import SrtpDecryptor, load_srtp_keys

    base = shared / "pcaps" / "generated" / "webrtc" / "webrtc-chromium-aiortc-simulcast"
    decryptor = SrtpDecryptor(load_srtp_keys(base.with_suffix(".srtp.json")))
    packets = []
    for record in read_capture(base.with_suffix(".pcap")):
        data = record.payload
        if len(data) > 12 and 0x80 <= data[0] < 0xC0 and not 0xC0 <= data[1] <= 0xDF:
            clear = decryptor.unprotect(False, data, record.src, record.dst)
            if clear is not None and clear[1] & 0x7F == 96:
                packets.append(clear)
    ssrcs = list(dict.fromkeys(int.from_bytes(p[8:12], "big") for p in packets))
    assert len(ssrcs) == 3
    first = {ssrc: next(picture_fields(p, payload_offset(p)) for p in packets
                        if int.from_bytes(p[8:12], "big") == ssrc) for ssrc in ssrcs}
    assert len({fields[0] for fields in first.values()}) == 3      # three PictureID counters
    assert all(width == 15 and tl0 >= 0 for _, width, tl0 in first.values())

    streams = {ssrc: PublishedStream(ssrc, 90000) for ssrc in ssrcs}
    forwarder = Forwarder(0xCAFE, 90000, require_keyframe=True, random=bytes,
                          vp8_payload_types={96})
    current, out = 0, []
    for number, packet in enumerate(packets):
        ssrc = int.from_bytes(packet[8:12], "big")
        keyframe = packet_starts_keyframe(packet, vp8_keyframe, payload_offset(packet))
        if keyframe and ssrcs.index(ssrc) > current:
            current = ssrcs.index(ssrc)                            # switch up on its key frame
        if ssrc != ssrcs[current]:
            continue
        sent = forwarder.forward(packet, streams[ssrc], keyframe, number / 100)
        if sent is not None:
            out.append(picture_fields(sent, payload_offset(sent)))
    assert len(forwarder.segments) == 3 and len(out) > 100
    pictures = [fields[0] for fields in out]
    tl0s = [fields[2] for fields in out]
    assert pictures[0] == first[ssrcs[0]][0]                      # the first layer kept its own
    assert all((b - a) & 0x7FFF in (0, 1) for a, b in zip(pictures, pictures[1:]))
    assert all((b - a) & 0xFF in (0, 1) for a, b in zip(tl0s, tl0s[1:]))
