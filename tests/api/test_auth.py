"""
Bearer token parsing and app lookup (RFC 6750 §2.1, docs/cloudflare-api.md §3.1), without HTTP.
"""

from __future__ import annotations

import pytest

from realtime.api.auth import authenticate, bearer_token
from realtime.api.errors import ApiError
from realtime.storage import App, ServerConfig, StateStore


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),                      # no header
        (b"", None),                       # empty header
        (b"Bearer abc", "abc"),            # the usual form
        (b"bearer abc", "abc"),            # scheme is case-insensitive (RFC 7235 §2.1)
        (b"  Bearer   abc  ", "abc"),      # surrounding blanks
        (b"Bearer a:b/c=", "a:b/c="),      # token taken verbatim
        (b"Bearer", None),                 # no token
        (b"Bearer ", None),                # blank token
        (b"Basic YWJjOmRlZg==", None),     # another scheme
        (b"Bearer \xff\xfe", None),        # not ASCII
    ],
)
def test_bearer_token(header, token) -> None:
    assert bearer_token(header) == token


def test_authenticate_order(tmp_path) -> None:
    store = StateStore(tmp_path / "db")
    store.add_app(App("stored", "stored-secret"))
    config = ServerConfig(apps=(App("cli", "cli-secret"), App("stored", "override-secret")))
    assert authenticate("cli", b"Bearer cli-secret", config, store).app_id == "cli"
    # a command-line app wins over a stored one with the same id
    assert authenticate("stored", b"Bearer override-secret", config, store).secret == \
        "override-secret"
    cases = [
        ("stored", b"Bearer stored-secret", 401),
        ("nobody", None, 401),
        ("nobody", b"Bearer x", 401),  # like a wrong token: ids are not enumerable
        ("cli", b"Bearer cli-secretX", 401),
        ("cli", b"Bearer cli-secre", 401),
    ]
    for app_id, header, status in cases:
        with pytest.raises(ApiError) as raised:
            authenticate(app_id, header, config, store)
        assert raised.value.status == status, (app_id, header)
    store.close()
