"""The ``flowc`` command line: thin. Parses arguments, calls the API, renders errors.

Sub-commands live one per module in :mod:`flowc.compiler.commands` and are imported lazily, so
``flowc --help`` and ``flowc validate`` start fast. Exit codes: 0 ok, 1 user error, 2 usage.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import click

from flowc import __version__

# name -> "module:attribute" of a click.Command; one line per command module.
COMMANDS: dict[str, str] = {
    "validate": "flowc.compiler.commands.validate:validate",
    "graph": "flowc.compiler.commands.graph:graph",
    "schema": "flowc.compiler.commands.schema:schema",
    "targets": "flowc.compiler.commands.targets:targets",
    "compile": "flowc.compiler.commands.compile:compile_cmd",
    "completion": "flowc.compiler.commands.completion:completion",
    "run": "flowc.compiler.commands.run:run",
    "runs": "flowc.compiler.commands.runs:runs",
    "sniff": "flowc.compiler.commands.sniff:sniff",
    "schedule": "flowc.compiler.commands.schedule:schedule",
    "worker": "flowc.compiler.commands.schedule:worker",
    "schedules": "flowc.compiler.commands.schedule:schedules",
    "jobs": "flowc.compiler.commands.jobs:jobs",
    "init": "flowc.compiler.commands.init:init",
    "new": "flowc.compiler.commands.init:new",
    "components": "flowc.compiler.commands.components:components",
    "plugins": "flowc.compiler.commands.plugins:plugins",
    "deploy": "flowc.compiler.commands.k8s:deploy",
    "status": "flowc.compiler.commands.k8s:status",
    "attach": "flowc.compiler.commands.k8s:attach",
    "destroy": "flowc.compiler.commands.k8s:destroy",
    "retrieve": "flowc.compiler.commands.k8s:retrieve",
    "build": "flowc.compiler.commands.build:build",
    "submit": "flowc.compiler.commands.submit:submit",
    "import": "flowc.compiler.commands.import_:import_cmd",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as e:  # a command whose optional part is missing
            err = str(e)

            @click.command(name=name, help=f"(unavailable: {err})")
            def unavailable() -> None:
                raise click.UsageError(f"'{name}' is unavailable: {err}")

            return unavailable


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(__version__, "--version", prog_name="flowc")
def cli() -> None:
    """flowc: compile one YAML pipeline to Airflow 3, KFP v2, Vertex AI, Kubernetes, or run it
    locally."""


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for command bodies: a FlowcError is printed as located diagnostics and exits 1;
    nothing else a user can cause prints a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from flowc.compiler.errors import FlowcError

        try:
            return fn(*args, **kwargs)
        except FlowcError as e:
            from flowc.compiler import render

            ctx = click.get_current_context(silent=True)
            fmt = (ctx.params.get("output_format") if ctx else None) or "text"
            render.emit(e.diagnostics, fmt)
            sys.exit(1)
        except Exception as e:
            from flowc.runtime.metadata import MetadataError

            if not isinstance(e, MetadataError):
                raise
            click.echo(FlowcError.at(None, e.message, e.hint).render(), err=True)
            sys.exit(1)

    return wrapper


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="flowc")


if __name__ == "__main__":
    main()
