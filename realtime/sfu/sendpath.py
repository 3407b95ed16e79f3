"""
The pre-bound per-subscriber send path: one call per subscriber in the fan-out.

The reference path for one subscriber's copy of a packet is readable and
spread over small functions, each teaching one step::

    PublishedTrack.receive_rtp
      -> Forwarder.forward        sequence window, segment (RFC 3550 §8.2, A.1)
         -> _emit -> _rewrite     payload type map, ExtensionPlan.apply (RFC 8285 §5),
                                  rewrite_header (SSRC, seq, timestamp: RFC 3550 §5.1)
            VP8 PictureID/TL0PICIDX (RFC 7741 §4.2), SenderStatistics.sent (§6.4.1),
            the transport-cc stamp (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2)
      -> bytes(...) -> SfuSession.send_rtp -> PeerConnection.send_rtp
         -> SrtpSession.protect -> FastProtect (RFC 3711 §3.3) -> the connection's queue

At 100 subscribers that is ~15 Python calls per subscriber per packet.
:func:`bind_send_path` binds, when a subscription is configured, everything
that does not change from packet to packet (the forwarder, its payload
type map, extension plan, SSRC, statistics, stamp hook, the session's
"touched" set) into one closure.  Per packet it takes the common case --
the packet continues the current segment, in order, of a mapped payload
type, to a connected subscriber -- straight through: the forwarder's
window update inlined, the memoised extension block copied
(:meth:`ExtensionRewrite.apply <realtime.rtp.rewrite.ExtensionRewrite.apply>`),
sequence number / timestamp / SSRC packed in one ``pack_into``, the stamp,
libsrtp's protect (:class:`~realtime.srtp.fast.FastProtect`, re-bound when
the connection's SRTP session changes), one append to the queue that
``sendmmsg`` drains.  Every other case (a new segment: simulcast switch,
publisher restart, awaiting a key frame; late, duplicate or unmapped
packets; not connected; a VP8 temporal layer being filtered, ``temporal.active``:
realtime/sfu/temporal.py) is handed to the reference,
:meth:`Forwarder.forward <realtime.sfu.forwarder.Forwarder.forward>` and
``session.send_rtp``, with no state touched first, so both paths leave the
forwarder in the same state and send the same octets.
``tests/sfu/test_sendpath.py`` feeds the same packets through both
(simulcast switches, VP8 picture renumbering, RTX answers to NACKs,
transport-cc stamping) and requires byte-identical datagrams.

**The byte work in C.**  Once the in-order case is decided, what is left
of a copy no longer depends on Python objects, and where the C helper is
built (``realtime/srtp/_fanout.c``, :mod:`realtime.srtp.fanout`) it is one
call per copy::

    Python (this closure)                        C (copy_protect)
    window, segment deltas, out seq / ts         copy the template (one memcpy)
    sender statistics, forwarded count           octet 1 (PT), seq, ts, SSRC
    VP8 deltas (and the picture as sent,         VP8 PictureID / TL0PICIDX + deltas
      for the next switch)
    transport-cc number (stamp_next)             the number into its placeholder
    touched, the connection's queue              srtp_protect in place -> bytes

The *template* is the packet rewritten by the subscriber's extension plan
(header fields still the publisher's), made once per packet for every
subscriber of that plan (:class:`_Template`, with its header length,
payload octets and the transport-cc placeholder's offset).  So per copy the
C side does what the Python path does with a ``bytearray`` copy, a
``pack_into``, item stores and :class:`~realtime.srtp.fast.FastProtect`'s
copy in and slice out, and Python keeps every piece of state (one owner):
the forwarder, the statistics and the estimate are the reference's objects,
written exactly as the Python path writes them.  Without the helper (not
compiled, or ``REALTIME_FANOUT_C=0``) the Python path runs; a copy too long
for SRTP, a stamp without its placeholder or a ``bytearray`` packet takes
it too.  The tests run both and compare SRTP octets with the reference's.

**The whole in-order copy in C.**  Where the helper is built,
:func:`bind_send_path` returns a :class:`realtime.srtp._fanout.Sender`
(``realtime/srtp/_fanout_send.h``) instead of the closure: the C branch
above, decisions and writes alike, in one C call that sets the same Python
attributes (the forwarder's window, the statistics, VP8's last picture,
``stamp_next``) and calls the closure, before writing anything, for every
other case.  At 100 subscribers the closure's own bytecode was the largest
part of a forwarded packet (docs/performance.md, fifth round).

The closure returns the size of the RTP packet queued (before SRTP), 0 if
nothing was sent, or :data:`KEYFRAME_WANTED` when the forwarder started
waiting for a key frame (the track asks the publisher for one).
"""

from __future__ import annotations

import struct
from array import array
from typing import Any, Callable

from realtime.media.vp8 import rewrite_picture_fields
from realtime.peer.connection import PeerConnection
from realtime.rtp.packet import HEADER_LENGTH
from realtime.sfu.estimate import SubscriberEstimate
from realtime.sfu.forwarder import _WINDOW_MASK, MAX_JUMP, ExtensionPlan, Forwarder, PublishedStream
from realtime.srtp.fanout import MAX_RTP_SIZE, configure_sender, copy_protect

__all__ = ["KEYFRAME_WANTED", "SendPath", "bind_send_path"]

KEYFRAME_WANTED = -1
"""Returned when the packet was not sent and a key frame should be asked for."""

SendPath = Callable[[bytes, PublishedStream, bool, float], int]

_SEQ_TS = struct.Struct("!HI")
_SEQ_TS_SSRC = struct.Struct("!HII")


def _placeholder_at(out: bytes) -> int:
    """Return the offset of the transport-cc placeholder's two octets in ``out``, or -1.

    The search of :meth:`SubscriberEstimate.stamp <realtime.sfu.estimate.SubscriberEstimate.stamp>`
    (the plan appends the placeholder last), done once per packet for every copy.
    """
    b0 = out[0]
    if not b0 & 0x10:
        return -1
    head = 12 + 4 * (b0 & 0x0F)
    start = head + 4
    pos = start + 4 * (out[head + 2] << 8 | out[head + 3]) - 1
    while pos > start and out[pos] == 0:
        pos -= 1
    if out[head] == 0xBE:
        ok = out[pos - 2] & 0x0F == 1 and out[pos - 1] == 0xFF
    else:
        ok = out[pos - 2] == 2 and out[pos - 1] == 0xFF
    return pos - 1 if ok and out[pos] == 0xFF else -1


class _Template:
    """One packet as rewritten by one :class:`ExtensionPlan`, for every copy (the C path).

    ``octets``: the plan's output (header fields still the publisher's);
    ``head``: its header length (the payload's offset); ``payload``: payload
    octets without padding (RFC 3550 §6.4.1's count); ``stamp_at``: the
    transport-cc placeholder's offset or -1; ``fits``: short enough for
    :func:`~realtime.srtp.fanout.copy_protect`.
    """

    __slots__ = ("packet", "octets", "head", "payload", "stamp_at", "fits")

    def __init__(self) -> None:
        self.packet: bytes | None = None
        self.octets = b""
        self.head = self.payload = 0
        self.stamp_at = -1
        self.fits = False

    def refresh(self, plan: ExtensionPlan, packet: bytes) -> None:
        """Rewrite ``packet`` with ``plan`` (raises DecodeError as ``plan.apply`` does)."""
        self.packet = None
        octets = bytes(plan.apply(packet))
        b0 = octets[0]
        head = 12 + 4 * (b0 & 0x0F)  # validated by apply
        if b0 & 0x10:
            head += 4 + 4 * (octets[head + 2] << 8 | octets[head + 3])
        self.octets = octets
        self.head = head
        self.payload = len(octets) - head - (octets[-1] if b0 & 0x20 else 0)
        self.stamp_at = _placeholder_at(octets)
        self.fits = len(octets) <= MAX_RTP_SIZE
        self.packet = packet


_TEMPLATES: dict[int, tuple[ExtensionPlan, _Template]] = {}


def _template_of(plan: ExtensionPlan) -> _Template:
    """Return the template shared by every send path of ``plan`` (plans are shared objects)."""
    kept = _TEMPLATES.get(id(plan))
    if kept is None or kept[0] is not plan:
        if len(_TEMPLATES) >= 4096:
            _TEMPLATES.clear()
        kept = _TEMPLATES[id(plan)] = (plan, _Template())
    return kept[1]


def _ring_of(stamp_next: Any) -> tuple | None:
    """Return ``(estimate, sent, sizes, seqs)`` for the C sender to do ``stamp_next``'s
    bookkeeping itself, or None (it then calls ``stamp_next``): only for
    :class:`~realtime.sfu.estimate.SubscriberEstimate`'s own method and ring."""
    estimate = getattr(stamp_next, "__self__", None)
    if type(estimate) is not SubscriberEstimate or \
            getattr(stamp_next, "__func__", None) is not SubscriberEstimate.stamp_next:
        return None
    arrays = (estimate._sent, estimate._sizes, estimate._seqs)
    if [type(a) for a in arrays] != [array] * 3 or [a.typecode for a in arrays] != ["d", "H", "l"] \
            or len({len(a) for a in arrays}) != 1 or not len(arrays[0]) \
            or len(arrays[0]) & (len(arrays[0]) - 1):
        return None
    return (estimate, *arrays)


def bind_send_path(forwarder: Forwarder, session: Any, fast_copy: Any = "default") -> SendPath:
    """Return ``send(packet, source, keyframe, now)`` for one subscriber (see the module docstring).

    ``session`` is the subscriber's :class:`~realtime.sfu.session.SfuSession`
    (its ``connection``, ``touched`` and ``send_rtp``).  ``fast_copy``: the C
    helper's :func:`~realtime.srtp.fanout.copy_protect` (the default, None
    where it is not built), or None for the Python send path.
    """
    if fast_copy == "default":
        fast_copy = copy_protect
    f = forwarder
    forward = f.forward
    payload_types = f.payload_types
    plan = f.extensions
    apply = plan.apply if plan is not None else bytearray
    ssrc = f.ssrc
    vp8 = f.vp8
    vp8_payload_types = f.vp8_payload_types
    sender = f.sender
    stamp = f.stamp
    drops = f.drops
    temporal = f.temporal  # realtime/sfu/temporal.py: while it filters, the reference path
    touched = session.touched
    read_seq_ts = _SEQ_TS.unpack_from
    write_seq_ts_ssrc = _SEQ_TS_SSRC.pack_into
    send_rtp = session.send_rtp
    # the C path: a plan to memoise the template, and a stamp it can take the number from
    stamp_next: Any = getattr(getattr(stamp, "__self__", None), "stamp_next", None)
    template = _template_of(plan) if fast_copy is not None and plan is not None else None
    if stamp is not None and stamp_next is None:
        template = None
    # the connection last seen, whether it is a PeerConnection, its SrtpSession,
    # FastProtect, and the srtp_t address for the C path
    bound: list[Any] = [None, False, None, None, 0]

    def reference(packet: bytes, source: PublishedStream, keyframe: bool, now: float) -> int:
        rewritten = forward(packet, source, keyframe, now)
        if rewritten is None:
            return KEYFRAME_WANTED if f.take_keyframe_wanted() else 0
        out = bytes(rewritten)
        if send_rtp(out):
            return len(out)
        drops["not-sent"] += 1
        return 0

    def send(packet: bytes, source: PublishedStream, keyframe: bool, now: float) -> int:
        connection = session.connection
        if connection is None or connection.srtp is None:
            drops["subscriber-not-connected"] += 1
            return 0
        if source is not f.source or len(packet) < HEADER_LENGTH:
            return reference(packet, source, keyframe, now)
        # a temporal layer is being filtered (or the filter waits to move): frames are
        # dropped and renumbered by Forwarder.forward, the reference
        if temporal is not None and temporal.active:
            return reference(packet, source, keyframe, now)
        seq, ts = read_seq_ts(packet, 2)
        d = (seq - f._in_highest) & 0xFFFF
        if d == 0 or d > MAX_JUMP:  # duplicate, late (d >= 0x8000) or a restart
            return reference(packet, source, keyframe, now)
        pt = packet[1] & 0x7F
        if payload_types is not None:
            mapped = payload_types.get(pt)
            if mapped is None:
                return reference(packet, source, keyframe, now)
        else:
            mapped = pt
        if connection is not bound[0]:
            bound[0] = connection
            bound[1] = type(connection) is PeerConnection
        direct = bound[1]
        if direct:
            addr = connection.ice.selected_address
            if addr is None:
                return reference(packet, source, keyframe, now)
        # Forwarder.forward, in-order branch
        f._in_highest = seq
        f._span += d
        f._seen = (f._seen << d | 1) & _WINDOW_MASK
        f._out_ext += d
        out_ts = (ts + f._ts_delta) & 0xFFFFFFFF
        f._out_ts = out_ts
        f._last_time = now
        if template is not None and direct and type(packet) is bytes:
            # the C path (realtime.srtp.fanout): the same steps, the byte work in one call
            if template.packet is not packet:
                template.refresh(plan, packet)  # type: ignore[arg-type]
            t = template
            if t.fits and (stamp is None or t.stamp_at >= 0):
                f.forwarded += 1
                octets = t.octets
                head = t.head
                vp8_at = picture_delta = tl0_delta = 0
                if vp8 is not None and pt in vp8_payload_types:
                    picture_delta, tl0_delta = vp8.picture_delta, vp8.tl0_delta
                    if picture_delta or tl0_delta:
                        last = bytearray(octets)  # what switch() reads: the fields as sent
                        rewrite_picture_fields(last, head, picture_delta, tl0_delta)
                        vp8.last_packet = last
                        vp8_at = head
                    else:
                        vp8.last_packet = octets
                    vp8.last_offset = head
                size = len(octets)
                sender.packet_count = (sender.packet_count + 1) & 0xFFFFFFFF
                sender.octet_count = (sender.octet_count + t.payload) & 0xFFFFFFFF
                sender.last_rtp_timestamp = out_ts
                sender.last_send_time = now
                number = stamp_next(size, now) if stamp is not None else 0
                srtp = connection.srtp
                if srtp is not bound[2]:
                    bound[2] = srtp
                    bound[3] = srtp.fast_protect
                    bound[4] = bound[3].address
                connection._outgoing.append((fast_copy(
                    bound[4], octets, (seq + f._seq_delta) & 0xFFFF, out_ts, ssrc,
                    mapped, vp8_at if vp8_at else -1, picture_delta,
                    tl0_delta, t.stamp_at if stamp is not None else -1, number), addr))
                touched.add(session)
                return size
        # Forwarder._rewrite + _emit
        out = apply(packet)
        write_seq_ts_ssrc(out, 2, (seq + f._seq_delta) & 0xFFFF, out_ts, ssrc)
        out[1] = (out[1] & 0x80) | mapped
        f.forwarded += 1
        b0 = out[0]
        head = 12 + 4 * (b0 & 0x0F)  # header_length: validated by apply / the reference
        if b0 & 0x10:
            head += 4 + 4 * (out[head + 2] << 8 | out[head + 3])
        if vp8 is not None and pt in vp8_payload_types:
            if vp8.picture_delta or vp8.tl0_delta:
                rewrite_picture_fields(out, head, vp8.picture_delta, vp8.tl0_delta)
            vp8.last_packet = out
            vp8.last_offset = head
        size = len(out)
        # SenderStatistics.sent (RFC 3550 §6.4.1: payload octets, padding excluded)
        sender.packet_count = (sender.packet_count + 1) & 0xFFFFFFFF
        sender.octet_count = (sender.octet_count + size - head
                              - (out[-1] if b0 & 0x20 else 0)) & 0xFFFFFFFF
        sender.last_rtp_timestamp = out_ts
        sender.last_send_time = now
        if stamp is not None:
            stamp(out, now)
        # SfuSession.send_rtp -> PeerConnection.send_rtp -> SrtpSession.protect
        if direct:
            srtp = connection.srtp
            if srtp is not bound[2]:
                bound[2] = srtp
                bound[3] = srtp.fast_protect
                bound[4] = bound[3].address
            connection._outgoing.append((bound[3](out), addr))
        elif not connection.send_rtp(out):  # another kind of connection: its own send_rtp
            drops["not-sent"] += 1
            return 0
        touched.add(session)
        return size

    if template is not None and fast_copy is copy_protect and configure_sender is not None \
            and (payload_types is None or type(payload_types) is dict):
        # the in-order C branch above, whole, in C (realtime/srtp/_fanout_send.h): the same
        # decisions and writes, and this closure for every other case
        return configure_sender(
            send, f, session, template, plan, payload_types, ssrc, vp8,
            vp8_payload_types if vp8_payload_types is not None else frozenset(), sender,
            stamp_next if stamp is not None else None, temporal, touched, PeerConnection,
            _WINDOW_MASK, MAX_JUMP, _ring_of(stamp_next) if stamp is not None else None)
    return send
