"""
The SFU media plane's pure pieces: no sockets, no clock, ``now`` passed in.

* :mod:`~realtime.media.nack` -- :class:`RetransmissionBuffer` (a ring per
  published stream) and :class:`NackGenerator` (gaps -> RFC 4585 NACKs).
* :mod:`~realtime.media.keyframes` -- key frame detection in VP8, VP9,
  H.264 and AV1 payloads, and :class:`KeyframeRequester` (PLI/FIR
  aggregation and debounce per published stream).
* :mod:`~realtime.media.simulcast` -- :class:`SimulcastLayers` (which rids
  arrive) and :class:`LayerSelector` (which rid one subscriber gets).
* :mod:`~realtime.media.vp8`, :mod:`~realtime.media.vp9`, :mod:`~realtime.media.dependency_descriptor`
  -- the payload descriptors (RFC 7741, RFC 9628) and AV1's dependency descriptor:
  picture numbers and temporal layers (realtime/sfu/temporal.py).

Per packet, for one published stream and its subscribers::

    publisher RTP --> PublishedStream.receive --> keyframe? --> SimulcastLayers.packet_received
                                                                      |
                         for each subscriber: LayerSelector.accept --> Forwarder.forward
"""

from realtime.media.keyframes import KeyframeRequester, keyframe_detector
from realtime.media.nack import NackGenerator, RetransmissionBuffer
from realtime.media.simulcast import LayerSelector, SimulcastLayers, SimulcastPreferences

__all__ = [
    "KeyframeRequester",
    "LayerSelector",
    "NackGenerator",
    "RetransmissionBuffer",
    "SimulcastLayers",
    "SimulcastPreferences",
    "keyframe_detector",
]
