"""Before / after: the same whole-process commands from two checkouts of flowc, paired run by
run (the figure a change's note quotes). ``REV`` is exported with ``git archive`` to a temporary
folder and put first on PYTHONPATH; the working tree is the other side. Same interpreter, same
bytecode rule (bench/_proc.py), each side also paired with ``python -c pass`` so both are
stated the way bench/run_all.py states them.

    python bench/ab_bench.py REV [--pairs 7] [--only validate,check,all,run,version]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _proc import PY_PASS, REPO, bytecode_env, once, precompile  # noqa: E402
from compile_targets_bench import flow_text  # noqa: E402
from engines_bench import flow_yaml as run_flow_yaml  # noqa: E402

FLOWC = [sys.executable, "-m", "flowc"]


def export(rev: str, dest: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rev")
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--only", default="version,validate,check,all,run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        old = d / "old"
        old.mkdir()
        export(args.rev, old)
        precompile()
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(old)],
            env=bytecode_env(),
            capture_output=True,
        )
        work = d / "work"
        work.mkdir()
        (work / ".git").mkdir()
        (work / "f20.yaml").write_text(flow_text(20))
        (work / "f1k.yaml").write_text(flow_text(1000))
        (work / "run.yaml").write_text(run_flow_yaml(50))
        sides = {
            "before": bytecode_env({"PYTHONPATH": f"{old}:{BENCH}"}),
            "after": bytecode_env({"PYTHONPATH": f"{REPO}:{BENCH}"}),
        }
        for env in sides.values():
            once(FLOWC + ["compile", "f20.yaml", "-t", "airflow", "-o", "o20"], work, env)
        cmds = {
            "version": ["--version"],
            "validate": ["validate", "f20.yaml"],
            "check": ["compile", "f20.yaml", "-t", "airflow", "-o", "o20", "--check"],
            "all": ["compile", "f1k.yaml", "--all", "--stack", "gcp", "-o", "o1k"],
            "run": ["run", "run.yaml"],
        }
        print(f"{'command':<58} {'before ms':>10} {'after ms':>10} {'after/before':>13}")
        for key in args.only.split(","):
            cmd = FLOWC + cmds[key]
            for env in sides.values():  # warm-up (and an existing output folder for --all)
                once(cmd, work, env)
            t: dict[str, list[float]] = {"before": [], "after": [], "pass": []}
            for i in range(args.pairs):
                order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
                for side in order:
                    t[side].append(once(cmd, work, sides[side]))
                t["pass"].append(once(PY_PASS, work, sides["after"]))
            ratios = sorted(a / b for a, b in zip(t["after"], t["before"], strict=True))
            med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
            print(
                f"{'flowc ' + ' '.join(cmds[key]):<58} {med['before'] * 1000:>10.0f} "
                f"{med['after'] * 1000:>10.0f} {ratios[len(ratios) // 2]:>8.2f} "
                f"({ratios[0]:.2f}-{ratios[-1]:.2f})   python -c pass {med['pass'] * 1000:.0f} ms"
                f" -> {med['before'] / med['pass']:.1f}x / {med['after'] / med['pass']:.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
