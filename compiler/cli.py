"""The ``flowc`` command line: thin. Parses arguments, calls the API, renders errors.

Sub-commands live one per module in :mod:`flowc.compiler.commands` and are imported lazily, so
``flowc --help`` and ``flowc validate`` start fast. Exit codes: 0 ok, 1 user error, 2 usage.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowc import __version__

if TYPE_CHECKING:
    import click

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


def _build_cli() -> click.Group:
    """The ``flowc`` click group (built on first use: the ``validate`` fast path of
    :func:`main` never imports click)."""
    import click

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
        """flowc: compile one YAML pipeline to Airflow 3, KFP v2, Vertex AI, Kubernetes, or run
        it locally."""

    return cli


_CLI: list[click.Group] = []


def _cli() -> click.Group:
    if not _CLI:
        _CLI.append(_build_cli())
    return _CLI[0]


def __getattr__(name: str) -> Any:
    """``cli`` (the click group) is built when first asked for (PEP 562)."""
    if name == "cli":
        return _cli()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for command bodies: a FlowcError is printed as located diagnostics and exits 1;
    nothing else a user can cause prints a traceback."""
    import functools

    import click

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
    """Console-script entry point (``flowc`` and ``python -m flowc``).

    Run as the process's own command (``argv`` None), it ends the process without tearing
    down the heap (see :func:`_exit`): a 1,000-step compile leaves ~100 MB of objects whose
    one-by-one release at interpreter shutdown costs more than the compile's slowest target."""
    if argv is not None:  # called from Python (tests, embedding): a normal return or SystemExit
        _cli().main(args=argv, prog_name="flowc")
        return
    args = sys.argv[1:]
    command = next((a for a in args if not a.startswith("-")), None)
    if command is not None and command not in FAST_EXIT:
        _cli().main(prog_name="flowc")  # a normal exit: see FAST_EXIT
        return
    try:
        status = _fast_path(args)
        if status is None:
            _cli().main(prog_name="flowc")
            status = 0
    except SystemExit as e:
        _exit(e.code)
    _exit(status)


#: The commands that end without heap teardown (and ``flowc --version`` / ``--help``): they
#: write their files with ``with`` blocks and hold no database. Every other command (``run``,
#: ``runs``, ``worker``, ``deploy``, ...) exits normally: an SQLite connection left open is
#: checkpointed and its WAL file removed only by its finaliser, and a plugin may leave a
#: buffered file that only the heap teardown flushes.
FAST_EXIT = frozenset({"validate", "compile", "graph", "schema", "targets", "completion"})


def _fast_path(args: list[str]) -> int | None:
    """``flowc validate [--no-import] [-q] FLOW...`` (what the pre-commit hook runs) without
    click: the same body, output and exit status as the click command (tests compare the two);
    None for every other command line, which click parses."""
    if (
        not args
        or args[0] != "validate"
        or any(k.startswith("_FLOWC_COMPLETE") for k in os.environ)
    ):
        return None
    from flowc.compiler.commands.validate_core import fast_args, validate_flows

    kw = fast_args(args[1:])
    if kw is None:
        return None
    return validate_flows(**kw)  # type: ignore[arg-type]


def _exit(code: object) -> None:
    """End the process with ``code`` (as :class:`SystemExit` would) once the output is out.

    What a normal shutdown does that anyone can observe is done here first: a non-daemon thread
    that still runs (a normal exit joins it), or sqlite3 loaded (a connection's finaliser
    checkpoints its WAL), makes this a plain ``sys.exit``; ``atexit`` handlers
    run (logging's flush, ``tempfile``/``weakref.finalize`` clean-ups, multiprocessing's
    children, coverage); stdout and stderr are flushed, and a failed flush (a closed pipe) is
    reported as Python reports it (exit 120). What is skipped is only the release of every
    object and module, which nothing outside the process sees."""
    import threading

    main_thread = threading.main_thread()
    if "sqlite3" in sys.modules or any(
        t is not main_thread and not t.daemon for t in threading.enumerate()
    ):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed to stderr, status 1
        try:
            print(code, file=sys.stderr)
        except Exception:  # noqa: BLE001 - stderr itself is gone
            pass
        status = 1
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - e.g. BrokenPipeError: Python exits 120 then
            if status == 0:
                status = 120
    os._exit(status & 0xFF)


if __name__ == "__main__":
    main()
