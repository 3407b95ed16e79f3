"""
GStreamer ``webrtcbin`` (libnice) through the SFU: a WebRTC stack nobody here wrote.

Each test runs ``tests/interop/gst_peer.py`` under Debian's python3-gi: a
publisher pushes ``videotestsrc``/``audiotestsrc`` through the
Cloudflare-compatible API, a puller in another session decodes what the SFU
forwards and reports frames per second.  What a viewer needs is a sustained
rate, so every check is frames decoded per second over several seconds,
not "some frames arrived".

The cases follow issue 9's GStreamer defects:

* VP8 + Opus publish and pull, with the time from the puller's answer to
  ICE connected (defect 5: checks before the answer must be answered with
  MESSAGE-INTEGRITY, or libnice retries ~0.5 s later);
* H.264 to a subscriber whose answer omits ``profile-level-id`` (defect 3);
* a publisher that offers before caps flow: no ``a=ssrc``, no MID
  extension, two sections -- routed by payload type (defect 4);
* a call past 30 s, kept alive by libnice's Binding Indications only
  (defect 2: media is the proof of life).
"""

from __future__ import annotations

import pytest

from tests.interop.gstreamer import GstPeer, require_gstreamer

pytestmark = pytest.mark.interop

#: videotestsrc sends 30 fps; what a viewer needs, with margin for a loaded 2-core CI machine
MIN_FPS = 20


@pytest.fixture(scope="module", autouse=True)
def gstreamer():
    require_gstreamer()


def call(server, *, publish: dict, pull: dict, seconds: float) -> tuple[dict, dict, dict]:
    """Publish, then pull for ``seconds``; return (published, pulled done, publisher done)."""
    publisher = GstPeer(server, mode="publish", seconds=seconds + 12, **publish)
    puller = None
    try:
        published = publisher.wait_for("published", 30)
        puller = GstPeer(server, mode="pull", publisher=published["sessionId"],
                         tracks=published["tracks"], seconds=seconds, **pull)
        done = puller.wait_for("done", seconds + 30)
        publisher.stop()
        return published, done, publisher.events[-1]
    finally:
        publisher.stop()
        if puller is not None:
            puller.stop()


def sustained(per_second: list[int], last: int) -> int:
    """Return the lowest frame count of the ``last`` whole seconds."""
    return min(per_second[-last - 1:-1])


def test_vp8_opus_publish_and_pull(realtime_server) -> None:
    """Also: a pull whose answer reaches us late still connects at once (defect 5).

    The puller sends ``PUT renegotiate`` 0.5 s after applying its answer, as
    with slow signalling; its checks come before that and must be answered
    with MESSAGE-INTEGRITY.  Before the fix ICE connected ~0.56 s after the
    answer with a 0.1 s delay (libnice discarded the unauthenticated answers
    and retried); after it, ~0.06 s whatever the delay.
    """
    published, done, _ = call(realtime_server, publish={"video": "vp8"},
                              pull={"renegotiate_delay": 0.5}, seconds=10)
    assert published["offer_has_ssrc"], published
    assert done["width"] == 320, done
    assert sustained(done["per_second"]["video"], 5) >= MIN_FPS, done
    assert sustained(done["per_second"]["audio"], 5) >= 40, done  # 50 Opus frames/s
    timings = done["timings"]
    assert timings["ice_connected"] - timings["answer"] < 0.35, timings


def test_call_outlives_the_consent_timeout(realtime_server) -> None:
    """Defect 2: libnice in webrtcbin 1.22 refreshes nothing but Binding Indications.

    Both sessions (publisher and puller) run 40 s, past the 30 s after which
    the server used to declare consent expired and stop forwarding; the
    last seconds must still decode at a viewer's rate.
    """
    _, done, _ = call(realtime_server, publish={"video": "vp8"}, pull={}, seconds=40)
    video = done["per_second"]["video"]
    assert len(video) >= 38, done
    assert sustained(video, 5) >= MIN_FPS, done           # seconds 34-39: still flowing
    assert min(video[2:-1]) >= MIN_FPS // 2, done          # and no gap on the way


@pytest.mark.parametrize("strip", [False, True], ids=["as-answered", "no-profile-level-id"])
def test_h264_publish_and_pull(realtime_server, strip: bool) -> None:
    """Defect 3: H.264 to a subscriber whose answer omits ``profile-level-id``.

    The SFU offers the publisher's Constrained Baseline (42e01f); the answer
    keeps the payload type but drops the parameter, which RFC 6184 §8.1
    reads as Baseline.  The answer still selects that payload type (RFC 3264
    §6.1): frames must decode at a viewer's rate, and /diagnostics must
    show nothing dropped for want of a payload type.
    """
    published, done, _ = call(realtime_server, publish={"video": "h264", "audio": False},
                              pull={"strip_profile_level_id": strip}, seconds=8)
    assert done["width"] == 320, done
    assert sustained(done["per_second"]["video"], 4) >= MIN_FPS, done
    status, diagnostics = realtime_server.get("/diagnostics")
    for session in diagnostics["sessions"].values():
        drops = session.get("sfu", {}).get("mediaDrops", {})
        assert "payload-type-not-negotiated" not in drops, diagnostics


def test_offer_before_caps_flow_is_routed_by_payload_type(realtime_server) -> None:
    """Defect 4 (RFC 8843 §9.2): webrtcbin offers before caps flow.

    Its video section then has no ``a=ssrc``, and webrtcbin sends no MID
    header extension; with two sections the SFU must route by payload type
    (96 VP8 and 111 Opus are unique in the BUNDLE).
    """
    published, done, _ = call(realtime_server, publish={"video": "vp8", "early_offer": True},
                              pull={}, seconds=8)
    assert published["video_ssrcs"] == 0, published  # the case under test
    assert done["width"] == 320, done
    assert sustained(done["per_second"]["video"], 4) >= MIN_FPS, done
    assert sustained(done["per_second"]["audio"], 4) >= 40, done
