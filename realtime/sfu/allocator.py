"""
Which layer each of a subscriber's pulled tracks gets, from the subscriber's estimate.

One subscribing PeerConnection has one estimate (realtime/sfu/estimate.py:
transport-cc feedback through GCC, else the subscriber's REMB) and pulls any
number of tracks.  After every estimate update the allocator shares it::

    budget = estimate
           - AUDIO_RESERVE per audio track        (audio first: it is never starved for video)
           - the measured rate of each video track that cannot be thinned (one layer,
             no temporal layers)
    share  = budget / number of the other video tracks          (equal shares)
    each simulcast track: LayerSelector.set_available_bitrate(share)
        -> the best layer, up to the ceiling its preferences allow (preferredRid, or the
           best layer when there is none), whose measured bitrate fits the share; a
           better one than the current needs 15 % headroom within what has been *shown*
           to arrive (acknowledged, or delivered by a probe); the lowest layer always;
           with VP8 temporal layers a (rid, tid): the layer's rate at TID <= 1 must fit,
           and frames above the TID chosen are dropped (realtime/sfu/temporal.py)
    want   = the audio reserves + what the next better layer of any track would need,
             times the tracks (the whole link must carry it)
           -> SubscriberEstimate.want(): a probe may show the path carries it

A video track without simulcast is one layer (``SINGLE``): with temporal layers
(VP8 ``L1T3``) it takes a share and is sent at the TID that fits it; without, its
measured rate is set aside first.  (Codecs whose TID is not read, H.264, are not
counted: a known gap.)  Equal shares are the simplest fair policy among competing video tracks (a
speaker view would weight them; the Cloudflare API has no vocabulary for
that).  The layer moves on the new layer's next key frame, asked for at once
(:class:`~realtime.media.simulcast.LayerSelector`).
"""

from __future__ import annotations

from typing import Any, Iterable

from realtime.sfu.estimate import SubscriberEstimate

__all__ = ["AUDIO_RESERVE", "allocate"]

AUDIO_RESERVE = 64_000
"""bit/s kept for each pulled audio track (Opus in WebRTC runs at 32-64 kbit/s)."""


def allocate(subscriptions: Iterable[Any], estimate: SubscriberEstimate, now: float) -> None:
    """Share ``estimate`` among ``subscriptions`` (a session's, each once); ask for probes."""
    total = estimate.estimate
    if total is None:  # none (transport-cc never answered, no REMB): the best layers
        for subscription in subscriptions:
            if subscription.forwarder is not None and subscription.selector is not None:
                subscription.selector.set_available_bitrate(None)
                _ask_keyframe(subscription, now)
        estimate.want(None, now)
        return
    budget = total
    simulcast = []
    for subscription in subscriptions:
        if subscription.forwarder is None:
            continue
        track = subscription.track
        if subscription.selector is not None:
            fixed = subscription.selector.fixed_rate()
            if fixed is None:
                simulcast.append(subscription)
            else:  # one layer, no temporal layers: nothing to choose, its rate is taken
                budget -= fixed
        elif track.kind == "audio":
            budget -= AUDIO_RESERVE
    if not simulcast:
        estimate.want(None, now)
        return
    share = max(budget, 0) / len(simulcast)
    shown = estimate.shown
    # moving up is allowed only within what has been shown to arrive (acked or probed):
    # GCC's estimate may sit above it while nothing tests it (draft-ietf-rmcat-gcc-02 §5.5)
    up = share if shown is None else max(shown - (total - budget), 0) / len(simulcast)
    wanted = None
    for subscription in simulcast:
        selector = subscription.selector
        selector.set_available_bitrate(share, min(share, up))
        _ask_keyframe(subscription, now)
        better = selector.upgrade_bitrate()
        if better is not None:
            need = total + (better - share) * len(simulcast)   # the audio reserve included
            wanted = need if wanted is None else max(wanted, need)
    estimate.want(wanted, now)


def _ask_keyframe(subscription: Any, now: float) -> None:
    # before DTLS is done the key frame would be lost: the track's loop asks once
    # the subscriber can receive (the request stays pending in the selector)
    if subscription.session.can_send_media:
        rid = subscription.selector.take_keyframe_request()
        if rid is not None:
            subscription.track.request_keyframe(rid, now)
