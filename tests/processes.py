"""
A child process whose stdout lines a thread collects: what the namespace and
browser tests start (``ip netns exec ...``, ``node run_page.js ...``) and read
progress lines from.
"""

from __future__ import annotations

import subprocess
import threading
import time


class Lines:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, command: list[str], **kwargs) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, **kwargs)
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout),
                         daemon=True).start()

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if self.process.poll() is not None and not any(
                    line.startswith(prefix) for line in self.lines):
                break
            time.sleep(0.1)
        raise AssertionError(f"{prefix!r} not seen:\n" + "".join(self.lines[-40:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
