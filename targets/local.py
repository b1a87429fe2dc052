"""The ``local`` target: one readable Python module ``<name>_flow.py`` that holds the plan as a
Python literal and runs it with :mod:`flowc.runtime` (``python <name>_flow.py --param k=v`` or
``from <name>_flow import run``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from flowc.targets.base import BaseTarget, Capabilities, black_format, jinja_env

if TYPE_CHECKING:
    from flowc.compiler.ir import Pipeline


# black formats the code around it; the plan itself is laid out by base.format_literal.
PLAN_PLACEHOLDER = "__FLOWC_PLAN__"
STEPS_PLACEHOLDER = "__FLOWC_STEPS__"


class LocalTarget(BaseTarget):
    name: ClassVar[str] = "local"
    description: ClassVar[str] = (
        "a Python module that runs the flow on this machine (flowc.runtime)"
    )
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        packages="here",
        operators=True,
        channel_transports=frozenset({"local", "kafka"}),
        metadata_stores=True,
    )

    def emit(self, ir: Pipeline) -> dict[str, str]:
        module = f"{ir.name}_flow"
        text = (
            jinja_env("local")
            .get_template("flow.py.j2")
            .render(
                header=self.header_lines(ir),
                module=module,
                name=ir.name,
                description=ir.description,
                steps=STEPS_PLACEHOLDER,
                plan=PLAN_PLACEHOLDER,
            )
        )
        literals = {PLAN_PLACEHOLDER: ir.to_data(), STEPS_PLACEHOLDER: [s.name for s in ir.steps]}
        return {f"{module}.py": black_format(text, literals)}
