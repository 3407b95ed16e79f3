"""
A cascading tree end to end: three ``twistd realtime --cluster --cascade-fanout 1`` nodes, redis, aiortc.

Fan-out 1 makes the tree a chain.  An aiortc publisher pushes audio + video
at node A; one aiortc subscriber pulls them through node B (B attaches under
A), then two through node C (A has no free slot: C attaches under B)::

    publisher ──> A ══ relay ══> B ══ relay ══> C ──> 2 subscribers
                                 └──> 1 subscriber

Checked through the nodes' ``/diagnostics`` and the directory: the tree hash
holds ``node-b -> node-a``, ``node-c -> node-b``; A relays each packet once,
to B only; B's mirror relays to C; C's subscribers decode.  Then B is
stopped (SIGTERM: it leaves the registry) or killed (SIGKILL: it stays registered
until its heartbeat expires, but its keepalives stop): C re-attaches under A and its
subscribers decode again within 2 s; A stops relaying to a killed B within ~1 s
(its acknowledgements of A's keepalives stop).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.cluster.test_cross_pull import start, subscriber
from tests.conftest import require_module
from tests.interop.aiortc_frames import assert_rates
from tests.interop.test_sfu_aiortc import publish

pytestmark = pytest.mark.interop

#: C's subscribers must decode video again within this long after B left the registry
RESUME_WITHIN = 2.0


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("REALTIME_CLUSTER_SECRET", "a cluster secret for the tests")


def tree_of(redis_server, publisher: str, name: str) -> dict[str, str]:
    raw = redis_server.command("HGETALL", f"rt:tree:{publisher}:{name}")
    pairs = {k.decode(): v.decode() for k, v in zip(raw[0::2], raw[1::2])}
    return {k: v for k, v in pairs.items() if not k.startswith("~")}


async def diagnostics(node) -> dict:
    _, body = await asyncio.get_running_loop().run_in_executor(None, node.get, "/diagnostics")
    return body["cluster"]["pulls"]


async def chain(a, b, c, redis_server, stop: str) -> dict:
    loop = asyncio.get_running_loop()
    publisher_pc, publisher, names = await publish(a)
    pcs = [publisher_pc]
    try:
        at_b = await subscriber(b, publisher, names)
        pcs.append(at_b[0])
        at_c = [await subscriber(c, publisher, names) for _ in range(2)]
        pcs += [pc for pc, _, _ in at_c]
        rates = await asyncio.gather(*(counter.rates(["audio", "video"], seconds=3.0)
                                       for _, _, counter in [at_b, *at_c]))
        trees = {name: tree_of(redis_server, publisher, name) for name in names}
        before = {n: await diagnostics(node) for n, node in (("a", a), ("b", b), ("c", c))}
        # B goes away: SIGTERM (it leaves the registry as it stops), or SIGKILL (it stays
        # in the registry until its heartbeat expires; C notices B's keepalives stopped)
        counters = [counter for _, _, counter in at_c]
        if stop == "kill":
            b.process.kill()
        else:
            await loop.run_in_executor(None, b.stop)
        left = time.monotonic()
        base = [counter.frames.get("video", 0) for counter in counters]
        resumed = registered_at_resume = None
        while time.monotonic() - left < 10.0:
            now = [counter.frames.get("video", 0) for counter in counters]
            if all(n - b0 >= 3 for n, b0 in zip(now, base)):
                resumed = time.monotonic() - left
                registered_at_resume = redis_server.command("SMEMBERS", "rt:nodes")
                break
            await asyncio.sleep(0.02)
        after_rates = await asyncio.gather(*(counter.rates(["audio", "video"], seconds=2.0,
                                                           warmup=0.2)
                                             for counter in counters))
        after = {n: await diagnostics(node) for n, node in (("a", a), ("c", c))}
        return {"publisher": publisher, "rates": rates, "trees": trees, "before": before,
                "resumed": resumed, "after_rates": after_rates, "after": after,
                "tree_after": tree_of(redis_server, publisher, "aiortc-video"),
                "registered_at_resume": registered_at_resume}
    finally:
        for pc in pcs:
            await pc.close()


@pytest.mark.parametrize("stop", ["term", "kill"])
def test_fanout_one_makes_a_chain_and_c_reattaches_when_b_leaves(tmp_path, redis_server,
                                                                   certificate_file, stop) -> None:
    require_module("aiortc")
    nodes = [start(tmp_path, redis_server, f"node-{n}", certificate_file,
                   extra=("--cascade-fanout", "1")) for n in "abc"]
    a, b, c = nodes
    try:
        for node in nodes:
            node.wait_ready()
        result = asyncio.run(chain(a, b, c, redis_server, stop))
    finally:
        for node in nodes:
            node.stop()
    publisher = result["publisher"]
    print("cascade chain:", {k: v for k, v in result.items() if k not in ("before", "after")})
    for rates in result["rates"]:
        assert_rates(rates, result)
    for name, tree in result["trees"].items():
        assert tree == {"node-b": "node-a", "node-c": "node-b"}, (name, result)
    video = f"{publisher}/aiortc-video"
    at_a = result["before"]["a"]["fanouts"][video]
    at_b = result["before"]["b"]["fanouts"][video]
    # A sends each packet once, to B only; B relays its mirror to C
    assert at_a["nodes"] == ["node-b"] and at_a["frames"] == at_a["packets"] > 50, result
    assert at_b["nodes"] == ["node-c"] and at_b["packets"] > 50, result
    mirror_c = result["before"]["c"]["mirrors"][video]
    assert (mirror_c["owner"], mirror_c["parent"]) == ("node-a", "node-b"), result
    assert mirror_c["subscribers"] == 2, result
    # B left (or went silent): C re-attached under A and decodes again within 2 s
    if stop == "kill":      # B is still registered (heartbeat TTL 10 s) and in the tree
        assert b"node-b" in result["registered_at_resume"], result
        assert result["tree_after"]["node-c"] == "node-a", result
        assert result["after"]["c"]["counters"]["parent-silent"] >= 1, result
    else:
        assert result["tree_after"] == {"node-c": "node-a"}, result
    assert result["after"]["c"]["mirrors"][video]["parent"] == "node-a", result
    # A relays to C only: a SIGKILLed B, though still registered, stopped acknowledging
    # A's keepalives and was cut off after 1 s (before: until its heartbeat expired)
    assert result["after"]["a"]["fanouts"][video]["nodes"] == ["node-c"], result
    if stop == "kill":
        assert result["after"]["a"]["counters"]["child-silent"] >= 1, result
    assert result["resumed"] is not None and result["resumed"] < RESUME_WITHIN, result
    for rates in result["after_rates"]:
        assert_rates(rates, result)
