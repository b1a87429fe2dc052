"""Function modules, integration trees and the scheduler: costs side by side with a baseline.

1. ``functions:`` over a generated module of N chained functions vs the same N steps written by
   hand: compile time of each and the ratio (the price of importing + reading signatures).
2. An integration tree (1 root, C leaf components that are peers, P pipelines with K own
   components each) built by ``flowc.runtime.integrations.build`` vs instantiating the same
   classes and setting the same attributes by hand: time per tree and the ratio.
3. The scheduler catching up S missed cron slots (claim + fire rows in SQLite, a no-op runner)
   vs computing the same S slots with croniter alone: overhead per slot.

Usage: python bench/g_bench.py [--functions 1000] [--slots 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_functions(n: int, repeat: int) -> None:
    from flowc.compiler.api import compile_flow

    tmp = Path(tempfile.mkdtemp(prefix="flowc-gbench-"))
    lines = ["def f0(seed: int = 1) -> int:\n    return seed\n"]
    for i in range(1, n):
        lines.append(f"def f{i}(f{i - 1}: int) -> int:\n    return f{i - 1} + 1\n")
    (tmp / "gbench_fns.py").write_text("\n\n".join(lines), encoding="utf-8")
    (tmp / "functions.yaml").write_text(
        "flowc: 1\nname: fns\nfunctions: [gbench_fns]\n", encoding="utf-8"
    )
    steps = ["flowc: 1\nname: hand\nsteps:\n"]
    steps.append("  f0: {run: 'gbench_fns:f0', outputs: [f0]}\n")
    for i in range(1, n):
        steps.append(
            f"  f{i}: {{run: 'gbench_fns:f{i}', with: {{f{i - 1}: '${{steps.f{i - 1}.outputs."
            f"f{i - 1}}}'}}, outputs: [f{i}]}}\n"
        )
    (tmp / "hand.yaml").write_text("".join(steps), encoding="utf-8")
    a = compile_flow(tmp / "functions.yaml")
    b = compile_flow(tmp / "hand.yaml")
    assert [s.name for s in a.steps] == [s.name for s in b.steps]
    t_fn = best(lambda: compile_flow(tmp / "functions.yaml"), repeat)
    t_hand = best(lambda: compile_flow(tmp / "hand.yaml"), repeat)
    print(
        f"[functions] {n} chained functions: functions: {t_fn * 1e3:8.1f} ms | "
        f"hand-listed steps {t_hand * 1e3:8.1f} ms | ratio {t_fn / t_hand:5.2f}x"
    )


def bench_integrations(repeat: int, comps: int = 50, pipes: int = 50, own: int = 5) -> None:
    from flowc.compiler.ir import (
        FrameworkNode,
        Integration,
        IntegrationFramework,
        Layer,
    )
    from flowc.runtime.integrations import build

    mod = type(sys)("gbench_classes")
    for name in ("Runner", "Comp", "Pipe"):
        setattr(mod, name, type(name, (), {}))
    sys.modules["gbench_classes"] = mod
    comp = Layer(
        "component", tuple(Integration(f"c{i}", "gbench_classes:Comp") for i in range(comps))
    )
    own_layer = Layer(
        "component", tuple(Integration(f"o{i}", "gbench_classes:Comp") for i in range(own))
    )
    pipe = Layer(
        "pipeline",
        tuple(
            Integration(f"p{i}", "gbench_classes:Pipe", layers=(own_layer,)) for i in range(pipes)
        ),
    )
    root = FrameworkNode(
        "runner",
        (FrameworkNode("component"), FrameworkNode("pipeline", (FrameworkNode("component"),))),
    )
    fw = IntegrationFramework(
        root, (Layer("runner", (Integration("main", "gbench_classes:Runner"),)), comp, pipe)
    ).to_data()
    objects = 1 + comps + pipes * (1 + own)

    def plain() -> None:  # the same objects and attributes, wired by hand
        r = mod.Runner()
        cs = {f"c{i}": mod.Comp() for i in range(comps)}
        for k, c in cs.items():
            setattr(r, k, c)
            for k2, c2 in cs.items():
                if c2 is not c:
                    setattr(c, k2, c2)
        for i in range(pipes):
            p = mod.Pipe()
            for k, c in cs.items():
                setattr(p, k, c)
            os_ = {f"o{j}": mod.Comp() for j in range(own)}
            for k, o in os_.items():
                for k2, c in cs.items():
                    setattr(o, k2, c)
                setattr(p, k, o)
            for o in os_.values():
                for k2, o2 in os_.items():
                    if o2 is not o:
                        setattr(o, k2, o2)
            setattr(r, f"p{i}", p)

    tree = build(fw)
    assert tree is not None and len(tree.objects) == objects
    t_build = best(lambda: build(fw), repeat)
    t_plain = best(plain, repeat)
    print(
        f"[integrations] tree of {objects} objects: build {t_build * 1e3:7.2f} ms | plain "
        f"wiring by hand {t_plain * 1e3:7.2f} ms | ratio {t_build / t_plain:6.1f}x"
    )


def bench_scheduler(slots: int, repeat: int) -> None:
    from croniter import croniter

    from flowc.runtime.scheduler import ManualClock, ScheduleStore, Worker

    start = datetime(2026, 1, 1, tzinfo=UTC)
    plan = {
        "name": "s",
        "schedule": {
            "kind": "cron",
            "cron": "* * * * *",
            "timezone": "Europe/Berlin",
            "start": "2026-01-01T01:00:00",
            "catchup": True,
        },
    }

    def catch_up() -> None:
        with tempfile.TemporaryDirectory() as d:
            store = ScheduleStore(Path(d) / "metadata.db")
            store.register(plan, now=start)
            clock = ManualClock(start + timedelta(minutes=slots - 1))
            fired = Worker(store, lambda e, s, r: ("success", None), clock).tick()
            assert len(fired) == slots, len(fired)
            store.close()

    def baseline() -> None:
        it = croniter("* * * * *", start.astimezone())
        for _ in range(slots):
            it.get_next(datetime)

    t_w = best(catch_up, repeat)
    t_b = best(baseline, repeat)
    print(
        f"[scheduler] catch up {slots} slots: worker {t_w * 1e3:8.1f} ms "
        f"({t_w / slots * 1e3:.3f} ms/slot) | croniter alone {t_b * 1e3:6.1f} ms | "
        f"ratio {t_w / t_b:6.1f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--functions", type=int, default=1000)
    ap.add_argument("--slots", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    bench_functions(a.functions, a.repeat)
    bench_integrations(max(a.repeat, 5))
    bench_scheduler(a.slots, a.repeat)


if __name__ == "__main__":
    main()
