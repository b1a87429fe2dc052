"""Compile every golden case for every target (shared by the golden and determinism tests).

A case is ``golden/<case>/flow.yaml`` plus optional ``golden/<case>/case.json`` with compile
options: ``{"environment": .., "stack": .., "params": {..}, "sets": [..], "env": {VAR: value}}``
(``env`` is the compile-time environment for ``${env.X}``; ``"targets": [..]`` limits the case
to those targets, for a construct the other targets do not compile yet). Expected output of target T lives in
``golden/<case>/T/``; a target that must refuse the case has ``golden/<case>/T/ERROR`` holding the
expected error text instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden"


def cases(root: Path = GOLDEN) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/flow.yaml"))


def target_names() -> list[str]:
    from flowc.compiler import registry

    return registry.target_names()


def case_targets(case_dir: Path) -> list[str]:
    """The targets a case is compiled for: its ``case.json`` ``targets``, else every target."""
    only = case_options(case_dir).get("targets")
    return [t for t in target_names() if only is None or t in only]


def case_options(case_dir: Path) -> dict:
    opt = case_dir / "case.json"
    return json.loads(opt.read_text()) if opt.is_file() else {}


@contextmanager
def environ(extra: dict[str, str]) -> Iterator[None]:
    """Set ``extra`` in ``os.environ`` for the ``with`` block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def compile_case(case_dir: Path, target: str) -> dict[str, str]:
    """``{relpath: text}`` for one case and target, or ``{"ERROR": text}`` if compilation fails
    with a user error. The flow path is given relative to the repository (as users run it)."""
    from flowc.compiler.api import compile_flow, emit
    from flowc.compiler.errors import FlowcError

    opts = case_options(case_dir)
    flow = case_dir / "flow.yaml"
    with environ(opts.get("env", {})):
        try:
            ir = compile_flow(
                os.path.relpath(flow),
                environment=opts.get("environment"),
                params=opts.get("params"),
                sets=opts.get("sets"),
                stack=opts.get("stack"),
            )
            # the header's command regenerates the golden files in place
            return emit(ir, target, output_dir=os.path.relpath(case_dir / target))
        except FlowcError as e:
            return {"ERROR": e.render() + "\n"}


def expected_files(case_dir: Path, target: str) -> dict[str, str] | None:
    d = case_dir / target
    if not d.is_dir():
        return None
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_file():
            out[p.relative_to(d).as_posix()] = p.read_text(encoding="utf-8")
    return out


def write_expected(case_dir: Path, target: str, files: dict[str, str]) -> None:
    import shutil

    d = case_dir / target
    if d.exists():
        shutil.rmtree(d)
    for rel, text in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8", newline="")
