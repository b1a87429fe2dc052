"""Bounded, seeded mutation fuzzing of the front-end (tests/fuzz_frontend.py): no tracebacks, every
error located with FILE:LINE:COL, the CLI exits 0, 1 or 2 only. Over the spec flows, every golden
flow (emitted for every target when it still compiles) and the hostile inputs of issue 19.
bench/fuzz_frontend.py runs the same for longer."""

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


def test_mutated_golden_flows_compile_and_emit_or_fail_located() -> None:
    rng = random.Random(19)
    outcomes = {"ok": 0, "error": 0}
    for i in range(150):
        text = fuzz.mutate(rng, fuzz.GOLDEN_BASES)
        try:
            outcomes[fuzz.check_emit(text)] += 1
        except Exception as e:  # pragma: no cover - reported with the input that broke it
            raise AssertionError(f"case {i} crashed: {e!r}\n--- input ---\n{text}") from e
    assert outcomes["ok"] > 10 and outcomes["error"] > 40, outcomes


def _hostile_files(tmp_path: Path) -> list[str]:
    """Whole-file hostile inputs (issue 19, items 6-8) and hostile values in every position."""
    out: list[str] = ["/dev/zero", str(tmp_path), str(tmp_path / "missing.yaml")]
    files = {
        "empty.yaml": b"",
        "binary.yaml": bytes(range(256)),
        "bom.yaml": b"\xef\xbb\xbfflowc: 1\n",
        "bomb.yaml": (
            "flowc: 1\nname: demo\nsteps:\n  a: {command: [echo], env: {B: &b "
            + "x" * 100_000
            + "}}\n"
            + "".join(f"  s{i}: {{command: [echo], env: {{B: *b}}}}\n" for i in range(200))
        ).encode(),
    }
    base = (
        "flowc: 1\nname: NAME\ntags: [TAG]\nsecrets:\n  s: {env: SENV, k8s: {name: SK, key: k}}\n"
    )
    base += "steps:\n  a:\n    command: [echo]\n    env: {EKEY: 1}\n    image: IMG\n"
    base += "    retries: RET\n    when: WHEN\n"
    positions = ["NAME", "TAG", "SENV", "SK", "EKEY", "IMG", "RET", "WHEN"]
    defaults = {
        "NAME": "demo",
        "TAG": "t",
        "SENV": "TOKEN",
        "SK": "tok",
        "EKEY": "E",
        "IMG": "img:1",
        "RET": "1",
        "WHEN": "'true'",
    }
    values = [repr(h) if h else "''" for h in fuzz.HOSTILE] + [
        "!!float x",
        "!!int x",
        "!!bool x",
        "!!int 0x",
        "9" * 5000,
        ".nan",
        "-.inf",
        "99999999999999999999",
    ]
    rng = random.Random(7)
    for n in range(60):
        pos = positions[n % len(positions)]
        text = base
        for p in positions:
            text = text.replace(p, rng.choice(values) if p == pos else defaults[p], 1)
        files[f"pos{n}.yaml"] = text.encode("utf-8", "surrogatepass")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out.append(str(tmp_path / name))
    return out


def test_hostile_inputs_through_the_cli(tmp_path: Path) -> None:
    paths = _hostile_files(tmp_path)
    # one multi-file validate: every file reported, none aborts the others
    assert fuzz.check_cli(["validate", "-q", *paths], tmp_path) == 1
    assert fuzz.check_cli(["validate", "--no-import", "-q", *paths], tmp_path) == 1
    for p in paths[3:]:
        assert fuzz.check_cli(["validate", p], tmp_path) in (0, 1)
    for p in paths[::7]:
        for out in (str(tmp_path / "dist"), f"{paths[-1]}/sub", "/proc/x"):
            fuzz.check_cli(["compile", p, "--all", "-o", out], tmp_path)
