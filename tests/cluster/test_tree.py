"""
Cascading trees (realtime/cluster/tree.py): placement, pruning, repair, and the invariants.

Pure: no sockets, no Redis, no clock.  Hypothesis drives random sequences of
attach / detach / repair and checks after each step that every node hangs from
the root (no cycle), no node has more than K children, the depth stays within
ceil(log_K n) for K >= 2, and the moves returned describe exactly how the
``node -> parent`` map changed (what the nodes act on).
"""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st

from realtime.cluster.tree import DEFAULT_FANOUT, Move, Tree


def applied(before: dict[str, str], moves: list[Move]) -> dict[str, str]:
    after = dict(before)
    for move in moves:
        if move.parent is None:
            after.pop(move.node, None)
        else:
            after[move.node] = move.parent
    return after


def test_attach_fills_the_shallowest_level_first():
    tree = Tree("a", fanout=2)
    assert tree.attach("b") == [Move("b", "a")]
    assert tree.attach("c") == [Move("c", "a")]
    assert tree.attach("d") == [Move("d", "b")]
    assert tree.attach("e") == [Move("e", "b")]
    assert tree.attach("f") == [Move("f", "c")]
    assert tree.attach("f") == []                 # already there: nothing moves
    assert tree.height() == 2 and tree.path("f") == ["a", "c", "f"]
    tree.check()


def test_attach_prefers_light_nodes_then_low_rtt():
    tree = Tree("a", fanout=2)
    for node in "bc":
        tree.attach(node)
    # b and c both have free slots at depth 1: the lighter wins, whatever the id
    assert tree.attach("d", load={"b": 0.9, "c": 0.2}) == [Move("d", "c")]
    # equal load (same 0.1 step): the lower measured RTT to the new node wins
    assert tree.attach("e", load={"b": 0.31, "c": 0.35},
                       rtt={("b", "e"): 0.040, ("c", "e"): 0.004}) == [Move("e", "c")]
    # c is full now: b, though heavier, is the shallowest free slot (balance first)
    assert tree.attach("f", load={"b": 0.9, "c": 0.0}) == [Move("f", "b")]


def test_fanout_one_is_a_chain():
    tree = Tree("a", fanout=1)
    for node in "bcd":
        tree.attach(node)
    assert tree.path("d") == ["a", "b", "c", "d"]
    assert tree.repair("b") == [Move("b", None), Move("c", "a")]
    assert tree.path("d") == ["a", "c", "d"]
    tree.check()


def test_detach_moves_the_children_and_levels():
    tree = Tree("a", fanout=2)
    for node in "bcdefg":
        tree.attach(node)                 # a: b c; b: d e; c: f g
    moves = tree.detach("b")
    after = tree.parents()
    assert Move("b", None) in moves and "b" not in tree
    # d and e re-placed: one into b's old slot under a, the other under it or c
    assert after["d"] == "a" or after["e"] == "a"
    assert applied({"c": "a", "d": "b", "e": "b", "f": "c", "g": "c", "b": "a"}, moves) == after
    tree.check()


def test_detach_of_a_leaf_moves_nothing_else():
    tree = Tree("a", fanout=2)
    for node in "bcde":
        tree.attach(node)
    assert tree.detach("e") == [Move("e", None)]
    assert tree.detach("a") == []          # the root stays
    assert tree.detach("zz") == []


def test_repair_of_the_root_ends_the_tree():
    tree = Tree("a", fanout=2)
    for node in "bcd":
        tree.attach(node)
    assert sorted(tree.repair("a"), key=lambda m: m.node) == [
        Move("b", None), Move("c", None), Move("d", None)]
    assert len(tree) == 1


def test_from_parents_keeps_what_is_valid_and_replaces_the_rest():
    # x is under a node that is not in the tree, y and z form a cycle, a has 3 > K children
    stored = {"b": "a", "c": "a", "d": "a", "x": "gone", "y": "z", "z": "y"}
    tree, moves = Tree.from_parents("a", stored, fanout=2)
    tree.check()
    assert set(tree.nodes) == {"a", "b", "c", "d", "x", "y", "z"}
    assert tree.parent["b"] == "a" and tree.parent["c"] == "a"
    assert {m.node for m in moves} == {"d", "x", "y", "z"}
    assert applied(stored, moves) == tree.parents()


def test_the_default_fanout_keeps_300_nodes_within_3_hops():
    tree = Tree("n0")
    for i in range(1, 300):
        tree.attach(f"n{i}")
    assert DEFAULT_FANOUT == 8 and tree.height() == 3
    assert max(len(k) for k in tree.children.values()) == 8
    tree.check()


NODES = [f"n{i}" for i in range(1, 24)]
OPERATIONS = st.lists(st.tuples(st.sampled_from(["attach", "detach", "repair"]),
                                st.sampled_from(NODES)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(fanout=st.integers(1, 5), operations=OPERATIONS,
       load=st.dictionaries(st.sampled_from(NODES), st.floats(0, 4), max_size=10),
       rtt=st.dictionaries(st.tuples(st.sampled_from(NODES), st.sampled_from(NODES)),
                           st.floats(0, 0.2), max_size=20))
def test_invariants_hold_after_any_sequence(fanout, operations, load, rtt):
    tree = Tree("root", fanout)
    members = set()
    for operation, node in operations:
        before = tree.parents()
        moves = getattr(tree, operation)(node, load, rtt)
        tree.check()
        # the moves describe exactly the change: what the nodes are told is the truth
        assert applied(before, moves) == tree.parents()
        assert len({m.node for m in moves}) == len(moves)
        if operation == "attach":
            members.add(node)
        else:
            members.discard(node)
        assert set(tree.nodes) == members | {"root"}
        if fanout >= 2 and members:
            assert tree.height() <= math.ceil(math.log(len(tree), fanout) - 1e-9)
        elif fanout == 1:
            assert tree.height() == len(members)


@settings(max_examples=200, deadline=None)
@given(fanout=st.integers(1, 4),
       stored=st.dictionaries(st.sampled_from(NODES + ["root"]),
                              st.sampled_from(NODES + ["root", "gone"]), max_size=23))
def test_any_stored_map_is_rebuilt_into_a_valid_tree(fanout, stored):
    tree, moves = Tree.from_parents("root", stored, fanout)
    tree.check()
    assert set(tree.nodes) == set(stored) | {"root"}
    expected = {n: p for n, p in stored.items() if n != "root"}
    assert applied(expected, moves) == tree.parents()


def test_levelling_keeps_a_thinned_tree_shallow():
    # 16 nodes under a, K = 2: the 16th lands at depth 4.  Everyone else but the
    # path to it leaves: without levelling a 5-node chain of depth 4 would remain
    # (over ceil(log2 5) = 3); levelling moves the deep leaf up to a free slot.
    tree = Tree("a", fanout=2)
    names = [f"n{i:02}" for i in range(1, 17)]
    for name in names:
        tree.attach(name)
    deep = names[-1]
    assert tree.depth(deep) == 4
    keep = set(tree.path(deep))
    for name in reversed(names):
        if name not in keep:
            tree.detach(name)
            tree.check()
    assert len(tree) == 5 and tree.height() <= 2


def test_move_avoids_a_silent_parent_and_keeps_the_subtree():
    tree = Tree("a", fanout=2)
    for node in "bcdefg":
        tree.attach(node)                 # a: b c; b: d e; c: f g
    assert tree.move("d", {"a"}) == []    # a is not d's parent: nothing to do
    tree.detach("g")                      # a slot under c
    assert tree.move("d", {"b"}) == [Move("d", "c")]
    assert tree.parent["d"] == "c" and "b" in tree
    tree.check()
    chain = Tree("a", fanout=1)
    for node in "bc":
        chain.attach(node)
    assert chain.move("c", {"b"}) == []   # no other slot: c stays under b
    assert chain.move("b", {"a"}) == []


@settings(max_examples=200, deadline=None)
@given(fanout=st.integers(2, 4), operations=OPERATIONS,
       moves=st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from(NODES + ["root"])),
                      max_size=10))
def test_moves_keep_every_node_reachable_within_one_extra_level(fanout, operations, moves):
    tree = Tree("root", fanout)
    for operation, node in operations:
        getattr(tree, operation)(node)
    for node, avoid in moves:
        before = tree.parents()
        result = tree.move(node, {avoid})
        assert applied(before, result) == tree.parents()
        depths = tree._depths()
        assert set(depths) == set(tree.children)
        assert all(len(k) <= fanout for k in tree.children.values())
        assert tree.height() <= math.ceil(math.log(len(tree), fanout) - 1e-9) + 1
        if result:
            assert tree.parent[node] != avoid or all(
                len(tree.children[n]) >= fanout for n in depths if n not in (avoid, node))
