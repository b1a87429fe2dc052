"""The passes: validated model -> IR parts, run in a fixed, documented order.

Every module in this package that defines ``ORDER: int`` and ``run(ctx: PassContext) -> None`` is
a pass; they run sorted by ``(ORDER, module name)``. To add a pass, drop a module here with its
ORDER (and list it in docs/passes.md); no existing file needs editing. A pass reads and updates
the :class:`PassContext`; problems go to ``ctx.errors`` (report all you can, skip what is broken).
A pass with ``NEEDS_CLEAN = True`` is skipped when earlier passes reported errors.

The passes and their order (every ``ORDER`` in this package, with what each pass decides) are
listed in ``docs/passes.md``; ``tests/test_passes_frontend.py`` checks that every pass module is
listed there.

Then :func:`build` assembles the frozen :class:`~flowc.compiler.ir.Pipeline`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

from flowc.compiler import ir
from flowc.compiler.errors import Collector, FlowcError, Loc
from flowc.compiler.loader import Doc
from flowc.compiler.schema import DefaultsModel, EnvironmentModel, FlowModel, StepModel


@dataclass
class PassContext:
    """Everything passes share: inputs (doc, model, options) and the IR parts being built."""

    doc: Doc
    model: FlowModel
    source: ir.Source
    environment: str | None = None
    cli_params: Mapping[str, str] = field(default_factory=dict)
    stack_name: str | None = None  # --stack
    environ: Mapping[str, str] = field(default_factory=dict)
    errors: Collector = field(default_factory=Collector)
    # set by passes
    env_model: EnvironmentModel | None = None
    defaults: DefaultsModel = field(default_factory=DefaultsModel)
    params: dict[str, ir.Param] = field(default_factory=dict)
    secrets: dict[str, ir.SecretRef] = field(default_factory=dict)
    schedule: ir.Schedule | None = None
    steps: dict[str, ir.Step] = field(default_factory=dict)  # written order until `graph`
    step_paths: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # name -> doc path
    function_steps: dict[str, StepModel] = field(default_factory=dict)  # steps with only `with:`
    edges: list[ir.Edge] = field(default_factory=list)
    stack: ir.Stack | None = None
    components: list[ir.CustomComponent] = field(default_factory=list)
    plugins: list[ir.Plugin] = field(default_factory=list)
    stack_components: dict[str, Any] = field(default_factory=dict)  # kind -> built (pass 52)
    integrations: ir.IntegrationFramework | None = None
    channels: dict[str, ir.Channel] = field(default_factory=dict)
    functions: tuple[str, ...] = ()
    final: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # scratch space for other passes
    # control flow (pass 30 ``steps`` builds them; docs/control-flow.md)
    step_docs: dict[str, Doc] = field(default_factory=dict)  # name -> its file (sub-flows)
    step_models: dict[str, StepModel] = field(default_factory=dict)  # qualified name -> model
    groups: dict[str, GroupBuild] = field(default_factory=dict)  # parents before children
    flow_outputs: list[tuple[str, ir.Expr]] = field(default_factory=list)

    @property
    def file(self) -> str:
        return self.doc.file

    def loc(self, *path: Any) -> Loc:
        return self.doc.loc(path)

    def key_loc(self, *path: Any) -> Loc:
        return self.doc.key_loc(path)

    def step_loc(self, name: str, *sub: Any) -> Loc:
        """The location of ``sub`` inside step ``name`` (in its own file: sub-flow steps too)."""
        doc = self.step_docs.get(name, self.doc)
        return doc.loc((*self.step_paths.get(name, ("steps", name)), *sub))

    def locate(self, path: tuple[Any, ...]) -> Any:
        """A ``locate(offset)`` function for the string at ``path`` (for expr parsing)."""
        doc = self.doc
        return lambda i: doc.offset_loc(path, i)


@dataclass
class GroupBuild:
    """A group while the passes build it (pass 30 creates it, 70 resolves its references, 80
    computes ``upstream``/``leaves``); :func:`build` freezes it into :class:`ir.Group`."""

    name: str
    parent: str | None
    doc: Doc
    path: tuple[Any, ...]  # of the group's step entry in ``doc``
    loc: Loc | None = None
    foreach: ir.Expr | None = None
    matrix: tuple[str, ...] = ()
    steps: list[str] = field(default_factory=list)  # direct member steps
    groups: list[str] = field(default_factory=list)  # direct child groups
    outputs: list[tuple[str, ir.Expr]] = field(default_factory=list)
    output_paths: dict[str, tuple[Doc, tuple[Any, ...]]] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()
    uses: str | None = None  # relative to the repository
    sub_model: FlowModel | None = None  # the sub-flow of ``uses:``
    sub_doc: Doc | None = None
    with_: list[tuple[str, ir.Expr]] = field(default_factory=list)  # ``uses:`` param bindings
    bindings: dict[str, ir.Expr] = field(default_factory=dict)  # sub-flow param -> value (70)
    description: str | None = None

    def freeze(self) -> ir.Group:
        return ir.Group(
            name=self.name,
            parent=self.parent,
            foreach=self.foreach,
            matrix=self.matrix,
            steps=tuple(self.steps),
            groups=tuple(self.groups),
            outputs=tuple(self.outputs),
            upstream=self.upstream,
            leaves=self.leaves,
            after=self.after,
            uses=self.uses,
            description=self.description,
            loc=self.loc,
        )


@cache
def pass_modules() -> tuple[ModuleType, ...]:
    """Every pass module of this package, in run order."""
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "ORDER") and hasattr(mod, "run"):
            mods.append(mod)
    return tuple(sorted(mods, key=lambda m: (m.ORDER, m.__name__)))


def run_passes(ctx: PassContext) -> None:
    """Run every pass; raise FlowcError with all diagnostics at the end (or when a pass that
    needs a clean context comes after errors)."""
    import os

    for mod in pass_modules():
        if getattr(mod, "NEEDS_CLEAN", False) and ctx.errors.diagnostics:
            break
        try:
            mod.run(ctx)
        except FlowcError as e:
            ctx.errors.extend(e)
            break
        except Exception as e:  # a bug in a pass: one clear line, not a traceback
            if os.environ.get("FLOWC_DEBUG"):
                raise
            name = mod.__name__.rsplit(".", 1)[-1]
            ctx.errors.error(
                Loc(ctx.file, 1, 1),
                f"internal error in compiler pass '{name}': {type(e).__name__}: {e}",
                "this is a flowc bug; run with FLOWC_DEBUG=1 for the traceback and report it",
            )
            break
    ctx.errors.raise_if_any()


def build(ctx: PassContext) -> ir.Pipeline:
    """Assemble the frozen Pipeline from the context."""
    m = ctx.model
    edges = sorted(set(ctx.edges), key=lambda e: (e.dst, e.src, e.kind, e.output or ""))
    return ir.Pipeline(
        name=m.name,
        source=ctx.source,
        description=m.description,
        tags=tuple(m.tags),
        owner=m.owner,
        params=tuple(ctx.params.values()),
        steps=tuple(ctx.steps.values()),
        edges=tuple(edges),
        schedule=ctx.schedule,
        secrets=tuple(ctx.secrets.values()),
        environment=ctx.environment,
        stack=ctx.stack,
        components=tuple(ctx.components),
        plugins=tuple(ctx.plugins),
        integrations=ctx.integrations,
        channels=tuple(ctx.channels.values()),
        functions=ctx.functions or tuple(m.functions),
        final=ctx.final or tuple(m.final),
        dsl_version=m.flowc,
        groups=tuple(g.freeze() for g in ctx.groups.values()),
        outputs=tuple(ctx.flow_outputs),
        loc=Loc(ctx.file, 1, 1),
    )
