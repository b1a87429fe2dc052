"""Shell completion: ``flowc completion bash|zsh|fish`` prints the script to source, and the
``shell_complete`` callbacks that offer targets, a flow's environments and steps, and run ids.

The callbacks read only what they need (the flow's YAML keys, the metadata store's run ids),
never compile, and return nothing rather than fail: a broken flow must not break the shell.
"""

from __future__ import annotations

import os
from typing import Any

import click
from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")


def _flow_keys(ctx: click.Context, section: str) -> list[str]:
    flow = ctx.params.get("flow") or next(iter(ctx.params.get("flows") or ()), None)
    if not flow:  # an option still waiting for its value leaves the arguments unparsed
        flow = next((a for a in ctx.args if a.endswith((".yaml", ".yml"))), None)
    if not flow:
        return []
    try:
        from flowc.compiler.loader import load_file

        data = load_file(str(flow)).data.get(section)
    except Exception:  # completion never fails: an unreadable flow offers nothing
        return []
    return sorted(str(k) for k in data) if isinstance(data, dict) else []


def complete_environments(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The ``environments:`` of the FLOW already on the command line."""
    return [CompletionItem(e) for e in _flow_keys(ctx, "environments") if e.startswith(incomplete)]


def complete_stacks(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The ``stacks:`` of the FLOW already on the command line."""
    return [CompletionItem(s) for s in _flow_keys(ctx, "stacks") if s.startswith(incomplete)]


def complete_steps(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The ``steps:`` of the FLOW already on the command line."""
    return [CompletionItem(s) for s in _flow_keys(ctx, "steps") if s.startswith(incomplete)]


def complete_targets(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The registered targets."""
    from flowc.compiler.registry import target_names

    return [CompletionItem(t) for t in target_names() if t.startswith(incomplete)]


def complete_run_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Run ids from ``ROOT/metadata.db`` (``--root`` if already given), newest first."""
    root = str(ctx.params.get("root") or ".flowc")
    if not os.path.exists(os.path.join(root, "metadata.db")):
        return []
    try:
        from flowc.runtime.metadata import MetadataStore

        rows: list[dict[str, Any]] = MetadataStore(root=root).runs(limit=200)
    except Exception:
        return []
    return [
        CompletionItem(r["run_id"], help=f"{r['flow']} {r['status']}")
        for r in rows
        if str(r["run_id"]).startswith(incomplete)
    ]


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL. Add to your shell's start-up file:

    \b
      bash: eval "$(flowc completion bash)"     (~/.bashrc)
      zsh:  eval "$(flowc completion zsh)"      (~/.zshrc)
      fish: flowc completion fish | source      (~/.config/fish/config.fish)
    """
    from click.shell_completion import get_completion_class

    from flowc.compiler.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None  # every name in SHELLS is one of click's
    comp = cls(cli, {}, "flowc", "_FLOWC_COMPLETE")
    click.echo(comp.source())
