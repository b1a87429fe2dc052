"""Long mutation-fuzzing run of the front-end (see tests/fuzz_frontend.py).

    python bench/fuzz_frontend.py [--cases 5000] [--seed 0] [--golden] [--emit]

``--golden`` mutates every golden flow too; ``--emit`` emits every target for flows that compile.

Prints the number of cases, how many compiled / failed with located errors, and every crash.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("fuzz_frontend", ROOT / "tests" / "fuzz_frontend.py")
assert spec and spec.loader
fuzz = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fuzz)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--golden", action="store_true", help="mutate the golden flows too")
    ap.add_argument("--emit", action="store_true", help="emit every target for flows that compile")
    args = ap.parse_args()
    bases = fuzz.BASES + (fuzz.GOLDEN_BASES if args.golden else [])
    check = fuzz.check_emit if args.emit else fuzz.check
    rng = random.Random(args.seed)
    counts = {"ok": 0, "error": 0, "crash": 0}
    t0 = time.perf_counter()
    for i in range(args.cases):
        text = fuzz.mutate(rng, bases)
        try:
            counts[check(text)] += 1
        except Exception:
            counts["crash"] += 1
            print(f"--- crash in case {i} ---\n{text[:2000]}\n{traceback.format_exc()}")
    dt = time.perf_counter() - t0
    print(
        f"{args.cases} cases in {dt:.1f}s: {counts['ok']} compiled, {counts['error']} located "
        f"errors, {counts['crash']} crashes/unlocated"
    )
    return 1 if counts["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
