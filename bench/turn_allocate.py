"""
bench/turn_allocate.py: allocations/s for bench/turn_relay.py, from several client processes.

Each of ``processes`` forked workers runs sequential Allocate (long-term
credentials, RFC 8656 §7.1) + Refresh with LIFETIME 0 (§7.3, the allocation
is deleted) on a fresh UDP socket per allocation; the workers start together
and the rate is allocations completed / wall time.  Workers learn realm and
nonce from the first 401 and reuse them (a nonce is per client host), so only
the first allocation of each worker pays the 401 round trip.

Robust against the answers a busy server legitimately gives:

* 437 Allocation Mismatch (coturn: "Mismatched allocation: wrong transaction
  ID") means the server still holds an allocation for this 5-tuple, e.g. an
  ephemeral port the kernel handed out again: the allocation is retried from
  a new socket (new 5-tuple) and counted as ``mismatch_437``;
* 508 Insufficient Capacity (coturn: "Cannot create socket", when the
  relay ports of deleted allocations are not yet free again): the worker
  waits ``CAPACITY_BACKOFF`` seconds and retries from a new socket, counted
  as ``capacity_508``;
* 438 Stale Nonce: the new nonce is taken and the request sent again;
* no answer in ``timeout`` seconds (a dropped datagram): a new socket, counted
  as ``timeouts``; a worker gives up after ``MAX_RETRIES`` in a row (reported, never raised).

Sockets stay open until the worker ends, so no 5-tuple is reused within a run.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.stun.attributes import (  # noqa: E402
    ErrorCode, Lifetime, Nonce, Realm, RequestedTransport, Username,
)
from realtime.errors import DecodeError  # noqa: E402
from realtime.stun.credentials import long_term_key  # noqa: E402
from realtime.stun.message import StunClass, StunMessage, StunMethod, encode_message  # noqa: E402

MAX_RETRIES = 20
CAPACITY_BACKOFF = 0.05


class Mismatch(Exception):
    """The server answered 437 (or kept failing) for this 5-tuple: use another socket."""


class Capacity(Exception):
    """The server answered 508 Insufficient Capacity: wait a little, then another socket."""


class Client:
    """One UDP 5-tuple speaking blocking TURN requests with long-term credentials."""

    def __init__(self, server, username: str, password: str, realm, nonce, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.sock.bind(("127.0.0.1", 0))
        self.server, self.username, self.password = server, username, password
        self.realm, self.nonce = realm, nonce
        self.key = long_term_key(username, realm, password) if realm is not None else None

    def request(self, method: int, attributes: list, retries: int = 2) -> StunMessage:
        """Send one request; follow 401/438 by re-sending with the server's realm and nonce."""
        tid = os.urandom(12)
        extra = [] if self.realm is None else [Username(self.username), Realm(self.realm),
                                               Nonce(self.nonce)]
        data = encode_message(method, StunClass.REQUEST, tid, [*attributes, *extra],
                              integrity_key=self.key, fingerprint=True)
        self.sock.sendto(data, self.server)
        while True:
            try:
                answer = StunMessage.decode(self.sock.recv(4096))
            except DecodeError:
                continue  # not STUN (a late datagram): dropped
            if answer.transaction_id == tid:
                break
        error = answer.find(ErrorCode)
        if error is not None and error.code in (401, 438) and answer.find(Nonce) and retries:
            realm = answer.find(Realm).value if answer.find(Realm) else self.realm
            if error.code == 438 or self.realm is None:
                self.realm, self.nonce = realm, answer.find(Nonce).value
                self.key = long_term_key(self.username, self.realm, self.password)
                return self.request(method, attributes, retries - 1)
        if error is not None and error.code == 437:
            raise Mismatch("437")
        if error is not None and error.code == 508:
            raise Capacity("508")
        return answer


def worker(server, username, password, count, timeout, barrier, queue) -> None:
    """Allocate and delete ``count`` times; put (done, 437s, timeouts, cpu seconds, error, 508s)."""
    realm = nonce = None
    kept, mismatches, timeouts, done, error, capacity = [], 0, 0, 0, None, 0
    barrier.wait()
    cpu0 = time.process_time()
    failures = 0
    while done < count and error is None:
        client = Client(server, username, password, realm, nonce, timeout)
        kept.append(client.sock)
        try:
            answer = client.request(StunMethod.ALLOCATE, [RequestedTransport(17)])
            if answer.message_class is not StunClass.SUCCESS:
                raise RuntimeError(f"allocate: {answer.summary()}")
            client.request(StunMethod.REFRESH, [Lifetime(0)])
            realm, nonce = client.realm, client.nonce
            done, failures = done + 1, 0
        except Mismatch:
            mismatches, failures = mismatches + 1, failures + 1
        except Capacity:
            capacity, failures = capacity + 1, failures + 1
            time.sleep(CAPACITY_BACKOFF)
        except socket.timeout:
            timeouts, failures = timeouts + 1, failures + 1
        except Exception as exc:  # reported, never raised past the worker
            error = repr(exc)[:300]
        if failures >= MAX_RETRIES:
            error = (f"{failures} failures in a row ({mismatches} x 437, {capacity} x 508, "
                     f"{timeouts} timeouts)")
    cpu = time.process_time() - cpu0
    for sock in kept:
        sock.close()
    queue.put((done, mismatches, timeouts, cpu, error, capacity))


def allocation_rate(server, username: str, password: str, count: int, processes: int = 4,
                    timeout: float = 2.0) -> dict:
    """Return allocations/s over ``processes`` concurrent workers and what they met."""
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(processes + 1), context.Queue()
    shares = [count // processes + (i < count % processes) for i in range(processes)]
    workers = [context.Process(target=worker, daemon=True,
                               args=(server, username, password, share, timeout, barrier, queue))
               for share in shares]
    for process in workers:
        process.start()
    barrier.wait()
    start = time.perf_counter()
    reports = []
    for _ in workers:
        try:
            reports.append(queue.get(timeout=60 + count * timeout))
        except Exception:  # queue.Empty: a worker died or hung; report what the others did
            reports.append((0, 0, 0, 0.0, "no report from a worker", 0))
    elapsed = time.perf_counter() - start
    for process in workers:
        process.join(10)
        if process.is_alive():
            process.kill()
    done = sum(r[0] for r in reports)
    return {"allocations": done, "processes": processes, "seconds": elapsed,
            "per_second": done / elapsed if elapsed else None,
            "mismatch_437": sum(r[1] for r in reports), "timeouts": sum(r[2] for r in reports),
            "capacity_508": sum(r[5] for r in reports),
            "client_cpu_cores": sum(r[3] for r in reports) / elapsed if elapsed else None,
            "errors": [r[4] for r in reports if r[4]]}
