"""
DataChannel publications over cascading trees: the part of :mod:`realtime.cluster.datachannels`
that follows a publication through its tree (issue 13).

Split out of that module (which draws the whole picture, item 6 of its docstring) to keep
it short.  A subscribing node attaches to the publication's tree
(:mod:`realtime.cluster.cascade`, the same code and Redis hash machinery as a track's,
under :func:`tree_name`), subscribes to the parent it is given, and keeps it right:

* every :data:`KEEPALIVE_INTERVAL` a node sends each node it relays to (its children,
  and at the owner the subscribing nodes) one ``KEEPALIVE`` relay frame, sealed once;
* a child whose parent left the registry re-attaches (the write repairs the gone node
  away); one that heard nothing from its parent for :data:`PARENT_SILENCE` moves away
  from it (:meth:`~realtime.cluster.tree.Tree.move`; with no other slot the silent node
  is taken out of the tree) and subscribes to its new parent;
* each child answers with a ``KEEPALIVE`` of its own (stream id
  :data:`~realtime.cluster.pulls.KEEPALIVE_ACK`) to each of its parents every tick; a
  parent stops relaying to a child it heard nothing from for :data:`CHILD_SILENCE` (a
  child alive after all subscribes again at its next lease);
* every :data:`LEASE` it re-reads its parent (``HGET``), subscribes again (a lost
  message, a relay that forgot it) and, if the tree moved it, unsubscribes from the old.

The relay frames a parent passes on are the owner's, unchanged: the receiver's order
and gap checks (:class:`~realtime.cluster.datachannel_frames.FeedReceiver`) hold end to
end, across a change of parent too.  A parent passes on only fragments new to it, keeps
them for its children's NACKs and answers those itself
(:mod:`realtime.cluster.datachannel_shield`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Awaitable, Callable

from realtime.cluster.cascade import TreeBusy, TreeDirectory
from realtime.cluster.datachannel_frames import FeedReceiver
from realtime.cluster.datachannel_repair import RetransmissionBuffer
from realtime.cluster.pulls import KEEPALIVE_ACK
from realtime.cluster.relay import Address, RelayKind
from realtime.sfu.datachannels import RemotePublication

__all__ = ["CHILD_SILENCE", "Follow", "KEEPALIVE_INTERVAL", "LEASE", "PARENT_SILENCE", "TreeFollowing",
           "tree_name"]

SUBSCRIBE, UNSUBSCRIBE, REPARENT = (
    "datachannel_subscribe", "datachannel_unsubscribe", "datachannel_reparent")
#: With trees: a node relaying to others sends each a KEEPALIVE this often (seconds) ...
KEEPALIVE_INTERVAL = 0.25
#: ... a node that heard nothing from its parent for this long moves away from it ...
PARENT_SILENCE = 1.0
#: ... and re-subscribes to the parent the directory holds this often (lost messages heal).
LEASE = 3.0
#: A parent stops relaying to a child it heard nothing from (its KEEPALIVE_ACK frames, a
#: subscribe) for this long: a killed node stays registered for its heartbeat's 10 s.
CHILD_SILENCE = 1.0


def tree_name(name: str) -> str:
    """Return the name under which a publication's tree is kept (beside the tracks' trees
    of the same session: a NUL never appears in a name a client chose in practice)."""
    return "datachannel\0" + name


class Follow:
    """A publication of another node this node follows: where it comes from, where it goes."""

    __slots__ = ("publication", "receiver", "buffer", "owner", "parent", "children", "left",
                 "since")

    def __init__(self, publication: RemotePublication, owner: str, now: float) -> None:
        self.publication = publication
        self.receiver = FeedReceiver()
        #: what we passed on to our children, for their NACKs (kept while we have children)
        self.buffer = RetransmissionBuffer()
        self.owner = owner
        #: the node that feeds us (the owner without trees)
        self.parent = owner
        #: nodes we relay it to (they subscribed to us: we are their parent in its tree)
        self.children: set[str] = set()
        #: no local subscriber any more: out of the tree, relaying until the children moved
        self.left = False
        #: when we subscribed to ``parent`` (its silence counts from then)
        self.since = now

SendRelay = Callable[[RelayKind, int, bytes, list[Address]], None]


class TreeFollowing:
    """The tree side of :class:`~realtime.cluster.datachannels.DataChannelRelay` (its base).

    The relay sets every attribute below in its constructor.
    """

    node_id: str
    clock: Any
    trees: TreeDirectory | None
    heard: Callable[[str], float | None]
    addresses: Callable[[], dict[str, Address]]
    refresh: Callable[[], Awaitable[dict[str, Address]]]
    send_relay: Callable[[RelayKind, int, bytes, list[Address]], None]
    _remote: dict[tuple[str, str], Follow]
    _senders: dict[Any, Any]
    _timer: Any
    _next_lease: float
    #: node id -> when it last subscribed to one of our publications or follows
    _joined: dict[str, float]
    tree_events: Counter[str]

    def _background(self, coroutine: Any) -> Any:
        raise NotImplementedError

    async def _control(self, node: str, action: str, session_id: str, name: str) -> int:
        raise NotImplementedError

    async def _join(self, follow: Follow) -> None:
        """Attach this node to the publication's tree; take the parent it gives us."""
        if self.trees is None:
            return
        publication = follow.publication
        try:
            tree = await self.trees.change(publication.session_id, tree_name(publication.name),
                                           follow.owner, "attach")
        except TreeBusy:
            self.tree_events["busy"] += 1
            return                          # from the owner; the next lease places us
        follow.parent = tree.parent.get(self.node_id, follow.owner)
        if follow.parent not in self.addresses():
            await self.refresh()

    async def _check(self, follow: Follow, event: str) -> None:
        """Find our parent now (``attach``, ``move`` away from a silent one, ``read`` the
        directory's) and re-subscribe there if it changed."""
        trees = self.trees
        if trees is None or follow.left:
            return
        sid, name, owner = follow.publication.session_id, follow.publication.name, follow.owner
        if event == "read":
            parent = await trees.parent_of(sid, tree_name(name))
            if parent is None:
                event = "attach"            # expired or repaired away: place us again
        if event != "read":             # "repair": a gone parent is repaired away by any write
            avoid = frozenset({follow.parent}) if event == "move" else frozenset()
            tree = await trees.change(sid, tree_name(name), owner,
                                      "move" if event == "move" else "attach", avoid=avoid)
            parent = tree.parent.get(self.node_id)
        if parent is None or follow.left or self._remote.get((sid, name)) is not follow:
            return
        if parent not in self.addresses():
            await self.refresh()
        old = follow.parent
        if parent != old or event == "read":        # each lease: subscribe again
            follow.parent, follow.since = parent, self.clock.seconds()
            await self._control(parent, SUBSCRIBE, sid, name)
            if parent != old:
                self.tree_events["resubscribed"] += 1
                if old in self.addresses():
                    await self._control(old, UNSUBSCRIBE, sid, name)

    def _drop_silent_children(self, now: float) -> None:
        """Stop relaying to child nodes silent for :data:`CHILD_SILENCE`."""
        def silent(node: str) -> bool:
            return now - max(self.heard(node) or 0.0, self._joined.get(node, 0.0)) \
                >= CHILD_SILENCE
        for follow in self._remote.values():
            for node in [n for n in follow.children if silent(n)]:
                follow.children.discard(node)
                self.tree_events["child-silent"] += 1
        for sender in self._senders.values():
            for node in [n for n in sender.nodes if silent(n)]:
                sender.nodes.discard(node)
                self.tree_events["child-silent"] += 1

    def stop(self) -> None:
        """Stop the keepalive/repair timer (the service stops)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.trees = None

    def _notify_reparent(self, node: str, session_id: str, name: str) -> None:
        self._background(self._control(node, REPARENT, session_id,
                                       name.removeprefix(tree_name(""))))

    def _arm(self) -> None:
        """Run :meth:`tick` while trees carry publications of ours or of others."""
        if self._timer is None and self.trees is not None and (self._remote or self._senders):
            self._timer = self.clock.callLater(KEEPALIVE_INTERVAL, self.tick)

    def tick(self) -> None:
        """Send our children their KEEPALIVE; move away from a parent gone or silent; lease."""
        self._timer = None
        now = self.clock.seconds()
        addresses = self.addresses()
        self._drop_silent_children(now)
        children = {n for f in self._remote.values() for n in f.children}
        children.update(n for sender in self._senders.values() for n in sender.nodes)
        targets = [addresses[n] for n in sorted(children) if n in addresses]
        if targets:
            self.send_relay(RelayKind.KEEPALIVE, 0, b"", targets)
        parents = {f.parent for f in self._remote.values() if f.parent in addresses}
        if parents:                         # our acknowledgement: "I still listen"
            self.send_relay(RelayKind.KEEPALIVE, KEEPALIVE_ACK, b"",
                            [addresses[n] for n in sorted(parents)])
        lease = now >= self._next_lease
        if lease:
            self._next_lease = now + LEASE
        for follow in list(self._remote.values()):
            if follow.left or follow.parent == follow.owner and follow.owner in addresses:
                if lease and not follow.left:
                    self._background(self._check(follow, "read"))
                continue
            if follow.owner not in addresses:
                continue                    # the owner's loss ends it (its CLOSED or expiry)
            heard = self.heard(follow.parent)
            if follow.parent not in addresses:
                self.tree_events["parent-left"] += 1
                follow.since = now
                self._background(self._check(follow, "repair"))
            elif now - max(heard or 0.0, follow.since) >= PARENT_SILENCE:
                self.tree_events["parent-silent"] += 1
                follow.since = now          # asked again after another silence
                self._background(self._check(follow, "move"))
            elif lease:
                self._background(self._check(follow, "read"))
        self._arm()
