"""Generated Python is exactly what black would write, without running black on the data.

``targets.base.format_literal`` lays out plan data the way black does (black itself only formats
the code around it: it is too slow for MBs of data); these tests hold it to black's output.
"""

from __future__ import annotations

import string
from pathlib import Path

import black
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowc.targets.base import BLACK_MAX_CHARS, black_format
from tests.golden_harness import GOLDEN

MODE = black.Mode(line_length=100, target_versions={black.TargetVersion.PY311})

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.text(alphabet="'\"\\ \n\tab{}$%\u2e80", max_size=30),
    st.text(alphabet="ab ", min_size=50, max_size=120),
)


def _single(c: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(c, min_size=1, max_size=1),
        st.dictionaries(st.sampled_from(["$op", "k"]), c, min_size=1, max_size=1),
    )


_data = st.recursive(
    _leaf,
    lambda c: st.one_of(
        _single(c),
        st.lists(c, max_size=6),
        st.dictionaries(
            st.text(alphabet=string.ascii_letters + "'\"_", max_size=12), c, max_size=6
        ),
    ),
    max_leaves=50,
)
_top = st.one_of(
    st.lists(_data, max_size=6), st.dictionaries(st.text(max_size=12), _data, max_size=6)
)


@settings(max_examples=150, deadline=None)
@given(_top, st.integers(0, 3))
def test_format_literal_is_blacks_layout(value: object, depth: int) -> None:
    head = "".join("    " * i + f"if x{i}:\n" for i in range(depth))
    src = head + "    " * depth + "PLAN: dict[str, Any] = __P__\n"
    out = black_format(src, {"__P__": value})
    assert black.format_str(out, mode=MODE) == out
    if depth == 0:
        assert eval(out.split(" = ", 1)[1]) == value  # noqa: S307 - our own literal


def test_every_golden_python_file_is_black_stable() -> None:
    files = sorted(p for p in GOLDEN.glob("*/*/*.py"))
    assert files
    for p in files:
        text = p.read_text(encoding="utf-8")
        assert black.format_str(text, mode=MODE) == text, p


@pytest.mark.parametrize("target", ["local", "airflow"])
def test_large_generated_flow_is_black_stable(target: str, tmp_path: Path, monkeypatch) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from compile_bench import generate

    from flowc.compiler.api import compile_flow, emit

    (tmp_path / ".git").mkdir()
    (tmp_path / "flow.yaml").write_text(generate(300))
    monkeypatch.chdir(tmp_path)
    ir = compile_flow("flow.yaml")
    files = emit(ir, target)
    assert sum(map(len, files.values())) > BLACK_MAX_CHARS  # the path that skips black
    for rel, text in files.items():
        assert black.format_str(text, mode=MODE) == text, (target, rel)
