"""Compile time of a generated 1,000-step flow: flowc (YAML -> IR -> PipelineSpec YAML) vs the same
pipeline written with the kfp DSL and compiled by kfp's own compiler, side by side in one run.

    python bench/kfp_compile_bench.py [--steps 1000] [--chains 10] [--repeat 3]

Both sides produce one lightweight Python component per step (10 chains of 100 steps, each step
reading the previous step's output and a pipeline parameter). Whole process, as a user waits for
either: ``flowc compile --target kfp`` vs ``python pipeline.py`` (import kfp, build, compile),
paired run by run (bench/_proc.py); the median of the pairs with min-max (goal: flowc >= 30x
faster).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def flow_yaml(steps: int, chains: int) -> str:
    lines = [
        "flowc: 1",
        "name: bench",
        "params:",
        "  k: {type: int, default: 1}",
        "steps:",
    ]
    per = steps // chains
    for c in range(chains):
        for i in range(per):
            lines.append(f"  s{c}_{i}:")
            lines.append("    run: flowc_demo.steps:add")
            a = "1" if i == 0 else f'"${{steps.s{c}_{i - 1}.outputs.value}}"'
            lines.append(f'    with: {{a: {a}, b: "${{params.k}}"}}')
            lines.append("    outputs: [value]")
    return "\n".join(lines) + "\n"


def dsl_module(steps: int, chains: int) -> str:
    per = steps // chains
    return f"""
from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def add(a: str, b: int) -> str:
    return str(int(a) + b)


@dsl.pipeline(name="bench")
def pipeline(k: int = 1):
    for c in range({chains}):
        prev = None
        for i in range({per}):
            t = add(a="1" if prev is None else prev.output, b=k)
            t.set_display_name(f"s{{c}}_{{i}}")
            prev = t
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from _proc import bytecode_env, paired, precompile
    from _rows import Row, emit

    precompile()
    env = bytecode_env({"PYTHONPATH": str(REPO / "tests" / "fixtures" / "pkgs")})
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / ".git").mkdir()
        flow = d / "flow.yaml"
        flow.write_text(flow_yaml(args.steps, args.chains), encoding="utf-8")
        mod = d / "bench_dsl.py"
        mod.write_text(
            dsl_module(args.steps, args.chains)
            + "\n\nif __name__ == '__main__':\n    import sys, warnings\n"
            "    from kfp import compiler\n\n"
            "    warnings.simplefilter('ignore')\n"
            "    compiler.Compiler().compile(pipeline, sys.argv[1])\n",
            encoding="utf-8",
        )
        ours_cmd = [sys.executable, "-m", "flowc", "compile", str(flow), "-t", "kfp", "-o", "o"]
        theirs_cmd = [sys.executable, str(mod), str(d / "kfp.yaml")]
        p = paired(ours_cmd, theirs_cmd, args.repeat, cwd=d, env=env)
        import yaml

        ours = yaml.safe_load_all((d / "o" / "pipeline.yaml").read_text())
        theirs = yaml.safe_load((d / "kfp.yaml").read_text())
        n_ours = len(next(ours)["root"]["dag"]["tasks"])
        n_theirs = len(theirs["root"]["dag"]["tasks"])
    faster = 1 / p.ratio
    inv = sorted(1 / r for r in p.ratios)
    print(f"steps: {args.steps} ({args.chains} chains); root tasks flowc={n_ours} kfp={n_theirs}")
    print(f"flowc compile -t kfp (whole process): {p.span('a', 'ms')}")
    print(f"kfp DSL + Compiler (whole process):   {p.span('b', 'ms')}")
    print(f"ratio kfp/flowc: {faster:.1f}x ({inv[0]:.1f}-{inv[-1]:.1f}) (goal >= 30x)")
    emit(
        [
            Row(
                f"compile {args.steps:,} steps, whole process: flowc vs kfp's own compiler",
                p.span("a", "ms"),
                f"kfp {p.span('b', 'ms')}",
                faster,
                f">= 30x faster ({inv[0]:.1f}-{inv[-1]:.1f})",
                faster >= 30,
            )
        ]
    )


if __name__ == "__main__":
    main()
