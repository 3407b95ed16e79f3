"""
The cluster: many ``twistd realtime`` processes and machines acting as one SFU.

* :mod:`~realtime.cluster.resp` -- RESP2, the Redis wire protocol (pure codec);
* :mod:`~realtime.cluster.client` -- a Redis connection on the reactor that
  reconnects by itself and fails fast with ``DirectoryUnavailable``;
* :mod:`~realtime.cluster.address`, :mod:`~realtime.cluster.options` -- the
  ``--cluster`` URL (password never logged), ``--node-id``, ``--relay-address``;
* :mod:`~realtime.cluster.records`, :mod:`~realtime.cluster.keys` -- the
  directory's typed records (pure JSON codec) and key names;
* :mod:`~realtime.cluster.directory` -- those records in Redis, the node
  registry with heartbeats, control messages over pub/sub;
* :mod:`~realtime.cluster.relay`, :mod:`~realtime.cluster.relay_port` -- the
  node-to-node relay link (sans-I/O, AES-GCM) and its UDP adapter;
* :mod:`~realtime.cluster.lookup`, :mod:`~realtime.cluster.finder` -- holding
  the first checks of a session this node does not know while the directory is asked;
* :mod:`~realtime.cluster.publish` -- the API's writes (sessions, tracks; the 503);
* :mod:`~realtime.cluster.jit` -- the media port's fallback that takes over a
  session made on another node from its first STUN check;
* :mod:`~realtime.cluster.pulls`, :mod:`~realtime.cluster.mirror`,
  :mod:`~realtime.cluster.remote_tracks` -- cross-node pulls: mirrors fed over the relay
  link, NACKs and PLIs per hop (sans-I/O machine, Twisted side);
* :mod:`~realtime.cluster.tree`, :mod:`~realtime.cluster.cascade` -- each track's
  cascading tree of nodes (pure placement; the Redis hash and its compare-and-set),
  ``--cascade-fanout``, ``docs/cascading.md``;
* :mod:`~realtime.cluster.node` -- this process as a member (``twistd realtime --cluster``);
* :mod:`~realtime.cluster.launcher` -- the private ``redis-server`` of ``--workers``.

See ``docs/cluster.md`` for what is built and what is not wired yet.
"""
