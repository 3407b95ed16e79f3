"""
The SQLite state store: schema versions, apps, and nothing lost on reopen.
"""

from __future__ import annotations

import re
import sqlite3
import stat

import pytest

from realtime import state
from realtime.state import App, ServerConfig, StateStore, generate_app


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
    extra = (2, "CREATE TABLE turn_keys (key_id TEXT PRIMARY KEY, secret TEXT NOT NULL);")
    monkeypatch.setattr(state, "MIGRATIONS", state.MIGRATIONS + (extra,))
    store = StateStore(path)
    assert store.schema_version == 2
    store.close()
    store = StateStore(path)  # re-running version 2 would fail: the table exists
    assert store.schema_version == 2
    store.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert {"apps", "turn_keys", "schema_version"} <= tables


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
