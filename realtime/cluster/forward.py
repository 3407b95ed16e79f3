"""
Any node answers any API call: a call for another node's session is forwarded to its owner.

A client keeps one base URL, but its calls may land on any node: a load balancer,
anycast, or ``--workers`` sharing one API port with ``SO_REUSEPORT`` (each new TCP
connection goes to whichever worker the kernel picks).  A session lives on one node
-- its *owner*, written in the directory's :class:`~realtime.cluster.records.SessionRecord`
(the node that made it, until another one takes it over when its media lands
there).  So the public API of every node is :class:`PublicApiResource`::

    request ──> names a session? (forward_auth.session_target)
        │ no, or the session is held here ─────────────> served here (the Klein API)
        │ yes, not held here:
        │   authenticate the app (a 401 costs no Redis lookup)
        │   GET rt:session:{id} ── absent, other app, owner = this node ──> served here
        │                                                   (the usual 404 / 410)
        │   GET rt:node:{owner} ── absent (no heartbeat for 10 s) ──> 503 owner_unavailable
        │   Redis away ──> 503 directory_unavailable
        v
    POST/GET/PUT/PATCH/DELETE https://{owner's api_address}{same path and query}   (TLS, pinned cert)
        Authorization: <the client's>     Content-Type: <the client's>
        Realtime-Forwarded: node=<us>; t=<ms>; n=<nonce>; mac=<HMAC>  (forward_auth)
        │ refused / reset ──> 503 owner_unreachable     no answer in 30 s ──> 504 owner_timeout
        v
    the owner's status, Content-Type, Location, Retry-After and body, relayed as they are

The owner receives forwarded calls on its **private API address**
(:class:`PrivateApiService`: an HTTPS port on the relay host, ephemeral, announced as
``api_address`` in its :class:`~realtime.cluster.records.NodeRecord` with the
certificate it presents, ``api_certificate``, which the forwarder pins:
:mod:`realtime.cluster.forward_tls`).
That listener serves only requests whose proof checks out (else 403 ``forbidden``), and
serves them locally with the very same API -- authentication of the app, the per-session
limit of 50 calls/s, every error -- and never forwards them again, so there are no loops:
a call is forwarded at most once, and since every call for a session is served by its
owner, the per-session limits hold cluster-wide.

Security (docs/cluster.md): the proof authenticates the sender and binds the request
(method, URI, Authorization, body); TLS with the pinned certificate keeps the client's
bearer secret and SDP secret on the way and proves the receiver is the node the
registry names.  The private address belongs on the cluster's private network anyway,
like the relay address.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectError, ConnectionLost
from twisted.logger import Logger
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from realtime.api.http import MAX_BODY, apply_cors, error_response
from realtime.api.errors import ApiError
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.directory import Directory
from realtime.cluster.forward_auth import HEADER, ForwardProof, SessionTarget, session_target
from realtime.cluster.forward_tls import PinnedCertificates, private_certificate, server_options
from realtime.cluster.publish import api_error

log = Logger()

#: Seconds a forwarded call may take at the owner (a pull may wait 5 s for the
#: connection and a few for first packets).
FORWARD_TIMEOUT = 30.0
#: Seconds to open a connection to the owner's private address.
CONNECT_TIMEOUT = 2.0
#: Response headers relayed from the owner (the body and status always are).
RELAYED = (b"content-type", b"location", b"retry-after", b"etag", b"accept-patch",
           b"access-control-expose-headers", b"link")
#: Request methods the API serves (OPTIONS preflights are answered where they land).
METHODS = (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE")  # PATCH, DELETE: WHIP/WHEP

Authenticate = Callable[[str, "bytes | None"], Any]


def render_local(resource: Any, request: Any) -> None:
    """Let ``resource`` render ``request`` after its render call has returned NOT_DONE_YET."""
    body = resource.render(request)
    if body is not NOT_DONE_YET:
        request.write(body)
        request.finish()


def answer_error(request: Any, error: ApiError) -> None:
    """Finish ``request`` with ``error`` as JSON (unless the client has gone)."""
    if not getattr(request, "_disconnected", False) and not request.finished:
        request.write(error_response(request, error))
        request.finish()


class SessionForwarder:
    """Serve a session's calls here or forward them to its owner (see module docstring).

    :param reactor: the reactor (time, TCP).
    :param node_id: this node.
    :param directory: the cluster directory (session records, node registry).
    :param proof: signs what this node forwards.
    :param local: this node's API resource (the Klein app).
    :param holds: returns whether a session id is held here (switchboard, echo peers).
    :param authenticate: ``(app_id, authorization)`` -> the app, or raises the API's 401.
    """

    def __init__(self, reactor: Any, node_id: str, directory: Directory, proof: ForwardProof,
                 local: Any, holds: Callable[[str], bool], authenticate: Authenticate,
                 timeout: float = FORWARD_TIMEOUT) -> None:
        self.reactor = reactor
        self.node_id = node_id
        self.directory = directory
        self.proof = proof
        self.local = local
        self.holds = holds
        self.authenticate = authenticate
        self.timeout = timeout
        #: the owners' private API certificates, pinned per address as the registry gives them
        self.pins = PinnedCertificates()
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 8
        self.agent = Agent(reactor, contextFactory=self.pins,
                           connectTimeout=CONNECT_TIMEOUT, pool=pool)
        #: calls forwarded, and calls answered with an error before or while forwarding
        self.forwarded = 0
        self.failed: dict[str, int] = {}

    def render(self, request: Any) -> bytes | int:
        """Render here at once, or start the lookup and return NOT_DONE_YET."""
        target = (session_target(request.path, request.args)
                  if request.method in METHODS else None)
        if target is None or self.holds(target.session_id):
            return self.local.render(request)
        Deferred.fromCoroutine(self.route(request, target)).addErrback(
            self._crashed, request)
        return NOT_DONE_YET

    async def route(self, request: Any, target: SessionTarget) -> None:
        """Find the session's owner; forward there, or serve here, or answer the error."""
        try:
            self.authenticate(target.app_id, request.getHeader(b"authorization"))
            address = await self.owner_address(target)
            if address is None:
                render_local(self.local, request)
                return
            await self.forward(request, address)
        except ApiError as error:
            self.failed[error.code] = self.failed.get(error.code, 0) + 1
            answer_error(request, error)

    async def owner_address(self, target: SessionTarget) -> str | None:
        """Return the owner's private API address, or None to serve here; raise the 503s."""
        try:
            record = await self.directory.get_session(target.session_id)
            if (record is None or record.app_id != target.app_id
                    or record.owner_node in (None, self.node_id)):
                return None
            node = await self.directory.get_node(record.owner_node)
        except DirectoryUnavailable as error:
            raise api_error(error) from None
        if node is None:
            raise ApiError(503, "owner_unavailable",
                           f"Session {target.session_id} lives on node {record.owner_node}, "
                           "which is not in the cluster registry (it stopped heartbeating)")
        if not (node.api_address and node.api_certificate):
            raise ApiError(503, "owner_unreachable",
                           f"Node {record.owner_node} announces no private API address")
        self.pins.pin(node.api_address, node.api_certificate.encode())
        return node.api_address

    async def forward(self, request: Any, address: str) -> None:
        """Send ``request`` to ``address`` with the proof; relay the owner's answer."""
        content = request.content
        content.seek(0)
        body = content.read(MAX_BODY + 1)
        content.seek(0)
        if len(body) > MAX_BODY:
            raise ApiError.payload_too_large(MAX_BODY)
        authorization = request.getHeader(b"authorization")
        headers = Headers({HEADER: [self.proof.sign(
            self.node_id, self.reactor.seconds(), request.method, request.uri,
            authorization, body)]})
        for name in (b"authorization", b"content-type", b"if-match"):   # If-Match: WHIP
            value = request.getHeader(name)
            if value is not None:
                headers.setRawHeaders(name, [value])
        producer: Any = (FileBodyProducer(BytesIO(body))
                         if body else None)
        self.forwarded += 1
        try:
            response = await self.agent.request(
                request.method, b"https://" + address.encode("ascii") + request.uri, headers,
                producer,
            ).addTimeout(self.timeout, self.reactor)
            reply = await readBody(response).addTimeout(self.timeout, self.reactor)
        except (TimeoutError, CancelledError):
            raise ApiError(504, "owner_timeout",
                           f"The session's node at {address} did not answer in "
                           f"{self.timeout:g} s") from None
        except (ConnectError, ConnectionLost, OSError) as error:
            raise ApiError(503, "owner_unreachable",
                           f"The session's node at {address} cannot be reached: "
                           f"{error.__class__.__name__}") from None
        except Exception as error:  # ResponseFailed, PartialDownloadError ...
            raise ApiError(503, "owner_unreachable",
                           f"The session's node at {address} failed to answer: "
                           f"{error.__class__.__name__}") from None
        if request.finished or getattr(request, "_disconnected", False):
            return                      # the client has gone; the owner did the work
        request.setResponseCode(response.code)
        apply_cors(request)
        for name in RELAYED:
            for value in response.headers.getRawHeaders(name) or ():
                request.responseHeaders.addRawHeader(name, value)   # WHIP: several Links
        request.write(reply)
        request.finish()

    def _crashed(self, failure: Any, request: Any) -> None:
        log.failure("cluster: forwarding {uri} failed", failure, uri=request.uri)
        answer_error(request, ApiError(500, "internal_error", "Internal server error"))


class PublicApiResource(Resource):
    """The API as clients reach it on any node: local sessions here, others at their owner."""

    isLeaf = True

    def __init__(self, forwarder: SessionForwarder) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.forwarder = forwarder

    def render(self, request: Any) -> bytes | int:
        """Serve or forward ``request``."""
        return self.forwarder.render(request)


class ForwardedApiResource(Resource):
    """The private API: calls other nodes forward here, proof checked, served locally."""

    isLeaf = True

    def __init__(self, proof: ForwardProof, local: Any, clock: Any) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.proof = proof
        self.local = local
        self.clock = clock

    def render(self, request: Any) -> bytes | int:
        """Serve ``request`` locally if its proof checks out; else 403 ``forbidden``."""
        content = request.content
        content.seek(0)
        body = content.read(MAX_BODY + 1)
        content.seek(0)
        sender = self.proof.verify(
            request.getHeader(HEADER), self.clock.seconds(), request.method, request.uri,
            request.getHeader(b"authorization"), body)
        if sender is None:
            return error_response(request, ApiError(
                403, "forbidden", "Only members of the cluster may call this address"))
        return self.local.render(request)


class PrivateApiService(Service):
    """Listen for forwarded calls on ``host`` (ephemeral HTTPS port); :attr:`address` says where.

    Its TLS certificate is made at start (:func:`~realtime.cluster.forward_tls.private_certificate`)
    and announced, as :attr:`certificate`, next to the address in the registry.

    :param resource: the :class:`ForwardedApiResource` to serve.
    :param forwarder: this node's :class:`SessionForwarder` (its counts are logged on stop).
    """

    name = "private-api"

    def __init__(self, reactor: Any, host: str, resource: ForwardedApiResource,
                 forwarder: SessionForwarder) -> None:
        self.reactor = reactor
        self.host = host
        self.resource = resource
        self.forwarder = forwarder
        self.site = Site(resource)
        self.port: Any = None
        certificate, self._key = private_certificate(reactor.seconds())
        #: the certificate PEM the private port presents (announced in the registry)
        self.certificate = certificate.decode("ascii")

    @property
    def address(self) -> str:
        """Return ``HOST:PORT`` as bound (``""`` before)."""
        if self.port is None:
            return ""
        port = self.port.getHost().port
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted name)
        """Bind the private port (before the node registers itself with its address)."""
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        self.port = self.reactor.listenSSL(
            0, self.site, server_options(self.certificate.encode("ascii"), self._key),
            interface=self.host)

    def stopService(self) -> Deferred | None:  # noqa: N802 (Twisted name)
        """Stop listening; log how many calls were forwarded and how many proofs refused."""
        super().stopService()  # type: ignore[no-untyped-call]
        log.info("cluster: forwarded {forwarded} API calls to their sessions' owners "
                 "(errors {failed}); private API refused {refused}",
                 forwarded=self.forwarder.forwarded, failed=self.forwarder.failed,
                 refused=self.resource.proof.refused)
        port, self.port = self.port, None
        return None if port is None else port.stopListening()


def build_forwarding(reactor: Any, node_id: str, secret: bytes, relay_host: str,
                     directory: Directory, local: Any, holds: Callable[[str], bool],
                     authenticate: Authenticate) -> tuple[PublicApiResource, PrivateApiService]:
    """Return the public API resource and the private listener of a cluster node."""
    proof = ForwardProof(secret)
    forwarder = SessionForwarder(reactor, node_id, directory, proof, local, holds, authenticate)
    private = PrivateApiService(reactor, relay_host, ForwardedApiResource(proof, local, reactor),
                                forwarder)
    return PublicApiResource(forwarder), private
