"""
Stream reset with RE-CONFIG (RFC 6525), the way DataChannels close.

Closing a DataChannel resets its SCTP stream in both directions (RFC 8831
§6.7): each side sends an *Outgoing SSN Reset Request* for the stream it
sends on, and the peer resets the matching incoming stream once it has
received every TSN up to the request's "Sender's Last Assigned TSN"::

      A                                              B
      | RE-CONFIG [Outgoing SSN Reset Req seq=n,     |
      |            last TSN=t, streams=(s)]  ------> |  cumulative TSN >= t ?
      |                                              |   yes: reset incoming s
      | <------ RE-CONFIG [Response seq=n, result=1] |   no:  result=6 (in progress)
      | reset outgoing SSN of s                      |        A asks again after RTO
      | <------ RE-CONFIG [Outgoing SSN Reset Req]   |  B closes its side too
      | ------> RE-CONFIG [Response]                 |

Request sequence numbers start at the sender's Initial TSN (§5.1.1) and
only one request is outstanding at a time; a repeated request (same number)
gets the answer already given, re-evaluated if it was "in progress".

Deliberate deviation: Incoming SSN Reset and Add Streams requests are
answered "denied"; WebRTC closes channels only with outgoing resets.
"""

from __future__ import annotations

from realtime.sctp.parameters import (
    OutgoingSsnResetRequest, ReconfigRequest, ReconfigResult, ReconfigurationResponse,
)

MASK = 0xFFFFFFFF


class StreamReconfiguration:
    """Both directions of RFC 6525 stream reset for one association.

    :param local_initial_tsn: our Initial TSN (first request sequence number).
    :param peer_initial_tsn: the peer's Initial TSN (its first request number).
    """

    def __init__(self, local_initial_tsn: int, peer_initial_tsn: int) -> None:
        self.next_request_seq = local_initial_tsn & MASK
        self.expected_peer_seq = peer_initial_tsn & MASK
        self.pending: list[int] = []
        self.outstanding: OutgoingSsnResetRequest | None = None
        self.deadline: float | None = None
        self._last_request: ReconfigRequest | None = None
        self._last_result: int = ReconfigResult.SUCCESS_NOTHING_TO_DO

    # -- our requests ------------------------------------------------------

    def request_reset(self, stream_ids: list[int]) -> None:
        """Queue our outgoing streams ``stream_ids`` for reset."""
        for stream_id in stream_ids:
            if stream_id not in self.pending:
                self.pending.append(stream_id)

    def request_to_send(self, last_assigned_tsn: int, now: float, rto: float
                        ) -> OutgoingSsnResetRequest | None:
        """Return a request to send now (new or retransmitted), or None."""
        if self.outstanding is not None:
            if self.deadline is None or now < self.deadline:
                return None
            self.deadline = now + rto
            return self.outstanding
        if not self.pending:
            return None
        streams, self.pending = tuple(self.pending), []
        self.outstanding = OutgoingSsnResetRequest(
            self.next_request_seq, (self.expected_peer_seq - 1) & MASK,
            last_assigned_tsn & MASK, streams)
        self.next_request_seq = (self.next_request_seq + 1) & MASK
        self.deadline = now + rto
        return self.outstanding

    def handle_response(self, response: ReconfigurationResponse, now: float, rto: float
                        ) -> tuple[int, ...] | None:
        """Process the peer's answer; return the streams now reset, or None."""
        request = self.outstanding
        if request is None or response.response_seq != request.request_seq:
            return None
        if response.result == ReconfigResult.IN_PROGRESS:
            self.deadline = now + rto
            return None
        self.outstanding = None
        self.deadline = None
        if response.result in (ReconfigResult.SUCCESS_PERFORMED,
                               ReconfigResult.SUCCESS_NOTHING_TO_DO):
            return request.streams
        return None

    # -- the peer's requests -----------------------------------------------

    def handle_request(self, request: ReconfigRequest, cumulative_tsn: int
                       ) -> tuple[ReconfigurationResponse, tuple[int, ...] | None]:
        """Answer one of the peer's requests.

        :param cumulative_tsn: our receiver's 32-bit cumulative TSN.
        :returns: the response and, when an outgoing reset was performed,
            the incoming streams to reset (empty tuple: all streams).
        """
        seq = request.request_seq
        if seq == (self.expected_peer_seq - 1) & MASK and self._last_request is not None:
            if self._last_result != ReconfigResult.IN_PROGRESS:
                return ReconfigurationResponse(seq, self._last_result), None
        elif seq != self.expected_peer_seq:
            return ReconfigurationResponse(seq, ReconfigResult.ERROR_BAD_SEQUENCE_NUMBER), None
        else:
            self.expected_peer_seq = (seq + 1) & MASK
        self._last_request = request
        reset: tuple[int, ...] | None = None
        if isinstance(request, OutgoingSsnResetRequest):
            if ((cumulative_tsn - request.last_tsn) & MASK) < 1 << 31:
                result, reset = ReconfigResult.SUCCESS_PERFORMED, request.streams
            else:
                result = ReconfigResult.IN_PROGRESS
        else:  # Incoming SSN Reset, Add Outgoing/Incoming Streams: we do not grant them
            result = ReconfigResult.DENIED
        self._last_result = result
        return ReconfigurationResponse(seq, result), reset
