"""
Cascading trees in the directory: one Redis hash per track, changed atomically.

The tree logic is :mod:`realtime.cluster.tree` (pure); this module is where a
node reads a track's tree, changes it and writes it back, so that every node
(and the simulator, ``bench/cascade_sim.py``) runs the same placement code.

The hash ``{ns}:tree:{session_id}:{track_name}`` holds ``node -> parent`` for
every node of the tree but the root (the track's owner, from its
:class:`~realtime.cluster.records.TrackRecord`), and ``~v``, a version number
(node ids start with a letter or digit, so ``~v`` is never a node).

**Atomic changes: optimistic, compare-and-set by a Lua script.**  A node reads
the hash (``HGETALL``), runs :class:`~realtime.cluster.tree.Tree` in memory, and
writes the whole new map with :data:`SCRIPT` (``EVAL``), which replaces the hash
only if ``~v`` is still the version read, and bumps it; otherwise the node reads
again and recomputes after a random back-off (at most :data:`MAX_ATTEMPTS` times;
then the caller pulls from the owner directly and the next lease check places it).  A script runs
atomically in Redis (no other command interleaves), and is one command: it
needs no ``WATCH``/``MULTI``, which would hold per-connection state on the one
pipelined connection every part of the node shares (another coroutine's
command would land inside the transaction).  The placement stays in Python,
the same code the simulator drives; Lua only compares and writes.

The placement's inputs come from the same registry read: each live node's
``load`` and the round-trip times the nodes measured to each other on the relay
link (``NodeRecord.rtts``, :mod:`realtime.cluster.rtt`), one value per pair
(:func:`~realtime.cluster.rtt.pair_rtts`: the mean of both directions' when
both nodes reported it).

Each change first drops from the map the nodes no longer in the registry
(:meth:`Tree.repair`) and rebuilds what a hostile or stale map holds
(:meth:`Tree.from_parents`).  Every node whose parent changed, other than the
one making the change, is sent a ``reparent`` control message and re-reads its
parent (``HGET``); each node also re-reads it every lease (3 s), so a lost
message heals.  The hash expires :data:`TREE_TTL` after the last change or
check, once nobody pulls the track any more.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable

from twisted.internet.task import deferLater

from realtime.cluster.directory import Directory
from realtime.cluster.rtt import pair_rtts
from realtime.cluster.tree import DEFAULT_FANOUT, Tree

__all__ = ["SCRIPT", "TreeBusy", "TreeDirectory"]

#: KEYS[1] the hash; ARGV[1] the version read; ARGV[2] TTL (ms); ARGV[3..] node, parent pairs.
SCRIPT = """
local v = redis.call('HGET', KEYS[1], '~v') or '0'
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], '~v', tonumber(v) + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
#: Reads and recomputations before a change gives up (TreeBusy).
MAX_ATTEMPTS = 16
#: After the n-th conflict a node waits a random time up to BACKOFF * 2**min(n, 5) s.
BACKOFF = 0.004
#: A tree nobody changed or checked for this long is forgotten (seconds).
TREE_TTL = 600.0
#: Largest tree read from the directory (fields); more is a hostile map, cut.
MAX_NODES = 4096


class TreeBusy(Exception):
    """Every attempt to change a tree met another node's change (counted, the caller falls back)."""


class TreeDirectory:
    """Read and change per-track trees in Redis for node ``node_id``.

    :param directory: the cluster :class:`Directory` (its command connection and registry).
    :param node_id: this node.
    :param fanout: K, ``--cascade-fanout``.
    :param notify: ``notify(to_node, session_id, track_name)``: send ``reparent``.
    """

    def __init__(self, directory: Directory, node_id: str, fanout: int = DEFAULT_FANOUT,
                 notify: Callable[[str, str, str], None] = lambda *_: None) -> None:
        self.directory = directory
        self.node_id = node_id
        self.fanout = fanout
        self.notify = notify
        self.counters: Counter[str] = Counter()

    async def _read(self, key: str) -> tuple[str, dict[str, str]]:
        raw = await self.directory.redis.execute("HGETALL", key)
        version, parents = "0", dict[str, str]()
        for field, value in zip(raw[0::2], raw[1::2]):
            try:
                node, parent = field.decode(), value.decode()
            except UnicodeDecodeError:
                self.counters["bad-entry"] += 1
                continue
            if node == "~v":
                version = parent
            elif len(parents) < MAX_NODES and 0 < len(node) <= 64 and 0 < len(parent) <= 64:
                parents[node] = parent
            else:
                self.counters["bad-entry"] += 1
        return version, parents

    async def change(self, session_id: str, name: str, root: str, operation: str,
                     node: str | None = None, avoid: frozenset[str] = frozenset()) -> Tree:
        """Apply ``operation`` (``attach``, ``detach``, ``repair``, or ``move`` away from
        the nodes in ``avoid``) for ``node`` (default: this node) to the track's tree;
        return the tree as written.

        Nodes that left the registry are repaired away in the same write.
        :raises TreeBusy: :data:`MAX_ATTEMPTS` conflicting writes in a row.
        :raises DirectoryUnavailable: Redis is away.
        """
        node = self.node_id if node is None else node
        key = self.directory.keys.tree(session_id, name)
        for attempt in range(MAX_ATTEMPTS):
            if attempt:         # lost a race: let the winners' writes land first
                await deferLater(self.directory.reactor,
                                 random.uniform(0, BACKOFF * 2 ** min(attempt, 5)), lambda: None)
            version, stored = await self._read(key)
            live = await self.directory.live_nodes()
            load = {n.node_id: n.load for n in live}
            rtt = pair_rtts({n.node_id: n.rtts for n in live})
            tree, _ = Tree.from_parents(root, stored, self.fanout, load, rtt)
            for gone in [n for n in tree.nodes if n not in load and n not in (root, node)]:
                tree.repair(gone, load, rtt)
            if operation == "attach" and node != root:
                tree.attach(node, load, rtt)
            elif operation == "detach":
                tree.detach(node, load, rtt)
            elif operation == "move":
                tree.move(node, avoid, load, rtt)
                for silent in avoid - {root}:   # no other slot: take the silent node
                    if tree.parent.get(node) == silent:     # out (if it lives, its lease
                        tree.repair(silent, load, rtt)      # check attaches it again)
            new = tree.parents()
            if new == stored:
                self.counters["unchanged"] += 1
                return tree
            pairs = [item for pair in sorted(new.items()) for item in pair]
            written = await self.directory.redis.execute(
                "EVAL", SCRIPT, 1, key, version, int(TREE_TTL * 1000), *pairs)
            if written == 1:
                self.counters[operation] += 1
                for moved in sorted(n for n, p in new.items()
                                    if stored.get(n) != p and n != self.node_id):
                    self.notify(moved, session_id, name)
                    self.counters["reparent-sent"] += 1
                return tree
            self.counters["conflicts"] += 1
        self.counters["busy"] += 1
        raise TreeBusy(f"tree of {session_id}/{name}: {MAX_ATTEMPTS} conflicting writes")

    async def parent_of(self, session_id: str, name: str) -> str | None:
        """Return this node's parent as the directory holds it (None: not in the tree);
        keep the tree from expiring while it is read."""
        key = self.directory.keys.tree(session_id, name)
        parent, _ = await self.directory._pipeline(("HGET", key, self.node_id),
                                                   ("PEXPIRE", key, int(TREE_TTL * 1000)))
        try:
            return None if parent is None else parent.decode()
        except UnicodeDecodeError:
            return None
