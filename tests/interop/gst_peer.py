#!/usr/bin/python3
"""
A GStreamer ``webrtcbin`` peer for the interop tests, driven from Debian's python3-gi.

The venv's Python cannot import ``gi``, so tests run this script with
``/usr/bin/python3`` as a subprocess.  It speaks our Cloudflare-compatible
HTTP API itself and prints JSON lines on stdout::

    gst_peer.py '{"api": URL, "app": ID, "secret": S, "mode": "publish", ...}'

    mode publish   sessions/new, offer VP8+Opus (or H.264) from videotestsrc /
                   audiotestsrc, tracks/new with the offer, apply the answer;
                   prints {"event": "published", "sessionId", "tracks"} and
                   keeps sending for ``seconds``.
    mode pull      sessions/new, tracks/new pulling ``tracks`` of
                   ``publisher``, answer the SFU's offer, PUT renegotiate;
                   decodes and counts frames per kind.
    mode whip      a WHIP client (RFC 9725 §4.2): POST the offer as
                   application/sdp to ``{api}/v1/apps/{app}/ingest/{stream}``,
                   apply the 201's answer; prints {"event": "published",
                   "location", "etag", "links"}; at the end DELETEs the
                   resource and prints {"event": "deleted", "status"}.

Options: ``video`` ("vp8" or "h264"), ``audio`` (bool), ``seconds``,
``early_offer`` (publish: offer before caps flow, so the offer has neither
``a=ssrc`` nor the MID header extension), ``strip_profile_level_id`` (pull:
drop ``profile-level-id`` from the answer's fmtp), ``renegotiate_delay`` (pull:
seconds between applying the answer locally and ``PUT renegotiate``, as with
signalling slower than ICE).  At the end it prints
{"event": "done", "frames": {...}, "per_second": {...}, "width", "timings"}.

Only loopback: libnice gathers host candidates on 127.0.0.1 alone
(``Nice.Agent.add_local_address``), and no STUN/TURN server is configured.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import re
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

VIDEO = {
    "vp8": ("vp8enc deadline=1 keyframe-max-dist=30 cpu-used=8 ! rtpvp8pay pt=96 mtu=1200",
            "application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=96"),
    "h264": ("x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=600 "
             "! video/x-h264,profile=constrained-baseline "
             "! rtph264pay pt=102 config-interval=-1 mtu=1200",
             "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=102,"
             "packetization-mode=(string)1"),
}
AUDIO = ("opusenc ! rtpopuspay pt=111",  # Opus is opus/48000/2 in SDP (RFC 7587 §7)
         "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111,"
         "encoding-params=(string)2")


def _keep_reference(gobject) -> None:
    """Add the reference webrtcbin's ``ice-agent`` getter does not give.

    The GstWebRTCNice object is a GstObject whose floating reference
    webrtcbin never sinks; pygobject sinks it and drops it with the
    wrapper, which would free the agent under webrtcbin's feet.
    """
    capsule = ctypes.pythonapi.PyCapsule_GetPointer
    capsule.restype, capsule.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    library = ctypes.CDLL("libgobject-2.0.so.0")
    library.g_object_ref.argtypes = [ctypes.c_void_p]
    library.g_object_ref(capsule(gobject.__gpointer__, None))


def _section_ssrcs(sdp: str, kind: str) -> int:
    """Return how many a=ssrc lines the first ``kind`` section of ``sdp`` has."""
    sections = re.split(r"^(?=m=)", sdp, flags=re.M)
    section = next((s for s in sections if s.startswith(f"m={kind}")), "")
    return len(re.findall(r"^a=ssrc:", section, re.M))


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


class Peer:
    def __init__(self, options: dict) -> None:
        self.options = options
        self.start = time.monotonic()
        self.timings: dict[str, float] = {}
        self.frames = {"audio": 0, "video": 0}
        self.per_second: dict[str, list[int]] = {"audio": [], "video": []}
        self.width = None
        self.loop = GLib.MainLoop()
        self.promises: list = []
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    # -- API --------------------------------------------------------------------

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        o = self.options
        request = urllib.request.Request(
            f"{o['api']}/v1/apps/{o['app']}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {o['secret']}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20, context=self.context) as response:
            return json.loads(response.read() or b"{}")

    def mark(self, name: str) -> None:
        self.timings.setdefault(name, round(time.monotonic() - self.start, 4))

    # -- pipeline -----------------------------------------------------------------

    def build(self, publish: bool) -> None:
        parts = ["webrtcbin name=webrtc bundle-policy=max-bundle"]
        if publish:
            encoder, caps = VIDEO[self.options.get("video", "vp8")]
            parts.append(f"videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,"
                         f"height=240,framerate=30/1 ! videoconvert ! {encoder} ! {caps} "
                         f"! queue ! webrtc.")
            if self.options.get("audio", True):
                parts.append(f"audiotestsrc is-live=true wave=sine ! audioconvert "
                             f"! audioresample ! {AUDIO[0]} ! {AUDIO[1]} ! queue ! webrtc.")
        if publish:
            self.pipeline = Gst.parse_launch(" ".join(parts))
            self.webrtc = self.pipeline.get_by_name("webrtc")
        else:
            self.pipeline = Gst.Pipeline.new("pull")
            self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
            self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
            self.pipeline.add(self.webrtc)
        ice = self.webrtc.get_property("ice-agent")
        _keep_reference(ice)
        agent = ice.get_property("agent")
        loopback = Nice.Address()
        loopback.set_from_string("127.0.0.1")
        agent.add_local_address(loopback)  # gather on loopback only
        self.webrtc.connect("notify::ice-connection-state", self.on_ice_state)
        self.webrtc.connect("pad-added", self.on_pad_added)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)

    def on_error(self, bus, message) -> None:
        error, debug = message.parse_error()
        emit(event="error", error=str(error), debug=debug)
        self.loop.quit()

    def on_ice_state(self, webrtc, spec) -> None:
        state = webrtc.get_property("ice-connection-state")
        if state in (GstWebRTC.WebRTCICEConnectionState.CONNECTED,
                     GstWebRTC.WebRTCICEConnectionState.COMPLETED):
            self.mark("ice_connected")
        elif state == GstWebRTC.WebRTCICEConnectionState.FAILED:
            self.mark("ice_failed")

    def on_pad_added(self, webrtc, pad) -> None:
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        decode = Gst.ElementFactory.make("decodebin")
        decode.connect("pad-added", self.on_decoded_pad)
        self.pipeline.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))

    def on_decoded_pad(self, decodebin, pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name()
        kind = "video" if name.startswith("video") else "audio"
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        sink.set_property("async", False)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self.on_frame, kind)

    def on_frame(self, pad, info, kind):
        self.frames[kind] += 1
        self.mark(f"first_{kind}")
        if kind == "video" and self.width is None:
            caps = pad.get_current_caps()
            if caps is not None:
                self.width = caps.get_structure(0).get_value("width")
        return Gst.PadProbeReturn.OK

    # -- negotiation ----------------------------------------------------------------

    def promise(self, signal: str, *args):
        promise = Gst.Promise.new()
        self.webrtc.emit(signal, *args, promise)
        promise.wait()
        self.promises.append(promise)  # the reply belongs to the promise: keep it alive
        return promise.get_reply()

    def set_description(self, signal: str, kind, sdp_text: str) -> None:
        result, message = GstSdp.SDPMessage.new_from_text(sdp_text)
        description = GstWebRTC.WebRTCSessionDescription.new(kind, message)
        self.promise(signal, description)

    def publish(self) -> None:
        session = self.call("POST", "/sessions/new")["sessionId"]
        if not self.options.get("early_offer"):
            time.sleep(0.5)  # let caps flow, so the offer names SSRCs
        # early_offer: the pipeline is only READY, no caps have flowed (see run)
        reply = self.promise("create-offer", None)
        offer = reply.get_value("offer")
        self.promise("set-local-description", offer)
        if self.options.get("early_offer"):
            self.pipeline.set_state(Gst.State.PLAYING)  # caps flow only now
        sdp = offer.sdp.as_text()
        mids = re.findall(r"^a=mid:(\S+)", sdp, re.M)
        kinds = re.findall(r"^m=(\w+)", sdp, re.M)
        tracks = [{"location": "local", "mid": mid, "trackName": f"gst-{kind}"}
                  for mid, kind in zip(mids, kinds)]
        self.mark("offer")
        answer = self.call("POST", f"/sessions/{session}/tracks/new", {
            "sessionDescription": {"type": "offer", "sdp": sdp}, "tracks": tracks})
        self.set_description("set-remote-description", GstWebRTC.WebRTCSDPType.ANSWER,
                             answer["sessionDescription"]["sdp"])
        self.mark("answer")
        emit(event="published", sessionId=session, tracks=[t["trackName"] for t in tracks],
             offer_has_ssrc="a=ssrc:" in sdp, video_ssrcs=_section_ssrcs(sdp, "video"), offer=sdp if self.options.get("show_sdp") else None,
             results=answer["tracks"])

    def whip(self) -> None:
        o = self.options
        time.sleep(0.5)  # let caps flow, so the offer names SSRCs
        reply = self.promise("create-offer", None)
        offer = reply.get_value("offer")
        self.promise("set-local-description", offer)
        self.mark("offer")
        request = urllib.request.Request(
            f"{o['api']}/v1/apps/{o['app']}/ingest/{o['stream']}", method="POST",
            data=offer.sdp.as_text().encode(),
            headers={"Authorization": f"Bearer {o['secret']}", "Content-Type": "application/sdp"})
        with urllib.request.urlopen(request, timeout=20, context=self.context) as response:
            status, headers, answer = response.status, response.headers, response.read()
        self.location = urllib.parse.urljoin(o["api"], headers["Location"])
        self.set_description("set-remote-description", GstWebRTC.WebRTCSDPType.ANSWER,
                             answer.decode())
        self.mark("answer")
        emit(event="published", status=status, location=self.location, etag=headers["ETag"],
             content_type=headers["Content-Type"], links=headers.get_all("Link") or [])

    def whip_delete(self) -> None:
        request = urllib.request.Request(self.location, method="DELETE", headers={
            "Authorization": f"Bearer {self.options['secret']}"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
                emit(event="deleted", status=response.status)
        except urllib.error.HTTPError as error:
            emit(event="deleted", status=error.code)

    def pull(self) -> None:
        o = self.options
        session = self.call("POST", "/sessions/new")["sessionId"]
        reply = self.call("POST", f"/sessions/{session}/tracks/new", {"tracks": [
            {"location": "remote", "sessionId": o["publisher"], "trackName": name}
            for name in o["tracks"]]})
        for item in reply["tracks"]:
            if "errorCode" in item:
                emit(event="error", error=item)
        self.set_description("set-remote-description", GstWebRTC.WebRTCSDPType.OFFER,
                             reply["sessionDescription"]["sdp"])
        reply = self.promise("create-answer", None)
        answer = reply.get_value("answer") if reply is not None else None
        if answer is None:
            raise RuntimeError(f"create-answer failed: {reply}")
        sdp = answer.sdp.as_text()
        if o.get("strip_profile_level_id"):
            sdp = re.sub(r";?profile-level-id=[0-9a-fA-F]+", "", sdp)
            sdp = re.sub(r"^a=fmtp:(\d+) ;", r"a=fmtp:\1 ", sdp, flags=re.M)
        self.set_description("set-local-description", GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        self.mark("answer")
        time.sleep(o.get("renegotiate_delay", 0))  # signalling slower than ICE
        self.call("PUT", f"/sessions/{session}/renegotiate",
                  {"sessionDescription": {"type": "answer", "sdp": sdp}})
        self.mark("renegotiated")
        emit(event="pulling", sessionId=session,
             answer=sdp if o.get("show_sdp") else None)

    # -- run -----------------------------------------------------------------------------

    def tick(self) -> bool:
        for kind in self.frames:
            self.per_second[kind].append(self.frames[kind])
        return True

    def run(self) -> None:
        mode = self.options["mode"]
        self.build(publish=mode in ("publish", "whip"))
        self.location = None
        early = mode == "publish" and self.options.get("early_offer")
        self.pipeline.set_state(Gst.State.READY if early else Gst.State.PLAYING)
        work = threading.Thread(target=self.negotiate, args=(mode,), daemon=True)
        work.start()
        GLib.timeout_add(1000, self.tick)
        GLib.timeout_add(int(self.options.get("seconds", 10) * 1000), self.loop.quit)
        # SIGTERM ends the run as the timeout does (a WHIP client then DELETEs its resource)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, 15, lambda: self.loop.quit() or False)
        self.loop.run()
        if self.location is not None:
            self.whip_delete()
        self.pipeline.set_state(Gst.State.NULL)
        per_second = {kind: [b - a for a, b in zip([0] + counts, counts)]
                      for kind, counts in self.per_second.items()}
        emit(event="done", frames=self.frames, per_second=per_second, width=self.width,
             timings=self.timings)

    def negotiate(self, mode: str) -> None:
        try:
            {"publish": self.publish, "whip": self.whip}.get(mode, self.pull)()
        except Exception as error:  # report, then stop: the test reads the error
            emit(event="error", error=repr(error))
            GLib.idle_add(self.loop.quit)


def main() -> None:
    faulthandler.enable()
    Gst.init(None)
    Peer(json.loads(sys.argv[1])).run()


if __name__ == "__main__":
    main()
