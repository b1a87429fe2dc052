"""Crash and concurrency stress for the local runtime (issue 13 figures).

1. SIGKILL ``flowc run`` at N random points (default 20) of a 12-step DAG with random step
   durations, then ``flowc run --resume``; count completed steps that ran again (must be 0) and
   outputs lost or corrupt (must be 0).
2. K ``flowc run`` processes at once on one ``.flowc`` (default 8): all succeed, histories
   complete and separate.

Usage: python bench/crash_resume.py [--kills 20] [--concurrent 8] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLOWC = [sys.executable, "-m", "flowc"]
STEPS = {
    "a": [],
    "b": ["a"],
    "c": ["a"],
    "d": ["b"],
    "e": ["b", "c"],
    "f": ["c"],
    "g": ["d"],
    "h": ["e"],
    "i": ["f", "g"],
    "j": ["h"],
    "k": ["i", "j"],
    "l": ["k"],
}


def write_flow(folder: Path, rng: random.Random, fast: bool = False) -> tuple[Path, Path]:
    log = folder / "calls.txt"
    lines = ["flowc: 1", "name: crash", "steps:"]
    for name, ups in STEPS.items():
        value = '"${steps.' + ups[0] + '.outputs.v}"' if ups else "0"
        after = f", after: [{', '.join(ups[1:])}]" if len(ups) > 1 else ""
        secs = 0 if fast else round(rng.uniform(0.05, 0.4), 3)
        lines.append(
            f'  {name}: {{run: "flowc_rt.steps:record", with: {{log: "{log}", name: {name}, '
            f"value: {value}, seconds: {secs}}}, outputs: [v]{after}}}"
        )
    flow = folder / "flow.yaml"
    flow.write_text("\n".join(lines) + "\n")
    return flow, log


def states(db: Path) -> tuple[str | None, dict[str, str]]:
    if not db.exists():
        return None, {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        run = con.execute("SELECT run_id FROM runs").fetchone()
        rows = con.execute("SELECT step, status FROM steps").fetchall()
    except sqlite3.OperationalError:
        return None, {}
    finally:
        con.close()
    return (run[0] if run else None), dict(rows)


def env() -> dict[str, str]:
    pkgs = str(REPO / "tests" / "fixtures" / "pkgs")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [pkgs, os.environ.get("PYTHONPATH")])),
    }


def crash_once(folder: Path, rng: random.Random) -> dict[str, int]:
    flow, log = write_flow(folder, rng)
    root = folder / ".flowc"
    proc = subprocess.Popen(
        [*FLOWC, "run", str(flow), "--root", str(root), "--max-workers", "3"],
        cwd=folder,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # wait for the run to exist, then kill after a random delay
    while states(root / "metadata.db")[0] is None and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 1.6))
    finished_first = proc.poll() is not None
    if not finished_first:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id, before = states(root / "metadata.db")
    completed = {s for s, st in before.items() if st == "success"}
    out = subprocess.run(
        [*FLOWC, "run", str(flow), "--root", str(root), "--resume", str(run_id)],
        cwd=folder,
        env=env(),
        capture_output=True,
        text=True,
    )
    calls = log.read_text().splitlines()
    _, after = states(root / "metadata.db")
    lost = 0
    for step in STEPS:
        art = root / "runs" / str(run_id) / step / "v.json"
        try:
            if json.loads(art.read_text()) != 0:
                lost += 1
        except (OSError, ValueError):
            lost += 1
    return {
        "killed": int(not finished_first),
        "completed_at_kill": len(completed),
        "reran_completed": sum(calls.count(s) > 1 for s in completed),
        "lost_or_corrupt": lost,
        "resume_failed": int(out.returncode != 0 or set(after.values()) != {"success"}),
    }


def concurrent(folder: Path, k: int) -> dict[str, int]:
    flow, log = write_flow(folder, random.Random(0), fast=True)
    root = folder / ".flowc"
    procs = [
        subprocess.Popen(
            [*FLOWC, "run", str(flow), "--root", str(root)],
            cwd=folder,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(k)
    ]
    codes = [p.wait() for p in procs]
    con = sqlite3.connect(root / "metadata.db")
    runs = con.execute("SELECT run_id, status FROM runs").fetchall()
    steps = dict(con.execute("SELECT run_id, count(*) FROM steps GROUP BY run_id").fetchall())
    return {
        "processes": k,
        "exit_0": codes.count(0),
        "runs_success": sum(s == "success" for _, s in runs),
        "runs_complete": sum(n == len(STEPS) for n in steps.values()),
        "calls": len(log.read_text().splitlines()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    totals: dict[str, int] = {}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.kills):
            folder = Path(tmp) / f"k{i}"
            folder.mkdir()
            res = crash_once(folder, rng)
            for key, v in res.items():
                totals[key] = totals.get(key, 0) + v
            print(f"kill {i + 1:2d}: {res}", flush=True)
        print(f"SIGKILL + resume, {args.kills} rounds in {time.monotonic() - t0:.0f}s: {totals}")
        folder = Path(tmp) / "conc"
        folder.mkdir()
        print(
            f"{args.concurrent} concurrent runs on one store: {concurrent(folder, args.concurrent)}"
        )


if __name__ == "__main__":
    main()
