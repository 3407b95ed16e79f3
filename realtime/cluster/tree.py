"""
Cascading trees: which node feeds which, per track.  Pure, sans-I/O (no sockets, no Redis, no clock).

Issue 13.  A track published on node A (its **owner**, the tree's root) reaches
subscribers on other nodes through a tree of nodes: A sends each media packet to
at most *K* child nodes (``--cascade-fanout``, :data:`DEFAULT_FANOUT`); each child
mirrors the track (:mod:`realtime.cluster.pulls`) for its own subscribers and, if
it has children, relays every packet to them in turn.  A node is in the tree of
a track exactly while it has a subscriber of that track (the root always)::

                 A (owner, root)                  fan-out K = 2
              ┌──┴──┐
              B     C          depth 1
            ┌─┴─┐   └─┐
            D   E     F        depth 2

What the nodes run and what the simulator (``bench/cascade_sim.py``) runs is this
one module.  :class:`Tree` holds ``node -> parent`` (the Redis hash of
:mod:`realtime.cluster.cascade`) and changes it by three operations, each
returning the :class:`Move`\\ s it made (a node that must now pull from a
different parent, or ``parent=None``: it left the tree):

* :meth:`Tree.attach` (a node got its first subscriber): under the **shallowest
  parent with a free slot**, among those by lowest load (the registry's
  ``NodeRecord.load``), then lowest measured RTT to the new node where known,
  then node id (so two nodes computing the same placement agree).
* :meth:`Tree.detach` (its last subscriber left): the node leaves; **its
  children move** (each orphan, with its own subtree, is placed again as by
  ``attach``).  The alternative, keeping a relay with no subscribers of its own
  in place until its children leave, spares the children one re-pull (a key
  frame request and a short gap) but keeps a node busy for nobody and lets the
  tree grow deep and stringy as leaves come and go; this module keeps no such
  "hollow" relays, so every node in a tree pays for relaying only with its own
  subscribers as the reason to be there.
* :meth:`Tree.repair` (a node left the registry: it died or stopped): as
  ``detach`` (its orphans placed again); the root's loss ends the tree (the
  owner held the publisher: no node can feed the track any more).

After each change the tree is **levelled** (:meth:`Tree._level`): while the
deepest node lies more than one level below the shallowest free slot, that
(leaf) node moves up into the slot.  Invariants, checked by
``tests/cluster/test_tree.py`` after any sequence of operations: every node is
reachable from the root (no cycles), no node has more than K children, and for
K ≥ 2 the depth is at most ``ceil(log_K(n))`` for ``n`` nodes: the levels above
the shallowest free slot ``s`` are full, so ``n > K**s``, and levelling keeps
every node within ``s + 1``.  (K = 1 is a chain, depth ``n - 1``: useful in tests.)

Why K = 8 by default.  Each hop costs the relaying node one relay frame sealed
per packet (AES-GCM, ~5 µs, ``bench/datachannel_relay.py``) plus one
``sendto`` per child (~2-4 µs on this machine), and adds one hop's latency
(the link's one-way delay plus a few hundred µs of processing; see
``bench/cascade_sim.py``).  A wide tree keeps it shallow but makes the owner
send K copies of every packet of its publisher; K = 8 bounds the owner's relay
egress at 8 times the stream's rate (a 2.5 Mbit/s camera: 20 Mbit/s) and keeps
300 nodes within 3 hops, 4 096 within 4.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import AbstractSet as Set, Iterable, Mapping

__all__ = ["DEFAULT_FANOUT", "Move", "Tree"]

#: Children per node (``--cascade-fanout``); see the module docstring.
DEFAULT_FANOUT = 8
#: Loads within this much of each other count as equal, so measured RTT decides.
LOAD_STEP = 0.1
#: RTT assumed for a pair never measured (seconds): after any measured pair below it.
UNKNOWN_RTT = 0.05


@dataclass(frozen=True, slots=True)
class Move:
    """``node`` now pulls from ``parent`` (``None``: it is out of the tree)."""

    node: str
    parent: str | None


class Tree:
    """One track's tree of nodes.

    :param root: the owner node.
    :param fanout: K, the most children any node has (≥ 1).
    :param parents: an existing ``node -> parent`` map (e.g. read from Redis);
        entries that do not lead to the root, or that overfill a node, are dropped
        and placed again by :meth:`attach` semantics (a shared store is hostile
        input); :meth:`from_parents` reports those moves.
    """

    def __init__(self, root: str, fanout: int = DEFAULT_FANOUT) -> None:
        if fanout < 1:
            raise ValueError("the cascade fan-out must be at least 1")
        self.root = root
        self.fanout = fanout
        #: node -> parent (the root has none)
        self.parent: dict[str, str] = {}
        #: node -> its children, in the order they were placed
        self.children: dict[str, list[str]] = {root: []}

    # -- reading --------------------------------------------------------------------------

    def __contains__(self, node: object) -> bool:
        return node in self.children

    def __len__(self) -> int:
        return len(self.children)

    @property
    def nodes(self) -> list[str]:
        """Every node of the tree, root first, level by level."""
        return list(self._depths())

    def parents(self) -> dict[str, str]:
        """Return ``node -> parent`` for every node but the root (what Redis holds)."""
        return dict(self.parent)

    def depth(self, node: str) -> int:
        """Return the number of hops from the root to ``node``."""
        hops = 0
        while node != self.root:
            node = self.parent[node]
            hops += 1
        return hops

    def height(self) -> int:
        """Return the depth of the deepest node (0 for the root alone)."""
        return max(self._depths().values())

    def path(self, node: str) -> list[str]:
        """Return the nodes a packet crosses from the root to ``node``, both included."""
        out = [node]
        while node != self.root:
            node = self.parent[node]
            out.append(node)
        return out[::-1]

    def _depths(self) -> dict[str, int]:
        """Return ``node -> depth`` for every node reachable from the root, breadth first."""
        depths = {self.root: 0}
        queue = deque([self.root])
        while queue:
            node = queue.popleft()
            for child in self.children[node]:
                depths[child] = depths[node] + 1
                queue.append(child)
        return depths

    def subtree(self, node: str) -> list[str]:
        """Return ``node`` and everything below it."""
        out = [node]
        for item in out:
            out.extend(self.children[item])
        return out

    # -- building from the shared store ------------------------------------------------------

    @classmethod
    def from_parents(cls, root: str, parents: Mapping[str, str], fanout: int = DEFAULT_FANOUT,
                     load: Mapping[str, float] | None = None,
                     rtt: Mapping[tuple[str, str], float] | None = None
                     ) -> tuple[Tree, list[Move]]:
        """Rebuild a tree from ``node -> parent`` and return it with the moves that fixed it.

        What a shared store held may be broken (a node written under a parent
        that left, a cycle, a node over K): the nodes that do not hang from the
        root within the limits are placed again, as :meth:`attach` would.
        """
        tree = cls(root, fanout)
        kids: dict[str, list[str]] = {}
        for node, parent in sorted(parents.items()):
            if node != root:
                kids.setdefault(parent, []).append(node)
        queue = deque([root])
        while queue:
            node = queue.popleft()
            for child in kids.get(node, ()):
                if child in tree.children or len(tree.children[node]) >= fanout:
                    continue
                tree._link(child, node)
                queue.append(child)
        moves = [m for node in sorted(set(parents) - set(tree.children) - {root})
                 for m in tree.attach(node, load, rtt)]
        return tree, moves + tree._level(load, rtt)

    # -- the three operations ------------------------------------------------------------------

    def attach(self, node: str, load: Mapping[str, float] | None = None,
               rtt: Mapping[tuple[str, str], float] | None = None) -> list[Move]:
        """Place ``node`` (its first subscriber of the track arrived); return the moves.

        A node already in the tree stays where it is (no moves).
        """
        if node in self.children:
            return []
        parent = self._best_slot(node, self._depths(), load or {}, rtt or {})
        self._link(node, parent)
        return [Move(node, parent)]

    def detach(self, node: str, load: Mapping[str, float] | None = None,
               rtt: Mapping[tuple[str, str], float] | None = None) -> list[Move]:
        """Take ``node`` out (its last subscriber left); its children move; return the moves.

        The root cannot be detached (it is the publisher's node); a node not in
        the tree is ignored.
        """
        if node == self.root or node not in self.children:
            return []
        return self._remove(node, load or {}, rtt or {})

    def repair(self, dead: str, load: Mapping[str, float] | None = None,
               rtt: Mapping[tuple[str, str], float] | None = None) -> list[Move]:
        """``dead`` left the registry: re-attach what hung below it; return the moves.

        The root's loss empties the tree: every other node gets ``Move(node, None)``.
        """
        if dead == self.root:
            moves = [Move(n, None) for n in self.nodes if n != self.root]
            self.parent.clear()
            self.children = {self.root: []}
            return moves
        if dead not in self.children:
            return []
        return self._remove(dead, load or {}, rtt or {})

    def move(self, node: str, avoid: Set[str], load: Mapping[str, float] | None = None,
             rtt: Mapping[tuple[str, str], float] | None = None) -> list[Move]:
        """Place ``node`` (with its subtree) under a parent not in ``avoid``; return the moves.

        For a node that stopped hearing its parent while the registry still lists
        it (killed without leaving, or cut off from this node): it stays in the tree
        and keeps its children.  ``avoid`` is a preference: with no other free
        slot, a node in it is chosen again.
        """
        if node == self.root or node not in self.children or self.parent[node] not in avoid:
            return []
        old = self.parent[node]
        self._unlink(node)
        load, rtt = load or {}, rtt or {}
        parent = self._best_slot(node, self._depths(), load, rtt, avoid)
        self._link_subtree(node, parent)
        moved = [Move(node, parent)] if parent != old else []
        return _last_move_wins([*moved, *self._level(load, rtt, avoid)])

    # -- mechanics ------------------------------------------------------------------------------

    def _link(self, node: str, parent: str) -> None:
        self.parent[node] = parent
        self.children[parent].append(node)
        self.children.setdefault(node, [])

    def _unlink(self, node: str) -> None:
        parent = self.parent.pop(node)
        self.children[parent].remove(node)

    def _remove(self, node: str, load: Mapping[str, float],
                rtt: Mapping[tuple[str, str], float]) -> list[Move]:
        orphans = list(self.children[node])
        self._unlink(node)
        for child in orphans:
            del self.parent[child]
        del self.children[node]
        moves = [Move(node, None)]
        # The largest subtrees first take the shallowest slots.  A subtree
        # detached from the root is not in _depths(): no cycle can form.
        orphans.sort(key=lambda o: (-len(self.subtree(o)), o))
        for orphan in orphans:
            parent = self._best_slot(orphan, self._depths(), load, rtt)
            self._link_subtree(orphan, parent)
            moves.append(Move(orphan, parent))
        return _last_move_wins(moves + self._level(load, rtt))

    def _link_subtree(self, node: str, parent: str) -> None:
        self.parent[node] = parent
        self.children[parent].append(node)

    def _best_slot(self, node: str, depths: dict[str, int], load: Mapping[str, float],
                   rtt: Mapping[tuple[str, str], float], avoid: Set[str] = frozenset()) -> str:
        """Return the parent for ``node``: shallowest free slot, then load, RTT, id
        (a node in ``avoid`` only if there is no other free slot)."""
        fanout = self.fanout
        free = [n for n in depths if len(self.children[n]) < fanout and n != node]
        candidates = [n for n in free if n not in avoid] or free
        return min(candidates, key=lambda n: (
            depths[n], math.floor(load.get(n, 0.0) / LOAD_STEP), rtt.get((n, node), UNKNOWN_RTT),
            n))

    def _level(self, load: Mapping[str, float] | None,
               rtt: Mapping[tuple[str, str], float] | None,
               avoid: Set[str] = frozenset()) -> list[Move]:
        """Move deepest leaves up while one lies more than a level below the shallowest free slot."""
        load = load or {}
        rtt = rtt or {}
        moves: list[Move] = []
        fanout = self.fanout
        while True:
            depths = self._depths()
            slots = [d for n, d in depths.items() if len(self.children[n]) < fanout]
            wanted = [d for n, d in depths.items()
                      if len(self.children[n]) < fanout and n not in avoid]
            free = min(wanted or slots)     # the slots _best_slot will choose from
            deepest = max(depths.values())
            if deepest <= free + 1:
                return moves
            # the most loaded of the deepest leaves moves (it keeps nothing below it)
            leaf = max((n for n, d in depths.items() if d == deepest),
                       key=lambda n: (load.get(n, 0.0), n))
            self._unlink(leaf)
            depths.pop(leaf)
            parent = self._best_slot(leaf, depths, load, rtt, avoid)
            self._link(leaf, parent)
            moves.append(Move(leaf, parent))

    # -- checks (tests, and the simulator's sanity) ------------------------------------------------

    def check(self) -> None:
        """Raise AssertionError unless the invariants of the module docstring hold."""
        depths = self._depths()
        assert set(depths) == set(self.children), "a node is not reachable from the root"
        assert set(self.parent) == set(self.children) - {self.root}
        for node, kids in self.children.items():
            assert len(kids) <= self.fanout, f"{node} has {len(kids)} children"
            for kid in kids:
                assert self.parent[kid] == node
        if self.fanout >= 2 and len(depths) > 1:
            bound = math.ceil(math.log(len(depths), self.fanout) - 1e-9)
            assert max(depths.values()) <= bound, (max(depths.values()), bound)


def _last_move_wins(moves: Iterable[Move]) -> list[Move]:
    """Keep each node's last move only (a node placed, then levelled, pulls once)."""
    last: dict[str, Move] = {}
    for move in moves:
        last.pop(move.node, None)
        last[move.node] = move
    return list(last.values())
