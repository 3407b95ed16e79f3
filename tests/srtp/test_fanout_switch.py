"""
The fan-out's C helpers are optional: without them (or with ``REALTIME_FANOUT_C=0``) the
Python paths run.  The comparisons of both paths' octets are in tests/sfu/test_sendpath.py
(``copy_protect``) and tests/net/test_mmsg.py (``fill``).
"""

from __future__ import annotations

import os
import subprocess
import sys

from realtime.srtp import fanout

from tests.conftest import require

PROBE = ("from realtime.srtp import fanout; from realtime.net import mmsg; "
         "from realtime.sfu import sendpath; "
         "print(fanout.AVAILABLE, fanout.copy_protect is None, mmsg._fill is None, "
         "sendpath.copy_protect is fanout.copy_protect)")


def probe(value: str) -> str:
    env = {**os.environ, "REALTIME_FANOUT_C": value}
    return subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_switched_off_the_python_paths_run() -> None:
    assert probe("0") == "False True True True"


def test_built_helpers_are_used_by_default() -> None:
    require(fanout.AVAILABLE, "the C helpers are not built (make venv: gcc and python3-dev)")
    assert probe("1") == "True False False True"
