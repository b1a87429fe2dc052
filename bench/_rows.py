"""The one result format every bench script can hand to bench/run_all.py.

A script calls :func:`emit` with its rows; it prints them human-readable and, when run by
run_all (``FLOWC_BENCH_JSON=1``), as one ``FLOWC_BENCH_ROWS <json>`` line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass


@dataclass
class Row:
    measurement: str
    flowc: str  # flowc's figure, with its unit
    baseline: str  # the baseline's figure (run side by side), with its unit
    ratio: float | None  # flowc / baseline (or as the goal states it)
    goal: str
    met: bool | None  # None: no goal


def emit(rows: list[Row]) -> None:
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        met = "-" if r.met is None else ("met" if r.met else "NOT met")
        print(
            f"{r.measurement}: flowc {r.flowc} | baseline {r.baseline} | ratio {ratio} | goal {r.goal} | {met}"
        )
    if os.environ.get("FLOWC_BENCH_JSON") == "1":
        print("FLOWC_BENCH_ROWS " + json.dumps([asdict(r) for r in rows]), flush=True)
