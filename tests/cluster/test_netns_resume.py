"""
Issue 13, item 3: a subscriber whose PeerConnection lived on a killed node resumes on another.

Topology (:mod:`tests.cluster.netns`): nodes A, B, C behind the anycast media address.
An aiortc publisher under A pushes audio and video through A's API; an aiortc subscriber
under C pulls them through C's API, so its PeerConnection lives on C (which mirrors the
tracks from A).  Once it decodes video, C is killed (SIGKILL) and the anycast route is
withdrawn from C: the client namespace's route to the media address now leads to B over
the backbone (and B routes the client's network back), as a BGP withdrawal would move it.

The subscriber's next consent check (RFC 7675, every ~5 s in aiortc) reaches B, which
finds the session's record, opens its sealed SRTP keys (docs/cascading.md) and resumes
the PeerConnection already connected: no renegotiation, no new DTLS handshake.  The test
asserts the subscriber decodes video again and prints the time from kill to the first
frame decoded after it.  Without the sealed keys B would wait for a DTLS handshake the
client never starts, and the subscriber would stay frozen (checked by hand: see the
commit message).
"""

from __future__ import annotations

import base64
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.netns import ANYCAST, in_ns, running_cluster
from tests.cluster.test_netns_sfu import owner
from tests.processes import Lines
from tests.interop.realtime_server import ROOT

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
#: seconds the subscriber reports for (bounded: the whole test stays under ~1.5 min)
WATCH = 45
#: seconds after the kill the subscriber must be decoding again
RESUME_WITHIN = 15.0
#: the publisher case: the issue's 30 s window (measured ~17 s, docs/cascading.md)
PUBLISHER_RESUME_WITHIN = 30.0


def frames(lines: list[str]) -> list[dict]:
    out = []
    for line in list(lines):
        if line.startswith('{"t"'):
            out.append(json.loads(line))
    return out


def start_call(topology, nodes, children: list[Lines], publish_on: str,
               subscribe_on: str) -> tuple[dict, Lines, dict]:
    """An aiortc publisher through ``publish_on``, a subscriber through ``subscribe_on``
    (each in that node's client namespace); returns once the subscriber decoded 30 frames."""
    publisher = Lines(["ip", "netns", "exec", topology.client_ns(publish_on), sys.executable,
                       str(HERE / "netns_resume_peer.py"), str(ROOT), "push",
                       nodes[publish_on].api_url(via="backbone"), str(WATCH + 20)])
    children.append(publisher)
    published = json.loads('{"sessionId"' + publisher.wait_for('{"sessionId"', 40))
    subscriber = Lines(["ip", "netns", "exec", topology.client_ns(subscribe_on), sys.executable,
                        str(HERE / "netns_resume_peer.py"), str(ROOT), "pull",
                        nodes[subscribe_on].api_url(via="backbone"), str(WATCH),
                        published["sessionId"], *published["trackNames"]])
    children.append(subscriber)
    live = json.loads('{"session"' + subscriber.wait_for('{"session"', 40))
    assert live["state"] == "connected", live
    deadline = time.monotonic() + 20
    while not any(f["video"] >= 30 for f in frames(subscriber.lines)):
        assert time.monotonic() < deadline, "".join(subscriber.lines[-5:])
        time.sleep(0.2)
    return published, subscriber, live


def kill_and_withdraw(topology, nodes, dead: str, to: str) -> float:
    """SIGKILL node ``dead`` and move its anycast route to node ``to`` (a withdrawal)."""
    nodes[dead].process.send_signal(signal.SIGKILL)
    killed = time.time()
    in_ns(topology.client_ns(dead), "ip", "route", "replace", f"{ANYCAST}/32",
          "via", topology.backbone(to))
    in_ns(topology.node_ns(to), "ip", "route", "replace",
          f"10.97.{topology.index(dead)}.0/24", "via", topology.backbone(dead, client=True))
    return killed


def wait_resumed(subscriber: Lines, killed: float, within: float) -> tuple[int | None,
                                                                           dict | None]:
    """Return (video frames at the stall, the first sample 5 frames past it) or Nones."""
    stalled = resumed = None
    deadline = time.monotonic() + within
    while resumed is None and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = frames(subscriber.lines)
        if stalled is None:
            after = [f for f in seen if f["t"] >= killed + 0.5]
            if after:
                stalled = after[0]["video"]
        else:
            ahead = [f for f in seen if f["video"] > stalled + 5]
            if ahead:
                resumed = ahead[0]
    return stalled, resumed


def test_subscriber_on_a_killed_node_resumes_without_renegotiation(
        tmp_path, redis_server, monkeypatch, traffic_guard, namespaces) -> None:
    children: list[Lines] = []
    with running_cluster(tmp_path, redis_server.url) as (topology, nodes):
        try:
            published, subscriber, live = start_call(topology, nodes, children, "a", "c")
            session = live["session"]
            before = owner(redis_server, session)
            sealed = json.loads(redis_server.command("GET", f"rt:session:{session}"))[
                "sealed_media"]
            # kill C, withdraw the anycast route from it: the client's packets now reach B
            killed = kill_and_withdraw(topology, nodes, "c", "b")
            stalled, resumed = wait_resumed(subscriber, killed, RESUME_WITHIN + 5)
            time.sleep(3)
            seen = frames(subscriber.lines)
            after = owner(redis_server, session)
        finally:
            for child in children:
                child.stop()
    logs = {name: node.output()[-2500:] for name, node in nodes.items()}
    print(f"\nsubscriber session {session}: on {before}, C killed; record now names {after}")
    if resumed is not None:
        print(f"kill -> decoding again: {resumed['t'] - killed:.2f} s "
              f"(video frames {stalled} at the stall, {seen[-1]['video']} at the end)")
    assert sealed, "the connected session's record carries no sealed media keys"
    assert len(base64.b64decode(sealed, validate=True)) > 100  # opaque bytes, not JSON
    assert before == "node-c", before
    assert resumed is not None, (seen[-3:], logs["b"])
    assert resumed["t"] - killed < RESUME_WITHIN, resumed
    assert seen[-1]["video"] >= stalled + 30, (seen[-1], stalled)
    assert seen[-1]["state"] == "connected", seen[-1]
    assert after == "node-b", (after, logs["b"])


def test_publisher_on_a_killed_node_resumes_and_a_subscriber_elsewhere_follows(
        tmp_path, redis_server, monkeypatch, traffic_guard, namespaces) -> None:
    """An aiortc publisher pushes through C (its PeerConnection lives on C); a subscriber
    under B pulls through B (B mirrors the tracks from C).  C is SIGKILLed and the
    publisher's anycast route moved to A: A resumes the publisher's PeerConnection from
    the sealed keys, republishes its tracks with owner A, and B's subscriber decodes again
    once B's mirror follows the track to A."""
    children: list[Lines] = []
    with running_cluster(tmp_path, redis_server.url) as (topology, nodes):
        try:
            published, subscriber, _ = start_call(topology, nodes, children, "c", "b")
            before = owner(redis_server, published["sessionId"])
            killed = kill_and_withdraw(topology, nodes, "c", "a")
            stalled, resumed = wait_resumed(subscriber, killed, PUBLISHER_RESUME_WITHIN + 3)
            time.sleep(3)
            seen = frames(subscriber.lines)
            after = owner(redis_server, published["sessionId"])
        finally:
            for child in children:
                child.stop()
    logs = {name: node.output()[-2500:] for name, node in nodes.items()}
    print(f"\npublisher session on {before}, C killed; record now names {after}")
    if resumed is not None:
        print(f"kill -> subscriber at B decoding again: {resumed['t'] - killed:.2f} s "
              f"(video frames {stalled} at the stall, {seen[-1]['video']} at the end)")
    assert before == "node-c", before
    assert after == "node-a", (after, logs["a"])
    assert resumed is not None, (seen[-3:], logs["a"], logs["b"])
    assert resumed["t"] - killed < PUBLISHER_RESUME_WITHIN, resumed
    assert seen[-1]["video"] >= stalled + 30, (seen[-1], stalled)
