"""Pass 76: values the engines would reject, refused at validate time (located, with hints).

Names first: the flow name becomes file names (``<name>.py``, with a temporary-file prefix and
suffix while writing) and Airflow's ``dag_id`` (at most 250 characters); a step name becomes a
task id and a folder of ``.flowc/runs``. Both are at most :data:`MAX_NAME` characters.
"""

from __future__ import annotations

from flowc.compiler.passes import PassContext

ORDER = 76

#: Longest flow or step name (file names are at most 255 bytes; Airflow ids 250 characters).
MAX_NAME = 200


def run(ctx: PassContext) -> None:
    _names(ctx)


def _names(ctx: PassContext) -> None:
    name = ctx.model.name
    if isinstance(name, str) and len(name) > MAX_NAME:
        ctx.errors.error(
            ctx.loc("name"),
            f"the flow name is {len(name)} characters long; at most {MAX_NAME}",
            "it names the compiled files and the Airflow DAG: shorten it",
        )
    for step in ctx.steps:
        if len(step) > MAX_NAME:
            path = ctx.step_paths.get(step, ("steps", step))
            ctx.errors.error(
                ctx.key_loc(*path),
                f"the step name is {len(step)} characters long; at most {MAX_NAME}",
                "it names tasks, pods and run folders: shorten it",
            )
