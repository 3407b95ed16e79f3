"""
Signalling for ``bench/forward.py``: publish and subscribe on each server.

Three servers, three HTTP dialects, one :class:`~forward_peer.Leg` on the
media side.  Each class has ``publish(leg, media) -> info`` (the publisher's
offer, the server's answer) and ``subscribe(leg, info)`` (a subscriber for
what ``publish`` returned)::

    ours  (docs/cloudflare-api.md)   POST sessions/new; POST sessions/{id}/tracks/new
                           publish:   our offer + local tracks  -> answer
                           subscribe: remote tracks             -> SFU offer,
                                      PUT sessions/{id}/renegotiate (our answer)
    relay (forward_relay)  POST /publish, POST /subscribe: our offer -> answer
    janus (REST, videoroom) create session, attach janus.plugin.videoroom
                           publish:   join ptype=publisher, publish + offer -> answer
                           subscribe: join ptype=subscriber feed -> Janus offer,
                                      start + our answer
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Any

from forward_peer import Leg, Media

TRACKS = ("audio", "video")


def http_json(method: str, url: str, body: Any = None, headers: dict | None = None,
              timeout: float = 30.0) -> tuple[int, Any]:
    """Send one JSON request; return ``(status, decoded body)``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def publisher_media(audio_ssrc: int, video_ssrc: int) -> list[Media]:
    """Return the publisher's two sendonly sections (mid 0 audio, mid 1 video)."""
    return [Media("audio", "0", "sendonly", 111, [audio_ssrc], 1),
            Media("video", "1", "sendonly", 96, [video_ssrc], 1)]


def _expect(status: int, body: Any, what: str) -> Any:
    if status >= 300 or (isinstance(body, dict) and body.get("errorCode")):
        raise RuntimeError(f"{what}: HTTP {status} {json.dumps(body)[:300]}")
    return body


class OursSignalling:
    """Our server's Cloudflare-compatible API (push, then pull with an SFU offer)."""

    def __init__(self, api_url: str, app_id: str, secret: str) -> None:
        self.base = f"{api_url}/v1/apps/{app_id}"
        self.headers = {"Authorization": f"Bearer {secret}"}

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        status, reply = http_json(method, self.base + path, body, self.headers)
        return _expect(status, reply, f"{method} {path}")

    def publish(self, leg: Leg, media: list[Media]) -> dict:
        """Push audio and video; return ``{"sessionId"}`` for subscribers."""
        session = self._call("POST", "/sessions/new", {})["sessionId"]
        body = self._call("POST", f"/sessions/{session}/tracks/new", {
            "sessionDescription": {"type": "offer", "sdp": leg.offer(media)},
            "tracks": [{"location": "local", "mid": m.mid, "trackName": m.kind} for m in media]})
        leg.start(body["sessionDescription"]["sdp"])
        return {"sessionId": session}

    def subscribe(self, leg: Leg, info: dict) -> None:
        """Pull both tracks: the SFU offers, we answer with PUT renegotiate."""
        session = self._call("POST", "/sessions/new", {})["sessionId"]
        body = self._call("POST", f"/sessions/{session}/tracks/new", {"tracks": [
            {"location": "remote", "sessionId": info["sessionId"], "trackName": name}
            for name in TRACKS]})
        failed = [t for t in body.get("tracks", []) if t.get("errorCode")]
        if failed:
            raise RuntimeError(f"pull failed: {failed}")
        answer = leg.answer(body["sessionDescription"]["sdp"])
        self._call("PUT", f"/sessions/{session}/renegotiate",
                   {"sessionDescription": {"type": "answer", "sdp": answer}})


class RelaySignalling:
    """The aiortc MediaRelay baseline (:mod:`forward_relay`): we always offer."""

    def __init__(self, url: str) -> None:
        self.url = url

    def publish(self, leg: Leg, media: list[Media]) -> dict:
        """Offer sendonly audio+video; the relay answers."""
        status, body = http_json("POST", self.url + "/publish", {"type": "offer", "sdp": leg.offer(media)})
        leg.start(_expect(status, body, "relay publish")["sdp"])
        return {}

    def subscribe(self, leg: Leg, info: dict) -> None:
        """Offer recvonly audio+video; the relay answers with relayed tracks."""
        media = [Media("audio", "0", "recvonly", 111, [], 1), Media("video", "1", "recvonly", 96, [], 1)]
        status, body = http_json("POST", self.url + "/subscribe", {"type": "offer", "sdp": leg.offer(media)})
        leg.start(_expect(status, body, "relay subscribe")["sdp"])


class JanusSignalling:
    """Janus's REST API and its videoroom plugin (one room, one publisher)."""

    def __init__(self, url: str, room: int) -> None:
        self.url, self.room = url, room
        self.session = self._request(url, {"janus": "create"})["data"]["id"]

    def _request(self, url: str, body: dict) -> dict:
        body = {**body, "transaction": secrets.token_hex(6)}
        status, reply = http_json("POST", url, body)
        if status >= 300 or reply.get("janus") == "error":
            raise RuntimeError(f"janus {body.get('janus')}: {json.dumps(reply)[:300]}")
        return reply

    def _attach(self) -> int:
        reply = self._request(f"{self.url}/{self.session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        return reply["data"]["id"]

    def _message(self, handle: int, body: dict, jsep: dict | None = None) -> dict:
        """Send a plugin message; return the plugin's event (with its ``jsep``)."""
        request = {"janus": "message", "body": body}
        if jsep:
            request["jsep"] = jsep
        reply = self._request(f"{self.url}/{self.session}/{handle}", request)
        if reply.get("janus") == "success":
            return reply
        for _ in range(50):
            status, events = http_json("GET", f"{self.url}/{self.session}?maxev=10", timeout=35)
            for event in events if isinstance(events, list) else [events]:
                if event.get("sender") == handle and event.get("janus") == "event":
                    data = event.get("plugindata", {}).get("data", {})
                    if "error" in data:
                        raise RuntimeError(f"janus videoroom: {data['error']}")
                    return event
        raise RuntimeError("janus: no event for the request")

    def publish(self, leg: Leg, media: list[Media]) -> dict:
        """Join as publisher and publish our offer; return the feed id."""
        handle = self._attach()
        joined = self._message(handle, {"request": "join", "room": self.room, "ptype": "publisher",
                                        "display": "bench"})
        feed = joined["plugindata"]["data"]["id"]
        event = self._message(handle, {"request": "publish", "audio": True, "video": True},
                              {"type": "offer", "sdp": leg.offer(media)})
        leg.start(event["jsep"]["sdp"])
        self._trickle_done(handle)
        return {"feed": feed}

    def subscribe(self, leg: Leg, info: dict) -> None:
        """Join as subscriber of the feed; answer Janus's offer with start."""
        handle = self._attach()
        event = self._message(handle, {"request": "join", "room": self.room, "ptype": "subscriber",
                                       "streams": [{"feed": info["feed"]}]})
        answer = leg.answer(event["jsep"]["sdp"])
        self._message(handle, {"request": "start"}, {"type": "answer", "sdp": answer})
        self._trickle_done(handle)

    def _trickle_done(self, handle: int) -> None:
        """Tell Janus our candidates are all in the SDP (end of trickle)."""
        self._request(f"{self.url}/{self.session}/{handle}",
                      {"janus": "trickle", "candidate": {"completed": True}})


def signalling_for(server: str, target: dict) -> OursSignalling | RelaySignalling | JanusSignalling:
    """Return the signalling client for ``server`` ("ours", "aiortc", "janus")."""
    if server == "ours":
        return OursSignalling(target["api"], target["app"], target["secret"])
    if server == "aiortc":
        return RelaySignalling(target["url"])
    return JanusSignalling(target["url"], target["room"])
