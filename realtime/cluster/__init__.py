"""
The cluster: many ``twistd realtime`` processes and machines acting as one SFU.

* :mod:`~realtime.cluster.resp` -- RESP2, the Redis wire protocol (pure codec);
* :mod:`~realtime.cluster.client` -- a Redis connection on the reactor that
  reconnects by itself and fails fast with ``DirectoryUnavailable``;
* :mod:`~realtime.cluster.address` -- the ``--cluster`` URL (password never logged);
* :mod:`~realtime.cluster.records`, :mod:`~realtime.cluster.keys` -- the
  directory's typed records (pure JSON codec) and key names;
* :mod:`~realtime.cluster.directory` -- those records in Redis, the node
  registry with heartbeats, control messages over pub/sub;
* :mod:`~realtime.cluster.relay` -- the node-to-node relay link (sans-I/O, AES-GCM);
* :mod:`~realtime.cluster.launcher` -- the private ``redis-server`` of ``--workers``.

See ``docs/cluster.md`` for what is built and what is not wired yet.
"""
