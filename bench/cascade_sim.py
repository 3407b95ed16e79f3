"""
bench/cascade_sim.py: cascading trees at internet scale, in simulation, against a flat star.

Issue 13 item 4.  No sockets between nodes: the trees are built by
``realtime/cluster/tree.py``, the very code the nodes run, for

* one publisher -> 100 000 subscribers spread at random over 300 nodes, and
* 50 publishers x 50 subscribers each, on the same 300 nodes,

and compared with a flat star (the owner relays to every subscribing node, as
one-hop pulls did before issue 13).  Printed per case: tree depth, relay
copies each node sends per media packet (max / mean over the nodes that send
any), and the latency the relay path adds for a subscriber (mean / max),
from **per-hop figures measured first, in this process, with the real code**:

* ``hop``: one video packet (1 100 bytes) arriving at a relay node: the relay
  frame opened (AES-GCM, replay window), ``PullMachine.receive_relay`` into
  the mirror, one local subscriber's forwarder, the ``RelayFanout`` sealing it
  once for the children (``realtime.cluster.relay.RelayLink``), p50 / p99 of
  per-packet wall time;
* ``sendto``: one more copy of a sealed frame to one more child: a UDP
  ``sendto`` on loopback (the per-destination cost: the k-th child of a node
  gets the packet k-1 sendto calls later);
* ``loopback``: the one-way time of a relay-sized datagram between two UDP
  sockets on 127.0.0.1 (send to receive, same process), p50 / p99.

Added latency of a subscriber = sum over the hops on its path of
(hop p50 + loopback p50 + its position among its parent's children x sendto
p50).  The inter-node network delay of a real deployment adds on top, once per
hop (the star pays it once): ``--link-ms`` adds an assumed one-way delay per
hop to a second latency column.

Last, what the measured inter-node RTT buys (``realtime/cluster/rtt.py``): 300
nodes in six regions (:data:`REGION_MS`, one-way delays), a publisher in one,
every node subscribing; the tree at K = 8 placed with the RTTs the nodes would
measure or without, on idle nodes (RTT decides among the equally deep) and
with loads of 0-0.5 (load, in 0.1 steps, comes first); latency per subscribing
node = the link delays of its path + the measured per-hop figures.  Writes
``bench/results/cascade_sim.json`` (``bench/report.py`` puts the table in
``bench/README.md``).
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.cluster.relay import RelayHeader, RelayLink, TAG_LENGTH  # noqa: E402
from realtime.cluster.tree import DEFAULT_FANOUT, Tree  # noqa: E402

NODES = 300
PAYLOAD = 1100          # bytes of a typical video RTP packet


# -- per-hop figures, measured ------------------------------------------------------------


def measure_hop(n: int) -> list[float]:
    """Seconds per packet at a relay node B of a chain A -> B -> C (real machines, real crypto)."""
    from realtime.cluster.relay import RelayPacketReceived
    from realtime.cluster.track_media import media_from_json, media_to_json
    from realtime.demux import PacketKind
    from tests.cluster.test_pulls import MEMBERS, Cluster
    from tests.sfu.client import rtp
    from tests.sfu.test_session import CAM

    secret = b"a cluster secret for the bench"
    links = {node: RelayLink(node, secret, 1) for node in MEMBERS}
    for link in links.values():
        link.set_members(MEMBERS)
    cluster = Cluster()
    by_address = {address: node for node, address in MEMBERS.items()}

    def sealing(node: str):
        def send(kind, stream_id, payload, addresses):
            links[node].send(kind, stream_id, payload, addresses)
            for frame, address in links[node].datagrams_to_send(0.0):
                cluster.frames.append((node, by_address[address], frame))
        return send

    for node, machine in cluster.machines.items():
        machine.send = sealing(node)
    track = cluster.boards["a"].find("app", cluster.session_id, "cam")
    media = media_from_json(media_to_json(track.media))
    cluster.machines["b"].mirror("app", cluster.session_id, "cam", "a", media, 1.0)
    cluster.machines["c"].mirror("app", cluster.session_id, "cam", "a", media, 1.0, parent="b")
    for node, machine in cluster.machines.items():
        for to, action, session_id, name in machine.control_to_send():
            cluster.machines[to].receive_control(action, node, session_id, name, 1.0)
    cluster.subscribe("b", "cam")
    cluster.subscribe("c", "cam")
    machine_b, link_b = cluster.machines["b"], links["b"]
    payload = b"\x10\x01" + bytes(PAYLOAD - 2)
    times = []
    for seq in range(n):
        cluster.frames = []
        if seq == 0:
            payload0 = b"\x10\x00\x00\x00\x9d\x01\x2a" + bytes(PAYLOAD - 7)
            packet = rtp(CAM, seq, 96, payload0, ts=seq * 3000)
        else:
            packet = rtp(CAM, seq, 96, payload, ts=seq * 3000)
        cluster.publisher.receive_media(PacketKind.RTP, packet, 2.0 + seq * 0.001)
        to_b = [(f, frame) for f, to, frame in cluster.frames if to == "b"]
        cluster.frames = []
        started = time.perf_counter()
        for sender, frame in to_b:
            link_b.receive_datagram(frame, MEMBERS[sender], 0.0)
            event = link_b.next_event()
            while event is not None:
                machine_b.receive_relay(event, 2.0 + seq * 0.001)
                event = link_b.next_event()
        times.append(time.perf_counter() - started)
        assert any(to == "c" for _, to, _ in cluster.frames), "B did not relay to C"
        assert isinstance(event, (RelayPacketReceived, type(None)))
    return times[n // 10:]           # the first tenth warms caches up


def measure_udp(n: int) -> tuple[list[float], list[float]]:
    """Return (one-way loopback seconds, seconds per sendto) for relay-sized datagrams."""
    frame = bytes(PAYLOAD + 3 + 6 + 20 + TAG_LENGTH)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = rx.getsockname()
    one_way, sends = [], []
    try:
        for _ in range(n):
            started = time.perf_counter()
            tx.sendto(frame, address)
            sent = time.perf_counter()
            rx.recv(4096)
            one_way.append(time.perf_counter() - started)
            sends.append(sent - started)
    finally:
        rx.close()
        tx.close()
    return one_way[n // 10:], sends[n // 10:]


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# -- the simulation ----------------------------------------------------------------------------


def build(owner: str, joins: list[str], fanout: int | None, load: dict[str, float],
          relay_cost: float) -> Tree:
    """The tree after ``joins`` attach in order (``fanout`` None: a flat star).

    ``load`` is the registry's view, updated as nodes take children (so later
    trees see which nodes already relay much).
    """
    tree = Tree(owner, fanout if fanout is not None else 10 ** 9)
    for node in joins:
        if node not in tree and node != owner:
            (move,) = tree.attach(node, load)
            load[move.parent] = load.get(move.parent, 0.0) + relay_cost
    return tree


def latencies(tree: Tree, per_node: dict[str, int], hop: float, sendto: float,
              link: float) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
    """(added latency, subscribers) per node: measured figures only, and with ``link`` per hop."""
    out, with_link = [], []
    position = {kid: i for kids in tree.children.values() for i, kid in enumerate(kids)}
    for node, count in per_node.items():
        if node == tree.root or count == 0:
            continue
        path = tree.path(node)[1:]
        added = sum(hop + position[n] * sendto for n in path)
        out.append((added, count))
        with_link.append((added + link * len(path), count))
    return out, with_link


def weighted_mean(pairs: list[tuple[float, int]]) -> float:
    total = sum(c for _, c in pairs)
    return sum(v * c for v, c in pairs) / total if total else 0.0


def copies(tree: Tree) -> dict[str, int]:
    return {n: len(k) for n, k in tree.children.items() if k}


def one_publisher(subscribers: int, fanout: int | None, rng: random.Random, figures: dict,
                  link: float) -> dict:
    nodes = [f"n{i:03}" for i in range(NODES)]
    owner = nodes[0]
    per_node = {n: 0 for n in nodes}
    joins = []
    for _ in range(subscribers):
        node = rng.choice(nodes)
        if per_node[node] == 0:
            joins.append(node)
        per_node[node] += 1
    load = {n: rng.uniform(0.0, 0.5) for n in nodes}   # other work the registry shows
    tree = build(owner, joins, fanout, load, 0.01)
    if fanout is not None:
        tree.check()
    lat, lat_link = latencies(tree, per_node, figures["hop"], figures["sendto"], link)
    sent = copies(tree)
    result = {"depth": tree.height(), "nodes": len(tree), "copies_max": max(sent.values()),
              "copies_mean": statistics.mean(sent.values()), "relaying": len(sent),
              "owner_copies": sent.get(owner, 0),
              "latency_mean": weighted_mean(lat), "latency_max": max(v for v, _ in lat),
              "latency_link_mean": weighted_mean(lat_link),
              "latency_link_max": max(v for v, _ in lat_link)}
    if fanout is not None:      # a relay of depth 1 dies: how many nodes re-pull
        victim = tree.children[owner][0]
        below = set(tree.subtree(victim)) - {victim}
        moves = [m for m in tree.repair(victim) if m.parent is not None]
        tree.check()
        result["repair_moves"] = len(moves)
        result["subtree_of_victim"] = len(below)
        result["moved_outside"] = len([m for m in moves if m.node not in below])
        result["depth_after_repair"] = tree.height()
    return result


def many_publishers(publishers: int, each: int, fanout: int | None, rng: random.Random,
                    figures: dict, link: float) -> dict:
    nodes = [f"n{i:03}" for i in range(NODES)]
    load = {n: 0.0 for n in nodes}
    sent_total = {n: 0 for n in nodes}
    depths, lat_all, lat_link_all = [], [], []
    for _ in range(publishers):
        owner = rng.choice(nodes)
        per_node: dict[str, int] = {}
        joins = []
        for _ in range(each):
            node = rng.choice(nodes)
            if node not in per_node:
                joins.append(node)
            per_node[node] = per_node.get(node, 0) + 1
        tree = build(owner, joins, fanout, load, 0.01)
        if fanout is not None:
            tree.check()
        depths.append(tree.height())
        for node, count in copies(tree).items():
            sent_total[node] += count
        lat, lat_link = latencies(tree, per_node, figures["hop"], figures["sendto"], link)
        lat_all += lat
        lat_link_all += lat_link
    busy = [v for v in sent_total.values() if v]
    return {"depth": max(depths), "depth_mean": statistics.mean(depths),
            "copies_max": max(busy), "copies_mean": statistics.mean(busy), "relaying": len(busy),
            "latency_mean": weighted_mean(lat_all), "latency_max": max(v for v, _ in lat_all),
            "latency_link_mean": weighted_mean(lat_link_all),
            "latency_link_max": max(v for v, _ in lat_link_all)}


#: One-way delay (ms) between six regions (rough public figures, e.g. US east-west 30 ms,
#: US east-Europe 38 ms, Europe-India 60 ms); within a region 1 ms.
REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-east")
REGION_MS = ((1, 30, 38, 45, 95, 80),
             (30, 1, 65, 72, 110, 55),
             (38, 65, 1, 10, 60, 105),
             (45, 72, 10, 1, 55, 95),
             (95, 110, 60, 55, 1, 35),
             (80, 55, 105, 95, 35, 1))


def geography(fanout: int | None, measured: bool, loads: str, rng: random.Random,
              figures: dict) -> dict:
    """1 publisher, every one of the 300 nodes (50 per region) subscribing, in random order:
    the latency a subscriber's node sees (the link delays of its path + the measured per-hop
    figures), with the placement given the RTTs the nodes would measure (``measured``) or not.

    ``loads``: ``idle`` (every node 0.0: RTT decides among the equally deep) or ``random``
    (0.0-0.5 as in the other cases: load comes first, RTT only within a 0.1 load step).
    """
    nodes = [f"n{i:03}" for i in range(NODES)]
    region = {n: i % len(REGIONS) for i, n in enumerate(nodes)}
    one_way = {(a, b): REGION_MS[region[a]][region[b]] / 1000 for a in nodes for b in nodes}
    rtt = {pair: 2 * delay for pair, delay in one_way.items()} if measured else None
    owner = nodes[0]
    joins = nodes[1:]
    rng.shuffle(joins)
    load = {n: (0.0 if loads == "idle" else rng.uniform(0.0, 0.5)) for n in nodes}
    tree = Tree(owner, fanout if fanout is not None else 10 ** 9)
    for node in joins:
        (move,) = tree.attach(node, load, rtt)
        load[move.parent] += 0.001 if loads == "idle" else 0.01
    if fanout is not None:
        tree.check()
    position = {kid: i for kids in tree.children.values() for i, kid in enumerate(kids)}
    latency = []
    for node in joins:
        path = tree.path(node)
        latency.append(sum(one_way[(parent, child)] + figures["hop"] + position[child]
                           * figures["sendto"] for parent, child in zip(path, path[1:])))
    ordered = sorted(latency)
    return {"depth": tree.height(), "latency_mean": statistics.mean(latency),
            "latency_p50": statistics.median(latency),
            "latency_p99": ordered[int(len(ordered) * 0.99)], "latency_max": ordered[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=3000, help="packets per hop measurement")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--fanouts", default=f"2,4,{DEFAULT_FANOUT},16",
                        help="K values to simulate (and the star)")
    parser.add_argument("--link-ms", type=float, default=1.0,
                        help="assumed one-way inter-node delay per hop (ms), second column")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    from record import Record

    record = Record("cascade_sim", vars(args))
    fanouts = [int(k) for k in args.fanouts.split(",")]
    with record.capture():
        hop = quantiles(measure_hop(args.packets))
        one_way, sends = measure_udp(args.packets)
        loop, sendto = quantiles(one_way), quantiles(sends)
        frame = 3 + len("node-a") + 20 + TAG_LENGTH
        assert frame == len(RelayHeader(1, "node-a", 1, 1, 1).encode()) + TAG_LENGTH
        print(f"measured per hop ({args.packets} packets of {PAYLOAD} B, in process):")
        print(f"  relay node processing (open, mirror, 1 subscriber, seal once): "
              f"p50 {hop[0] * 1e6:.1f} µs, p99 {hop[1] * 1e6:.1f} µs")
        print(f"  one-way loopback UDP: p50 {loop[0] * 1e6:.1f} µs, p99 {loop[1] * 1e6:.1f} µs; "
              f"sendto per extra child: p50 {sendto[0] * 1e6:.1f} µs, p99 {sendto[1] * 1e6:.1f} µs")
        print(f"  relay overhead per packet: {frame} B of frame (node id of 6 B) "
              f"+ 28 B UDP/IPv4 per copy")
        figures = {"hop": hop[0] + loop[0], "sendto": sendto[0]}
        link = args.link_ms / 1000
        print(f"  => one hop adds {figures['hop'] * 1e6:.1f} µs (p50 sum; p99 sum "
              f"{(hop[1] + loop[1]) * 1e6:.1f} µs) + {figures['sendto'] * 1e6:.1f} µs per "
              f"earlier sibling")
        rows = {"measured": {"hop_p50_us": hop[0] * 1e6, "hop_p99_us": hop[1] * 1e6,
                             "loopback_p50_us": loop[0] * 1e6, "loopback_p99_us": loop[1] * 1e6,
                             "sendto_p50_us": sendto[0] * 1e6, "sendto_p99_us": sendto[1] * 1e6,
                             "frame_overhead_bytes": frame}}
        header = (f"{'case':<34} {'K':>5} {'depth':>5} {'copies max':>10} {'mean':>6} "
                  f"{'relays':>6} {'lat mean':>9} {'max':>8} {'+link mean':>10} {'max':>8}")
        for title, run in (
                (f"1 publisher -> {args.subscribers} subs, {NODES} nodes",
                 lambda k, rng: one_publisher(args.subscribers, k, rng, figures, link)),
                (f"50 publishers x 50 subs, {NODES} nodes",
                 lambda k, rng: many_publishers(50, 50, k, rng, figures, link))):
            print()
            print(header)
            for k in [None, *fanouts]:
                result = run(k, random.Random(args.seed))
                rows[f"{title} K={k or 'star'}"] = result
                print(f"{title:<34} {k or 'star':>5} {result['depth']:>5} "
                      f"{result['copies_max']:>10} {result['copies_mean']:>6.1f} "
                      f"{result['relaying']:>6} {result['latency_mean'] * 1e3:>7.3f}ms "
                      f"{result['latency_max'] * 1e3:>6.3f}ms "
                      f"{result['latency_link_mean'] * 1e3:>8.3f}ms "
                      f"{result['latency_link_max'] * 1e3:>6.3f}ms")
            if "repair_moves" in rows.get(f"{title} K={DEFAULT_FANOUT}", {}):
                r = rows[f"{title} K={DEFAULT_FANOUT}"]
                print(f"  K={DEFAULT_FANOUT}: a depth-1 relay dies: {r['subtree_of_victim']} nodes "
                      f"were below it (all lose their feed); {r['repair_moves']} re-pull "
                      f"({r['moved_outside']} of them from outside its subtree), depth "
                      f"after repair {r['depth_after_repair']}")
        print()
        print(f"1 publisher at {REGIONS[0]}, all {NODES} nodes subscribing ({NODES // 6} per "
              f"region, one-way delays of REGION_MS): latency per subscribing node")
        print(f"{'K':>5} {'loads':>7} {'RTT':>9} {'depth':>5} {'mean':>8} {'p50':>8} "
              f"{'p99':>8} {'max':>8}")
        for k in (None, DEFAULT_FANOUT):
            for loads in (("idle",) if k is None else ("idle", "random")):  # a star: no choice
                for measured in ((False,) if k is None else (False, True)):
                    result = geography(k, measured, loads, random.Random(args.seed), figures)
                    label = "measured" if measured else "unknown"
                    rows[f"geography K={k or 'star'} loads={loads} rtt={label}"] = result
                    print(f"{k or 'star':>5} {loads:>7} {label:>9} {result['depth']:>5} "
                          + " ".join(f"{result[q] * 1e3:>6.1f}ms" for q in
                                     ("latency_mean", "latency_p50", "latency_p99",
                                      "latency_max")))
        print()
        print(f"copies = relay frames a node sends per media packet (its children); "
              f"relays = nodes sending any; lat = added by the relay path, measured figures; "
              f"+link = with {args.link_ms} ms one-way per hop assumed")
    record.save(rows)


if __name__ == "__main__":
    main()
