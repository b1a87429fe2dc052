"""Pass 51: ``image: built`` becomes the image ``flowc build`` recorded for this flow.

A step image (its own ``image:`` or ``defaults.image``) or the stack orchestrator's ``image``
setting that says ``built`` is replaced by the reference recorded in ``.flowc/images.json``
next to the flow file (written by ``flowc build`` after a successful build or push). Nothing
recorded is a located error whose hint is the command to run (except while ``flowc build``
itself compiles the flow). It runs before pass 52, so a
recorded reference (which already names the registry) is left as written by the registry
prefixing. The compiled files then depend on that record as on any other input file;
``--set defaults.image=REF`` gives a reference explicitly instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flowc.compiler.passes import PassContext

ORDER = 51

BUILT = "built"
"""The image value that asks for the recorded build."""


def _recorded(ctx: PassContext) -> str | None:
    from flowc.compiler.build_context import read_images

    entry = read_images(ctx.file).get(str(ctx.model.name))
    image = entry.get("image") if isinstance(entry, dict) else None
    return image if isinstance(image, str) and image else None


def run(ctx: PassContext) -> None:
    from flowc.compiler.build_context import BUILDING

    if BUILDING.get():  # `flowc build` compiles the flow whose image it is making
        return
    uses = [name for name, step in ctx.steps.items() if step.image == BUILT]
    orch = ctx.stack.orchestrator if ctx.stack is not None else None
    orch_uses = orch is not None and orch.setting("image") == BUILT
    if not uses and not orch_uses:
        return
    image = _recorded(ctx)
    hint = (
        f"run `flowc build {ctx.file}` (with --push for a remote cluster) first, or give the "
        "image with --set defaults.image=REF"
    )
    if image is None:
        where: list[Any] = []
        for name in uses:
            path = (*ctx.step_paths.get(name, ("steps", name)), "image")
            where.append(path if ctx.doc.has(path) else ("defaults", "image"))
        reported: set[tuple[Any, ...]] = set()
        for path in where:
            if path not in reported:
                reported.add(path)
                ctx.errors.error(
                    ctx.loc(*path),
                    f"image 'built': no image of flow '{ctx.model.name}' was built",
                    hint,
                )
        if orch_uses:
            ctx.errors.error(
                orch.loc if orch else None,
                f"stack '{ctx.stack.name if ctx.stack else ''}' orchestrator image 'built': no "
                f"image of flow '{ctx.model.name}' was built",
                hint,
            )
        return
    for name in uses:
        ctx.steps[name] = dataclasses.replace(ctx.steps[name], image=image)
    if orch_uses and ctx.stack is not None and orch is not None:
        settings = tuple((k, image if k == "image" else v) for k, v in orch.settings)
        new_orch = dataclasses.replace(orch, settings=settings)
        ctx.stack = dataclasses.replace(
            ctx.stack,
            components=tuple(new_orch if c is orch else c for c in ctx.stack.components),
        )
