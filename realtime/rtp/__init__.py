"""
RTP (RFC 3550 §5): the packet codec, RFC 8285 header extensions, RFC 4588
retransmission and the reception statistics behind RTCP reports.

The hot path (per packet, per subscriber) uses the byte-level functions of
:mod:`realtime.rtp.packet`; everything else uses :class:`RtpPacket`.
"""

from realtime.rtp.extensions import ExtensionUri, HeaderExtension, decode_extensions, encode_extensions
from realtime.rtp.packet import (
    RtpPacket,
    find_extension,
    payload_offset,
    read_header_fields,
    rewrite_extension_ids,
    rewrite_header,
)
from realtime.rtp.rtx import decapsulate_rtx, encapsulate_rtx, is_padding_only
from realtime.rtp.statistics import ReceiverStatistics, SenderStatistics, ntp_middle32, ntp_timestamp

__all__ = [
    "ExtensionUri", "HeaderExtension", "ReceiverStatistics", "RtpPacket", "SenderStatistics",
    "decapsulate_rtx", "decode_extensions", "encapsulate_rtx", "encode_extensions",
    "find_extension", "is_padding_only", "ntp_middle32", "ntp_timestamp", "payload_offset",
    "read_header_fields", "rewrite_extension_ids", "rewrite_header",
]
