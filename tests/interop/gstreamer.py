"""
Run :mod:`tests.interop.gst_peer` (GStreamer ``webrtcbin``) against the real service.

The peer needs Debian's ``/usr/bin/python3`` with python3-gi, GStreamer's
webrtcbin and libnice's GObject bindings (``scripts/install-interop-tools``
installs them); :func:`require_gstreamer` fails under
``REALTIME_INTEROP=required`` when any is missing, and skips otherwise.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from tests.conftest import require, require_tool
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server, stop_process

PEER = Path(__file__).resolve().with_name("gst_peer.py")
PYTHON = "/usr/bin/python3"
_CHECK = ('import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstWebRTC", "1.0");'
          ' gi.require_version("Nice", "0.1"); from gi.repository import Gst, Nice; Gst.init(None);'
          ' assert all(Gst.ElementFactory.find(e) for e in ("webrtcbin", "vp8enc", "x264enc",'
          ' "opusenc", "avdec_h264", "vp8dec", "nicesrc"))')


def require_gstreamer() -> None:
    """Fail (required mode) or skip unless the webrtcbin peer can run."""
    require_tool("python3", PYTHON)
    probe = subprocess.run([PYTHON, "-c", _CHECK], capture_output=True, text=True, timeout=60)
    require(probe.returncode == 0,
            "GStreamer webrtcbin with python3-gi and gir1.2-nice-0.1 is not installed: "
            + probe.stderr.strip()[-300:])


class GstPeer:
    """One ``gst_peer.py`` subprocess; its JSON lines arrive in :attr:`events`."""

    def __init__(self, server: Server, **options) -> None:
        options = {"api": server.api_url(), "app": APP_ID, "secret": APP_SECRET, **options}
        self.process = subprocess.Popen([PYTHON, str(PEER), json.dumps(options)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self.events.append({"event": "exit"})
            self._changed.notify_all()

    def _read_errors(self) -> None:
        for line in self.process.stderr:
            if len(self.stderr) < 200:
                self.stderr.append(line)

    def wait_for(self, name: str, timeout: float) -> dict:
        """Return the first event ``name``; fail on ``error``/exit or after ``timeout``."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: any(e["event"] in (name, "error", "exit") for e in self.events), timeout)
            found = next((e for e in self.events if e["event"] in (name, "error", "exit")), None)
        assert ok and found is not None and found["event"] == name, (
            name, self.events, "".join(self.stderr[-20:]))
        return found

    def stop(self) -> None:
        stop_process(self.process)
