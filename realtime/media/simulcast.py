"""
Simulcast layer selection: which of a publisher's RFC 8853 layers each subscriber receives.

A simulcast publisher sends one video source as several RTP streams, each
named by a restriction identifier (``rid``, RFC 8851 §4, RFC 8852 §3.1) and
announced by ``a=simulcast:send f;h;q`` (RFC 8853 §5.1).  The Cloudflare
contract names the quality order "asciibetical": ``a`` is the most desirable
layer and ``z`` the least, so ``f`` (full) > ``h`` (half) > ``q`` (quarter).

Two objects share the work:

* :class:`SimulcastLayers`, one per published track, watches which layers
  are arriving and at what bitrate (a layer is *active* while packets
  arrived within ``inactive_after``);
* :class:`LayerSelector`, one per subscriber, picks a *target* layer from
  the subscriber's :class:`SimulcastPreferences` and the active layers, and
  moves the *current* layer to it only on a key frame of the target, so the
  decoder never sees a frame it cannot decode::

      f  ..K.....x....x....x.....(f stops)                  K.....
      h  ....K........K.......K.........K.........K....
      q  ..K.....K.......K.......K...........................
           |                        |              |      |
      current=f (preferred)      inactive_after  switch   f back: switch on
                                 -> target=h     on h's K  its first K

Target choice (:meth:`LayerSelector.target_for`)::

    preferred = preferredRid ("" or absent: none -> the best active layer)
    preferred active?                       -> preferred
    else ridNotAvailable = none             -> preferred (wait for it)
         ridNotAvailable = asciibetical     -> next active layer after it in a-z order,
                                               else the nearest active one before it
         fallbackStrategy = leastBandwidth  -> the last active layer in a-z order
    a *starved* layer (arriving at under half the frame rate of the track's best:
    a publisher short of uplink thins its better layers so) is passed over as if
    it were not arriving ("degraded"), unless preferred with ridNotAvailable = none
    then, with an available bitrate known (the subscriber's estimate,
    realtime/sfu/allocator.py) and no preference or priorityOrdering = asciibetical:
         step down a-z while the layer's measured bitrate exceeds it (a better
         layer than the current one needs 15 % headroom); the last layer is
         always allowed: video is thinned, never cut
         a layer with VP8 or VP9 temporal layers fits if its rate at TID <= 1 does, and
         is sent at the highest TID that fits (target_tid, told to the
         subscriber's TemporalFilter): width before frame rate, down to half

The older vocabularies of the contract (docs/cloudflare-api.md §1.6) are accepted by
:meth:`SimulcastPreferences.from_json`: ``ridUnavailableStrategy:
none|nextPriority`` and ``fallbackStrategy: auto|leastBandwidth|none``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["SINGLE", "LayerSelector", "SimulcastLayers", "SimulcastPreferences",
           "UPGRADE_HEADROOM"]

UPGRADE_HEADROOM = 1.15
"""A better layer is taken when the budget exceeds its bitrate by this factor (no flapping
between two layers whose rates straddle the estimate)."""

NONE = "none"
ASCIIBETICAL = "asciibetical"
LEAST_BANDWIDTH = "leastBandwidth"

_FALLBACK_ALIASES = {
    # ridNotAvailable (current API)
    "none": NONE,
    "asciibetical": ASCIIBETICAL,
    # ridUnavailableStrategy (calls-api @6604e30)
    "nextPriority": ASCIIBETICAL,
    # fallbackStrategy (calls-api @197cf55)
    "auto": ASCIIBETICAL,
    "leastBandwidth": LEAST_BANDWIDTH,
}


@dataclass(frozen=True, slots=True)
class SimulcastPreferences:
    """A subscriber's wishes: the preferred rid and what to do under pressure or absence.

    :ivar preferred_rid: the layer wanted; None means "no preference" (the
        SFU picks the best active layer).
    :ivar priority_ordering: ``"none"`` or ``"asciibetical"`` (step down a-z
        when the available bitrate is too low).
    :ivar rid_not_available: ``"none"``, ``"asciibetical"`` or
        ``"leastBandwidth"``.
    """

    preferred_rid: str | None = None
    priority_ordering: str = NONE
    rid_not_available: str = NONE

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> "SimulcastPreferences":
        """Read a ``simulcast`` object in any vocabulary of the contract; unknown means "none"."""
        if not obj:
            return cls()
        rid = obj.get("preferredRid")
        preferred = rid if isinstance(rid, str) and rid else None
        ordering = ASCIIBETICAL if obj.get("priorityOrdering") == ASCIIBETICAL else NONE
        fallback = NONE
        if "fallbackStrategy" in obj:
            value = obj.get("fallbackStrategy")
            fallback = _FALLBACK_ALIASES.get(value, NONE) if isinstance(value, str) else NONE
        for key in ("ridUnavailableStrategy", "ridNotAvailable"):
            value = obj.get(key)
            if isinstance(value, str) and value in _FALLBACK_ALIASES:
                fallback = _FALLBACK_ALIASES[value]
        return cls(preferred, ordering, fallback)

    def to_json(self) -> dict[str, str]:
        """Return the current-API form, as echoed in a track response."""
        out = {"priorityOrdering": self.priority_ordering}
        out["ridNotAvailable"] = ASCIIBETICAL if self.rid_not_available != NONE else NONE
        out["preferredRid"] = self.preferred_rid or ""
        return out


TEMPORAL_LAYERS = 4
"""TIDs counted per layer (VP8's TID is two bits: 0-3)."""
MIN_TID = 1
"""The lowest temporal layer a better spatial layer is taken at (L1T3: TID <= 1 is half the
frame rate); below it the smaller layer at its full frame rate is preferred."""
ALL_TIDS = 0xFF
"""Every temporal layer (:data:`realtime.sfu.temporal.ALL`)."""
STARVED_BELOW = 0.5
"""A layer whose frame rate falls under this fraction of the track's best layer's is *starved*."""
RECOVERED_AT = 0.75
"""... and is no longer starved once its frame rate is back at this fraction (hysteresis)."""
SINGLE = ""
"""The one layer of a video track published without simulcast: its rates are measured in a
:class:`SimulcastLayers` of this one name, and a :class:`LayerSelector` made ``single``
chooses only its temporal layer (docs/bandwidth.md, "Temporal layers")."""


class _Layer:
    __slots__ = ("rid", "last_seen", "active", "window_start", "window_bytes", "bitrate",
                 "tid_bytes", "tid_rates", "window_frames", "frame_rate", "starved")

    def __init__(self, rid: str, now: float | None) -> None:
        self.rid = rid
        self.last_seen = now
        self.active = now is not None
        self.window_start = now or 0.0
        self.window_bytes = 0
        self.bitrate: float | None = None
        #: octets per TID in the current window; bit/s of TID <= t, for t up to the top
        #: TID seen in the last window (None: no temporal layers seen)
        self.tid_bytes = [0] * TEMPORAL_LAYERS
        self.tid_rates: list[float] | None = None
        #: frames ended (RTP marker bit, RFC 3550 §5.1) in the window; frames/s, smoothed
        self.window_frames = 0
        self.frame_rate: float | None = None
        self.starved = False


class SimulcastLayers:
    """Track which layers of one published track arrive, and their bitrates.

    :param rids: the layers announced in SDP (more are learnt from packets).
    :param inactive_after: a layer with no packet for this long is inactive.
    :param window: bitrate measurement window in seconds.
    :ivar generation: incremented whenever a layer becomes active or inactive.
    """

    __slots__ = ("inactive_after", "window", "layers", "generation", "_next_check")

    def __init__(
        self, rids: Iterable[str] = (), inactive_after: float = 1.0, window: float = 0.5
    ) -> None:
        self.inactive_after = inactive_after
        self.window = window
        self.layers: dict[str, _Layer] = {rid: _Layer(rid, None) for rid in rids}
        self.generation = 0
        self._next_check: float | None = None

    def packet_received(self, rid: str, size: int, now: float, tid: int = -1,
                        frame_end: bool = False) -> None:
        """Account for one packet of layer ``rid`` (once per packet, for all subscribers).

        ``tid``: its temporal layer (VP8 payload descriptor, RFC 7741 §4.2), -1 if none;
        ``frame_end``: its marker bit (the last packet of a video frame, RFC 3550 §5.1).
        """
        layer = self.layers.get(rid)
        if layer is None:
            layer = self.layers[rid] = _Layer(rid, now)
            self.generation += 1
        elif not layer.active:
            layer.active = True
            layer.window_start, layer.window_bytes = now, 0
            self.generation += 1
        layer.last_seen = now
        layer.window_bytes += size
        if frame_end:
            layer.window_frames += 1
        if tid >= 0:
            layer.tid_bytes[tid] += size
        elapsed = now - layer.window_start
        if elapsed >= self.window:
            layer.bitrate = layer.window_bytes * 8 / elapsed
            fps = layer.window_frames / elapsed
            layer.frame_rate = fps if layer.frame_rate is None else (fps + layer.frame_rate) / 2
            layer.window_start, layer.window_bytes, layer.window_frames = now, 0, 0
            self._judge_frame_rates()
            counted = layer.tid_bytes
            top = max((t for t in range(TEMPORAL_LAYERS) if counted[t]), default=-1)
            if top > 0:
                # smoothed over windows (half the last): a layer's rate per TID swings with
                # its key frames, and one high window should not move a subscriber down
                before = layer.tid_rates
                rates, total = [], 0
                for t in range(top + 1):
                    total += counted[t]
                    rate = total * 8 / elapsed
                    if before is not None and len(before) == top + 1:
                        rate = (rate + before[t]) / 2
                    rates.append(rate)
                layer.tid_rates = rates
            else:
                layer.tid_rates = None
            layer.tid_bytes = [0] * TEMPORAL_LAYERS
        if self._next_check is None:
            self._next_check = now + self.inactive_after
        elif now >= self._next_check:
            self.handle_timer(now)

    def _judge_frame_rates(self) -> None:
        """Mark the layers starved whose frame rate fell far below the track's best layer's.

        A publisher whose uplink (or CPU) cannot carry every layer thins the better
        ones first: Chromium, its send-side estimate under a layer's need, keeps that
        layer alive at 2-7 frames/s rather than pausing it (measured, a 1 Mbit/s
        uplink: f at 2-7 fps, h and q at 30; tests/interop/test_shaped_publisher_chromium.py).
        Such a layer still arrives, so it is *active*, but a subscriber sent it sees a
        freeze at every gap; the selector passes over it, as over a layer whose rate
        does not fit.  Starved below :data:`STARVED_BELOW` of the best frame rate of the
        track's active layers, recovered at :data:`RECOVERED_AT`; the last layer is
        never starved (there is nothing under it).
        """
        layers = self.layers
        best = max((layer.frame_rate for layer in layers.values()
                    if layer.active and layer.frame_rate), default=0.0)
        last = max((rid for rid, layer in layers.items() if layer.active), default=None)
        for rid, layer in layers.items():
            fps = layer.frame_rate
            if fps is None or rid == last:
                starved = False
            elif layer.starved:
                starved = fps < best * RECOVERED_AT
            else:
                starved = fps < best * STARVED_BELOW
            if starved != layer.starved:
                layer.starved = starved
                self.generation += 1

    def handle_timer(self, now: float) -> None:
        """Mark layers silent for ``inactive_after`` as inactive."""
        deadline = now - self.inactive_after
        next_check = None
        for layer in self.layers.values():
            if not layer.active:
                continue
            if layer.last_seen is not None and layer.last_seen <= deadline:
                layer.active = False
                self.generation += 1
            else:
                expiry = (layer.last_seen or now) + self.inactive_after
                next_check = expiry if next_check is None else min(next_check, expiry)
        self._next_check = next_check

    def get_timer(self) -> float | None:
        """Return when a layer may next go inactive, or None."""
        return self._next_check

    def ordered(self) -> list[str]:
        """Return every known rid, best first (asciibetical)."""
        return sorted(self.layers)

    def active(self) -> list[str]:
        """Return the active rids, best first."""
        return sorted(rid for rid, layer in self.layers.items() if layer.active)

    def starved(self, rid: str) -> bool:
        """Return True if ``rid`` arrives at a frame rate far below the track's best layer's."""
        layer = self.layers.get(rid)
        return layer is not None and layer.starved

    def frame_rate(self, rid: str) -> float | None:
        """Return ``rid``'s measured frames/s (smoothed over windows), or None."""
        layer = self.layers.get(rid)
        return None if layer is None else layer.frame_rate

    def bitrate(self, rid: str) -> float | None:
        """Return the last measured bitrate of ``rid`` in bit/s, or None."""
        layer = self.layers.get(rid)
        return layer.bitrate if layer else None

    def rates(self, rid: str) -> list[float] | None:
        """Return ``rid``'s bit/s of TID <= 0, 1, ... (the last: the whole layer), or None.

        A layer without temporal layers has one entry, its bitrate.
        """
        layer = self.layers.get(rid)
        if layer is None or layer.bitrate is None:
            return None
        return layer.tid_rates or [layer.bitrate]

    def top_tid(self, rid: str | None) -> int:
        """Return the highest TID ``rid`` carried in the last window (0: no temporal layers)."""
        layer = self.layers.get(rid) if rid is not None else None
        rates = layer.tid_rates if layer is not None else None
        return 0 if rates is None else len(rates) - 1


class LayerSelector:
    """Choose and switch the simulcast layer one subscriber receives.

    Call :meth:`accept` for every packet of the track (after
    :meth:`SimulcastLayers.packet_received`); forward the packet when it
    returns True.  ``single``: the track has no simulcast, ``layers`` holds its one
    layer (:data:`SINGLE`), which is current from the start; only the TID is chosen
    and :meth:`accept` is not called.  :meth:`take_keyframe_request` names a layer whose key
    frame is awaited (ask its publisher stream for one).
    """

    __slots__ = (
        "layers",
        "preferences",
        "available_bitrate",
        "upgrade_bitrate_limit",
        "ceiling",
        "reason",
        "current",
        "target",
        "target_tid",
        "temporal",
        "switches",
        "_generation",
        "_keyframe_request",
        "_requested_for",
    )

    def __init__(
        self, layers: SimulcastLayers, preferences: SimulcastPreferences | None = None,
        temporal: Any = None, single: bool = False,
    ) -> None:
        self.layers = layers
        #: the subscriber's temporal-layer filter (realtime/sfu/temporal.py), told the TID
        #: chosen with the layer (:attr:`target_tid`); None: every frame is forwarded
        self.temporal = temporal
        self.target_tid = ALL_TIDS
        self.preferences = preferences or SimulcastPreferences()
        self.available_bitrate: float | None = None
        self.upgrade_bitrate_limit: float | None = None
        #: the best layer the preferences allow; why the target is what it is
        self.ceiling: str | None = None
        self.reason = "auto"
        self.current: str | None = None
        self.target: str | None = None
        self.switches = 0
        self._generation = -1
        self._keyframe_request: str | None = None
        self._requested_for: str | None = None
        if single:
            # a track without simulcast: its one layer (SINGLE) is what is sent from the
            # start (the forwarder waits for its key frame); only the TID is chosen
            self.current = self.target = SINGLE

    def set_preferences(self, preferences: SimulcastPreferences) -> None:
        """Apply new preferences (``tracks/update``); a switch follows on the next key frame."""
        self.preferences = preferences
        self._retarget()

    def set_available_bitrate(self, bitrate: float | None, upgrade: float | None = None) -> None:
        """Tell the selector how many bit/s reach the subscriber (REMB / transport-cc), or None.

        ``upgrade``: what has been shown to reach it (a probe, or what it acknowledged),
        which a layer better than the current one must fit; None: ``bitrate`` itself.
        """
        self.available_bitrate = bitrate
        self.upgrade_bitrate_limit = upgrade
        self._retarget()

    def target_for(self, active: list[str]) -> str | None:
        """Return the layer this subscriber wants given the ``active`` rids (best first).

        Sets :attr:`reason`: ``preferred`` (the preferred layer), ``auto`` (no
        preference: the best layer), ``fallback`` (the preferred layer is not
        arriving, or starved), ``bandwidth`` (a lower layer, because the available
        bitrate does not carry the better one), ``degraded`` (no preference, and the
        better layers arrive starved: :meth:`SimulcastLayers.starved`).  Sets :attr:`target_tid`: the highest
        temporal layer to forward (:data:`ALL_TIDS`: every one).

        Temporal layers (a layer whose packets carry VP8 TIDs): a layer fits when
        its rate at TID <= :data:`MIN_TID` does (half the frame rate in L1T3), and
        is then sent at the highest TID that fits; so a better spatial layer at a
        lower frame rate is preferred to the smaller one at its full rate.  The
        last layer is sent at the TID that fits, TID 0 at least.
        """
        prefs = self.preferences
        preferred = prefs.preferred_rid
        # a starved layer (SimulcastLayers._judge_frame_rates) is passed over as if it
        # were not arriving: sent, it would freeze at every gap
        usable = [rid for rid in active if not self.layers.starved(rid)]
        if preferred is None:
            choice, reason = (usable[0] if usable else self.target), "auto"
            if usable and usable[0] != active[0]:
                reason = "degraded"
        elif preferred in active and (preferred in usable or prefs.rid_not_available == NONE):
            choice, reason = preferred, "preferred"
        elif prefs.rid_not_available == ASCIIBETICAL and usable:
            after = [rid for rid in usable if rid > preferred]
            before = [rid for rid in usable if rid < preferred]
            choice, reason = (after[0] if after else before[-1]), "fallback"
        elif prefs.rid_not_available == LEAST_BANDWIDTH and usable:
            choice, reason = usable[-1], "fallback"
        else:
            choice, reason = preferred, "preferred"
        budget = self.available_bitrate
        self.ceiling = choice
        tid = ALL_TIDS
        # the preferred layer kept though starved (ridNotAvailable none) steps down as before
        candidates = usable if choice in usable else active
        if budget is not None and choice in candidates and (
                preferred is None or prefs.priority_ordering == ASCIIBETICAL):
            limit = self.upgrade_bitrate_limit
            up_budget = budget if limit is None else min(budget, limit)
            fitted = None
            for rid in candidates[candidates.index(choice) :]:
                rates = self.layers.rates(rid)
                if rates is None:
                    # not measured yet (its first window): with an estimate known it is
                    # not chosen (it may be f: a freeze), unless it is the last layer left
                    continue
                # moving up needs headroom (UPGRADE_HEADROOM) within what has been shown to
                # arrive; staying or moving down needs the estimate only
                fitted = self._fitting_tid(rid, rates, budget, up_budget, rid == candidates[-1])
                if fitted is not None:
                    break
            if fitted is not None:
                tid = fitted
            if rid != choice or tid != ALL_TIDS:
                choice, reason = rid, "bandwidth"
        self.reason = reason
        self.target_tid = tid
        return choice

    def _fitting_tid(self, rid: str, rates: list[float], budget: float, up_budget: float,
                     last: bool) -> int | None:
        """Return the highest TID of layer ``rid`` (``rates`` cumulated per TID) that fits, or
        None; :data:`ALL_TIDS` for the top one.

        What is sent now (this layer up to :attr:`target_tid`) stays while it fits
        ``budget``; anything more (a better layer, a higher TID) needs
        :data:`UPGRADE_HEADROOM` within ``up_budget``.  The layer fits if its rate at
        :data:`MIN_TID` does (at TID 0 for the ``last`` layer, which is always sent).
        """
        top = len(rates) - 1
        current = self.current
        if current is None or rid > current or (rid == current and self.target != rid):
            held = top  # moving down, or staying where a switch away was wanted
        elif rid == current:
            held = top if self.target_tid == ALL_TIDS else self.target_tid
        else:
            held = -1  # a better layer than the one sent
        best = -1
        for t in range(top + 1):
            if t <= held:
                fits = rates[t] <= budget
            else:
                fits = rates[t] * UPGRADE_HEADROOM <= up_budget
            if not fits:
                break
            best = t
        if best < (0 if last else min(MIN_TID, top)):
            if not last:
                return None
            best = 0  # the least there is: a lower frame rate rather than a freeze
        return ALL_TIDS if best == top else best

    def fixed_rate(self) -> float | None:
        """Return the measured bit/s of a track that cannot be thinned (a ``single`` layer
        without temporal layers), 0 before it is measured; None when there is a choice."""
        if self.current != SINGLE or self.target != SINGLE:
            return None
        rates = self.layers.rates(SINGLE)
        if rates is None:
            return 0.0
        return rates[0] if len(rates) == 1 else None

    def upgrade_bitrate(self) -> float | None:
        """Return the bitrate the best layer allowed (the ceiling) needs, if not the target;
        with the target at a reduced frame rate, what its next temporal layer needs.

        What the allocator asks the estimate to prove (a probe) before moving up.
        """
        target, ceiling = self.target, self.ceiling
        if target is None or ceiling is None or target < ceiling or (
                target == ceiling and self.target_tid == ALL_TIDS):
            return None
        if self.target_tid != ALL_TIDS:
            # a layer at a reduced frame rate: its next temporal layer is the next step (a
            # probe for the ceiling's whole rate would flood the link that thinned it)
            rates = self.layers.rates(target)
            if rates is not None and self.target_tid + 1 < len(rates):
                return rates[self.target_tid + 1] * UPGRADE_HEADROOM
        rate = self.layers.bitrate(ceiling)
        return None if rate is None else rate * UPGRADE_HEADROOM

    def _retarget(self) -> None:
        self._generation = self.layers.generation
        target = self.target_for(self.layers.active())
        if target != self.target:
            self.target = target
            if target is not None and target != self.current:
                self._keyframe_request = self._requested_for = target
        self._tell_temporal()

    def _tell_temporal(self) -> None:
        """Give the filter the TID chosen, for the layer being sent: while a better layer's
        key frame is awaited, the current (smaller) one goes on at its full frame rate."""
        temporal = self.temporal
        if temporal is not None:
            current, target = self.current, self.target
            up = current is not None and target is not None and target < current
            temporal.set_target(ALL_TIDS if up else self.target_tid)

    def accept(self, rid: str, keyframe: bool, now: float) -> bool:
        """Return True if this subscriber should receive this packet of layer ``rid``."""
        if self._generation != self.layers.generation:
            self._retarget()
        current = self.current
        if rid == current:
            return True
        if rid == self.target:
            if keyframe:
                self.current = rid
                self.switches += 1
                self._requested_for = None
                if self._keyframe_request == rid:
                    self._keyframe_request = None
                self._tell_temporal()
                return True
            if self._requested_for != rid:
                self._keyframe_request = self._requested_for = rid
        return False

    def take_keyframe_request(self) -> str | None:
        """Return (once) the rid whose key frame this selector waits for, or None."""
        rid, self._keyframe_request = self._keyframe_request, None
        return rid
