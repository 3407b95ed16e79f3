"""Hypothesis strategies for SCTP chunks, parameters and packets."""

from __future__ import annotations

from hypothesis import strategies as st

from realtime.sctp import chunks as c
from realtime.sctp import parameters as p

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
small = st.binary(max_size=40)

parameters = st.one_of(
    st.builds(p.RawParameter, st.sampled_from([5, 6, 9, 12, 0x8002, 0x8003, 0x8004, 0xC006]),
              small),
    st.builds(p.StateCookie, small),
    st.builds(p.HeartbeatInfo, small),
    st.builds(p.SupportedExtensions, st.lists(u8, max_size=6).map(tuple)),
    st.just(p.ForwardTsnSupported()),
    st.builds(p.OutgoingSsnResetRequest, u32, u32, u32, st.lists(u16, max_size=5).map(tuple)),
    st.builds(p.IncomingSsnResetRequest, u32, st.lists(u16, max_size=5).map(tuple)),
    st.builds(p.ReconfigurationResponse, u32, u32),
    st.builds(p.ReconfigurationResponse, u32, u32, u32, u32),
    st.builds(p.AddOutgoingStreamsRequest, u32, u16, u16),
    st.builds(p.AddIncomingStreamsRequest, u32, u16, u16),
)
causes = st.builds(p.ErrorCause, u16, small)
param_tuples = st.lists(parameters, max_size=4).map(tuple)


def _init(cls):
    def build(fixed, params, padded):
        padded = padded and bool(params) and len(params[-1].encode_value()) % 4 != 0
        return cls(*fixed, params, padded)

    return st.builds(build, st.tuples(u32, u32, u16, u16, u32), param_tuples, st.booleans())


chunks = st.one_of(
    st.builds(c.DataChunk, u32, u16, u16, u32, st.binary(max_size=64), st.booleans(),
              st.booleans(), st.booleans(), st.booleans()),
    _init(c.InitChunk),
    _init(c.InitAckChunk),
    st.builds(c.SackChunk, u32, u32, st.lists(st.tuples(u16, u16), max_size=4).map(tuple),
              st.lists(u32, max_size=4).map(tuple)),
    st.builds(c.HeartbeatChunk, param_tuples),
    st.builds(c.HeartbeatAckChunk, param_tuples),
    st.builds(c.AbortChunk, st.lists(causes, max_size=3).map(tuple), st.booleans()),
    st.builds(c.ErrorChunk, st.lists(causes, max_size=3).map(tuple)),
    st.builds(c.ShutdownChunk, u32),
    st.just(c.ShutdownAckChunk()),
    st.builds(c.ShutdownCompleteChunk, st.booleans()),
    st.builds(c.CookieEchoChunk, small),
    st.just(c.CookieAckChunk()),
    st.builds(c.ForwardTsnChunk, u32, st.lists(st.tuples(u16, u16), max_size=4).map(tuple)),
    st.builds(c.ReconfigChunk, param_tuples),
    st.builds(c.UnknownChunk, st.sampled_from([12, 13, 15, 64, 0x80, 0x84, 0xC1, 0xC2, 0xFF]),
              u8, small),
)
