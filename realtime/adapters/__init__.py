"""
Cloudflare's WebSocket media adapters, the parts without I/O (docs/api.md, "WebSocket adapters").

* :mod:`~realtime.adapters.packet` -- the protobuf ``Packet`` each WebSocket message carries;
* :mod:`~realtime.adapters.frames` -- RTP payloads back into Opus packets and VP8/H.264 frames;
* :mod:`~realtime.adapters.transcode` -- PyAV: Opus <-> PCM, VP8/H.264 -> JPEG;
* :mod:`~realtime.adapters.egress` -- a track's RTP into bounded work for the decoder
  (``location: "remote"``);
* :mod:`~realtime.adapters.ingest` -- PCM from a WebSocket into a published Opus track
  (``location: "local"``).

The Twisted side (WebSocket client, worker threads, the routes) is
:mod:`realtime.api.adapters` and :mod:`realtime.api.adapter_links`.
"""
