"""
Pre-encoded publisher media for ``bench/forward.py``: real VP8 and Opus as RTP.

The benchmark's publisher must send bytes every server accepts, including
aiortc's ``MediaRelay``, which decodes what it relays; so the video is real
VP8 (libvpx through PyAV, 640x480, 30 frames/s, target 1.5 Mbit/s, a key
frame every 30 frames) and the audio real Opus (libopus, 48 kHz, 20 ms,
64 kbit/s).  Both are encoded once, before any measurement, then looped:
the loop starts on a key frame, so a decoder never sees a gap.

VP8 packetisation follows RFC 7741 §4.2, with the shortest payload
descriptor (X=0, N=0, PartID=0)::

     0 1 2 3 4 5 6 7
    +-+-+-+-+-+-+-+-+
    |X|R|N|S|R| PID |   S=1 on the first packet of a frame, else 0
    +-+-+-+-+-+-+-+-+
    | VP8 payload ... (at most MAX_VP8_PAYLOAD bytes per packet)

The RTP marker bit is set on a frame's last packet (RFC 7741 §4.1).  Opus
uses one frame per packet (RFC 7587 §4.2).

Frame intervals are jittered (2700-3300 ticks of the 90 kHz clock, on
average 3000 = 1/30 s, and the publisher paces by them) so that the
sequence of RTP timestamp differences identifies each frame: a receiver
whose server rewrote the timestamp base can still be lined up with the
publisher (see ``forward_load.match_offset``).
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass

import math
from fractions import Fraction
import struct

import av

WIDTH, HEIGHT, FPS = 640, 480, 30
VIDEO_BITRATE = 1_500_000
AUDIO_BITRATE = 64_000
GOP = 30
NOISE_ROWS = 40
MAX_VP8_PAYLOAD = 1100
VIDEO_PT, AUDIO_PT = 96, 111


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded video frame: its RTP payloads and its key frame flag."""

    payloads: tuple[bytes, ...]
    keyframe: bool


def packetize_vp8(frame: bytes) -> tuple[bytes, ...]:
    """Split one VP8 frame into RFC 7741 payloads (1-byte descriptor each)."""
    chunks = [frame[i : i + MAX_VP8_PAYLOAD] for i in range(0, len(frame), MAX_VP8_PAYLOAD)]
    return tuple((b"\x10" if i == 0 else b"\x00") + chunk for i, chunk in enumerate(chunks))


def _blocky(blocks: bytes, index: int, rng: _random.Random, noise_rows: int) -> bytes:
    """Return a luma plane of 16x16 blocks scrolling left, top rows noisy."""
    per_row = WIDTH // 16 + 8
    shift = index % 8
    rows = []
    for row in range(HEIGHT // 16):
        line = b"".join(bytes([v]) * 16 for v in blocks[row * per_row + shift : row * per_row + shift + WIDTH // 16])
        rows.append(line * 16)
    plane = b"".join(rows)
    noise = rng.randbytes(noise_rows * WIDTH)
    return noise + plane[len(noise):]


def _fit(data: bytes, plane) -> bytes:
    """Return ``data`` laid out with the plane's line stride."""
    width = plane.width
    if plane.line_size == width:
        return data
    pad = bytes(plane.line_size - width)
    return b"".join(data[i : i + width] + pad for i in range(0, plane.height * width, width))


def encode_video(seconds: float, seed: int = 1) -> list[EncodedFrame]:
    """Return ``seconds`` of moving noisy 640x480 VP8 at about 1.5 Mbit/s."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = Fraction(1, FPS)
    codec.framerate = Fraction(FPS, 1)
    codec.bit_rate = VIDEO_BITRATE
    codec.gop_size = GOP
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                     "error-resilient": "1", "auto-alt-ref": "0"}
    rng = _random.Random(seed)
    luma = WIDTH * HEIGHT
    blocks = rng.randbytes((WIDTH // 16 + 8) * (HEIGHT // 16))
    chroma = bytes([128]) * (luma // 4)
    frames = []
    for index in range(int(seconds * FPS)):
        y = _blocky(blocks, index, rng, NOISE_ROWS)
        picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane, data in zip(picture.planes, (y, chroma, chroma)):
            plane.update(_fit(data, plane))
        picture.pts = index
        if index % GOP == 0:
            picture.pict_type = av.video.frame.PictureType.I
        for packet in codec.encode(picture):
            frames.append(EncodedFrame(packetize_vp8(bytes(packet)), packet.is_keyframe))
    for packet in codec.encode(None):
        frames.append(EncodedFrame(packetize_vp8(bytes(packet)), packet.is_keyframe))
    if not frames or not frames[0].keyframe:
        raise RuntimeError("the VP8 encoder did not start with a key frame")
    last_key = max(i for i, f in enumerate(frames) if f.keyframe)
    return frames[:last_key] if last_key > 0 else frames


def encode_audio(seconds: float) -> list[bytes]:
    """Return ``seconds`` of a 440 Hz tone as 20 ms Opus packets."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.bit_rate = 48000, AUDIO_BITRATE
    codec.layout, codec.format = "stereo", "s16"
    codec.time_base = Fraction(1, 48000)
    out = []
    samples = 960
    for index in range(int(seconds * 50)):
        tone = [int(math.sin(2 * math.pi * 440 * (n + index * samples) / 48000) * 8000)
                for n in range(samples)]
        frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
        frame.planes[0].update(struct.pack(f"<{2 * samples}h", *(v for v in tone for _ in (0, 1))))
        frame.sample_rate, frame.pts = 48000, index * samples
        out.extend(bytes(p) for p in codec.encode(frame))
    return out


def frame_intervals(count: int, seed: int = 7) -> list[int]:
    """Return ``count`` jittered 90 kHz frame intervals averaging 3000 ticks."""
    rng = _random.Random(seed)
    return [3000 + rng.randrange(-300, 301) for _ in range(count)]


if __name__ == "__main__":  # pragma: no cover - a quick look at the encoder's output
    video = encode_video(5)
    size = sum(len(p) for f in video for p in f.payloads)
    packets = sum(len(f.payloads) for f in video)
    print(f"{len(video)} frames, {size * 8 / (len(video) / FPS) / 1e6:.2f} Mbit/s,"
          f" {packets / (len(video) / FPS):.0f} packets/s,"
          f" {sum(f.keyframe for f in video)} key frames")
    audio = encode_audio(1)
    print(f"{len(audio)} opus packets, {sum(map(len, audio)) / len(audio):.0f} bytes each")
