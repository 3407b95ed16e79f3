"""
The cluster's command-line options, checked: ``--cluster``, ``--node-id``, ``--relay-address``.

``realtime.service.Options`` calls :func:`cluster_options` from ``postOptions``
and turns :class:`ClusterOptionError` into a ``UsageError``; every message
starts with the option it is about.  Secrets come from the environment:

* ``REALTIME_REDIS_PASSWORD`` -- the Redis password when the URL has none;
* ``REALTIME_CLUSTER_SECRET`` -- the secret every node shares, from which the
  relay link's keys are derived (at least 16 bytes; required with ``--cluster``).

Neither is ever logged: the parsed :class:`ClusterOptions` shows the URL
redacted and hides the secret from ``repr``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field

from realtime.cluster.address import BadRedisUrl, RedisAddress, parse_redis_url
from realtime.cluster.relay import MAX_SENDER, MIN_SECRET
from realtime.cluster.tree import DEFAULT_FANOUT

#: Largest ``--cascade-fanout`` accepted (a wider tree is a star: the owner sends every copy).
MAX_FANOUT = 64

#: Environment variable holding the cluster secret (relay link keys).
SECRET_VARIABLE = "REALTIME_CLUSTER_SECRET"

NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,%d}" % (MAX_SENDER - 1))


class ClusterOptionError(ValueError):
    """Raised when a cluster option is unusable; the message starts with ``--option:``."""


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """The checked cluster options of one node."""

    address: RedisAddress
    node_id: str
    relay_host: str
    relay_port: int
    secret: bytes = field(repr=False)
    #: ``--cascade-fanout``: child nodes per node in a track's tree (docs/cascading.md)
    cascade_fanout: int = DEFAULT_FANOUT

    @property
    def relay_address(self) -> str:
        """Return ``HOST:PORT`` (IPv6 in brackets) as other nodes will use it."""
        host = f"[{self.relay_host}]" if ":" in self.relay_host else self.relay_host
        return f"{host}:{self.relay_port}"


def cluster_options(cluster: str | None, node_id: str | None, relay_address: str | None,
                    public_ip: str, environ: dict[str, str],
                    cascade_fanout: str | int | None = None) -> ClusterOptions | None:
    """Check the cluster options; return ``None`` without ``--cluster``.

    :param public_ip: the announced address, the default relay host.
    :raises ClusterOptionError: naming the option at fault.
    """
    if cluster is None:
        for name, value in (("node-id", node_id), ("relay-address", relay_address),
                            ("cascade-fanout", cascade_fanout)):
            if value is not None:
                raise ClusterOptionError(f"--{name}: only meaningful with --cluster")
        return None
    try:
        address = parse_redis_url(cluster, environ)
    except BadRedisUrl as error:
        raise ClusterOptionError(f"--cluster: {error}") from None
    node_id = default_node_id() if node_id is None else node_id
    if not NODE_ID.fullmatch(node_id):
        raise ClusterOptionError(
            f"--node-id: {node_id[:80]!r} is not 1-{MAX_SENDER} of A-Z a-z 0-9 . _ - "
            "(starting with a letter or digit)")
    host, port = parse_relay_address(relay_address or f"{_bracket(public_ip)}:0")
    secret = environ.get(SECRET_VARIABLE, "").encode()
    if len(secret) < MIN_SECRET:
        raise ClusterOptionError(
            f"--cluster: set {SECRET_VARIABLE} to the secret all nodes share "
            f"(at least {MIN_SECRET} bytes, e.g. from: openssl rand -hex 32)")
    fanout = DEFAULT_FANOUT if cascade_fanout is None else str(cascade_fanout)
    if not (str(fanout).isascii() and str(fanout).isdigit()) \
            or not 1 <= int(fanout) <= MAX_FANOUT:
        raise ClusterOptionError(f"--cascade-fanout: {str(fanout)[:40]!r} is not a number "
                                 f"of child nodes in 1-{MAX_FANOUT}")
    return ClusterOptions(address, node_id, host, port, secret, int(fanout))


def parse_relay_address(value: str) -> tuple[str, int]:
    """Parse ``--relay-address IP:PORT`` (``[IPv6]:PORT``); port 0 means any free port."""
    host, colon, port_text = value.rpartition(":")
    if not colon:
        raise ClusterOptionError(f"--relay-address: {value!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ClusterOptionError(
            f"--relay-address: {host!r} is not an IP address (other nodes send media there)"
        ) from None
    if ip.is_unspecified or ip.is_multicast:
        raise ClusterOptionError(f"--relay-address: {host!r} cannot receive relay traffic")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ClusterOptionError(f"--relay-address: {port_text!r} is not a port number (0-65535)")
    return str(ip), int(port_text)


def default_node_id() -> str:
    """Return this host's name, made a valid node id (the default ``--node-id``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:MAX_SENDER].strip(".-_")
    return name or "node"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
