"""
SRTP master keys of recorded calls, and decryption of their SRTP/SRTCP.

DTLS-SRTP (RFC 5764 §4.2) gives each side of a PeerConnection its own
master key and salt, named after its DTLS role::

    keying material = client_write_SRTP_master_key | server_write_SRTP_master_key |
                      client_write_SRTP_master_salt | server_write_SRTP_master_salt

    DTLS client ──SRTP protected with client_write_*──> DTLS server
    DTLS client <──SRTP protected with server_write_*── DTLS server

A key file names the *peer* (its address on the selected ICE pair) and its
DTLS role, so a datagram from the peer is unprotected with the peer role's
keys and a datagram to the peer with the other role's.  Two formats are read:

* ``twistd realtime --srtp-keylog FILE`` (this project): one JSON object
  per line, ``{"peer": "127.0.0.1:36873", "peer_dtls_role": "client",
  "srtp_profile": ..., "client_write_srtp_master_key": hex, ...salt,
  "server_write_srtp_master_key": hex, ...salt}``;
* the shared Chromium/aiortc captures' ``NAME.srtp.json``: one object with
  ``ice_selected_pair.chromium`` and ``chromium_dtls_role`` instead.

:class:`SrtpDecryptor` keeps one libsrtp inbound context per direction
(each with its own replay window and rollover counters, RFC 3711 §3.3) and
counts what it did in :attr:`SrtpDecryptor.counts`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from realtime.addresses import Address
from realtime.errors import DecodeError
from realtime.srtp.context import InboundSrtpContext
from realtime.srtp.profiles import SrtpProtectionProfile

Keying = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """The SRTP keys of one PeerConnection, seen from the capture.

    :ivar peer: the address whose packets ``peer_write`` unprotects.
    :ivar profile: the RFC 5764 protection profile name (as in the IANA registry).
    :ivar peer_write: ``(master_key, master_salt)`` the peer protects with.
    :ivar other_write: ``(master_key, master_salt)`` the other side protects with.
    """

    peer: Address
    profile: str
    peer_write: Keying
    other_write: Keying


def parse_address(text: str) -> Address:
    """Return ``(host, port)`` of ``"1.2.3.4:5"`` or ``"[::1]:5"``."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _role_keying(entry: dict, role: str) -> Keying:
    return (bytes.fromhex(entry[f"{role}_write_srtp_master_key"]),
            bytes.fromhex(entry[f"{role}_write_srtp_master_salt"]))


def keys_from_entry(entry: dict) -> SrtpKeys:
    """Return the :class:`SrtpKeys` of one JSON object of either format."""
    if "peer" in entry:
        peer, role = entry["peer"], entry["peer_dtls_role"]
    else:  # shared Chromium <-> aiortc captures
        peer, role = entry["ice_selected_pair"]["chromium"], entry["chromium_dtls_role"]
    other = "server" if role == "client" else "client"
    profile = SrtpProtectionProfile.lookup(entry["srtp_profile"]).name  # OpenSSL or RFC name
    return SrtpKeys(parse_address(peer), profile,
                    _role_keying(entry, role), _role_keying(entry, other))


def load_srtp_keys(path: str | Path) -> list[SrtpKeys]:
    """Read a key file: one JSON document, or one JSON object per line."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        documents = [json.loads(text)]
    except json.JSONDecodeError:
        documents = [json.loads(line) for line in text.splitlines() if line.strip()]
    entries = []
    for document in documents:
        entries += document if isinstance(document, list) else [document]
    return [keys_from_entry(entry) for entry in entries]


class SrtpDecryptor:
    """Unprotect the SRTP and SRTCP of a capture with known keys.

    :param keys: every connection's keys; a later entry for the same peer wins.
    """

    def __init__(self, keys: list[SrtpKeys]) -> None:
        self.keys = {entry.peer: entry for entry in keys}
        self._contexts: dict[tuple[Address, Address], InboundSrtpContext] = {}
        #: ``srtp`` / ``srtcp`` decrypted, ``*-failed``, ``*-no-key`` per datagram.
        self.counts: Counter[str] = Counter()

    def _context(self, src: Address, dst: Address) -> InboundSrtpContext | None:
        context = self._contexts.get((src, dst))
        if context is None:
            if src in self.keys:
                entry, keying = self.keys[src], self.keys[src].peer_write
            elif dst in self.keys:
                entry, keying = self.keys[dst], self.keys[dst].other_write
            else:
                return None
            context = InboundSrtpContext(entry.profile, *keying)
            self._contexts[(src, dst)] = context
        return context

    def unprotect(self, rtcp: bool, data: bytes, src: Address, dst: Address) -> bytes | None:
        """Return the clear RTP (or RTCP) packet, or None when no key covers the flow.

        :raises ~realtime.errors.DecodeError: libsrtp rejected the packet
            (counted as ``srtp-failed`` / ``srtcp-failed``).
        """
        kind = "srtcp" if rtcp else "srtp"
        context = self._context(src, dst)
        if context is None:
            self.counts[f"{kind}-no-key"] += 1
            return None
        try:
            clear = context.unprotect_rtcp(data) if rtcp else context.unprotect(data)
        except DecodeError:
            self.counts[f"{kind}-failed"] += 1
            raise
        self.counts[kind] += 1
        return clear
