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
    then, with an available bitrate known (the subscriber's estimate,
    realtime/sfu/allocator.py) and no preference or priorityOrdering = asciibetical:
         step down a-z while the layer's measured bitrate exceeds it (a better
         layer than the current one needs 15 % headroom); the last layer is
         always allowed: video is thinned, never cut

The older vocabularies of the contract (docs/cloudflare-api.md §1.6) are accepted by
:meth:`SimulcastPreferences.from_json`: ``ridUnavailableStrategy:
none|nextPriority`` and ``fallbackStrategy: auto|leastBandwidth|none``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["LayerSelector", "SimulcastLayers", "SimulcastPreferences", "UPGRADE_HEADROOM"]

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


class _Layer:
    __slots__ = ("rid", "last_seen", "active", "window_start", "window_bytes", "bitrate")

    def __init__(self, rid: str, now: float | None) -> None:
        self.rid = rid
        self.last_seen = now
        self.active = now is not None
        self.window_start = now or 0.0
        self.window_bytes = 0
        self.bitrate: float | None = None


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

    def packet_received(self, rid: str, size: int, now: float) -> None:
        """Account for one packet of layer ``rid`` (once per packet, for all subscribers)."""
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
        elapsed = now - layer.window_start
        if elapsed >= self.window:
            layer.bitrate = layer.window_bytes * 8 / elapsed
            layer.window_start, layer.window_bytes = now, 0
        if self._next_check is None:
            self._next_check = now + self.inactive_after
        elif now >= self._next_check:
            self.handle_timer(now)

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

    def bitrate(self, rid: str) -> float | None:
        """Return the last measured bitrate of ``rid`` in bit/s, or None."""
        layer = self.layers.get(rid)
        return layer.bitrate if layer else None


class LayerSelector:
    """Choose and switch the simulcast layer one subscriber receives.

    Call :meth:`accept` for every packet of the track (after
    :meth:`SimulcastLayers.packet_received`); forward the packet when it
    returns True.  :meth:`take_keyframe_request` names a layer whose key
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
        "switches",
        "_generation",
        "_keyframe_request",
        "_requested_for",
    )

    def __init__(
        self, layers: SimulcastLayers, preferences: SimulcastPreferences | None = None
    ) -> None:
        self.layers = layers
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
        arriving), ``bandwidth`` (a lower layer, because the available bitrate
        does not carry the better one).
        """
        prefs = self.preferences
        preferred = prefs.preferred_rid
        if preferred is None:
            choice, reason = (active[0] if active else self.target), "auto"
        elif preferred in active:
            choice, reason = preferred, "preferred"
        elif prefs.rid_not_available == ASCIIBETICAL and active:
            after = [rid for rid in active if rid > preferred]
            before = [rid for rid in active if rid < preferred]
            choice, reason = (after[0] if after else before[-1]), "fallback"
        elif prefs.rid_not_available == LEAST_BANDWIDTH and active:
            choice, reason = active[-1], "fallback"
        else:
            choice, reason = preferred, "preferred"
        budget = self.available_bitrate
        self.ceiling = choice
        if budget is not None and choice in active and (
                preferred is None or prefs.priority_ordering == ASCIIBETICAL):
            current = self.current
            limit = self.upgrade_bitrate_limit
            up_budget = budget if limit is None else min(budget, limit)
            for rid in active[active.index(choice) :]:
                rate = self.layers.bitrate(rid)
                if rate is None:
                    # not measured yet (its first window): with an estimate known it is
                    # not chosen (it may be f: a freeze), unless it is the last layer left
                    continue
                # moving up needs headroom (UPGRADE_HEADROOM) within what has been shown to
                # arrive; staying or moving down needs the estimate only
                if current is None or rid >= current:
                    if rate <= budget:
                        break
                elif rate * UPGRADE_HEADROOM <= up_budget:
                    break
            if rid != choice:
                choice, reason = rid, "bandwidth"
        self.reason = reason
        return choice

    def upgrade_bitrate(self) -> float | None:
        """Return the bitrate the best layer allowed (the ceiling) needs, if not the target.

        What the allocator asks the estimate to prove (a probe) before moving up.
        """
        target, ceiling = self.target, self.ceiling
        if target is None or ceiling is None or target <= ceiling:
            return None
        rate = self.layers.bitrate(ceiling)
        return None if rate is None else rate * UPGRADE_HEADROOM

    def _retarget(self) -> None:
        self._generation = self.layers.generation
        target = self.target_for(self.layers.active())
        if target != self.target:
            self.target = target
            if target is not None and target != self.current:
                self._keyframe_request = self._requested_for = target

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
                return True
            if self._requested_for != rid:
                self._keyframe_request = self._requested_for = rid
        return False

    def take_keyframe_request(self) -> str | None:
        """Return (once) the rid whose key frame this selector waits for, or None."""
        rid, self._keyframe_request = self._keyframe_request, None
        return rid
