"""
``a=ssrc-group:FID`` only where RTX was negotiated (issue 9, defect 6).

RFC 4588 §8.1 ties an RTX stream to its original through the ``rtx``
payload format and RFC 5576 §4.2's ``FID`` group.  A video section whose
formats carry no ``rtx`` has no retransmission stream: announcing an RTX
SSRC (its ``FID`` group and ``a=ssrc`` lines) there names a source that
never sends, which a strict peer (Firefox, webrtcbin) must then track.
Our answers and offers list the RTX SSRC only when an ``rtx`` format is in
the section.
"""

from __future__ import annotations

from realtime.sdp import (
    MediaChoice, MediaOffer, RtpStream, SessionDescription, create_answer, create_offer,
)
from realtime.sdp.codecs import VP8
from realtime.sdp.offer import DEFAULT_VIDEO_EXTENSIONS
from realtime.sfu.switchboard import Switchboard
from tests.sfu.client import CLIENT, certificate, push_offer, video
from tests.sfu.test_session import counting_random

OURS = RtpStream(5000, "sfu", "s", "t", rtx_ssrc=5001)


def groups(media) -> list[tuple[str, tuple[int, ...]]]:
    return [(g.semantics, g.ssrcs) for g in media.ssrc_groups]


def client_offer(rtx: bool) -> SessionDescription:
    return SessionDescription.parse(push_offer(video("0", 1234, 1235 if rtx else None,
                                                     direction="sendrecv")))


def test_answer_without_rtx_names_no_rtx_ssrc() -> None:
    answer = create_answer(client_offer(rtx=False), CLIENT, {"0": MediaChoice(send=OURS)})
    media = answer.media[0]
    assert not any(c.is_rtx for c in media.codecs)
    assert groups(media) == []
    assert media.ssrcs == (5000,)


def test_answer_with_rtx_keeps_the_fid_group() -> None:
    answer = create_answer(client_offer(rtx=True), CLIENT, {"0": MediaChoice(send=OURS)})
    media = answer.media[0]
    assert any(c.is_rtx for c in media.codecs)
    assert groups(media) == [("FID", (5000, 5001))]
    assert set(media.ssrcs) == {5000, 5001}


def test_offer_without_rtx_formats_names_no_rtx_ssrc() -> None:
    offer = create_offer(CLIENT, [MediaOffer("0", "video", "sendonly", OURS, (VP8,),
                                             DEFAULT_VIDEO_EXTENSIONS)])
    assert groups(offer.media[0]) == [] and offer.media[0].ssrcs == (5000,)
    default = create_offer(CLIENT, [MediaOffer("0", "video", "sendonly", OURS)])
    assert groups(default.media[0]) == [("FID", (5000, 5001))]  # defaults offer rtx


def test_sfu_echo_answer_to_a_video_offer_without_rtx() -> None:
    board = Switchboard(random=counting_random())
    a = board.create_session("app", 0.0, certificate=certificate(), address="127.0.0.1",
                             port=40000)
    answer = a.answer_offer(push_offer(video("0", 1234, direction="sendrecv")), 0.0,
                            publish={"0": "cam"})
    media = answer.media[0]
    assert media.direction == "sendrecv" and not any(c.is_rtx for c in media.codecs)
    assert groups(media) == [] and len(media.ssrcs) == 1
