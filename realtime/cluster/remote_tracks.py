"""
The Twisted side of cross-node pulls: directory reads, control messages, relay port, one timer.

:class:`RemoteTracks` holds a :class:`~realtime.cluster.pulls.PullMachine` and
moves its inputs and outputs (DESIGN.md §1): relay packets from
:class:`~realtime.cluster.node.ClusterNodeService` (``on_relay``), ``pull`` /
``unpull`` control messages (``on_control``), the registry's members at
each refresh (``on_members``), and one ``IDelayedCall`` re-armed from
``get_timer()``.  Its one entry point for the API and for a session
take-over is :meth:`RemoteTracks.find_or_pull`::

    track = await remote.find_or_pull(board, app_id, session_id, track_name)

which returns the local track, else a mirror of the track another node owns
(read from its :class:`~realtime.cluster.records.TrackRecord`; the owner is
asked to relay it), else ``None``.  The mirror is in ``board`` from then on,
so further pulls of it on this node find it with ``board.find`` and cost the
owner nothing more.

With cascading trees (``--cascade-fanout``, :mod:`realtime.cluster.cascade`,
``docs/cascading.md``) the mirror pulls from this node's parent in the track's
tree, which may itself be a mirror: :meth:`RemoteTracks.find_or_pull` first
attaches this node to the tree in the directory.  The machine's tree events
are acted on here: ``leave`` (no local subscriber any more: detach, the
children are told to move), ``orphan`` (the parent left the registry: repair,
re-pull from the new parent), ``check`` (each lease) and the ``reparent``
control message (re-read the parent, re-pull if it moved).  Each of those
first re-reads the track's record: if its owner changed (the publisher's node
died and another node resumed the session, docs/cascading.md) the mirror's
root moves there and the node joins the new root's tree.  While mirrors
live, the registry is re-read every :data:`MEMBER_CHECK` seconds, so an orphan
re-attaches about a second after its parent left the registry.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from realtime.cluster.cascade import TreeBusy, TreeDirectory
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.directory import Directory
from realtime.cluster.pulls import MirrorTrack, PullMachine, stream_id_of
from realtime.cluster.track_media import media_from_json
from realtime.cluster.records import ControlMessage
from realtime.cluster.relay import Address, RelayKind, RelayPacketReceived
from realtime.errors import DecodeError

log = Logger()

#: control actions this module handles (the rest go to the session take-over)
PULL_ACTIONS = frozenset({"pull", "unpull", "reparent"})
#: While this node holds mirrors, the registry is re-read this often (seconds).
MEMBER_CHECK = 1.0


class RemoteTracks:
    """Pull tracks of other nodes into this one, and relay this node's tracks to others.

    :param reactor: clock and ``callLater``.
    :param directory: the cluster :class:`Directory` (track records, control channel).
    :param node_id: this node.
    :param send: ``send(kind, stream_id, payload, addresses)``: the relay port's.
    :param board: returns this node's switchboard (the API makes it on first use).
    :param flush: sends what a session's connection queued (``PeerHost.flush``).
    :param refresh_members: re-reads the registry now (a Deferred; it calls
        :meth:`on_members`): used when a pull names a node this one has not
        seen yet (a node that just started), instead of waiting for the next
        periodic refresh.
    :param fanout: ``--cascade-fanout``: pull through per-track trees of at most
        this many children per node; ``None``: every pull from the owner (one hop).
    """

    def __init__(self, reactor: Any, directory: Directory, node_id: str,
                 send: Callable[[RelayKind, int, bytes, list[Address]], None],
                 board: Callable[[], Any], flush: Callable[[Any], None],
                 refresh_members: Callable[[], Deferred] | None = None,
                 fanout: int | None = None) -> None:
        self.reactor = reactor
        self.refresh_members = refresh_members
        self.directory = directory
        self.node_id = node_id
        self.board = board
        self.flush = flush
        self.machine = PullMachine(node_id, board, send, wake=self._rearm)
        self._timer: Any = None
        self._watch: Any = None
        #: control messages that could not be published (Redis away)
        self.failed_control = 0
        #: tree changes that failed (Redis away, too many conflicting writes)
        self.failed_tree = 0
        self.trees = None if fanout is None else TreeDirectory(
            directory, node_id, fanout, notify=self._notify_reparent)

    # -- the entry point ------------------------------------------------------------------

    async def find_or_pull(self, board: Any, app_id: str, session_id: str,
                           name: str) -> Any | None:
        """Return track ``name`` of ``session_id`` (app ``app_id``): local, mirrored, or None.

        A track another node owns is read from the directory (its session
        record names the app; its track record the owner and RTP parameters);
        a mirror is published in ``board`` and its owner asked to relay it.
        The mirror's first packet arrives later: callers wait for it as for a
        local track (``first_packets``).

        :raises DirectoryUnavailable: Redis is away (the API's 503).
        """
        track = board.find(app_id, session_id, name)
        if track is not None:
            if isinstance(track, MirrorTrack) and track.left and not track.ended:
                track.left = False          # a subscriber again: back into the tree
                self._tree_event("check", track)
            return track
        record = await self.directory.get_track(session_id, name)
        if record is None or record.status != "active" or not record.media \
                or record.owner_node == self.node_id:
            return None
        session = await self.directory.get_session(session_id)
        if session is None or session.app_id != app_id:
            return None
        track = board.find(app_id, session_id, name)   # made while we waited?
        if track is not None:
            return track
        if record.owner_node not in self.machine.members and self.refresh_members is not None:
            await self.refresh_members()
        parent = await self._join(session_id, name, record.owner_node)
        track = board.find(app_id, session_id, name)
        if track is not None:
            return track
        if parent not in self.machine.members and self.refresh_members is not None:
            await self.refresh_members()
        try:
            media = media_from_json(record.media)
        except DecodeError:
            self.machine.counters["track-record-malformed"] += 1
            return None
        mirror = self.machine.mirror(app_id, session_id, name, record.owner_node, media,
                                     self.reactor.seconds(), parent=parent)
        if mirror is None and parent != record.owner_node and self.trees is not None:
            self._spawn(self.trees.change(session_id, name, record.owner_node, "detach"))
        self._after_input()
        return mirror

    # -- trees ------------------------------------------------------------------------------

    async def _join(self, session_id: str, name: str, owner: str) -> str:
        """Attach this node to the track's tree; return the parent to pull from."""
        if self.trees is None:
            return owner
        try:
            tree = await self.trees.change(session_id, name, owner, "attach")
        except TreeBusy:
            return owner                # counted; a one-hop pull still works
        return tree.parent.get(self.node_id, owner)

    def _tree_event(self, event: str, mirror: MirrorTrack) -> None:
        if self.trees is not None:
            self._spawn(self._act(event, mirror))

    async def _act(self, event: str, mirror: MirrorTrack) -> None:
        """Detach, or find this node's parent now and re-pull from it if it moved."""
        trees = self.trees
        assert trees is not None            # _tree_event spawns this only with trees
        session_id, name, root = mirror.session.session_id, mirror.name, mirror.root
        if event == "leave":
            await trees.change(session_id, name, root, "detach")
            return
        record = await self.directory.get_track(session_id, name)
        if record is not None and record.status == "active" and record.owner_node != root \
                and not mirror.left and not mirror.ended:
            # the track's owner changed: its publisher's node died and another node took
            # the session over (docs/cascading.md): join the tree under the new root
            mirror.root = root = record.owner_node
            self.machine.counters["root-moved"] += 1
            log.info("cluster: track {session}/{name} moved to node {owner}; following it",
                     session=session_id, name=name, owner=root)
            tree = await trees.change(session_id, name, root, "attach")
            moved_to = tree.parent.get(self.node_id, root)
            if moved_to not in self.machine.members and self.refresh_members is not None:
                await self.refresh_members()
            if self.machine.repoint(mirror, moved_to, self.reactor.seconds()):
                self._after_input()
            return
        if event == "silent":       # the parent went quiet: move away from it
            tree = await trees.change(session_id, name, root, "move",
                                      avoid=frozenset({mirror.owner}))
            parent = tree.parent.get(self.node_id)
            if parent is not None and parent != mirror.owner and not mirror.left \
                    and self.machine.repoint(mirror, parent, self.reactor.seconds()):
                self._after_input()
            return
        parent = None if event == "orphan" else await trees.parent_of(session_id, name)
        if parent is None:      # orphaned, or not in the tree (expired, repaired away)
            tree = await trees.change(session_id, name, root, "attach")
            parent = tree.parent.get(self.node_id)
        if parent is None or parent == mirror.owner or mirror.left or mirror.ended:
            return
        if parent not in self.machine.members and self.refresh_members is not None:
            await self.refresh_members()
        if self.machine.repoint(mirror, parent, self.reactor.seconds()):
            self._after_input()

    def _notify_reparent(self, to_node: str, session_id: str, name: str) -> None:
        self._publish(to_node, ControlMessage("reparent", self.node_id, session_id, name,
                                              self.reactor.seconds()))

    def _spawn(self, coroutine: Any) -> None:
        Deferred.fromCoroutine(coroutine).addErrback(self._tree_failed)

    def _tree_failed(self, failure: Any) -> None:
        failure.trap(DirectoryUnavailable, TreeBusy)
        self.failed_tree += 1

    def _watch_members(self) -> None:
        self._watch = None
        if self.machine.mirrors and self.refresh_members is not None:
            self.refresh_members().addErrback(lambda _: None)
        self._after_input()

    # -- inputs ---------------------------------------------------------------------------

    def on_relay(self, packet: RelayPacketReceived) -> None:
        """Feed one authenticated relay packet to the machine; send what it queued.

        The per-packet path: the machine wakes the timer itself when a packet
        opens a gap (``wake``), so the timer is not re-read for every packet.
        """
        machine = self.machine
        machine.receive_relay(packet, self.reactor.seconds())
        touched = self.board().touched
        while touched:
            self.flush(touched.pop())
        if machine.has_control:
            self._after_input()

    def on_control(self, message: ControlMessage) -> bool:
        """Handle ``pull``/``unpull``; return False for other actions (not ours)."""
        if message.action not in PULL_ACTIONS:
            return False
        if message.from_node not in self.machine.members and self.refresh_members is not None:
            self.refresh_members().addBoth(lambda _: self._control(message))
        else:
            self._control(message)
        return True

    def _control(self, message: ControlMessage) -> None:
        if message.action == "reparent":
            mirror = self.machine.mirrors.get(stream_id_of(message.session_id, message.name))
            if mirror is not None and not mirror.left:
                self._tree_event("check", mirror)
            return
        self.machine.receive_control(message.action, message.from_node, message.session_id,
                                     message.name, self.reactor.seconds())
        self._after_input()

    def on_members(self, members: dict[str, Address]) -> None:
        """Take the registry's live nodes (relay addresses) at each refresh."""
        self.machine.set_members(members)
        self._after_input()

    def _fire(self) -> None:
        self._timer = None
        self.machine.handle_timer(self.reactor.seconds())
        self._after_input()

    # -- outputs --------------------------------------------------------------------------

    def _after_input(self) -> None:
        touched = self.board().touched
        while touched:
            self.flush(touched.pop())
        machine = self.machine
        for to_node, action, session_id, name in machine.control_to_send():
            self._publish(to_node, ControlMessage(action, self.node_id, session_id, name,
                                                  self.reactor.seconds()))
        if machine.has_tree_events:
            for event, mirror in machine.tree_events():
                self._tree_event(event, mirror)
        if self.trees is not None and machine.mirrors and self._watch is None:
            self._watch = self.reactor.callLater(MEMBER_CHECK, self._watch_members)
        self._rearm()

    def _rearm(self) -> None:
        """Keep one delayed call at the machine's earliest deadline."""
        deadline = self.machine.get_timer()
        timer = self._timer
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        if timer is not None:
            if timer.getTime() <= deadline:
                return
            timer.cancel()
        self._timer = self.reactor.callLater(
            max(0.0, deadline - self.reactor.seconds()), self._fire)

    def _publish(self, to_node: str, message: ControlMessage) -> None:
        d = Deferred.fromCoroutine(self.directory.send_control(to_node, message))
        d.addErrback(self._control_failed)

    def _control_failed(self, failure: Any) -> None:
        failure.trap(DirectoryUnavailable)
        self.failed_control += 1

    def stop(self) -> None:
        """Cancel the timer (the service stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def stats(self, app_id: str | None = None) -> dict[str, Any]:
        """Return the machine's counters (mirrors, fan-outs, drops) for /diagnostics."""
        trees = {} if self.trees is None else dict(self.trees.counters)
        return {**self.machine.stats(app_id), "failedControl": self.failed_control,
                "trees": {**trees, "failed": self.failed_tree}}
