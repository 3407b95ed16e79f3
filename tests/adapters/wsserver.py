"""
A WebSocket endpoint for adapter tests: autobahn's Twisted server on 127.0.0.1.

It stands where a customer's service stands (Cloudflare's adapters connect
*to* it): it keeps every binary message it receives, and can send PCM of
its own, paced like a live source, once a client connects.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.defer import Deferred

from realtime.adapters.packet import Packet

RATE = 48000


def tone(frequency: float, seconds: float, amplitude: int = 8000, start: int = 0) -> bytes:
    """Return ``seconds`` of a sine tone as 48 kHz s16le stereo (both channels alike)."""
    frames = int(RATE * seconds)
    out = bytearray()
    for n in range(start, start + frames):
        sample = int(amplitude * math.sin(2 * math.pi * frequency * n / RATE))
        out += struct.pack("<hh", sample, sample)
    return bytes(out)


def goertzel_power(samples: list[int], frequency: float) -> float:
    """Return the power of ``samples`` (48 kHz) at ``frequency`` (the Goertzel algorithm)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2


def peak_frequency(pcm: bytes, channel: int = 0, low: int = 100, high: int = 2000,
                   step: int = 10, seconds: float = 0.2) -> float:
    """Return the strongest frequency (Hz, to ``step``) of s16le stereo ``pcm``.

    Scans ``low``..``high`` over the middle ``seconds`` of the PCM (no numpy here).
    """
    count = len(pcm) // 4
    values = struct.unpack(f"<{count * 2}h", pcm[:count * 4])[channel::2]
    middle = len(values) // 2
    window = values[max(0, middle - int(RATE * seconds / 2)):middle + int(RATE * seconds / 2)]
    return max(range(low, high + 1, step), key=lambda f: goertzel_power(window, f))


class Endpoint:
    """Collect what adapters send; optionally send a tone to whoever connects.

    :param send_tone: (frequency, seconds) of PCM sent in 100 ms messages,
        paced at real time, to each connection; None: send nothing.
    :param ahead: seconds of it sent at once first (then it stays that far ahead).
    """

    def __init__(self, reactor: Any, send_tone: tuple[float, float] | None = None,
                 accept: bool = True, ahead: float = 0.0) -> None:
        self.reactor = reactor
        self.send_tone = send_tone
        #: seconds of the tone sent at once on open, before pacing (a TTS service's lead)
        self.ahead = ahead
        self.messages: list[Packet] = []
        self.raw: list[bytes] = []
        self.connections: list[Any] = []
        self.closed = Deferred()
        endpoint = self

        class Protocol(WebSocketServerProtocol):
            def onConnect(self, request: Any) -> None:  # noqa: N802
                if not accept:
                    from autobahn.websocket.types import ConnectionDeny
                    raise ConnectionDeny(403, "not today")

            def onOpen(self) -> None:  # noqa: N802
                endpoint.connections.append(self)
                if endpoint.send_tone is not None:
                    endpoint._send(self, 0, endpoint.reactor.seconds())

            def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802,N803
                endpoint.raw.append(payload)
                endpoint.messages.append(Packet.decode(payload))

            def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:  # noqa: N802,N803
                if not endpoint.closed.called:
                    endpoint.closed.callback(code)

        self.factory = WebSocketServerFactory()
        self.factory.protocol = Protocol
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.url = f"ws://127.0.0.1:{self.port.getHost().port}/media"

    def _send(self, protocol: Any, index: int, start: float) -> None:
        assert self.send_tone is not None
        frequency, seconds = self.send_tone
        chunks = int(seconds * 10)
        if index >= chunks or protocol.state != protocol.STATE_OPEN:
            return
        pcm = tone(frequency, 0.1, start=index * RATE // 10)
        protocol.sendMessage(Packet(index + 1, index * RATE // 10, pcm).encode(), isBinary=True)
        # paced from the start (no drift), like a live source, after `ahead` seconds at once
        due = start + (index + 1) * 0.1 - self.ahead
        self.reactor.callLater(max(0.0, due - self.reactor.seconds()), self._send, protocol,
                               index + 1, start)

    def pcm(self) -> bytes:
        """Return the payloads received, joined."""
        return b"".join(packet.payload for packet in self.messages)

    def stop(self) -> Any:
        for connection in self.connections:
            connection.dropConnection(abort=True)
        return self.port.stopListening()
