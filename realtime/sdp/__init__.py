"""
SDP (RFC 8866) and JSEP offer/answer (RFC 8829) as pure code.

* :mod:`~realtime.sdp.session` -- parse/serialize whole descriptions;
* :mod:`~realtime.sdp.attributes`, :mod:`realtime.ice.candidate` (the candidate codec),
  :mod:`~realtime.sdp.simulcast` -- typed attribute values;
* :mod:`~realtime.sdp.codecs` -- payload formats and codec matching;
* :mod:`~realtime.sdp.negotiation` -- answering an offer;
* :mod:`~realtime.sdp.offer` -- making (re-)offers;
* :mod:`~realtime.sdp.negotiated` -- what an exchange settled.

See ``docs/sdp.md`` for the rules and a worked example.
"""

from realtime.sdp.attributes import (
    Attribute, Fingerprint, Fmtp, Group, HeaderExtension, Msid, RtcpFeedback, RtpMap,
    SsrcAttribute, SsrcGroup,
)
from realtime.ice.candidate import Candidate
from realtime.sdp.codecs import Codec, H264Profile, codecs_match, h264_profile
from realtime.sdp.errors import NegotiationError, SdpError
from realtime.sdp.negotiated import NegotiatedMedia, NegotiatedSession, apply_answer
from realtime.sdp.negotiation import LocalTransport, MediaChoice, RtpStream, create_answer
from realtime.sdp.offer import MediaOffer, add_media, close_media, create_offer
from realtime.sdp.session import (
    Bandwidth, Connection, Line, MediaDescription, Origin, SessionDescription, Timing,
)
from realtime.sdp.simulcast import RidDescription, Simulcast, SimulcastStream

__all__ = [
    "Attribute", "Bandwidth", "Candidate", "Codec", "Connection", "Fingerprint", "Fmtp",
    "Group", "H264Profile", "HeaderExtension", "Line", "LocalTransport", "MediaChoice",
    "MediaDescription", "MediaOffer", "Msid", "NegotiatedMedia", "NegotiatedSession",
    "NegotiationError", "Origin", "RidDescription", "RtcpFeedback", "RtpMap", "RtpStream",
    "SdpError", "SessionDescription", "Simulcast", "SimulcastStream", "SsrcAttribute",
    "SsrcGroup", "Timing", "add_media", "apply_answer", "close_media", "codecs_match",
    "create_answer", "create_offer", "h264_profile",
]
