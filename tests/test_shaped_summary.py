"""bench/shaped_subscriber.py's figures from a subscriber's webrtc-stats samples (issue 15)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    spec = importlib.util.spec_from_file_location("shaped_subscriber",
                                                  ROOT / "bench" / "shaped_subscriber.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def samples(widths_frames: list[tuple[int, int]]) -> list[dict]:
    """One sample per 500 ms: (width, frames decoded so far); 20 kB and 24000 audio samples
    each, no freeze counted (what Chromium reported when Janus sent f at 400 kbit/s)."""
    return [{"t": 500 * (i + 1), "width": width, "frames": frames, "fps": 0, "freezes": 0,
             "freezeSeconds": 0, "pauses": 0, "pauseSeconds": 0, "bytes": 20000 * i,
             "concealed": 240 * i, "audioSamples": 24000 * i}
            for i, (width, frames) in enumerate(widths_frames)]


def test_a_subscriber_that_decodes_nothing_shows_a_stall_not_a_freeze() -> None:
    """freezeCount and pauseCount stay 0 when frames stop from the start: the stall shows."""
    bench = load_bench()
    run = samples([(1280, 4)] * 40 + [(1280, 4 + 15 * i) for i in range(1, 31)])
    figures = bench.summarise(run, lifted_ms=20000, end_ms=35000)
    shaped = figures["shaped"]
    assert shaped["frames_decoded"] == 0 and shaped["freezes"] == 0
    assert shaped["longest_stall_s"] == 15.0
    assert shaped["audio_concealed"] == 0.01 and shaped["kbit_per_s"] == 320
    # the width never changed: recovery is the first half second with frames moving again
    assert figures["lift_to_f_s"] == 0.5 and figures["lift_to_h_s"] == 0.5
    assert figures["width_changes"] == [[0.5, 1280]]


def test_recovery_is_timed_to_the_layer_reached() -> None:
    bench = load_bench()
    run = samples([(320, 15 * i) for i in range(1, 51)] + [(640, 750 + 15 * i) for i in range(1, 6)]
                  + [(1280, 825 + 15 * i) for i in range(1, 16)])
    figures = bench.summarise(run, lifted_ms=20000, end_ms=35000)
    assert figures["shaped"]["longest_stall_s"] == 0.0
    assert figures["shaped"]["widths"] == [320] and figures["shaped"]["frames_per_s"] == 30.0
    assert figures["lift_to_h_s"] == 5.5 and figures["lift_to_f_s"] == 8.0
    assert [w for _, w in figures["width_changes"]] == [320, 640, 1280]
    assert bench.layer(320) == "q" and bench.layer(640) == "h" and bench.layer(1280) == "f"


def test_without_janus_the_bench_says_so(monkeypatch, tmp_path, capsys) -> None:
    """Janus missing: the reason is printed and recorded (and ours alone would run)."""
    bench = load_bench()
    monkeypatch.setattr(bench.os, "geteuid", lambda: 0)
    monkeypatch.setattr(bench.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(bench.JanusServer, "available",
                        staticmethod(lambda: "janus is not installed (apt-get install janus)"))
    output = tmp_path / "shaped.json"
    assert bench.main(["--servers", "janus", "--json", str(output)]) == 1
    assert "janus: not run: janus is not installed" in capsys.readouterr().out
    record = json.loads(output.read_text())
    assert record["results"]["not_run"] == {"janus": "janus is not installed (apt-get install janus)"}
    assert record["results"]["runs"] == {}
