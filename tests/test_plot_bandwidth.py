"""bench/plot_bandwidth.py draws a shaped-test record (docs/bandwidth.md) into a PNG."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import require_module

ROOT = Path(__file__).resolve().parent.parent


def load_plot():
    spec = importlib.util.spec_from_file_location("plot_bandwidth",
                                                  ROOT / "bench" / "plot_bandwidth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rates_from_counters() -> None:
    plot = load_plot()
    assert plot.kbit("400kbit") == 400 and plot.kbit("3mbit") == 3000
    record = {"samples": [
        {"t": 0, "width": 320, "frames": 0, "freezes": 0, "bytes": 0,
         "concealed": 0, "audioSamples": 0},
        {"t": 500, "width": 320, "frames": 15, "freezes": 0, "bytes": 10000,
         "concealed": 2400, "audioSamples": 24000}]}
    s = plot.series(record)
    assert s["t"] == [0.5] and s["fps"] == [30] and s["kbps"] == [160]
    assert s["concealed"] == [10]


def test_draws_a_png(tmp_path) -> None:
    require_module("matplotlib")
    plot = load_plot()
    samples = [{"t": 500 * i, "width": 320 if i < 20 else 1280, "frames": 15 * i,
                "freezes": int(i > 30), "bytes": 20000 * i, "concealed": 0,
                "audioSamples": 24000 * i} for i in range(40)]
    sfu = [{"t": 0.5 * i, "rid": "q" if i < 20 else "f", "estimate": 300000 + 10000 * i}
           for i in range(40)]
    output = tmp_path / "plot.png"
    plot.plot({"thin": "400kbit", "wide": "3mbit", "lifted": 10.0, "samples": samples,
               "sfu": sfu}, output)
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
