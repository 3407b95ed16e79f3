"""
RTCP (RFC 3550 §6) and its feedback extensions (RFC 4585, RFC 5104, RFC 5506,
draft-alvestrand-rmcat-remb, draft-holmer-rmcat-transport-wide-cc-extensions-01).

:func:`decode_compound` turns a datagram into a tuple of typed packets;
unknown types and formats stay :class:`RawRtcpPacket` so nothing is lost.
"""

from realtime.rtcp.bye import Goodbye
from realtime.rtcp.feedback import (
    FirEntry,
    FullIntraRequest,
    GenericNack,
    NackItem,
    PictureLossIndication,
    ReceiverEstimatedMaxBitrate,
    nack_items,
)
from realtime.rtcp.packet import (
    RawRtcpPacket,
    RtcpPacket,
    RtcpPacketType,
    decode_compound,
    encode_compound,
    is_reduced_size,
)
from realtime.rtcp.reports import ReceiverReport, ReportBlock, SenderReport
from realtime.rtcp.sdes import SdesChunk, SdesItem, SdesItemType, SourceDescription
from realtime.rtcp.transport_cc import RunLengthChunk, StatusVectorChunk, TransportFeedback

__all__ = [
    "FirEntry", "FullIntraRequest", "GenericNack", "Goodbye", "NackItem", "PictureLossIndication",
    "RawRtcpPacket", "ReceiverEstimatedMaxBitrate", "ReceiverReport", "ReportBlock", "RtcpPacket",
    "RtcpPacketType", "RunLengthChunk", "SdesChunk", "SdesItem", "SdesItemType", "SenderReport",
    "SourceDescription", "StatusVectorChunk", "TransportFeedback", "decode_compound",
    "encode_compound", "is_reduced_size", "nack_items",
]
