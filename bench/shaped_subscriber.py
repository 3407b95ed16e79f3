"""
Issue 15's shaped subscriber, through ours and through Janus's VideoRoom, in one run.

Run (about 2.5 minutes; as root: it makes a network namespace)::

    flock /tmp/realtime-interop.lock .venv/bin/python bench/shaped_subscriber.py

The scenario of tests/interop/test_adaptive_subscriber.py, once per server, with
the same two headless Chromium processes (``bench/pages/chromium_tabs.js``: one
browser per role, a new tab per server)::

    root namespace                                   namespace rtbwN (tests/interop/shaped.py)
      publisher Chromium (fake camera 1280x720,        subscriber Chromium
        simulcast f, h = 1/2, q = 1/4, + Opus)           pulls video + audio, samples
      the server on 10.95.N.1 ── veth, tc tbf ──>        webrtc-stats every 500 ms
      this bench's HTTP server on 10.95.N.1:             (bench/pages/shaped-subscribe.html)
        the pages, and /janus/* (Janus's REST API driven from here)

* **ours**: ``twistd realtime`` on the veth's root address; the publisher pushes
  through the Cloudflare-compatible API, the subscriber pulls with
  ``preferredRid: ""`` (the SFU chooses: docs/bandwidth.md).
* **janus**: Debian's Janus 1.1, ``bench/janus/`` (ICE-lite, REST on 127.0.0.1),
  its ICE on the veth's root address (libnice skips loopback).  The publisher's
  page sends its simulcast offer to ``POST /janus/publish``, which joins room
  1234 as a publisher and publishes it (``join`` + ``publish`` with the JSEP
  offer, then end of trickle); the subscriber's page gets Janus's offer from
  ``POST /janus/subscribe`` (``join`` as a subscriber with ``streams: [{feed}]``
  and nothing else: Janus's defaults) and answers through ``POST /janus/start``.
  No candidate trickles: both pages wait for ICE gathering to complete.

Phases, per server: the downlink shaped to 400 kbit/s (``tc tbf``, 15 kB bucket,
300 ms) for ``--shaped`` s (20), then lifted to 3 Mbit/s for ``--lifted`` s (15).
Printed and written to ``bench/results/shaped_subscriber.json``, per server:
frames decoded and frames/s, freezeCount and totalFreezesDuration after the
first 5 s (per phase), and pauseCount with the longest stall: webrtc-stats counts
no frame rendered for 5 s or more as a *pause*, not a freeze, so a subscriber
that decodes nothing at all shows no freeze; the frame width over time
(q <= 400 < h <= 800 < f), the time from the lift to h and to f (the first
half-second sample at that width with >= 10 frames/s decoded), audio concealment
(concealedSamples / totalSamplesReceived) per phase, and what each layer of the
publisher sent (whether the server made it change anything).  Without Janus
(``apt-get install --no-install-recommends janus``, tried as root as
bench/forward.py does) the bench says so and runs ours only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from forward_servers import JanusServer  # noqa: E402
from forward_signal import JanusSignalling  # noqa: E402
from record import Record  # noqa: E402

from tests.interop.realtime_server import APP_ID, APP_SECRET, Server  # noqa: E402
from tests.interop.shaped import shaped_link  # noqa: E402

THIN, WIDE = "400kbit", "3mbit"
SETTLE_S = 5.0      # the first seconds are not judged (issue 15: "after the first 5 s")
PAGES = {"shaped-publish.html": HERE / "pages" / "shaped-publish.html",
         "shaped-subscribe.html": HERE / "pages" / "shaped-subscribe.html",
         "shaped-signal.js": HERE / "pages" / "shaped-signal.js",
         "cloudflare-api.js": ROOT / "tests" / "interop" / "pages" / "cloudflare-api.js"}
Q_MAX, H_MAX = 400, 800   # frame widths: q <= 400 < h <= 800 < f (1280)


class JanusBridge:
    """The pages' signalling to Janus's VideoRoom, over its REST API (one session per role)."""

    def __init__(self, url: str, room: int) -> None:
        self.url, self.room = url, room
        self.sessions: list[JanusSignalling] = []
        self.subscriber: JanusSignalling | None = None

    def publish(self, body: dict) -> dict:
        signalling = JanusSignalling(self.url, self.room)
        self.sessions.append(signalling)
        handle = signalling._attach()
        joined = signalling._message(handle, {"request": "join", "room": self.room,
                                              "ptype": "publisher", "display": "shaped"})
        event = signalling._message(handle, {"request": "publish", "audio": True, "video": True},
                                    {"type": "offer", "sdp": body["sdp"]})
        signalling._trickle_done(handle)
        return {"feed": joined["plugindata"]["data"]["id"], "sdp": event["jsep"]["sdp"]}

    def subscribe(self, body: dict) -> dict:
        self.subscriber = signalling = JanusSignalling(self.url, self.room)
        self.sessions.append(signalling)
        handle = signalling._attach()
        deadline = time.monotonic() + 15
        while True:    # the feed exists once the publisher's PeerConnection is up
            try:
                event = signalling._message(handle, {
                    "request": "join", "room": self.room, "ptype": "subscriber",
                    "streams": [{"feed": int(body["feed"])}]})
                break
            except RuntimeError as error:
                if "No such feed" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return {"handle": handle, "sdp": event["jsep"]["sdp"]}

    def start(self, body: dict) -> dict:
        signalling = self.subscriber
        signalling._message(body["handle"], {"request": "start"},
                            {"type": "answer", "sdp": body["sdp"]})
        signalling._trickle_done(body["handle"])
        return {}

    def close(self) -> None:
        for signalling in self.sessions:
            with contextlib.suppress(Exception):
                signalling._request(f"{signalling.url}/{signalling.session}", {"janus": "destroy"})


class Handler(BaseHTTPRequestHandler):
    """GET: the pages; POST /janus/{publish,subscribe,start}: :class:`JanusBridge`."""

    bridge: list = [None]   # the current run's JanusBridge (set by the bench)

    def log_message(self, *args) -> None:
        pass

    def reply(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = PAGES.get(urllib.parse.urlsplit(self.path).path.lstrip("/"))
        if path is None:
            return self.reply(404, b"not found", "text/plain")
        kind = "text/html" if path.suffix == ".html" else "text/javascript"
        self.reply(200, path.read_bytes(), f"{kind}; charset=utf-8")

    def do_POST(self) -> None:
        what = self.path.rsplit("/", 1)[-1]
        bridge = self.bridge[0]
        if not self.path.startswith("/janus/") or bridge is None or what not in (
                "publish", "subscribe", "start"):
            return self.reply(404, b"{}", "application/json")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            answer = getattr(bridge, what)(body)
            self.reply(200, json.dumps(answer).encode(), "application/json")
        except Exception as error:  # the page reports it; the bench goes on
            self.reply(500, json.dumps({"error": f"{type(error).__name__}: {error}"[:500]})
                       .encode(), "application/json")


class Tabs:
    """One headless Chromium (``bench/pages/chromium_tabs.js``), optionally in a namespace."""

    def __init__(self, prefix: list[str], flags: list[str], lifetime: float, env: dict) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*prefix, "node", str(HERE / "pages" / "chromium_tabs.js"),
             str(int(lifetime * 1000)), *flags],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env)
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout),
                         daemon=True).start()
        self.wait("READY", None, 30)

    def open(self, tab: str, url: str, timeout: float) -> None:
        self.process.stdin.write(json.dumps({"id": tab, "url": url,
                                             "timeout": int(timeout * 1000)}) + "\n")
        self.process.stdin.flush()

    def wait(self, kind: str, tab: str | None, timeout: float) -> str:
        """The rest of the first line ``KIND tab ...`` or of the tab's console line
        ``KIND ...``; raise on the tab's ERROR, the browser's exit or timeout."""
        prefixes = (f"{kind}\n",) if tab is None else (f"{kind} {tab} ", f"CONSOLE {tab} {kind} ")
        failures = () if tab is None else (f"ERROR {tab} ", f"PAGEERROR {tab} ")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                for prefix in prefixes:
                    if line.startswith(prefix):
                        return line[len(prefix):].strip()
                if line.startswith(failures) or line.startswith("ERROR - "):
                    raise RuntimeError(line.strip())
            if self.process.poll() is not None:
                raise RuntimeError("Chromium exited:\n" + "".join(self.lines[-20:]))
            time.sleep(0.05)
        raise RuntimeError(f"{kind} {tab}: not within {timeout} s:\n" + "".join(self.lines[-20:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()


def layer(width: int) -> str:
    return "-" if not width else "q" if width <= Q_MAX else "h" if width <= H_MAX else "f"


def summarise(samples: list[dict], lifted_ms: float, end_ms: float) -> dict:
    """The figures of one server's run from the subscriber's samples (t in ms)."""
    def stall(inside: list[dict]) -> float:
        """The longest time the sampled frames decoded did not move (0.5 s resolution)."""
        longest, since = 0.0, inside[0]
        for s in inside[1:]:
            if s["frames"] != since["frames"]:
                since = s
            longest = max(longest, (s["t"] - since["t"]) / 1000)
        return round(longest, 1)

    def window(start: float, stop: float) -> dict:
        inside = [s for s in samples if start <= s["t"] <= stop]
        if len(inside) < 2:
            return {"samples": len(inside)}
        first, last = inside[0], inside[-1]
        seconds = (last["t"] - first["t"]) / 1000
        received = last.get("audioSamples", 0) - first.get("audioSamples", 0)
        concealed = last.get("concealed", 0) - first.get("concealed", 0)
        return {"from_s": first["t"] / 1000, "to_s": last["t"] / 1000,
                "frames_decoded": last["frames"] - first["frames"],
                "frames_per_s": round((last["frames"] - first["frames"]) / seconds, 1),
                "freezes": last["freezes"] - first["freezes"],
                "freeze_seconds": round(last["freezeSeconds"] - first["freezeSeconds"], 2),
                "pauses": last["pauses"] - first["pauses"],
                "pause_seconds": round(last["pauseSeconds"] - first["pauseSeconds"], 2),
                "longest_stall_s": stall(inside),
                "kbit_per_s": round((last["bytes"] - first["bytes"]) * 8 / seconds / 1000),
                "audio_concealed": round(concealed / received, 4) if received else None,
                "widths": sorted({s["width"] for s in inside})}

    changes: list[list] = []
    for s in samples:
        if not changes or changes[-1][1] != s["width"]:
            changes.append([round(s["t"] / 1000, 1), s["width"]])

    def reached(test) -> float | None:
        """Seconds from the lift to the first sample at such a width with >= 10 frames/s
        decoded since the previous one (a layer shown, not a stale width)."""
        for before, s in zip(samples, samples[1:]):
            if s["t"] >= lifted_ms and test(s["width"]) and (
                    s["frames"] - before["frames"]) * 1000 >= 10 * (s["t"] - before["t"]):
                return round((s["t"] - lifted_ms) / 1000, 1)
        return None

    return {"shaped": window(SETTLE_S * 1000, lifted_ms),
            "lifted": window(lifted_ms, end_ms),
            "after_first_5s": window(SETTLE_S * 1000, end_ms),
            "width_changes": changes,
            "lift_to_h_s": reached(lambda w: w > Q_MAX),
            "lift_to_f_s": reached(lambda w: w > H_MAX),
            "top_width": max((s["width"] for s in samples), default=0)}


def run_server(name: str, link, base: str, browsers: tuple[Tabs, Tabs], options,
               directory: Path) -> dict:
    """One pass of the scenario through ``name`` ("ours" or "janus"); return its figures."""
    publisher, subscriber = browsers
    shaped, lifted = options.shaped, options.lifted
    link.shape_downlink(THIN, change=True)
    trace: list[dict] = []
    directory.mkdir(parents=True, exist_ok=True)
    if name == "ours":
        server = Server(directory / "state", "--media-interface", link.ours,
                        "--api", f"tcp:0:interface={link.ours}", app=True)
        stop = server.stop
        query = {}
    else:
        janus = JanusServer(host=link.ours)
        Handler.bridge[0] = JanusBridge(janus.target["url"], janus.target["room"])

        def stop() -> None:
            Handler.bridge[0].close()
            Handler.bridge[0] = None
            janus.stop()
        query = {}
    try:
        if name == "ours":
            server.wait_ready()
            query = {"api": server.api_url(), "app": APP_ID, "secret": APP_SECRET}
        hold = shaped + lifted + 12
        publisher.open(f"pub-{name}", f"{base}/shaped-publish.html?" + urllib.parse.urlencode(
            {**query, "server": name, "hold": int(hold * 1000)}), hold + 30)
        published = json.loads(publisher.wait("PUBLISHED", f"pub-{name}", 40))
        time.sleep(2)  # the layers start
        pull = {"session": published.get("sessionId"), "track": published.get("trackName"),
                "audio": published.get("audioTrackName")} if name == "ours" else {
                "feed": published["feed"]}
        subscriber.open(f"sub-{name}", f"{base}/shaped-subscribe.html?" + urllib.parse.urlencode(
            {**query, **pull, "server": name, "hold": int((shaped + lifted) * 1000)}),
            shaped + lifted + 40)
        pulled = json.loads(subscriber.wait("PULLED", f"sub-{name}", 40))
        start = time.monotonic()
        lift = None
        while time.monotonic() - start < shaped + lifted - 0.5:
            if lift is None and time.monotonic() - start >= shaped:
                link.shape_downlink(WIDE, change=True)
                lift = time.monotonic() - start
            if name == "ours":  # the SFU's view: GET session (layer) + the estimate
                _, state = server.get(f"/sessions/{pulled['sessionId']}")
                _, diagnostics = server.get("/diagnostics")
                sfu = diagnostics.get("sessions", {}).get(pulled["sessionId"], {}).get("sfu", {})
                chosen = next((t["layer"] for t in state.get("tracks", []) if "layer" in t), {})
                trace.append({"t": round(time.monotonic() - start, 1), "rid": chosen.get("rid"),
                              "reason": chosen.get("reason"),
                              "estimate": (sfu.get("estimate") or {}).get("estimate")})
            time.sleep(1.0)
        result = json.loads(subscriber.wait("RESULT", f"sub-{name}", 30))
        if "error" in result:
            raise RuntimeError(f"subscriber: {result['error']}")
        sent = json.loads(publisher.wait("RESULT", f"pub-{name}", hold + 30))
    finally:
        stop()
    figures = summarise(result["samples"], lift * 1000, (shaped + lifted) * 1000)
    figures.update({"lifted_at_s": round(lift, 1), "samples": result["samples"],
                    "publisher": published, "publisher_layers": sent.get("layers", []),
                    "server_trace": trace})
    return figures


def report(record: Record, runs: dict) -> None:
    """Print the side-by-side table."""
    names = list(runs)
    record.print(f"{'':34}" + "".join(f"{n:>18}" for n in names))

    def row(label: str, value) -> None:
        record.print(f"{label:34}" + "".join(f"{value(runs[n])!s:>18}" for n in names))

    for phase, title in (("shaped", f"{THIN}, 5 s to the lift"),
                         ("lifted", f"{WIDE}, the lift to the end")):
        record.print(f"-- {title}")
        row("  frames decoded (frames/s)",
            lambda r: f"{r[phase].get('frames_decoded')} ({r[phase].get('frames_per_s')})")
        row("  freezeCount growth", lambda r: r[phase].get("freezes"))
        row("  totalFreezesDuration growth (s)", lambda r: r[phase].get("freeze_seconds"))
        row("  pauseCount growth (>= 5 s)", lambda r: r[phase].get("pauses"))
        row("  longest stall, no frame (s)", lambda r: r[phase].get("longest_stall_s"))
        row("  received kbit/s", lambda r: r[phase].get("kbit_per_s"))
        row("  widths decoded", lambda r: "/".join(map(str, r[phase].get("widths", []))))
        row("  audio concealed", lambda r: "-" if r[phase].get("audio_concealed") is None
            else f"{r[phase]['audio_concealed'] * 100:.1f}%")
    record.print("-- recovery")
    row("  lift -> h or f at >= 10 fps, s", lambda r: r["lift_to_h_s"])
    row("  lift -> f at >= 10 fps, s", lambda r: r["lift_to_f_s"])
    row("  top width decoded", lambda r: r["top_width"])
    for name in names:
        changes = " ".join(f"{t}s:{w}" for t, w in runs[name]["width_changes"])
        record.print(f"{name} width over time (lifted at {runs[name]['lifted_at_s']} s): {changes}")
        layers = runs[name]["publisher_layers"]
        if len(layers) >= 2:
            first, last = layers[0], layers[-1]
            ms = last["t"] - first["t"]
            rates = ", ".join(
                f"{rid} {(last[rid]['bytes'] - first[rid]['bytes']) * 8 / ms:.0f} kbit/s"
                for rid in ("f", "h", "q") if rid in first and rid in last)
            record.print(f"{name} publisher bytesSent per layer (mean over its run): {rates}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shaped", type=float, default=20.0, help="seconds at 400 kbit/s (20)")
    parser.add_argument("--lifted", type=float, default=15.0, help="seconds at 3 Mbit/s (15)")
    parser.add_argument("--servers", default="ours,janus", help="ours,janus (default both)")
    parser.add_argument("--json", help="where to write the record "
                                       "(default bench/results/shaped_subscriber.json)")
    options = parser.parse_args(argv)
    record = Record("shaped_subscriber", vars(options), options.json)
    missing = [tool for tool in ("ip", "tc", "node", "chromium") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        record.print(f"not run: needs root and {', '.join(missing) or 'ip, tc, node, chromium'}")
        return 1
    servers = [s for s in options.servers.split(",") if s]
    notes: dict[str, str] = {}
    if "janus" in servers:
        why = JanusServer.available()
        if why:
            record.print(f"janus: not run: {why}")
            notes["janus"] = why
            servers.remove("janus")
    runs: dict[str, dict] = {}
    if not servers:
        record.save({"thin": THIN, "wide": WIDE, "settle_s": SETTLE_S, "runs": runs,
                     "not_run": notes})
        return 1
    directory = Path(tempfile.mkdtemp(prefix="bench-shaped-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        link = stack.enter_context(shaped_link())
        link.shape_downlink(THIN)
        httpd = ThreadingHTTPServer((link.ours, 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        stack.callback(httpd.server_close)
        stack.callback(httpd.shutdown)
        base = f"http://{link.ours}:{httpd.server_address[1]}"
        # the pages are served from the veth's address: a secure context for getUserMedia
        flags = [f"--unsafely-treat-insecure-origin-as-secure={base}"]
        env = {**os.environ, "REALTIME_EXCLUDE": link.ours}
        lifetime = len(servers) * (options.shaped + options.lifted + 90) + 60
        publisher = Tabs([], flags, lifetime, env)
        stack.callback(publisher.stop)
        subscriber = Tabs(["ip", "netns", "exec", link.ns], flags, lifetime, env)
        stack.callback(subscriber.stop)
        for name in servers:
            record.print(f"{name}: publishing, then {options.shaped:.0f} s at {THIN}, "
                         f"{options.lifted:.0f} s at {WIDE}")
            try:
                runs[name] = run_server(name, link, base, (publisher, subscriber), options,
                                        directory / name)
            except Exception as error:  # reported; the other server still runs
                notes[name] = f"{type(error).__name__}: {error}"[:600]
                record.print(f"{name}: failed: {notes[name]}")
    if runs:
        report(record, runs)
    record.save({"thin": THIN, "wide": WIDE, "settle_s": SETTLE_S, "runs": runs,
                 "not_run": notes})
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main())
