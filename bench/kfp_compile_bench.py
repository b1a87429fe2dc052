"""Compile time of a generated 1,000-step flow: flowc (YAML -> IR -> PipelineSpec YAML) vs the same
pipeline written with the kfp DSL and compiled by kfp's own compiler, side by side in one run.

    python bench/kfp_compile_bench.py [--steps 1000] [--chains 10] [--repeat 3]

Both sides produce one lightweight Python component per step (10 chains of 100 steps, each step
reading the previous step's output and a pipeline parameter). Prints the best time of each and
the ratio (goal: flowc >= 10x faster).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import warnings
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


def time_flowc(flow: Path, out: Path) -> float:
    from flowc.compiler.api import compile_flow, emit

    start = time.perf_counter()
    files = emit(compile_flow(flow), "kfp")
    out.write_text(files["pipeline.yaml"], encoding="utf-8")
    return time.perf_counter() - start


def time_kfp(module_path: Path, out: Path) -> float:
    from kfp import compiler

    start = time.perf_counter()
    spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(mod)
        compiler.Compiler().compile(mod.pipeline, str(out))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tests" / "fixtures" / "pkgs"))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        flow = d / "flow.yaml"
        flow.write_text(flow_yaml(args.steps, args.chains), encoding="utf-8")
        flowc_times, kfp_times = [], []
        for r in range(args.repeat):
            flowc_times.append(time_flowc(flow, d / f"flowc-{r}.yaml"))
            mod = d / f"bench_dsl_{r}.py"  # a fresh module each time: nothing cached
            mod.write_text(dsl_module(args.steps, args.chains), encoding="utf-8")
            kfp_times.append(time_kfp(mod, d / f"kfp-{r}.yaml"))
        import yaml

        ours = yaml.safe_load_all((d / "flowc-0.yaml").read_text())
        theirs = yaml.safe_load((d / "kfp-0.yaml").read_text())
        n_ours = len(next(ours)["root"]["dag"]["tasks"])
        n_theirs = len(theirs["root"]["dag"]["tasks"])
    f, k = min(flowc_times), min(kfp_times)
    print(f"steps: {args.steps} ({args.chains} chains); root tasks flowc={n_ours} kfp={n_theirs}")
    print(f"flowc compile: best {f:.3f}s  runs {', '.join(f'{t:.3f}' for t in flowc_times)}")
    print(f"kfp   compile: best {k:.3f}s  runs {', '.join(f'{t:.3f}' for t in kfp_times)}")
    print(f"ratio kfp/flowc: {k / f:.1f}x (goal >= 10x)")
    from _rows import Row, emit

    emit(
        [
            Row(
                f"compile {args.steps:,} steps: flowc vs kfp's own compiler",
                f"{f:.3f} s",
                f"kfp {k:.3f} s",
                k / f,
                ">= 10x faster",
                k / f >= 10,
            )
        ]
    )


if __name__ == "__main__":
    main()
