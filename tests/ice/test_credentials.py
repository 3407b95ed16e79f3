"""Fresh ICE credentials (RFC 8839 §5.4, RFC 8445 §5.3), from an injected random source."""

from __future__ import annotations

import re

from realtime.ice.credentials import ice_credentials

ICE_CHAR = re.compile(r"[A-Za-z0-9+/]+")


def test_lengths_and_alphabet() -> None:
    ufrag, pwd = ice_credentials(bytes)            # bytes(n): n zero bytes, deterministic
    assert (ufrag, pwd) == ("0" * 8, "0" * 32)
    assert ICE_CHAR.fullmatch(ufrag) and 4 <= len(ufrag) <= 256
    assert ICE_CHAR.fullmatch(pwd) and 22 <= len(pwd) <= 256


def test_randomness_comes_from_the_injected_source() -> None:
    asked: list[int] = []

    def random(n: int) -> bytes:
        asked.append(n)
        return bytes(range(n))

    assert ice_credentials(random) == ("00010203", bytes(range(16)).hex())
    assert sum(asked) * 8 >= 24 + 128                # RFC 8445 §5.3: 24 and 128 bits at least
