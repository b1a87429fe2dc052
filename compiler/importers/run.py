"""Dispatch an import to its source module, check the result compiles, write every file at once."""

from __future__ import annotations

import os
import tempfile

from flowc.compiler.errors import FlowcError, Loc
from flowc.compiler.importers import Imported
from flowc.compiler.importers.writer import render


def import_source(source: str, kind: str, name: str | None = None) -> list[Imported]:
    """The flows imported from ``source`` (one per DAG / pipeline)."""
    if kind == "dag-factory":
        from flowc.compiler.importers import dag_factory

        return dag_factory.load(source, name)
    if kind == "airflow":
        from flowc.compiler.importers import airflow_dag

        return airflow_dag.load(source, name)
    if kind == "kfp":
        from flowc.compiler.importers import kfp_spec

        return [kfp_spec.load(source, name)]
    raise FlowcError.at(Loc(source, 1, 1), f"unknown source kind {kind!r}")


def texts(results: list[Imported], source: str) -> dict[str, str]:
    """File name (relative to the output folder) -> text, for every imported flow."""
    out: dict[str, str] = {}
    for r in results:
        header = [f"Imported by `flowc import` from {os.path.basename(source)}.", *r.header]
        out[f"{r.name}.yaml"] = render(r.flow, header)
        for fname, text in r.modules.items():
            if fname in out and out[fname] != text:
                raise FlowcError.at(
                    Loc(source, 1, 1), f"two step modules named {fname} with different code"
                )
            out[fname] = text
    return out


def write(results: list[Imported], output_dir: str, source: str) -> list[str]:
    """Write every file (each atomically, all after everything was rendered); their paths."""
    files = texts(results, source)
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for rel, text in files.items():
        path = os.path.join(output_dir, rel)
        fd, tmp = tempfile.mkstemp(dir=output_dir, prefix=".flowc-import-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        written.append(path)
    return written
