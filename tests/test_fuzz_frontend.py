"""Bounded mutation fuzzing of the front-end (tests/fuzz_frontend.py): no tracebacks, every error
located with FILE:LINE:COL. bench/fuzz_frontend.py runs the same for longer."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_property import flows

_spec = importlib.util.spec_from_file_location(
    "flowc_fuzz_frontend", Path(__file__).parent / "fuzz_frontend.py"
)
assert _spec and _spec.loader
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["flowc_fuzz_frontend"] = fuzz
_spec.loader.exec_module(fuzz)


def test_mutated_flows_never_crash() -> None:
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for i in range(200):
        text = fuzz.mutate(rng)
        try:
            outcomes[fuzz.check(text)] += 1
        except Exception as e:  # pragma: no cover - reported with the input that broke it
            raise AssertionError(f"case {i} crashed: {e!r}\n--- input ---\n{text}") from e
    assert outcomes["error"] > 60  # the mutations really do break flows


def test_python_tags_are_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system"):
        text = f"flowc: 1\nname: x\ndescription: {tag} ['touch {marker}']\nsteps: {{}}\n"
        assert fuzz.check(text) == "error"
    assert not marker.exists()


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(flows(), st.randoms(use_true_random=False))
def test_hypothesis_valid_flows_mutated_never_crash(flow: dict, rng: random.Random) -> None:
    import yaml

    text = yaml.safe_dump(fuzz.mutate_data(rng, flow), sort_keys=False, allow_unicode=True)
    fuzz.check(text)
