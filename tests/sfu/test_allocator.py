"""realtime/sfu/allocator.py: what the allocator asks the estimate to prove (a probe)."""

from __future__ import annotations

from types import SimpleNamespace

from realtime.sfu.allocator import AUDIO_RESERVE, allocate
from realtime.sfu.estimate import INITIAL_BITRATE, SubscriberEstimate


class Selector:
    """A LayerSelector's side of allocate(): remembers the shares, wants ``better`` bit/s."""

    def __init__(self, better: float | None) -> None:
        self.better = better
        self.shares: list[tuple[float | None, float | None]] = []

    def set_available_bitrate(self, share, up=None) -> None:
        self.shares.append((share, up))

    def upgrade_bitrate(self):
        return self.better

    def fixed_rate(self):
        return None

    def take_keyframe_request(self):
        return None


def pull(kind: str, selector: Selector | None) -> SimpleNamespace:
    return SimpleNamespace(forwarder=object(), selector=selector,
                           track=SimpleNamespace(kind=kind),
                           session=SimpleNamespace(can_send_media=False))


def test_a_probe_wants_the_better_layer_plus_the_audio_reserve() -> None:
    estimate = SubscriberEstimate()
    video = Selector(better=150_000)
    allocate([pull("audio", None), pull("video", video)], estimate, 0.0)
    share = INITIAL_BITRATE - AUDIO_RESERVE
    assert video.shares == [(share, share)]
    # the whole link must carry the audio and the better layer: asking for the layer alone
    # (150 kbit/s, under the estimate) made every probe "fail to raise" a 300 kbit/s estimate
    assert estimate.wanted == AUDIO_RESERVE + 150_000


def test_two_video_tracks_each_at_the_better_layer() -> None:
    estimate = SubscriberEstimate()
    a, b = Selector(better=200_000), Selector(better=None)
    allocate([pull("audio", None), pull("video", a), pull("video", b)], estimate, 0.0)
    assert estimate.wanted == AUDIO_RESERVE + 2 * 200_000


def test_nothing_better_wants_nothing() -> None:
    estimate = SubscriberEstimate()
    allocate([pull("audio", None), pull("video", Selector(better=None))], estimate, 0.0)
    assert estimate.wanted is None


def test_a_video_track_that_cannot_be_thinned_is_set_aside() -> None:
    """A track without simulcast or temporal layers (fixed_rate) takes its measured rate
    off the budget; the simulcast track shares what is left."""
    estimate = SubscriberEstimate()
    fixed, shared = Selector(better=None), Selector(better=None)
    fixed.fixed_rate = lambda: 100_000  # type: ignore[method-assign]
    allocate([pull("audio", None), pull("video", fixed), pull("video", shared)], estimate, 0.0)
    assert fixed.shares == []
    assert shared.shares[-1][0] == INITIAL_BITRATE - AUDIO_RESERVE - 100_000
