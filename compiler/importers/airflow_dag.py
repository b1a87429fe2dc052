"""An Airflow 3 DAG file -> flowc flows (one per DAG), read by a real ``DagBag``.

flowc's own interpreter has no Airflow: :func:`load` runs :mod:`.airflow_dump` in the Airflow
interpreter (``$FLOWC_AIRFLOW_PYTHON``, else this one when it can import airflow: the ``airflow``
extra), which prints the DAG's task model as JSON; :mod:`.airflow_common` converts it. Python
callables defined in the DAG file (``@task`` functions, lambdas, nested functions) cannot be
imported from there by flowc, so their source moves into a step module ``<flow>_steps.py`` next
to the flow, with the imports and module-level constants they use.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

from flowc.compiler.errors import FlowcError, Loc
from flowc.compiler.importers import Imported
from flowc.compiler.importers.airflow_common import convert

DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "airflow_dump.py")


def airflow_python(source: str) -> str:
    py = os.environ.get("FLOWC_AIRFLOW_PYTHON")
    if py:
        return py
    if importlib.util.find_spec("airflow") is not None:
        return sys.executable
    raise FlowcError.at(
        Loc(source, 1, 1),
        "importing an Airflow DAG file needs Airflow 3: it is loaded with a real DagBag",
        "install flowc[airflow], or set FLOWC_AIRFLOW_PYTHON to an interpreter that has Airflow",
    )


def dump(source: str) -> dict:
    """The JSON description of every DAG in ``source`` (see :mod:`.airflow_dump`)."""
    py = airflow_python(source)
    with tempfile.TemporaryDirectory(prefix="flowc-import-airflow-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        env.update(
            AIRFLOW_HOME=home,
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=os.path.dirname(os.path.abspath(source)),
        )
        try:
            proc = subprocess.run(
                [py, DUMP, os.path.abspath(source)],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FlowcError.at(
                Loc(source, 1, 1), f"cannot run the Airflow interpreter {py}: {e}"
            ) from None
    for line in proc.stdout.splitlines():
        if line.startswith("FLOWC_AIRFLOW_DUMP "):
            return json.loads(line.split(" ", 1)[1])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise FlowcError.at(
        Loc(source, 1, 1),
        f"Airflow could not load the DAG file: {tail}",
        "run the file with the Airflow interpreter to see the whole error",
    )


def load(source: str, name: str | None = None) -> list[Imported]:
    data = dump(source)
    if data["errors"]:
        diags = []
        for _, msg in sorted(data["errors"].items()):
            line = 1
            import re

            hits = re.findall(rf'File "{re.escape(os.path.abspath(source))}", line (\d+)', msg)
            if hits:
                line = int(hits[-1])
            last = msg.strip().splitlines()[-1] if msg.strip() else msg
            diags.append(
                FlowcError.at(
                    Loc(source, line, 1),
                    f"DagBag import error: {last}",
                    "fix the DAG file so Airflow can import it",
                ).diagnostics[0]
            )
        raise FlowcError(diags)
    if not data["dags"]:
        raise FlowcError.at(
            Loc(source, 1, 1), "no DAG in this file", "an Airflow DAG file defines at least one DAG"
        )
    if name and len(data["dags"]) > 1:
        ids = ", ".join(d["dag_id"] for d in data["dags"])
        raise FlowcError.at(
            Loc(source, 1, 1),
            f"--name needs a source with one DAG; this file has {len(data['dags'])} ({ids})",
            "drop --name: each DAG becomes a flow named after its DAG id",
        )
    out = []
    for dag in data["dags"]:
        imp = convert(dag, source, name, module=None)
        _module(imp, dag, source)
        out.append(imp)
    return out


def _module(imp: Imported, dag: dict, source: str) -> None:
    """Write the moved callables into ``<flow>_steps.py`` and point their steps at it."""
    modname = f"{imp.name}_steps"
    imports: dict[str, None] = {}
    consts: dict[str, None] = {}
    funcs = []
    for t in dag["tasks"]:
        cb = t.get("callable")
        if not cb:
            continue
        where = f"{source}:{t['line']}" if t.get("line") else source
        for p in cb.get("problems") or []:
            imp.warn(where, f"task '{t['task_id']}': the moved callable {p}")
        moved = cb.get("moved")
        if not moved:
            continue
        for stmt in moved["needs"].values():
            (imports if stmt.startswith(("import ", "from ")) else consts)[stmt] = None
        funcs.append(moved["code"])
    if not funcs:
        return
    text = (
        f'"""Step functions moved by `flowc import` out of {os.path.basename(source)} (DAG '
        f"'{dag['dag_id']}').\"\"\"\n\nfrom __future__ import annotations\n\n"
    )
    if imports:
        text += "\n".join(sorted(imports)) + "\n\n"
    if consts:
        text += "\n".join(consts) + "\n\n"
    text += "\n\n".join(funcs)
    imp.modules[f"{modname}.py"] = text
