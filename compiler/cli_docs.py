"""docs/cli.md, generated from the click commands: every command and sub-command with its
``--help`` text (options, defaults, choices). ``python -m flowc.compiler.cli_docs > docs/cli.md``
regenerates it; tests/test_cli_docs.py checks it is current."""

from __future__ import annotations

from collections.abc import Iterator

import click

HEADER = """\
# Command-line reference

Generated from the commands' own `--help` by `python -m flowc.compiler.cli_docs > docs/cli.md`
(the test suite checks it is current). Exit codes: 0 ok, 1 a problem in the input or a failed
run, 2 a usage error, 130 interrupted (Ctrl-C). Errors are `FILE:LINE:COL: error: message` plus a
hint; `validate` and `compile` also print them as `--output-format json|github|sarif`. Shell
completion: `eval "$(flowc completion bash)"` (see [editors](editors.md)).
"""

WIDTH = 100


def _walk(
    cmd: click.Command, ctx: click.Context, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    yield path, cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
            yield from _walk(sub, sub_ctx, (*path, name))


def markdown() -> str:
    """The whole reference page."""
    from flowc.compiler.cli import cli

    root = cli.make_context("flowc", [], resilient_parsing=True)
    root.terminal_width = root.max_content_width = WIDTH
    out = [HEADER]
    for path, cmd, ctx in _walk(cli, root, ()):
        ctx.terminal_width = ctx.max_content_width = WIDTH
        title = " ".join(("flowc", *path))
        help_text = cmd.get_help(ctx).rstrip()
        out.append(f"\n## `{title}`\n\n```text\n{help_text}\n```\n")
    return "".join(out)


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown())
