"""``compile --all`` switches its output folder as one set (compiler/output.write_output_set):
built beside it, then exchanged; a failure leaves the previous set whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowc.compiler import output
from flowc.compiler.errors import FlowcError

OLD = {"f/airflow/f.py": "old dag\n", "f/local/plan.json": "{}\n", "manifest.json": "old\n"}
NEW = {"f/airflow/f.py": "new dag\n", "f/local/plan.json": "{}\n", "manifest.json": "new\n"}


def tree(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): p.read_text() for p in d.rglob("*") if p.is_file()}


def siblings(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name != d.name)


def test_the_set_switches_whole_and_keeps_what_it_does_not_produce(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    output.write_output_set(dist, OLD)
    assert tree(dist) == OLD
    (dist / "f" / "airflow" / "leftover.py").write_text("from an older set\n")
    (dist / "README.md").write_text("mine\n")
    unchanged = os.stat(dist / "f" / "local" / "plan.json")
    output.write_output_set(dist, NEW)
    # the flow's folder is replaced whole (no leftover), other entries are carried over
    assert tree(dist) == {**NEW, "README.md": "mine\n"}
    kept = os.stat(dist / "f" / "local" / "plan.json")
    assert (kept.st_ino, kept.st_mtime_ns) == (unchanged.st_ino, unchanged.st_mtime_ns)
    assert siblings(dist) == []  # no temporary folder left beside it


def test_nothing_of_the_new_set_is_visible_before_the_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "dist"
    output.write_output_set(dist, OLD)
    seen: list[dict[str, str]] = []
    real = output._exchange

    def exchange(a: Path, b: Path) -> bool:
        seen.append(tree(b))  # what a reader of dist sees just before the switch
        return real(a, b)

    monkeypatch.setattr(output, "_exchange", exchange)
    output.write_output_set(dist, NEW)
    assert seen == [OLD]
    assert tree(dist) == NEW


def test_a_failure_while_writing_leaves_the_previous_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "dist"
    output.write_output_set(dist, OLD)
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(output.os, "fsync", failing_fsync)
    with pytest.raises(FlowcError, match="No space left on device"):
        output.write_output_set(dist, NEW)
    assert tree(dist) == OLD
    assert siblings(dist) == []


def test_without_an_atomic_exchange_the_set_still_switches_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "dist"
    output.write_output_set(dist, OLD)
    monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    output.write_output_set(dist, NEW)
    assert tree(dist) == NEW
    assert siblings(dist) == []


@pytest.mark.parametrize("rel", ["../x", "/abs", "a/../b"])
def test_paths_stay_inside(tmp_path: Path, rel: str) -> None:
    with pytest.raises(FlowcError, match="must stay inside"):
        output.write_output_set(tmp_path / "dist", {rel: "x"})
    assert not (tmp_path / "dist").exists()
