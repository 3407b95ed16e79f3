"""
A guard that keeps test traffic on this machine.

Tests talk to real peers (aiortc, Chromium, coturn), and some of those
reach for the network by default: aiortc names a public STUN server when it
is given no ``iceServers``, and aioice gathers host candidates on every
interface.  The guard watches the test process itself: every name resolution
and every ``connect``/``sendto`` on a socket goes through it, and anything
that would leave the machine is refused (:class:`TrafficOutsideMachine`) and
recorded, so the test fails even when the refusal was swallowed by an event
loop or a thread.

Allowed without asking: names ``localhost`` (and ``*.localhost``, RFC 6761
§6.3) and numeric literals, destinations in 127.0.0.0/8 and ``::1`` (also as
IPv4-mapped ``::ffff:127.x.y.z``), and AF_UNIX paths.  A test that makes its
own network namespace or addresses declares them with :meth:`TrafficGuard.allow`.

It is a test helper, not a sandbox: child processes (twistd, Chromium,
coturn tools) are confined by their own flags and configuration.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


class TrafficOutsideMachine(OSError):
    """A resolution or send that would leave this machine (refused by the guard)."""


class TrafficGuard:
    """Refuse and record traffic beyond loopback and the declared networks.

    :meth:`install` patches :mod:`socket`; :meth:`uninstall` restores it.
    :attr:`violations` lists what was refused, as readable strings.
    """

    def __init__(self) -> None:
        self.networks: list[Network] = list(LOOPBACK)
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._saved: dict[tuple[object, str], object] = {}

    # -- policy ---------------------------------------------------------------

    def allow(self, *networks: str) -> None:
        """Also allow ``networks`` (CIDR or single addresses) for this test."""
        self.networks.extend(ipaddress.ip_network(n, strict=False) for n in networks)

    def address_allowed(self, host: str) -> bool:
        """Whether sending to numeric ``host`` stays on the machine."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def name_allowed(self, host) -> bool:
        """Whether resolving ``host`` is allowed (no query leaves the machine)."""
        if host is None:
            return True  # a wildcard for bind()
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        name = host.rstrip(".").lower()
        if name in ("", "localhost") or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            return False
        return True  # a numeric literal resolves without a query

    def take(self) -> list[str]:
        """Return and forget the recorded violations."""
        with self._lock:
            taken, self.violations = self.violations, []
        return taken

    def _refuse(self, what: str) -> None:
        with self._lock:
            self.violations.append(what)
        raise TrafficOutsideMachine(f"test traffic must stay on this machine: {what}")

    def _check_destination(self, sock, address, call: str) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        host = address[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not self.address_allowed(host):
            if self.name_allowed(host) and not _is_numeric(host):
                return  # "localhost": connect() resolves it to loopback itself
            self._refuse(f"{call} to {address!r}")

    # -- patching -------------------------------------------------------------

    def install(self) -> None:
        """Patch name resolution and socket sends in this process."""
        guard = self
        real_getaddrinfo = socket.getaddrinfo
        real_gethostbyname = socket.gethostbyname
        real_gethostbyname_ex = socket.gethostbyname_ex
        cls = socket.socket
        real_connect, real_connect_ex = cls.connect, cls.connect_ex
        real_sendto, real_sendmsg = cls.sendto, cls.sendmsg

        def getaddrinfo(host, *args, **kwargs):
            if not guard.name_allowed(host):
                guard._refuse(f"resolving {host!r}")
            return real_getaddrinfo(host, *args, **kwargs)

        def gethostbyname(host):
            if not guard.name_allowed(host):
                guard._refuse(f"resolving {host!r}")
            return real_gethostbyname(host)

        def gethostbyname_ex(host):
            if not guard.name_allowed(host):
                guard._refuse(f"resolving {host!r}")
            return real_gethostbyname_ex(host)

        def connect(self, address):
            guard._check_destination(self, address, "connect")
            return real_connect(self, address)

        def connect_ex(self, address):
            guard._check_destination(self, address, "connect")
            return real_connect_ex(self, address)

        def sendto(self, data, *args):
            guard._check_destination(self, args[-1], "sendto")
            return real_sendto(self, data, *args)

        def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
            if address is not None:
                guard._check_destination(self, address, "sendmsg")
                return real_sendmsg(self, buffers, ancdata, flags, address)
            return real_sendmsg(self, buffers, ancdata, flags)

        for owner, name, value in (
            (socket, "getaddrinfo", getaddrinfo),
            (socket, "gethostbyname", gethostbyname),
            (socket, "gethostbyname_ex", gethostbyname_ex),
            (cls, "connect", connect),
            (cls, "connect_ex", connect_ex),
            (cls, "sendto", sendto),
            (cls, "sendmsg", sendmsg),
        ):
            self._saved[(owner, name)] = getattr(owner, name)
            setattr(owner, name, value)

    def uninstall(self) -> None:
        """Undo :meth:`install`."""
        for (owner, name), value in self._saved.items():
            setattr(owner, name, value)
        self._saved.clear()


def _is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def loopback_host_addresses(use_ipv4: bool = True, use_ipv6: bool = False) -> list[str]:
    """The host addresses a test's ICE agent may gather on: loopback only."""
    return (["127.0.0.1"] if use_ipv4 else []) + (["::1"] if use_ipv6 else [])

