"""
The Selective Forwarding Unit: sessions, published tracks, subscriptions.

* :mod:`~realtime.sfu.session` -- :class:`SfuSession`, one PeerConnection and
  its offer/answer state;
* :mod:`~realtime.sfu.transceiver` -- one m= section each, and the payload
  type / extension id numbering a BUNDLE shares;
* :mod:`~realtime.sfu.track` -- :class:`PublishedTrack` (the fan-out loop)
  and :class:`Subscription`;
* :mod:`~realtime.sfu.forwarder` -- per-subscriber RTP rewriting;
* :mod:`~realtime.sfu.switchboard` -- the registry of sessions and tracks;
* :mod:`~realtime.sfu.limits` -- Cloudflare's published limits, the rate limiter.

Pure code: no sockets, no clock; ``docs/sfu.md`` and ``docs/api.md`` tell
the story, :mod:`realtime.api.sessions` serves it over HTTPS.
"""
