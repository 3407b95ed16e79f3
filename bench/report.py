"""
bench/report.py: write the figures of bench/README.md from bench/results/*.json.

Run: ``.venv/bin/python bench/report.py`` (``--check``: exit 1 if README.md is not
what the JSON files give, without writing).

bench/README.md holds one marked section per bench::

    <!-- results:forward -->
    ... generated, never edited by hand ...
    <!-- /results:forward -->

Each section is rewritten from ``bench/results/<bench>.json`` (written by the
bench itself, bench/record.py): a line naming the commit, date, machine
(cores, CPU model, kernel, Python), load average at start and end, the
command and its duration, then every line the bench printed, verbatim, in a
code block.  A bench without a JSON file gets a line saying so.  Nothing
between the markers survives a run, so no row can be edited by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RESULTS = HERE / "results"
SECTION = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
                     re.S)


def describe(document: dict) -> str:
    """The provenance line of one run."""
    machine = document["machine"]
    versions = machine.get("versions", {})
    load = "/".join(f"{x:.1f}" for x in machine.get("load_average", [])[:1]
                    + machine.get("load_average_end", [])[:1])
    peers = ", ".join(f"{k} {v}" for k, v in versions.items() if v and k not in ("python",))
    return (f"Commit `{document['commit']}`, {document['date']}, {machine['cores']} cores "
            f"({machine['cpu_model']}), Linux {machine['kernel']}, Python "
            f"{versions.get('python', '?')}; {peers}.  Load average (1 min) at start/end: "
            f"{load}.  Command: `{' '.join(document['command'])}` "
            f"({document.get('seconds', '?')} s).")


def section(name: str) -> str:
    """The generated body of section ``name``."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return f"No results yet: `bench/results/{name}.json` does not exist (run the command above).\n"
    document = json.loads(path.read_text())
    printed = "\n".join(document["printed"]).rstrip("\n")
    return f"{describe(document)}\n\n```\n{printed}\n```\n"


def render(text: str) -> str:
    """``text`` with every marked section regenerated."""
    return SECTION.sub(lambda m: m[1] + section(m["name"]) + m[4], text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    options = parser.parse_args(argv)
    text = README.read_text()
    names = [m["name"] for m in SECTION.finditer(text)]
    if not names:
        print("bench/README.md has no <!-- results:NAME --> sections", file=sys.stderr)
        return 1
    new = render(text)
    if options.check:
        if new != text:
            print("bench/README.md is stale: run .venv/bin/python bench/report.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print(f"bench/README.md: regenerated {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
