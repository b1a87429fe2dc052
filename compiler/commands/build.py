"""``flowc build``: write a flow's reproducible container build context, build and push it.

``flowc build FLOW [-e ENV] [--push] [--tag T] [--builder docker|podman|buildah]
[--context-only] [-o DIR]``:

- the context (:mod:`flowc.compiler.build_context`) goes to ``DIR`` (default
  ``build/flowc/image/<flow>``); the same sources give the same bytes and the same default tag;
- the image is ``<flow>:<tag>``, prefixed by the stack's container registry
  (``ContainerRegistry.image_uri``); it is built with ``--builder`` or the first of docker,
  podman, buildah on PATH (none: an error, exit 1, unless ``--context-only``);
- ``--push`` pushes it (the registry component's ``push_image`` when it has one, else the
  builder's ``push``); a push without a container registry in the stack is an error;
- the reference is recorded in ``.flowc/images.json`` next to the flow, where ``flowc compile``
  finds it for ``image: built``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir
from flowc.compiler.errors import FlowcError

BUILDERS = ("docker", "podman", "buildah")


def find_builder(name: str | None) -> str:
    """The path of the builder to use: ``name`` when given, else the first of
    :data:`BUILDERS` on PATH. Raises FlowcError when there is none."""
    names = (name,) if name else BUILDERS
    for candidate in names:
        path = shutil.which(candidate)
        if path:
            return path
    raise FlowcError.at(
        None,
        f"no container builder found on PATH (looked for {', '.join(names)})",
        "install docker, podman or buildah, or pass --context-only to write the build context "
        "and build it elsewhere",
    )


def build_argv(builder: str, ref: str, context: Path) -> list[str]:
    """The command that builds ``context`` as ``ref``."""
    if Path(builder).name == "buildah":
        return [builder, "bud", "--tag", ref, str(context)]
    return [builder, "build", "--tag", ref, str(context)]


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise FlowcError.at(
            None,
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}"
            + (f"\n{tail}" if tail else ""),
            "is the builder's daemon or socket reachable? `--context-only` writes the context "
            "without building",
        )


def _registry(ir: Any) -> Any:
    """The stack's container registry component, or None."""
    if ir.stack is None:
        return None
    from flowc.runtime.stack import ContainerRegistry, build_component

    for comp in ir.stack.components:
        if comp.kind == "container_registry":
            built = build_component(comp.kind, comp.to_data())
            return built if isinstance(built, ContainerRegistry) else None
    return None


@click.command("build")
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option("--push", is_flag=True, help="Push the image to the stack's container registry.")
@click.option("--tag", default=None, help="Image tag (default: a digest of the build context).")
@click.option(
    "--builder", type=click.Choice(BUILDERS), default=None, help="Builder (default: from PATH)."
)
@click.option("--context-only", is_flag=True, help="Write the build context; build nothing.")
@click.option(
    "--base", default=None, metavar="IMAGE", help="Base image (default: python:3.11-slim)."
)
@click.option(
    "-o", "--output", "output_dir", type=click.Path(file_okay=False), help="Context directory."
)
@flow_options
@user_errors
def build(
    flow: str,
    push: bool,
    tag: str | None,
    builder: str | None,
    context_only: bool,
    base: str | None,
    output_dir: str | None,
    **flow_kw: Any,
) -> None:
    """Write FLOW's container build context, build the image and optionally push it."""
    from flowc.compiler import build_context as bc

    with bc.building():
        ir = load_ir(flow, **flow_kw)
    out = Path(output_dir) if output_dir else Path("build") / "flowc" / "image" / ir.name
    try:
        ctx = bc.make_context(flow, base or bc.BASE_IMAGE, exclude=out, extras=bc.needed_extras(ir))
    except bc.BuildError as e:
        raise FlowcError.at(None, e.message, e.hint) from None
    bc.write_context(ctx, out)
    click.echo(f"wrote build context {out} (sha256 {ctx.digest})")

    registry = _registry(ir)
    image_tag = tag or ctx.tag
    ref = registry.image_uri(f"{ir.name}:{image_tag}") if registry else f"{ir.name}:{image_tag}"
    if push and registry is None:
        raise FlowcError.at(
            ir.stack.loc if ir.stack else None,
            "--push needs a container_registry in the stack",
            "add `container_registry: {type: docker, uri: REGISTRY}` (or gcr, "
            "artifact_registry) to the stack",
        )
    if context_only:
        click.echo(f"image (not built): {ref}")
        return

    exe = find_builder(builder)
    _run(build_argv(exe, ref, out), "build")
    click.echo(f"built {ref}")
    if push:
        pusher = getattr(registry, "push_image", None)
        if callable(pusher):
            pusher(ref)
        else:
            _run([exe, "push", ref], "push")
        click.echo(f"pushed {ref}")
    path = bc.record_image(
        flow, ir.name, {"image": ref, "context_sha256": ctx.digest, "pushed": push}
    )
    click.echo(f"recorded {ref} in {path}")
