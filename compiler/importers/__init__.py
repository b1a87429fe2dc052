"""``flowc import``: read a pipeline written for another tool and write a flowc flow.

One module per source (:mod:`.dag_factory`, :mod:`.airflow_dag`, :mod:`.kfp_spec`), each a pure
function from the source to an :class:`Imported`: the flow as an ordered :class:`~.writer.Map`,
the step modules that hold moved code, and the warnings (constructs without a flowc equivalent,
also kept as comments in the flow where they came from). :func:`detect` picks the source kind.
Nothing here imports an engine SDK: Airflow DAG files are read by a helper script run in the
Airflow interpreter (:mod:`.airflow_dag`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flowc.compiler.importers.writer import Map

__all__ = ["Imported", "Warning_", "detect", "flow_name", "step_name"]


@dataclass(frozen=True)
class Warning_:
    """``where`` is ``SOURCE:LINE`` (or ``SOURCE`` when the source has no lines)."""

    where: str
    message: str

    def render(self) -> str:
        return f"{self.where}: warning: {self.message}"


@dataclass
class Imported:
    name: str
    flow: Map
    header: list[str] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)  # file name -> Python source
    warnings: list[Warning_] = field(default_factory=list)
    extra_files: dict[str, str] = field(default_factory=dict)  # relative path -> text (copied code)

    def warn(self, where: str, message: str) -> str:
        """Record a warning; returns the comment text to keep in the flow."""
        self.warnings.append(Warning_(where, message))
        return f"flowc import: {message}"


_BAD = re.compile(r"[^a-z0-9_]+")


def flow_name(text: str) -> str:
    """A flow name (``[a-z][a-z0-9_]*``) from a DAG id / pipeline name."""
    s = _BAD.sub("_", text.lower()).strip("_") or "imported"
    return s if s[0].isalpha() else f"f_{s}"


def step_name(text: str) -> str:
    """A step name from a task id (same alphabet as flow names)."""
    return flow_name(text)


def detect(text: str, path: str) -> str:
    """``airflow`` (a Python file), ``kfp`` (a PipelineSpec), or ``dag-factory``."""
    if path.endswith(".py"):
        return "airflow"
    if "pipelineInfo:" in text and ("deploymentSpec:" in text or "root:" in text):
        return "kfp"
    return "dag-factory"
