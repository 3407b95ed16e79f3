"""
The SQLite state store: schema versions, apps, and nothing lost on reopen.
"""

from __future__ import annotations

import re
import sqlite3
import stat

import pytest

from realtime.storage import store as state
from realtime.storage import App, ServerConfig, StateStore, TurnKey, generate_app


def test_new_store_is_at_latest_schema_with_private_file(tmp_path) -> None:
    store = StateStore(tmp_path / "db.sqlite3")
    assert store.schema_version == state.MIGRATIONS[-1][0]
    assert stat.S_IMODE((tmp_path / "db.sqlite3").stat().st_mode) == 0o600
    assert store.apps() == []


def test_apps_survive_reopen(tmp_path) -> None:
    path = tmp_path / "db.sqlite3"
    store = StateStore(path)
    made = store.add_app(generate_app(123.0))
    store.add_app(App("other", "secret-value", 124.0))
    store.close()

    again = StateStore(path)
    assert again.apps() == [made, App("other", "secret-value", 124.0)]
    assert again.get_app(made.app_id) == made
    assert again.get_app("missing") is None
    assert again.delete_app("other") and not again.delete_app("other")
    again.close()
    assert [a.app_id for a in StateStore(path).apps()] == [made.app_id]


def test_duplicate_app_id_is_refused(tmp_path) -> None:
    store = StateStore(tmp_path / "db")
    store.add_app(App("x", "secret-1"))
    with pytest.raises(KeyError):
        store.add_app(App("x", "secret-2"))
    assert store.get_app("x").secret == "secret-1"


def test_generated_app_shape() -> None:
    app = generate_app(5.0)
    assert re.fullmatch("[0-9a-f]{32}", app.app_id)
    assert re.fullmatch("[0-9a-f]{64}", app.secret)
    assert app.generated and app.created == 5.0
    assert app.secret not in repr(app)
    fixed = generate_app(0.0, token_hex=lambda n: "ab" * n)
    assert (fixed.app_id, fixed.secret) == ("ab" * 16, "ab" * 32)


def test_migrations_apply_in_order_and_only_once(tmp_path, monkeypatch) -> None:
    path = tmp_path / "db"
    StateStore(path).close()
    latest = state.MIGRATIONS[-1][0]
    extra = (latest + 1, "CREATE TABLE extra (key_id TEXT PRIMARY KEY, secret TEXT NOT NULL);")
    monkeypatch.setattr(state, "MIGRATIONS", state.MIGRATIONS + (extra,))
    store = StateStore(path)
    assert store.schema_version == latest + 1
    store.close()
    store = StateStore(path)  # re-running the extra version would fail: the table exists
    assert store.schema_version == latest + 1
    store.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert {"apps", "turn_keys", "sfu_usage", "extra", "schema_version"} <= tables


def test_failed_migration_leaves_version_unchanged(tmp_path, monkeypatch) -> None:
    path = tmp_path / "db"
    StateStore(path).close()
    latest = len(state.MIGRATIONS)
    monkeypatch.setattr(state, "MIGRATIONS",
                        state.MIGRATIONS + ((latest + 1, "CREATE TABLE apps (x);"),))
    with pytest.raises(sqlite3.OperationalError):
        StateStore(path)
    monkeypatch.undo()
    assert StateStore(path).schema_version == latest


def test_config_finds_command_line_apps() -> None:
    config = ServerConfig(apps=(App("a", "secret-a"), App("b", "secret-b")))
    assert config.find_app("b") == App("b", "secret-b")
    assert config.find_app("c") is None


# -- SFU usage (schema 3) ------------------------------------------------------------------

M = 1_800_000_000 // 60 * 60  # a minute boundary


def usage_rows(app="app", session="s1"):
    # (app, session, track ('' = the session's wire bytes), minute, in, out, in pkts, out pkts)
    return [(app, session, "", M, 1000, 5000, 10, 50),
            (app, session, "mic", M, 800, 4000, 8, 40),
            (app, session, "", M + 60, 1, 2, 1, 1)]


def test_sfu_usage_survives_reopen_and_sums_per_minute(tmp_path) -> None:
    path = tmp_path / "db"
    store = StateStore(path)
    store.sfu.add(usage_rows())
    store.close()
    store = StateStore(path)
    store.sfu.add([("app", "s1", "", M, 1, 1, 1, 1)])          # same key: summed
    assert store.sfu.by_minute("app", M, M + 120) == [(M, 1001, 5001, 11, 51), (M + 60, 1, 2, 1, 1)]
    assert store.sfu.by_minute("app", M, M + 60) == [(M, 1001, 5001, 11, 51)]   # until excluded
    assert store.sfu.by_minute("app", M, M + 120, track_name="mic") == [(M, 800, 4000, 8, 40)]
    assert store.sfu.by_minute("other", M, M + 120) == []
    store.close()


def test_sfu_usage_filters_by_session_and_breaks_down_by_track(tmp_path) -> None:
    store = StateStore(tmp_path / "db")
    store.sfu.add(usage_rows(session="s1") + usage_rows(session="s2")
                        + [("app", "s1", "cam", M + 60, 7, 70, 1, 2)])
    assert store.sfu.by_minute("app", M, M + 60) == [(M, 2000, 10000, 20, 100)]
    assert store.sfu.by_minute("app", M, M + 60, session_id="s2") == [(M, 1000, 5000, 10, 50)]
    assert store.sfu.by_track("app", "s1", M, M + 120) == [
        ("cam", 7, 70, 1, 2), ("mic", 800, 4000, 8, 40)]
    assert store.sfu.by_track("app", "s1", M + 60, M + 120) == [("cam", 7, 70, 1, 2)]


def test_sfu_usage_prune_and_all_or_nothing_insert(tmp_path) -> None:
    store = StateStore(tmp_path / "db")
    store.sfu.add(usage_rows())
    assert store.sfu.prune(M + 60) == 2
    assert store.sfu.by_minute("app", 0, M + 120) == [(M + 60, 1, 2, 1, 1)]
    with pytest.raises(sqlite3.Error):
        store.sfu.add([("app", "s9", "", M, 1, 1, 1, 1), ("too", "short")])
    assert store.sfu.by_minute("app", 0, M + 120, session_id="s9") == []   # rolled back
    store.sfu.add([("app", "s9", "", M, 1, 1, 1, 1)])             # store still usable
    assert store.sfu.by_minute("app", 0, M + 120, session_id="s9") == [(M, 1, 1, 1, 1)]


def test_version_2_file_is_upgraded_keeping_turn_usage(tmp_path, monkeypatch) -> None:
    path = tmp_path / "db"
    monkeypatch.setattr(state, "MIGRATIONS", tuple(m for m in state.MIGRATIONS if m[0] <= 2))
    old = StateStore(path)
    old.turn.add_usage([("key", "user", "", M, 3, 4)])
    assert old.schema_version == 2
    old.close()
    monkeypatch.undo()
    store = StateStore(path)
    assert store.schema_version == 3
    assert store.turn.usage("key", M, M + 60) == [(M, 3, 4)]
    store.sfu.add(usage_rows())
    assert store.sfu.by_minute("app", M, M + 60) == [(M, 1000, 5000, 10, 50)]


def test_former_method_names_reach_the_components(tmp_path) -> None:
    """``realtime/api`` still calls the store's former mixin methods; they delegate."""
    store = StateStore(tmp_path / "s.sqlite3")
    key = TurnKey("k1", "t" * 32, 5.0)
    assert store.add_turn_key(key) is key and store.turn.keys() == store.turn_keys() == [key]
    store.record_turn_credential("u", "k1", "c", 100.0)
    store.revoke_turn_credential("u")
    assert store.turn_credentials(0) == store.turn.credentials(0) == [("u", "k1", "c", 100.0, True)]
    store.add_turn_usage([("k1", "u", "c", M, 1, 2)])
    assert store.turn_usage("k1", M, M + 60, "u", "c") == store.turn.usage("k1", M, M + 60)
    store.add_sfu_usage(usage_rows())
    assert store.sfu_usage("app", M, M + 60) == store.sfu.by_minute("app", M, M + 60)
    assert store.sfu_usage_by_track("app", "s1", M, M + 120) == store.sfu.by_track(
        "app", "s1", M, M + 120)
    assert store.prune_sfu_usage(M + 60) == 2
