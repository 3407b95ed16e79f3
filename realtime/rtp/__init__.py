"""
RTP (RFC 3550 §5): the packet codec, RFC 8285 header extensions, RFC 4588
retransmission and the reception statistics behind RTCP reports.

The hot path (per packet, per subscriber) uses the byte-level operations:
the named offsets, masks and functions of :mod:`realtime.rtp.packet`,
:class:`~realtime.rtp.rewrite.ExtensionRewrite` (RFC 8285 §5) and
:func:`~realtime.rtp.rtx.wrap_rtx` / :func:`~realtime.rtp.rtx.unwrap_rtx`
(RFC 4588 §4); everything else uses :class:`RtpPacket`.
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
from realtime.rtp.rewrite import ExtensionRewrite
from realtime.rtp.rtx import decapsulate_rtx, encapsulate_rtx, is_padding_only, unwrap_rtx, wrap_rtx
from realtime.rtp.statistics import ReceiverStatistics, SenderStatistics, ntp_middle32, ntp_timestamp

__all__ = [
    "ExtensionRewrite", "ExtensionUri", "HeaderExtension", "ReceiverStatistics", "RtpPacket", "SenderStatistics",
    "decapsulate_rtx", "decode_extensions", "encapsulate_rtx", "encode_extensions",
    "find_extension", "is_padding_only", "ntp_middle32", "ntp_timestamp", "payload_offset",
    "read_header_fields", "rewrite_extension_ids", "rewrite_header", "unwrap_rtx", "wrap_rtx",
]
