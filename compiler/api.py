"""The front-end API: ``compile_flow(path) -> Pipeline`` (load YAML, validate the models, run the
passes, build the IR) and ``emit(ir, target) -> {relpath: text}``."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowc.compiler.errors import FlowcError
from flowc.compiler.ir import Pipeline, Source

if TYPE_CHECKING:
    from flowc.targets.build_cache import BuildCache


def compile_flow(
    path: str | os.PathLike[str],
    *,
    environment: str | None = None,
    params: Mapping[str, str] | Sequence[str] | None = None,
    sets: Mapping[str, str] | Sequence[str] | None = None,
    stack: str | None = None,
    environ: Mapping[str, str] | None = None,
    imports: bool = True,
) -> Pipeline:
    """Compile the flow file at ``path`` to the IR (raises FlowcError with located messages).

    ``params``: ``{name: text}`` or ``["k=v", ...]`` (``--param``; text coerced to the declared
    type). ``sets``: likewise for ``--set dotted.path=value`` (value read as a YAML scalar).
    ``imports=False`` executes no code the flow names (``validate --no-import``; docs/trust.md).
    """
    from flowc.compiler.loader import read_source
    from flowc.compiler.trust import no_imports

    p = str(path)
    raw, text = read_source(p)
    source = Source(_source_path(p), hashlib.sha256(raw).hexdigest())
    with no_imports(not imports):
        return _compile_text(text, p, source, environment, params, sets, stack, environ)


def load_text(
    text: str,
    filename: str = "flow.yaml",
    *,
    environment: str | None = None,
    params: Mapping[str, str] | Sequence[str] | None = None,
    sets: Mapping[str, str] | Sequence[str] | None = None,
    stack: str | None = None,
    environ: Mapping[str, str] | None = None,
    imports: bool = True,
) -> Pipeline:
    """Like :func:`compile_flow` for a flow given as text (tests, fuzzing)."""
    from flowc.compiler.trust import no_imports

    source = Source(os.path.basename(filename), hashlib.sha256(text.encode("utf-8")).hexdigest())
    with no_imports(not imports):
        return _compile_text(text, filename, source, environment, params, sets, stack, environ)


def _pairs(items: Mapping[str, str] | Sequence[str] | None, opt: str) -> dict[str, str]:
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise FlowcError.at(None, f"malformed {opt} {it!r}", f"write {opt} key=value")
        out[k.strip()] = v
    return out


def _compile_text(
    text: str,
    file: str,
    source: Source,
    environment: str | None,
    params: Any,
    sets: Any,
    stack: str | None,
    environ: Mapping[str, str] | None,
) -> Pipeline:
    with _gc_paused():
        return _compile_doc(text, file, source, environment, params, sets, stack, environ)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Compiling and emitting allocate many small objects that all live until the result is
    built; the cyclic GC rescanning them makes big flows superlinear, so it is paused."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compile_doc(
    text: str,
    file: str,
    source: Source,
    environment: str | None,
    params: Any,
    sets: Any,
    stack: str | None,
    environ: Mapping[str, str] | None,
) -> Pipeline:
    from flowc.compiler import loader, schema
    from flowc.compiler.passes import PassContext, build, run_passes

    doc = loader.load_text(text, file)
    set_pairs = _pairs(sets, "--set")
    if set_pairs:
        apply_sets(doc, set_pairs)
    cli_params = _pairs(params, "--param")
    env = dict(os.environ if environ is None else environ)

    def context(doc: Any, model: Any) -> PassContext:
        ctx = PassContext(
            doc=doc,
            model=model,
            source=source,
            environment=environment,
            cli_params=cli_params,
            stack_name=stack,
            environ=env,
        )
        run_passes(ctx)
        return ctx

    try:
        model = schema.validate(doc)
    except FlowcError as e:  # check the rest too: every problem of the file in one report
        from flowc.compiler.recover import diagnose

        raise FlowcError(diagnose(doc, e, context)) from None
    return build(context(doc, model))


def apply_sets(doc: Any, sets: Mapping[str, str]) -> None:
    """Apply ``--set a.b.c=value`` to the loaded data (value parsed as one YAML scalar/flow
    value; locations of set values point at the parent key)."""
    import yaml

    for dotted, text in sets.items():
        keys = dotted.split(".")
        if not all(keys):
            raise FlowcError.at(None, f"malformed --set path {dotted!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, (bytes, set)) or type(value).__module__ == "datetime":
            value = text
        node: Any = doc.data
        path: tuple[Any, ...] = ()
        for k in keys[:-1]:
            if isinstance(node, list) and k.isdigit() and int(k) < len(node):
                key: Any = int(k)
            elif isinstance(node, dict):
                key = k
                if k not in node:
                    node[k] = {}
                    doc.value_locs[(*path, k)] = doc.loc(path)
            else:
                raise FlowcError.at(
                    None, f"--set {dotted}: '{'.'.join(map(str, path))}' is not a mapping"
                )
            node = node[key]
            path = (*path, key)
        last: Any = keys[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            last = int(last)
        elif not isinstance(node, dict):
            raise FlowcError.at(
                None, f"--set {dotted}: '{'.'.join(map(str, path))}' is not a mapping"
            )
        node[last] = value
        doc.value_locs.setdefault((*path, last), doc.loc(path))


def output_relpath(output_dir: str | os.PathLike[str]) -> str | None:
    """An output folder relative to the git repository holding it (posix), else as given when
    relative; None for an absolute folder outside any repository (outputs never hold an
    absolute path)."""
    given = Path(output_dir)
    abs_path = given.resolve()
    for parent in (abs_path, *abs_path.parents):
        if (parent / ".git").exists():
            return abs_path.relative_to(parent).as_posix() or "."
    return None if given.is_absolute() else given.as_posix()


def _source_path(path: str) -> str:
    """``path`` relative to the git repository holding it (posix), else its file name."""
    abs_path = Path(path).resolve()
    for parent in abs_path.parents:
        if (parent / ".git").exists():
            return abs_path.relative_to(parent).as_posix()
    return abs_path.name


def emit(
    ir: Pipeline,
    target_name: str,
    warn: Callable[[str], None] | None = None,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    cache: BuildCache | None = None,
) -> dict[str, str]:
    """The files target ``target_name`` generates for ``ir``. First every feature the target
    cannot express is reported (:func:`flowc.targets.base.check_supported`): errors raise one
    FlowcError holding all of them; warnings (what the target drops) go to ``warn`` (default:
    a line on stderr). ``output_dir`` (where the files will be written) goes into the
    provenance header's regenerate command as ``-o``. ``cache``: one per flow when several
    targets compile it (``compile --all``), so they share work (the kfp and vertex targets one
    PipelineSpec build); handed to targets that declare ``uses_build_cache``."""
    import dataclasses

    from flowc.compiler.registry import load_target

    target = load_target(target_name)
    require_supported(ir, target, warn)
    if output_dir is not None:
        out = output_relpath(output_dir)
        placed = dataclasses.replace(ir, source=dataclasses.replace(ir.source, output_dir=out))
        if cache is not None:
            cache.alias(placed, ir)  # only the header differs: builds are shared
        ir = placed
    with _gc_paused():
        if cache is not None and getattr(target, "uses_build_cache", False):
            return target.emit(ir, cache=cache)
        return target.emit(ir)


def require_supported(ir: Pipeline, target: Any, warn: Callable[[str], None] | None = None) -> None:
    """Raise FlowcError with every error :func:`~flowc.targets.base.check_supported` finds for
    ``target``; hand its warnings to ``warn`` (default: stderr)."""
    from flowc.targets.base import check_supported

    diags = check_supported(ir, target)
    for d in diags:
        if d.severity != "error":
            (warn or _stderr)(d.render())
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise FlowcError(errors)


def check_targets(
    ir: Pipeline, targets: Sequence[str] = (), warn: Callable[[str], None] | None = None
) -> None:
    """What ``flowc validate`` checks beyond the front end, for the targets the flow is meant
    for (``targets``, else the active stack's orchestrator's, else none): every unsupported
    feature at once, then the target's own emit (its output discarded), so a valid flow never
    fails to compile for them. Raises FlowcError with every problem of every target."""
    from flowc.compiler.registry import load_target

    names = list(targets) or ([ir.stack.target] if ir.stack and ir.stack.target else [])
    problems: list[Any] = []
    for name in dict.fromkeys(names):
        target = load_target(name)
        try:
            require_supported(ir, target, warn)
            with _gc_paused():
                target.emit(ir)
        except FlowcError as e:
            problems.extend(e.diagnostics)
    if problems:
        raise FlowcError(problems)


def _stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
