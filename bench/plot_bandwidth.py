"""
bench/plot_bandwidth.py: the shaped-subscriber run as a picture (docs/bandwidth.png).

Input is what ``tests/interop/test_adaptive_subscriber.py`` writes when run
with ``REALTIME_BANDWIDTH_RECORD=FILE``: the subscriber's own webrtc-stats
every 500 ms (``samples``: frame width, frames decoded, freezeCount, bytes
received, audio concealed/received samples) and the SFU's view at the same
pace (``sfu``: the layer the allocator chose, its reason, and the subscriber's
send-side estimate from ``/diagnostics``, docs/bandwidth.md).

::

    REALTIME_BANDWIDTH_RECORD=/tmp/shaped.json REALTIME_INTEROP=required \\
        .venv/bin/python -m pytest -q tests/interop/test_adaptive_subscriber.py
    .venv/bin/python bench/plot_bandwidth.py /tmp/shaped.json docs/bandwidth.png

Three panels share the time axis (seconds since the subscriber connected):
the link's shaping, the SFU's estimate and the bitrate the subscriber received
(kbit/s); the width of the frames it decoded (the simulcast layer: q = 320,
h = 640, f = 1280) with freezes marked; frames decoded per second and the
share of audio samples concealed.  matplotlib (the ``test`` extra) draws it,
with the Agg backend: no display is needed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


NOMINAL = {"q": 320, "h": 640, "f": 1280}  # the fake camera's 1280x720 and its layers


def kbit(rate: str) -> float:
    """``"400kbit"`` -> 400.0, ``"3mbit"`` -> 3000.0 (tc's units)."""
    number, unit = re.fullmatch(r"([\d.]+)\s*([km]?)bit", rate.lower()).groups()
    return float(number) * {"": 0.001, "k": 1.0, "m": 1000.0}[unit]


def series(record: dict) -> dict[str, list[float]]:
    """Turn the cumulative counters of the record into rates per interval."""
    out: dict[str, list[float]] = {k: [] for k in
                                   ("t", "width", "kbps", "fps", "freezes", "concealed")}
    samples = record["samples"]
    for previous, s in zip(samples, samples[1:]):
        dt = (s["t"] - previous["t"]) / 1000
        if dt <= 0:
            continue
        out["t"].append(s["t"] / 1000)
        out["width"].append(s["width"])
        out["kbps"].append((s["bytes"] - previous["bytes"]) * 8 / dt / 1000)
        out["fps"].append((s["frames"] - previous["frames"]) / dt)
        out["freezes"].append(s["freezes"] - previous["freezes"])
        got = s.get("audioSamples", 0) - previous.get("audioSamples", 0)
        hidden = s.get("concealed", 0) - previous.get("concealed", 0)
        out["concealed"].append(100 * hidden / got if got > 0 else 0.0)
    return out


def plot(record: dict, output: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = series(record)
    sfu = [v for v in record["sfu"] if v.get("estimate") is not None]
    lifted = record.get("lifted") or 0.0
    end = max(s["t"] + [v["t"] for v in record["sfu"]] + [lifted])
    fig, (rates, widths, fps) = plt.subplots(3, 1, sharex=True, figsize=(9, 7.5),
                                             height_ratios=(3, 2, 2))
    fig.suptitle("A Chromium subscriber shaped to "
                 f"{record['thin']}, then {record['wide']} (tests/interop/test_adaptive_subscriber.py)",
                 fontsize=10)
    rates.step([0, lifted, end], [kbit(record["thin"]), kbit(record["wide"]),
                                  kbit(record["wide"])],
               where="post", color="grey", linestyle="--", label="link (tc tbf)")
    rates.plot([v["t"] for v in sfu], [v["estimate"] / 1000 for v in sfu],
               color="tab:blue", label="SFU estimate (GCC)")
    rates.plot(s["t"], s["kbps"], color="tab:orange", label="received (subscriber)")
    rates.set_ylabel("kbit/s")
    rates.set_yscale("log")
    rates.legend(loc="upper left", fontsize=8)
    widths.step(s["t"], s["width"], where="post", color="tab:green", label="frame width")
    for t, frozen in zip(s["t"], s["freezes"]):
        if frozen:
            widths.axvline(t, color="tab:red", alpha=0.6)
    widths.set_yticks([320, 640, 1280], ["q 320", "h 640", "f 1280"])
    widths.set_ylim(0, 1400)
    widths.set_ylabel("layer (freezes red)")
    widths.step([v["t"] for v in record["sfu"]],
                [NOMINAL.get(v.get("rid"), float("nan")) for v in record["sfu"]],
                where="post", color="black", linestyle=":", label="rid the SFU sends")
    widths.legend(loc="upper left", fontsize=8)
    fps.plot(s["t"], s["fps"], color="tab:purple", label="frames decoded / s")
    fps.set_ylabel("frames / s")
    fps.set_ylim(0, 40)
    audio = fps.twinx()
    audio.plot(s["t"], s["concealed"], color="tab:brown", alpha=0.7,
               label="audio concealed %")
    audio.set_ylim(0, 100)
    audio.set_ylabel("audio concealed %")
    fps.set_xlabel("seconds since the subscriber connected")
    for axis in (rates, widths, fps):
        axis.axvline(lifted, color="grey", linewidth=0.8)
        axis.grid(alpha=0.3)
    handles = fps.get_legend_handles_labels()
    more = audio.get_legend_handles_labels()
    fps.legend(handles[0] + more[0], handles[1] + more[1], loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("record", type=Path, help="JSON from REALTIME_BANDWIDTH_RECORD")
    parser.add_argument("output", type=Path, nargs="?",
                        default=Path(__file__).resolve().parent.parent / "docs" / "bandwidth.png")
    args = parser.parse_args()
    plot(json.loads(args.record.read_text()), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
