"""The Target protocol and helpers every backend shares (naming, quoting, durations, headers).

A target is a pure function from the IR to ``{relative path: text}``: no I/O, no clock, no
environment, no import of the engine's SDK. Writing files, ``--check`` and ``--all`` live once in
:mod:`flowc.compiler.output`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from flowc import __version__
from flowc.compiler.errors import Diagnostic, Loc
from flowc.compiler.ir import TRIGGERS

if TYPE_CHECKING:
    import jinja2

    from flowc.compiler.ir import Pipeline, Resources, Step


ALL_RUN_VALUES = frozenset({"id", "date", "ds", "ds_nodash", "status", "failed_steps"})
"""Every ``${run.X}`` the DSL defines."""


@dataclass(frozen=True)
class Capabilities:
    """What a target can express, as a table (sqlglot's dialect flags): :func:`check_supported`
    reports every feature of a flow outside it, at once, located, naming the target."""

    operators: bool = False
    """Streaming operator steps (pypz)."""
    channel_transports: frozenset[str] = frozenset()
    """Channel transports its operator pods can use."""
    schedule: str = "yes"
    """``yes``: the output carries the schedule; ``none``: it cannot (a warning: the schedule
    is given to the engine another way)."""
    schedule_kinds: frozenset[str] = frozenset({"cron", "every", "at"})
    catchup: bool = True
    """Backfilling missed runs (``catchup: true``)."""
    step_timeout: bool = True
    """A per-step ``timeout`` is enforced (else a warning: it is not)."""
    retry_delay: bool = True
    """A step's ``retry_delay`` is applied between attempts (else a warning: the engine's own
    back-off applies)."""
    foreach_over_loop: bool = True
    """``foreach`` over the output of a step that runs per item or replica."""
    run_values: frozenset[str] = ALL_RUN_VALUES
    """``${run.X}`` values its steps can read."""
    store_in_pods: bool = False
    """Steps run in pods that exchange values through the stack's artifact store (its class
    must be importable there: a ``components:`` store from a file is refused)."""
    metadata_stores: bool = False
    """Runs record metadata through the stack's ``metadata_store`` (``flowc run``): its type
    must be one the runtime can open."""
    # control flow (docs/control-flow.md): each refused, located, where a target lacks it
    triggers: frozenset[str] = frozenset(TRIGGERS)
    """Trigger rules its engine has natively (KFP: all_success and all_done only)."""
    groups: bool = True
    """Groups (``steps:`` / ``uses:``) as the engine's own construct (TaskGroup, sub-DAG)."""
    foreach_groups: bool = True
    """A group with ``foreach`` (mapped task group, ParallelFor body of several tasks)."""
    finally_steps: bool = True
    """``finally:`` steps (teardown / ExitHandler)."""
    skip_exit_codes: bool = True
    """``skip_on_exit_code`` of command steps."""
    retry_backoff: bool = True
    """``retry_backoff`` / ``retry_max_delay`` applied between attempts."""
    flow_outputs: bool = True
    """Flow ``outputs:`` (KFP pipeline outputs, the final XCom, the run's metadata)."""
    non_json_values: bool = True
    """Values that are not JSON (a DataFrame, ...) cross step boundaries (the artifact store
    pickles them, Airflow's XCom serde carries them); else a step output annotated as one is
    refused (KFP/Vertex: values are JSON parameters)."""
    packages: str = "all"
    """Who installs a step's ``packages`` before it starts: ``all`` (every step's container),
    ``pods`` (only steps the target's ``in_pod(ir, step)`` puts in a pod: a warning for the
    others), ``here`` (none: the steps run in this environment, as for ``image``)."""


class Target(Protocol):
    """What the ``flowc.targets`` entry point group registers."""

    name: ClassVar[str]
    description: ClassVar[str]

    def emit(self, ir: Pipeline) -> dict[str, str]:
        """Return ``{relative path: file text}``. Raise FlowcError for what it cannot express."""
        ...


class BaseTarget:
    """Shared helpers; subclasses set ``name``/``description``, their :class:`Capabilities`
    and implement ``emit`` (and :meth:`check` for target-specific limits)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    CAPABILITIES: ClassVar[Capabilities] = Capabilities()

    def emit(self, ir: Pipeline) -> dict[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, ir: Pipeline) -> list[Diagnostic]:
        """Target-specific problems beyond the capability table (values it cannot express)."""
        return []

    def header_lines(self, ir: Pipeline) -> list[str]:
        """The provenance lines every output starts with (as comments in the file's syntax)."""
        return generated_header(ir, self.name)


def _steps_text(steps: list[Step], most: int = 3) -> str:
    """``step 'a'`` / ``steps 'a', 'b', 'c' and 7 more``."""
    names = ", ".join(f"'{s.name}'" for s in steps[:most])
    more = f" and {len(steps) - most} more" if len(steps) > most else ""
    return f"step {names}" if len(steps) == 1 else f"steps {names}{more}"


def _check_control_flow(ir: Pipeline, caps: Capabilities, name: str, error: Any) -> None:
    """The control-flow rows of the capability table (docs/control-flow.md)."""
    for s in ir.steps:
        if s.trigger not in caps.triggers:
            native = ", ".join(t for t in TRIGGERS if t in caps.triggers)
            error(
                s.loc,
                f"step '{s.name}': trigger '{s.trigger}' cannot be expressed on the {name} "
                "target",
                f"the {name} target has the triggers {native}; restructure the flow (e.g. a "
                "finally: step for cleanup), or compile for the local, airflow or k8s target",
            )
        if s.skip_on_exit_code and not caps.skip_exit_codes:
            error(s.loc, f"step '{s.name}': skip_on_exit_code is not supported on {name}")
        if (s.retry_backoff != 1.0 or s.retry_max_delay is not None) and not caps.retry_backoff:
            error(
                s.loc, f"step '{s.name}': retry_backoff/retry_max_delay are not supported on {name}"
            )
        if s.is_finally and not caps.finally_steps:
            error(s.loc, f"finally step '{s.name}' is not supported on the {name} target")
    for g in ir.groups:
        if not caps.groups:
            error(g.loc, f"group '{g.name}' is not supported on the {name} target")
        elif g.foreach is not None and not caps.foreach_groups:
            error(g.loc, f"foreach group '{g.name}' is not supported on the {name} target")
    if ir.outputs and not caps.flow_outputs:
        error(ir.loc, f"flow outputs are not supported on the {name} target")


def check_supported(ir: Pipeline, target: Any) -> list[Diagnostic]:
    """Every feature of ``ir`` that ``target`` cannot express: errors (and warnings, severity
    ``warning``, for what it drops), located, each naming the target, sorted by location. Runs
    the capability table (:class:`Capabilities`), then the target's own :meth:`check`."""
    caps: Capabilities = getattr(target, "CAPABILITIES", Capabilities())
    name = target.name
    out: list[Diagnostic] = []

    def error(loc: Loc | None, message: str, hint: str | None = None) -> None:
        out.append(Diagnostic(loc or ir.loc, message, hint))

    def warning(loc: Loc | None, message: str, hint: str | None = None) -> None:
        out.append(Diagnostic(loc or ir.loc, message, hint, severity="warning"))

    _check_control_flow(ir, caps, name, error)
    if caps.packages == "pods":
        in_pod = target.in_pod  # the target's rule: which steps run in a pod
        unpodded = [s for s in ir.steps if s.packages and not in_pod(ir, s)]
        if unpodded:
            warning(
                unpodded[0].loc,
                f"{_steps_text(unpodded)}: `packages` are not installed by the {name} target "
                "for a task that runs in the worker",
                "install them on the workers; a command step with an `image:` runs in a pod "
                f"that installs them first when the stack's {name} orchestrator has "
                "`pod_operator: true`",
            )
    for s in ir.steps if not caps.non_json_values else ():
        for output, what in s.non_json_outputs:
            error(
                s.loc,
                f"step '{s.name}': output '{output}' is {what} (its return annotation), which "
                f"the {name} target cannot pass between steps: its values are JSON parameters",
                "return JSON data (e.g. frame.to_dict('records')), or write the data to "
                "storage and return its path; the local, airflow and k8s targets carry it",
            )
    untimed: list[Step] = []  # steps whose timeout / retry_delay the target drops
    undelayed: list[Step] = []
    for s in ir.steps:
        if s.operator and not caps.operators:
            error(
                s.loc,
                f"step '{s.name}' is a streaming operator, which the {name} target cannot run",
                "compile flows with operator steps for the local or k8s target",
            )
        if s.timeout is not None and not caps.step_timeout:
            untimed.append(s)
        if s.retries and s.retry_delay and not caps.retry_delay:
            undelayed.append(s)
        for r in s.run_refs if caps.run_values != ALL_RUN_VALUES else ():
            if r.path[:1] and r.path[0] not in caps.run_values:
                error(r.loc or s.loc, f"${{{r.dotted}}} is not available on the {name} target")
        f = s.foreach
        if f is not None and not caps.foreach_over_loop:
            for r in f.refs():
                producer = ir.step(r.step) if r.step and not ir.is_group(r.step) else None
                if producer is not None and (producer.foreach is not None or producer.replicas > 1):
                    error(
                        r.loc or s.loc,
                        f"step '{s.name}': the {name} target cannot loop over ${{{r.dotted}}}, "
                        f"the output of step '{producer.name}', which runs per item or replica",
                        "loop over a list param or the output of a step that runs once, or "
                        "compile for the local, airflow or k8s target",
                    )
    if untimed:
        warning(
            untimed[0].loc,
            f"the {name} target cannot enforce a per-step timeout: not applied to "
            f"{_steps_text(untimed)}",
        )
    if undelayed:
        warning(
            undelayed[0].loc,
            f"the {name} target cannot apply retry_delay (its engine's own back-off applies "
            f"between attempts): {_steps_text(undelayed)}",
        )
    for c in ir.channels:
        if c.transport not in caps.channel_transports:
            usable = sorted(caps.channel_transports)
            error(
                c.loc,
                f"channel '{c.name}' uses the {c.transport} transport, which the {name} target "
                "cannot use",
                (
                    f"use 'transport: {usable[0]}' with a 'location' for the {name} target"
                    if usable
                    else "compile flows with channels for the local or k8s target"
                ),
            )
    sched = ir.schedule
    if sched is not None:
        if caps.schedule == "none":
            warning(
                sched.loc,
                f"the {name} target's output holds no schedule: this flow's schedule is not in it",
                "create a recurring run from the compiled pipeline with the KFP client "
                "(create_recurring_run), or compile for vertex, airflow or k8s",
            )
        elif sched.kind not in caps.schedule_kinds:
            error(sched.loc, f"the {name} target cannot express a schedule with '{sched.kind}'")
        elif sched.catchup and not caps.catchup:
            error(
                sched.loc,
                f"the {name} target cannot catch up (backfill) missed runs",
                f"set catchup: false for the {name} target",
            )
    stack = ir.stack
    if stack is not None and caps.store_in_pods and stack.artifact_store is not None:
        store = stack.artifact_store
        custom = next((c for c in ir.components if c.name == store.type), None)
        if custom is not None:
            where = custom.class_ref.partition(":")[0]
            if where.endswith(".py") or "/" in where:
                error(
                    store.loc,
                    f"artifact store '{store.type}' is a class from the file {where}, which the "
                    f"{name} target's step pods cannot import",
                    "use a built-in store (local on a shared volume, gcs), or package the class "
                    "as a module installed in the step image",
                )
            else:
                warning(
                    store.loc,
                    f"artifact store '{store.type}' ({custom.class_ref}) must be importable in "
                    f"the {name} target's step pods",
                    "install its module in the step image",
                )
    if stack is not None and caps.metadata_stores and stack.metadata_store is not None:
        from flowc.runtime.metadata import METADATA_STORES

        meta = stack.metadata_store
        if meta.type not in METADATA_STORES:
            error(
                meta.loc,
                f"metadata store type '{meta.type}' cannot be opened by `flowc run` (the "
                f"{name} target)",
                f"known metadata store types: {', '.join(sorted(METADATA_STORES))}",
            )
    out.extend(target.check(ir) if hasattr(target, "check") else [])
    return sorted(out, key=lambda d: (d.loc is None, d.loc or Loc("", 0, 0)))


def generated_header(ir: Pipeline, target: str) -> list[str]:
    """The provenance lines. They become comments, which a line break in the source's file name
    would end (code in a Python file, keys in YAML): its unprintable characters are escaped."""
    path = "".join(c if c.isprintable() else repr(c)[1:-1] for c in ir.source.path)
    out = ir.source.output_dir
    out = " -o " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in out) if out else ""
    return [
        f"Generated by flowc {__version__} from {path} (sha256 {ir.source.sha256}).",
        f"Do not edit: regenerate with `flowc compile {path} --target {target}{out}`.",
    ]


# ---------------------------------------------------------------------------------------------
# Templates and formatting
# ---------------------------------------------------------------------------------------------


@cache
def jinja_env(target: str) -> jinja2.Environment:
    """A strict jinja2 environment for ``targets/templates/<target>/``. Autoescape is off: every
    value that reaches a template must go through a quoting filter (``py``, ``json``)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flowc.targets", f"templates/{target}"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["py"] = py_literal
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False)
    return env


LINE_LENGTH = 100
# black formats ~40-250 KB/s (it parses the whole file); past this size the code a template wrote
# is kept as written: templates are written in black's style, and tests (golden files, a
# 120-step flow, hostile strings) hold every target's output to black's.
BLACK_MAX_CHARS = 64_000


def black_format(source: str, literals: Mapping[str, Any] | None = None) -> str:
    """Format Python source with black (line length 100), deterministically.

    Large data does not go through black (it formats ~40 KB/s, and a 1,000-step plan is MBs):
    put a placeholder name in ``source`` and its value in ``literals``; black formats the code
    around it, then :func:`format_literal` writes the value in place exactly as black would
    (tests assert black leaves the result unchanged)."""
    if len(source) <= BLACK_MAX_CHARS:
        import black

        mode = black.Mode(line_length=LINE_LENGTH, target_versions={black.TargetVersion.PY311})
        text = black.format_str(source, mode=mode)
    else:
        text = source
    for name, value in (literals or {}).items():
        lines = text.split("\n")
        for i, line in enumerate(lines):
            col = line.find(name)
            if col < 0:
                continue
            indent = len(line) - len(line.lstrip(" "))
            suffix = line[col + len(name) :]
            lit = format_literal(
                value, col=_width(line[:col]), indent=indent, suffix_len=_width(suffix)
            )
            lines[i] = line[:col] + lit + suffix
        text = "\n".join(lines)
    return text


def format_literal(value: Any, *, col: int = 0, indent: int = 0, suffix_len: int = 0) -> str:
    """``value`` (JSON-able) as a Python literal laid out the way black lays it out: on one line
    when it fits in ``LINE_LENGTH`` from column ``col`` (plus ``suffix_len`` characters after it),
    else exploded one element per line with trailing commas, recursively."""
    return _layout(value, col, indent, suffix_len, _Atoms())


class _Atoms(dict):
    """One-line spellings, computed once per node of the value being laid out (by id)."""

    def of(self, value: Any) -> str:
        key = id(value)
        text = self.get(key)
        if text is None:
            if isinstance(value, dict):
                text = (
                    "{"
                    + ", ".join(f"{py_literal(k)}: {self.of(v)}" for k, v in value.items())
                    + "}"
                )
            elif isinstance(value, (list, tuple)):
                text = "[" + ", ".join(self.of(v) for v in value) + "]"
            else:
                text = py_literal(value)
            self[key] = text
        return text


def _layout(value: Any, col: int, indent: int, suffix_len: int, atoms: _Atoms) -> str:
    one = atoms.of(value)
    if (
        col + _width(one) + suffix_len <= LINE_LENGTH
        or not isinstance(value, (list, tuple, dict))
        or not value
    ):
        return one
    inner = indent + 4
    pad = " " * inner
    # black explodes a collection one element per line with trailing commas; a single element
    # is put on its own line without a comma (and split further only if it still does not fit).
    comma = "," if len(value) > 1 else ""
    lines = ["{" if isinstance(value, dict) else "["]
    if isinstance(value, dict):
        for k, v in value.items():
            key = py_literal(k) + ": "
            col_v = inner + _width(key)
            lines.append(pad + key + _layout(v, col_v, inner, len(comma), atoms) + comma)
    else:
        for v in value:
            lines.append(pad + _layout(v, inner, inner, len(comma), atoms) + comma)
    lines.append(" " * indent + ("}" if isinstance(value, dict) else "]"))
    return "\n".join(lines)


def _width(text: str) -> int:
    """Display width as black measures lines (wide East Asian characters count 2)."""
    if text.isascii():
        return len(text)
    from black.strings import str_width

    return str_width(text)


@cache
def _black_string(text: str) -> str:
    """``repr(text)`` with black's quote preference, as ``black.strings.normalize_string_quotes``
    writes it (without importing black): double quotes unless that needs more escapes, i.e.
    unless the text has more ``"`` than ``'``."""
    single = repr(text)
    if single[0] == "'" and text.count('"') <= text.count("'"):
        return '"' + single[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
    return single


def py_literal(value: Any) -> str:
    """A Python literal for a JSON-able value on one line, spelled as black spells it: strings
    are ``repr``-quoted (safe for any content: quotes, newlines, NUL, unicode) with black's quote
    preference, exponents without "+", dict keys in their order. For data that may not fit a
    line, use :func:`format_literal`."""
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"float({str(value)!r})"
        return repr(value).replace("e+", "e")  # black spells exponents without "+"
    if isinstance(value, str):
        return _black_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not JSON-able: {value!r}")


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------

_INF = float("inf")


def json_text(value: Any, *, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """Exactly ``json.dumps(value, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii)``,
    about twice as fast on large data: with ``indent`` the json module encodes with its
    generator-based pure-Python encoder; this writes the same text into one list, with the C
    string encoder for strings and keys. For JSON-able data without reference cycles."""
    enc = encode_basestring_ascii if ensure_ascii else encode_basestring
    out: list[str] = []
    write = out.append

    def key_text(k: Any) -> str:  # json's key coercions
        if isinstance(k, str):
            return enc(k)
        if isinstance(k, float):
            return enc(_json_float(k))
        if k is True or k is False or k is None:
            return enc("true" if k else "false" if k is False else "null")
        if isinstance(k, int):
            return enc(int.__repr__(k))
        raise TypeError(f"keys must be str, int, float, bool or None, not {k.__class__.__name__}")

    def put(v: Any, pad: str) -> None:
        if isinstance(v, str):
            write(enc(v))
        elif isinstance(v, dict):
            if not v:
                write("{}")
                return
            inner = pad + "  "
            sep = "{\n" + inner
            for k, x in sorted(v.items()) if sort_keys else v.items():
                write(sep)
                write(enc(k) if type(k) is str else key_text(k))
                write(": ")
                put(x, inner)
                sep = ",\n" + inner
            write("\n" + pad + "}")
        elif isinstance(v, (list, tuple)):
            if not v:
                write("[]")
                return
            inner = pad + "  "
            sep = "[\n" + inner
            for x in v:
                write(sep)
                put(x, inner)
                sep = ",\n" + inner
            write("\n" + pad + "]")
        elif v is None:
            write("null")
        elif v is True:
            write("true")
        elif v is False:
            write("false")
        elif isinstance(v, int):
            write(int.__repr__(v))
        elif isinstance(v, float):
            write(_json_float(v))
        else:  # not JSON-able: json's own error
            text = json.dumps(v, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
            write(text.replace("\n", "\n" + pad))

    put(value, "")
    return "".join(out)


def _json_float(v: float) -> str:
    if v != v:
        return "NaN"
    if v == _INF:
        return "Infinity"
    if v == -_INF:
        return "-Infinity"
    return float.__repr__(v)


# ---------------------------------------------------------------------------------------------
# Naming and durations
# ---------------------------------------------------------------------------------------------

_DNS1123 = re.compile(r"[^a-z0-9-]+")


def dns1123(name: str, max_len: int = 63) -> str:
    """A deterministic DNS-1123 label: lowercase, ``_`` and other characters -> ``-``, trimmed."""
    out = _DNS1123.sub("-", name.lower()).strip("-")
    out = re.sub(r"-{2,}", "-", out)[:max_len].rstrip("-")
    return out or "x"


def dns1123_unique(name: str, max_len: int = 63) -> str:
    """:func:`dns1123` for names that must stay distinct: a name longer than ``max_len`` keeps
    its start and ends with ``-`` and 8 hex digits of the sha256 of ``name`` (stable, and two
    names that share their first ``max_len - 9`` characters still differ)."""
    full = dns1123(name, 10_000)
    if len(full) <= max_len:
        return full
    import hashlib

    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{full[: max_len - 9].rstrip('-')}-{digest}"


def kebab(name: str) -> str:
    """``load_data`` -> ``load-data`` (KFP / Kubernetes spelling of a step name)."""
    return name.replace("_", "-")


def seconds_text(seconds: float) -> str:
    """``90.0`` -> ``"90s"``, ``0.5`` -> ``"0.5s"`` (protobuf Duration JSON)."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:g}s"


def every_to_cron(seconds: float) -> str | None:
    """An interval as the 5-field cron expression firing at the same times, when there is one:
    whole minutes dividing an hour, whole hours dividing a day, or one day. None otherwise."""
    if seconds <= 0 or seconds % 60:
        return None
    minutes = int(seconds // 60)
    if minutes < 60:
        return (
            "* * * * *" if minutes == 1 else (f"*/{minutes} * * * *" if 60 % minutes == 0 else None)
        )
    if minutes % 60:
        return None
    hours = minutes // 60
    if hours < 24:
        return "0 * * * *" if hours == 1 else (f"0 */{hours} * * *" if 24 % hours == 0 else None)
    return "0 0 * * *" if hours == 24 else None


# ---------------------------------------------------------------------------------------------
# Secrets on Kubernetes (the k8s and kfp targets)
# ---------------------------------------------------------------------------------------------

FLOW_SECRET_BASE_MAX = 40
"""Length of the flow name part of the flow's Secret ``<flow>-secrets`` (as every flow-level
name of the k8s target)."""


def k8s_secret(ir: Pipeline, name: str) -> tuple[str, str, str]:
    """How a pod gets secret ``name``: ``(env var, Secret name, key)`` -- a reference, never a
    value. The runtime reads ``$VAR`` (the secret's ``env`` source, else its name upper-cased).
    A secret with a ``k8s`` source is that Secret's key (default: the secret's name); any other
    lives in the flow's Secret ``<flow>-secrets``, keyed by the var (the documented mapping)."""
    ref = ir.secret(name)
    var = ref.env or name.upper()
    if ref.k8s_name:
        return var, ref.k8s_name, ref.k8s_key or name
    return var, f"{dns1123(ir.name, FLOW_SECRET_BASE_MAX)}-secrets", var


# ---------------------------------------------------------------------------------------------
# Pods (Kubernetes Jobs, Airflow pods, k8s operators): one spelling of the IR's pod facts
# ---------------------------------------------------------------------------------------------


def pod_resources(r: Resources) -> dict[str, dict[str, str]]:
    """A container's ``resources`` under the IR's one policy (:class:`Resources`): each value
    is the request and the limit, a GPU count the ``nvidia.com/gpu`` limit. Empty: ``{}``."""
    out: dict[str, dict[str, str]] = {}
    requests, limits = r.requests(), r.limits()
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def pod_node_selector(r: Resources, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A pod's ``nodeSelector``: ``base`` (the stack's) plus the node label a ``gpu_type`` needs
    (:meth:`Resources.node_selector`)."""
    return {**(base or {}), **r.node_selector()}


def secret_env_var(ir: Pipeline, name: str) -> dict[str, Any]:
    """The container env entry that carries secret ``name`` (see :func:`k8s_secret`): a
    ``secretKeyRef``, never a value."""
    var, secret, key = k8s_secret(ir, name)
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def pip_install_line(step: Step, python: str = "python3", flowc: bool = True) -> str:
    """The shell line a container runs before ``step`` when it has ``packages`` (what kfp's
    ``packages_to_install`` does: ensure pip, install quietly, from ``package_index`` when set);
    ``""`` when it has none. ``flowc``: the container runs the step through flowc's runtime,
    which a stock image lacks: this flowc version is installed too, unless the list names
    flowc. Every word is shell-quoted."""
    import shlex

    if not step.packages:
        return ""
    packages = list(step.packages)
    names = {re.split(r"[\[=<>!~;@ ]", r, maxsplit=1)[0].lower() for r in packages}
    if flowc and "flowc" not in names:
        packages.insert(0, f"flowc=={__version__}")
    index = ["--index-url", step.package_index] if step.package_index else []
    words = [python, "-m", "pip", "install", "--quiet", "--no-warn-script-location", *index]
    ensure = (
        f"if ! {python} -m pip --version >/dev/null 2>&1; then {python} -m ensurepip || "
        f"{python} -m ensurepip --user; fi\n"
    )
    return (
        ensure
        + "PIP_DISABLE_PIP_VERSION_CHECK=1 "
        + " ".join(shlex.quote(w) for w in [*words, *packages])
    )


def with_pip_install(
    step: Step, argv: list[str], python: str = "python3", flowc: bool = True
) -> list[str]:
    """``argv`` run after the step's ``packages`` are installed: ``sh -c 'INSTALL && exec
    "$0" "$@"' argv...`` (``argv`` itself when it has none)."""
    line = pip_install_line(step, python, flowc)
    if not line:
        return argv
    return ["sh", "-c", line + ' && exec "$0" "$@"\n', *argv]


def _secret_refs(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, list) and len(ref) == 2 and ref[0] == "secrets":
            out.add(str(ref[1]))
            return
        for v in value.values():
            _secret_refs(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _secret_refs(v, out)


def config_secret_names(ir: Pipeline) -> list[str]:
    """The secrets the stack's components, the enabled plugins and the integration framework
    reference in their configuration (``${secrets.NAME}``, kept as references by the
    compiler), sorted: the driver, every step pod and every operator pod get them as
    ``secretKeyRef`` env (plugins and integrations are built in the step pods, the driver opens
    the artifact store), never a value. KFP/Vertex executors get them as ``secretAsEnv``."""
    found: set[str] = set()
    for comp in ir.stack.components if ir.stack else ():
        _secret_refs([v for _, v in comp.settings], found)
    for plugin in ir.plugins:
        if plugin.enabled:
            _secret_refs([v for _, v in plugin.config], found)
    if ir.integrations is not None:
        _secret_refs(ir.integrations.to_data(), found)
    return sorted(found)
