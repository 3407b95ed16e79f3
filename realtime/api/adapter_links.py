"""
The Twisted side of the WebSocket adapters: the WebSocket client, the worker threads, the pacing.

The pure parts are in :mod:`realtime.adapters`; this module moves bytes
between them, the SFU and a socket (docs/design.md §1: thin adapters)::

    AdapterLinks.connect(url) ── autobahn's Twisted WebSocket client (RFC 6455) over
        │                        HostnameEndpoint (ws://) or TLS on it (wss://)
        │ open within the timeout, else websocket_connection_timeout;
        │ refused or no 101, websocket_handshake_failed
        v
    EgressLink (remote):  EgressTap ──wake──> Worker (one job in flight per adapter,
                          on the shared thread pool) ──> OpusToPcm / VideoToJpeg
                          ──> Packet ──> WebSocket (dropped and counted while the
                          socket's send buffer is full: the transport pauses us)
    IngestLink (local):   WebSocket ──> PcmIngest ──timer──> Worker: PcmToOpus
                          ──> RTP ──> AdapterTrack.receive_rtp ──> subscribers

Decoding and encoding never run on the reactor thread: a job takes a batch
of units to a thread of :class:`Worker`'s pool and brings the results back
with ``deferToThreadPool``.  Each link has at most one job in flight, so
its codec state is used by one thread at a time and its units stay in
order; the units waiting meanwhile are bounded by the machines.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IPushProducer
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from realtime.adapters.egress import EgressTap, Unit
from realtime.adapters.ingest import AdapterTrack, PcmIngest, opus_rtp
from realtime.adapters.packet import Packet
from realtime.adapters.transcode import OpusToPcm, PcmToOpus, VideoToJpeg

log = Logger()

#: largest message accepted from an endpoint (an ingest message is at most 32 KiB)
MAX_INCOMING = 64 * 1024


class HandshakeFailed(Exception):
    """The endpoint refused the connection or did not answer the upgrade with 101."""


class ConnectionTimedOut(Exception):
    """The endpoint did not complete the WebSocket opening handshake in time."""


class Worker:
    """Run codec jobs off the reactor thread, on a small pool shared by every adapter.

    :param reactor: the reactor (``callFromThread``, shutdown trigger).
    :param threads: the pool's size (2: the cores of a small server).
    """

    def __init__(self, reactor: Any, threads: int = 2) -> None:
        self.reactor = reactor
        self.pool = ThreadPool(1, threads, name="realtime-adapters")
        self.started = False

    def run(self, function: Callable[..., Any], *args: Any) -> Deferred:
        """Run ``function(*args)`` on a pool thread; fire with its result on the reactor."""
        if not self.started:
            self.started = True
            self.pool.start()
            self.reactor.addSystemEventTrigger("during", "shutdown", self.stop)
        return deferToThreadPool(self.reactor, self.pool, function, *args)

    def stop(self) -> None:
        """Stop the pool's threads (at shutdown)."""
        if self.started:
            self.started = False
            self.pool.stop()


class AdapterClientProtocol(WebSocketClientProtocol):
    """One adapter's WebSocket: tells its link of the open, each message and the close."""

    link: Any = None

    def onOpen(self) -> None:  # noqa: N802 (autobahn)
        self.factory.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802,N803 (autobahn)
        if self.link is not None:
            self.link.receive_message(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N802,N803
        self.factory.closed(self, code, reason)


class AdapterClientFactory(WebSocketClientFactory):
    """Make the one protocol of one connection attempt; fire ``ready`` at the open."""

    protocol = AdapterClientProtocol

    def __init__(self, url: str) -> None:
        # autobahn is unannotated; mypy names inherited methods after our subclasses, which
        # untyped_calls_exclude ("autobahn") does not match
        super().__init__(url)  # type: ignore[no-untyped-call]
        self.setProtocolOptions(maxMessagePayloadSize=MAX_INCOMING,
                                maxFramePayloadSize=MAX_INCOMING, openHandshakeTimeout=0,
                                autoPingInterval=20,
                                autoPingTimeout=20)  # type: ignore[no-untyped-call]
        self.ready: Deferred = Deferred()

    def opened(self, protocol: AdapterClientProtocol) -> None:
        if not self.ready.called:
            self.ready.callback(protocol)

    def closed(self, protocol: AdapterClientProtocol, code: int | None,
               reason: str | None) -> None:
        if not self.ready.called:
            self.ready.errback(HandshakeFailed(reason or f"closed with code {code}"))
        elif protocol.link is not None:
            protocol.link.closed_by_endpoint()


def connect(reactor: Any, url: str, timeout: float, address: str | None = None) -> Deferred:
    """Open a WebSocket to ``url``; fire with its protocol once the handshake is done.

    ``address``, when given, is where to connect instead of resolving the
    URL's host again (the caller checked it); TLS still verifies the host name.

    Fails with :class:`HandshakeFailed` (refused, not a WebSocket) or
    :class:`ConnectionTimedOut` (no open within ``timeout`` seconds).
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    endpoint: Any = HostnameEndpoint(reactor, address or host, port,
                                     timeout=max(1, int(timeout)))
    if secure:
        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    factory = AdapterClientFactory(url)
    ready = factory.ready
    attempt = endpoint.connect(factory)

    def connection_failed(failure: Failure) -> None:
        if not ready.called:
            error = ConnectionTimedOut if failure.check(ConnectTimeout) else HandshakeFailed
            ready.errback(error(failure.getErrorMessage()))

    attempt.addErrback(connection_failed)

    def expire() -> None:
        if ready.called:
            return
        attempt.cancel()
        if not ready.called:
            ready.errback(ConnectionTimedOut(f"no WebSocket open within {timeout} s"))

    deadline = reactor.callLater(timeout, expire)

    def settled(result: Any) -> Any:
        if deadline.active():
            deadline.cancel()
        if isinstance(result, Failure) and attempt.called:
            attempt.addCallback(_drop_connection)
        return result

    return ready.addBoth(settled)


def _drop_connection(protocol: Any) -> None:
    transport = getattr(protocol, "transport", None)
    if transport is not None:
        transport.abortConnection()


@implementer(IPushProducer)
class Link:
    """What both directions share: the socket, the worker, the counters, the close.

    The link registers itself with the socket's transport as a streaming
    producer: the transport pauses it while its send buffer is over its
    high-water mark, and what the link would send meanwhile is dropped and
    counted (``drops["websocket-slow"]``).
    """

    def __init__(self, adapter_id: str, protocol: AdapterClientProtocol, worker: Worker,
                 reactor: Any, on_closed: Callable[[Link], None]) -> None:
        self.adapter_id = adapter_id
        self.protocol = protocol
        self.worker = worker
        self.reactor = reactor
        self.on_closed = on_closed
        self.busy = False
        self.paused = False
        self.open = True
        self.endpoint_gone = False
        self.bytes_processed = 0
        self.drops: Counter[str] = Counter()
        protocol.link = self
        transport: Any = protocol.transport
        transport.registerProducer(self, True)

    def pauseProducing(self) -> None:  # noqa: N802 (IPushProducer)
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False

    def stopProducing(self) -> None:  # noqa: N802
        self.paused = True

    def send(self, packet: Packet) -> None:
        """Send one message unless the socket is backed up (then drop and count it)."""
        if not self.open:
            return
        if self.paused:
            self.drops["websocket-slow"] += 1
            return
        data = packet.encode()
        self.protocol.sendMessage(data, isBinary=True)  # type: ignore[no-untyped-call]
        self.bytes_processed += len(data)

    def receive_message(self, payload: bytes, binary: bool) -> None:
        self.drops["unexpected-message"] += 1

    def close(self) -> None:
        """Close the WebSocket (1000) and stop; a no-op when closed already."""
        if not self.open:
            return
        self.open = False
        self.stop()
        self.protocol.link = None
        if not self.endpoint_gone:
            self.protocol.sendClose(1000)
        self.on_closed(self)
        log.info("adapter {adapter} closed: {counters}", adapter=self.adapter_id,
                 counters=self.counters())

    def closed_by_endpoint(self) -> None:
        """The endpoint closed the WebSocket (or it dropped): the adapter ends."""
        self.endpoint_gone = True
        if self.open:
            self.open = False
            self.stop()
            self.on_closed(self)

    def stop(self) -> None:
        """Detach from the SFU (each direction its own way)."""

    def _pump(self) -> None:
        """Start a job if none is in flight and there is work."""
        if self.busy or not self.open:
            return
        job = self.take_job()
        if job is None:
            return
        self.busy = True
        self.worker.run(*job).addCallbacks(self.deliver, self._job_failed).addBoth(self._done)

    def _job_failed(self, failure: Failure) -> None:
        self.drops["worker-error"] += 1
        log.failure("adapter {adapter} job failed", failure, adapter=self.adapter_id)

    def _done(self, _: Any) -> None:
        self.busy = False
        self._pump()

    def take_job(self) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def deliver(self, result: Any) -> None:
        raise NotImplementedError

    def counters(self) -> dict[str, Any]:
        return {"bytesProcessed": self.bytes_processed, "drops": dict(self.drops)}


class EgressLink(Link):
    """``location: "remote"``: a track's media, decoded, as PCM or JPEG messages.

    :param tap: the :class:`EgressTap` attached to the track.
    :param jpeg_interval: seconds between JPEG images (video).
    """

    def __init__(self, adapter_id: str, protocol: AdapterClientProtocol, worker: Worker,
                 reactor: Any, on_closed: Callable[[Link], None], tap: EgressTap,
                 jpeg_interval: float) -> None:
        super().__init__(adapter_id, protocol, worker, reactor, on_closed)
        self.tap = tap
        tap.wake = self._pump
        self.video = tap.video
        self.decoder: Any = VideoToJpeg(tap.codec) if self.video else OpusToPcm()
        self.jpeg_every = round(90000 * jpeg_interval)
        self.last_jpeg: int | None = None
        self.first_timestamp: int | None = None
        self.sequence_number = 0
        self.messages = 0

    def take_job(self) -> tuple[Any, ...] | None:
        if self.tap.ended:
            self.reactor.callLater(0, self.close)
            return None
        units = self.tap.take_work()
        if not units:
            return None
        if not self.video:
            return (_decode_audio, self.decoder, units)
        wanted = []
        for timestamp, _, _ in units:
            due = self.last_jpeg is None or (timestamp - self.last_jpeg) & 0xFFFFFFFF \
                >= self.jpeg_every
            if due:
                self.last_jpeg = timestamp
            wanted.append(due)
        return (_decode_video, self.decoder, units, wanted)

    def deliver(self, outputs: list[tuple[int, bytes]]) -> None:
        for timestamp, payload in outputs:
            if self.first_timestamp is None:
                self.first_timestamp = timestamp
            self.sequence_number = (self.sequence_number + 1) & 0xFFFFFFFF
            self.messages += 1
            self.send(Packet(self.sequence_number,
                             (timestamp - self.first_timestamp) & 0xFFFFFFFF, payload))

    def stop(self) -> None:
        self.tap.close()

    def counters(self) -> dict[str, Any]:
        drops = Counter(self.drops)
        drops.update(self.tap.drops)
        drops.update(self.tap.assembler.drops)
        return {"bytesProcessed": self.bytes_processed, "messages": self.messages,
                "decodeErrors": self.decoder.errors, "drops": dict(drops)}


def _decode_audio(decoder: OpusToPcm, units: list[Unit]) -> list[tuple[int, bytes]]:
    """(worker thread) Opus packets -> PCM messages."""
    out = []
    for timestamp, packet, _ in units:
        pcm = decoder.decode(packet)
        if pcm:
            out.append((timestamp, pcm))
    return out


def _decode_video(decoder: VideoToJpeg, units: list[Unit],
                  wanted: list[bool]) -> list[tuple[int, bytes]]:
    """(worker thread) video frames -> the JPEG images asked for."""
    out = []
    for (timestamp, frame, _), want in zip(units, wanted):
        image = decoder.decode(frame, want)
        if image is not None:
            out.append((timestamp, image))
    return out


class IngestLink(Link):
    """``location: "local"``: PCM from the endpoint, played out as an Opus track.

    :param track: the :class:`AdapterTrack` published for it.
    :param ingest: its :class:`PcmIngest` (buffer and playout clock).
    :param on_end: unpublishes the track when the adapter ends.
    :param flush: sends what the fan-out queued on subscriber sessions (the media
        port flushes after its own input only; this input comes from a worker).
    """

    #: PCM frames waiting for the encoder at most (0.5 s); more are dropped and counted
    ENCODE_BACKLOG = 25

    def __init__(self, adapter_id: str, protocol: AdapterClientProtocol, worker: Worker,
                 reactor: Any, on_closed: Callable[[Link], None], track: AdapterTrack,
                 ingest: PcmIngest, ssrc: int, sequence_start: int,
                 on_end: Callable[[AdapterTrack], None], flush: Callable[[], None]) -> None:
        super().__init__(adapter_id, protocol, worker, reactor, on_closed)
        self.track = track
        self.ingest = ingest
        self.ssrc = ssrc
        self.sequence_number = sequence_start
        self.on_end = on_end
        self.flush = flush
        self.encoder = PcmToOpus()
        self.stream = track.learn(ssrc, None)
        self.frames: list[tuple[int, bytes]] = []
        self.timer: Any = None
        self.packets = 0
        self.draining = False

    def receive_message(self, payload: bytes, binary: bool) -> None:
        self.bytes_processed += len(payload)
        self.ingest.receive_message(payload, self.reactor.seconds())
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.ingest.get_timer()
        if self.timer is not None and self.timer.active():
            if deadline is not None and self.timer.getTime() <= deadline:
                return
            self.timer.cancel()
        self.timer = None
        if deadline is not None and self.open:
            self.timer = self.reactor.callLater(max(0.0, deadline - self.reactor.seconds()),
                                                self._tick)

    def _tick(self) -> None:
        self.timer = None
        due = self.ingest.handle_timer(self.reactor.seconds())
        room = self.ENCODE_BACKLOG - len(self.frames)
        if len(due) > room:
            self.drops["encoder-behind"] += len(due) - max(room, 0)
            due = due[:max(room, 0)]
        self.frames += due
        self._pump()
        self._rearm()
        if self.draining and self.timer is None and not self.frames and not self.busy:
            super().closed_by_endpoint()

    def closed_by_endpoint(self) -> None:
        """The endpoint closed: play out what is buffered, then end the track."""
        self.protocol.link = None
        self.endpoint_gone = True
        if self.open and self.ingest.get_timer() is not None:
            self.draining = True
        else:
            super().closed_by_endpoint()

    def take_job(self) -> tuple[Any, ...] | None:
        if not self.frames:
            return None
        frames, self.frames = self.frames, []
        return (_encode_audio, self.encoder, frames)

    def deliver(self, packets: list[tuple[int, bytes]]) -> None:
        if self.stream is None or self.track.ended:
            return
        now = self.reactor.seconds()
        for timestamp, opus in packets:
            self.sequence_number = (self.sequence_number + 1) & 0xFFFF
            self.packets += 1
            self.track.receive_rtp(opus_rtp(self.sequence_number, timestamp, self.ssrc, opus),
                                   self.stream, now)
        self.flush()

    def stop(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        self.on_end(self.track)

    def counters(self) -> dict[str, Any]:
        drops = Counter(self.drops)
        drops.update(self.ingest.drops)
        return {"bytesProcessed": self.bytes_processed, "messages": self.ingest.messages,
                "packets": self.packets, "underruns": self.ingest.underruns, "encodeErrors": self.encoder.errors,
                "drops": dict(drops)}


def _encode_audio(encoder: PcmToOpus, frames: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """(worker thread) 20 ms PCM frames -> Opus packets, each with its frame's RTP timestamp."""
    out = []
    for timestamp, pcm in frames:
        for packet in encoder.encode(pcm):
            out.append((timestamp, packet))
    return out
