"""
The transport of one WebRTC PeerConnection, server side: ICE-lite, DTLS-SRTP
and SRTP composed into one sans-I/O machine (:mod:`realtime.peer.connection`),
and the echo session that proves the media path (:mod:`realtime.peer.echo`).
"""
