"""Every user-facing ``flowc`` command, whole process, as users wait for it: each paired run by
run with ``python -c pass`` (the least a Python command costs), or with the peer doing the same
work. Bytecode caches as installed software has them (bench/_proc.py: written once before
anything is timed, PYTHONDONTWRITEBYTECODE never inherited). Every figure is the median of the
pairs, with min-max.

Goals (issue 25): ``compile --all`` 1,000 steps <= 25x ``python -c pass``; ``validate`` 20
steps <= 5x; ``compile --check`` 20 steps <= 7x; ``run`` 50 no-op steps <= 6x; a step timeout
(``defaults: {timeout: ...}``) costs <= 5 ms per step.

    python bench/cli_bench.py [--quick] [--pairs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _proc import PY_PASS, bytecode_env, paired, precompile  # noqa: E402
from _rows import Row, emit  # noqa: E402
from compile_targets_bench import flow_text  # noqa: E402
from engines_bench import flow_yaml as run_flow_yaml  # noqa: E402

FLOWC = [sys.executable, "-m", "flowc"]

# A process that only parses the flow (libyaml) and writes flowc's exact bytes (given to it):
# the floor of what any compiler of this flow costs, beside `python -c pass`.
FLOOR = """
import os, pickle, sys, yaml
yaml.load(open(sys.argv[1]).read(), Loader=yaml.CSafeLoader)
for rel, text in pickle.load(open(sys.argv[2], "rb")).items():
    p = os.path.join(sys.argv[3], rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8", newline="") as f:
        f.write(text)
"""


def ratio_row(
    name: str, p, goal: float | None, base: str = "python -c pass"
) -> Row:  # noqa: ANN001
    return Row(
        name,
        p.span("a", "ms"),
        f"{base} {p.span('b', 'ms')}",
        p.ratio,
        f"<= {goal:g}x ({p.span('ratio')})" if goal else f"- ({p.span('ratio')})",
        None if goal is None else p.ratio <= goal,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer pairs, fewer commands")
    ap.add_argument("--pairs", type=int, default=None)
    args = ap.parse_args()
    n = args.pairs or (5 if args.quick else 11)
    precompile()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / ".git").mkdir()
        f20 = d / "flow_20.yaml"
        f20.write_text(flow_text(20))
        f1k = d / "flow_1000.yaml"
        f1k.write_text(flow_text(1000))
        (d / "run.yaml").write_text(run_flow_yaml(50))
        timed = run_flow_yaml(50).replace("steps:\n", "defaults: {timeout: 1h}\nsteps:\n", 1)
        (d / "run_timeout.yaml").write_text(timed)
        env = bytecode_env({"PYTHONPATH": str(BENCH)})

        def p(cmd: list[str], pairs: int = n):  # noqa: ANN202
            return paired(cmd, PY_PASS, pairs, cwd=d, env=env)

        # start-up of the commands that do little else
        if not args.quick:
            for name, cmd in [
                ("`flowc --version`", ["--version"]),
                ("`flowc --help`", ["--help"]),
                ("`flowc targets`", ["targets"]),
                ("`flowc schema`", ["schema"]),
            ]:
                rows.append(ratio_row(name, p(FLOWC + cmd), None))

        rows.append(
            ratio_row("`flowc validate`, 20 steps, cold", p(FLOWC + ["validate", str(f20)]), 5)
        )
        if not args.quick:
            rows.append(ratio_row("`flowc graph`, 20 steps", p(FLOWC + ["graph", str(f20)]), None))
        out20 = d / "out20"
        paired(FLOWC + ["compile", str(f20), "-t", "airflow", "-o", str(out20)], PY_PASS, 1, d, env)
        rows.append(
            ratio_row(
                "`flowc compile --check`, 20 steps (airflow)",
                p(FLOWC + ["compile", str(f20), "-t", "airflow", "-o", str(out20), "--check"]),
                7,
            )
        )
        if not args.quick:
            for t in ("local", "airflow", "kfp", "vertex", "k8s"):
                cmd = ["compile", str(f20), "-t", t, "--stack", "gcp", "-o", str(d / f"o-{t}")]
                rows.append(ratio_row(f"`flowc compile -t {t}`, 20 steps", p(FLOWC + cmd), None))

        # 1,000 steps to every target; the floor is a process that parses the flow and writes
        # the same bytes
        out1k = d / "out1k"
        all_cmd = FLOWC + ["compile", str(f1k), "--all", "--stack", "gcp", "-o", str(out1k)]
        big = p(all_cmd, max(3, n // 2))
        rows.append(ratio_row("`flowc compile --all`, 1,000 steps, 5 targets", big, 25))
        import pickle

        files = {
            str(q.relative_to(out1k)): q.read_text(encoding="utf-8")
            for q in sorted(out1k.rglob("*"))
            if q.is_file()
        }
        (d / "bytes.pickle").write_bytes(pickle.dumps(files))
        floor_cmd = [sys.executable, "-c", FLOOR, str(f1k), str(d / "bytes.pickle"), str(d / "fl")]
        floor = p(floor_cmd, max(3, n // 2))
        rows.append(
            Row(
                "floor: parse the 1,000-step flow, write flowc's bytes",
                floor.span("a", "ms"),
                f"python -c pass {floor.span('b', 'ms')}",
                floor.ratio,
                f"- ({floor.span('ratio')})",
                None,
            )
        )

        # flowc run: 50 no-op steps, and the same with a timeout on every step
        run = p(FLOWC + ["run", "run.yaml"])
        rows.append(ratio_row("`flowc run`, 50 no-op steps", run, 6))
        tm = paired(
            FLOWC + ["run", "run_timeout.yaml"], FLOWC + ["run", "run.yaml"], max(3, n // 2), d, env
        )
        per = [x / 50 for x in tm.diffs]
        med = sorted(per)[len(per) // 2]
        rows.append(
            Row(
                "`flowc run` 50 steps with `defaults: {timeout: 1h}`: cost per step",
                f"{med * 1000:.1f} ms/step ({min(per) * 1000:.1f}-{max(per) * 1000:.1f}); "
                f"run {tm.span('a', 'ms')}",
                f"no timeout {tm.span('b', 'ms')}",
                tm.ratio,
                "<= 5 ms/step",
                med <= 0.005,
            )
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    emit(rows)


if __name__ == "__main__":
    main()
