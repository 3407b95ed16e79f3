"""The adapters' PyAV codecs on their own: Opus round trip, VP8 and H.264 to JPEG, bad input."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.adapters.ingest import PcmIngest
from realtime.adapters.transcode import FRAME_OCTETS, OpusToPcm, PcmToOpus, VideoToJpeg
from tests.adapters.wsserver import peak_frequency, tone
from tests.conftest import require


def test_pcm_to_opus_to_pcm_keeps_the_tone() -> None:
    encoder, decoder = PcmToOpus(), OpusToPcm()
    pcm = tone(1000.0, 1.0)
    out = b"".join(decoder.decode(packet)
                   for i in range(len(pcm) // FRAME_OCTETS)
                   for packet in encoder.encode(pcm[i * FRAME_OCTETS:(i + 1) * FRAME_OCTETS]))
    assert len(out) == len(pcm)                    # 960 sample frames in, 960 out, per packet
    assert peak_frequency(out) == 1000
    assert decoder.decode(b"\xff\xff\xff") == b"" and decoder.errors == 1


@pytest.mark.parametrize("codec, encoder_name", [("vp8", "libvpx"), ("h264", "libx264")])
def test_video_frames_become_jpeg_images_of_their_size(codec: str, encoder_name: str) -> None:
    try:
        encoder = av.CodecContext.create(encoder_name, "w")
    except (av.FFmpegError, ValueError):
        require(False, f"PyAV has no {encoder_name} encoder here")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 176, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    if codec == "h264":
        encoder.options = {"tune": "zerolatency", "preset": "ultrafast"}
    to_jpeg = VideoToJpeg(codec)
    images = []
    for i in range(6):
        frame = av.VideoFrame(320, 176, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 40) % 256]) * plane.buffer_size)
        frame.pts = i
        for packet in encoder.encode(frame):
            image = to_jpeg.decode(bytes(packet), want_jpeg=True)
            if image is not None:
                images.append(image)
    assert images and to_jpeg.errors == 0
    decoder = av.CodecContext.create("mjpeg", "r")
    pictures = decoder.decode(av.Packet(images[-1]))
    assert (pictures[0].width, pictures[0].height) == (320, 176)
    assert to_jpeg.decode(b"\x00\x01garbage", want_jpeg=True) is None


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_an_ingest_endpoint_sending_garbage_is_counted_not_raised(messages) -> None:
    ingest = PcmIngest()
    for message in messages:
        ingest.receive_message(message, now=1.0)
    assert ingest.messages + sum(ingest.drops.values()) == len(messages)
