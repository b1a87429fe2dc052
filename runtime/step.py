"""ONE attempt of one step instance: resolve inputs, call the callable (or run the command), map
the result to the declared outputs.

No retries, no scheduling, no persistence: that is the executor's job (or Airflow's, KFP's...).
This module is what every target calls inside its task / container, through :func:`execute`.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowc.runtime import exprs
from flowc.runtime.context import Context
from flowc.runtime.plan import Plan, StepData


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""Sentinel: "this instance is not a foreach item" (``None`` is a valid item)."""

SecretResolver = Callable[[str, Mapping[str, Any]], "str | None"]
"""``resolver(secret_name, secret_spec) -> value or None`` (spec = ``plan["secrets"][name]``)."""


class StepError(Exception):
    """A step attempt failed for a reason flowc can explain (missing output, missing secret,
    command exit code, bad reference). ``step`` names the step."""

    def __init__(self, step: str, message: str):
        self.step = step
        self.message = message
        super().__init__(f"step '{step}': {message}")


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------


def env_secret_resolver(name: str, spec: Mapping[str, Any]) -> str | None:
    """The default resolver: ``secrets: {x: {env: VAR}}`` reads ``$VAR`` (then ``$X`` upper-cased
    name when no ``env`` source is declared)."""
    var = spec.get("env") or name.upper()
    return os.environ.get(var)


def resolve_secret(plan: Plan, step: str, name: str, resolver: SecretResolver | None = None) -> str:
    """The value of secret ``name`` at run time, or a clear :class:`StepError`."""
    spec = (plan.get("secrets") or {}).get(name)
    if spec is None:
        raise StepError(step, f"secret '{name}' is not declared in the flow's secrets")
    value = (resolver or env_secret_resolver)(name, spec)
    if value is None:
        where = f"environment variable {spec['env']}" if spec.get("env") else "its source"
        raise StepError(step, f"secret '{name}' is missing at run time: set {where}")
    return value


def known_secret_values(plan: Plan, resolver: SecretResolver | None = None) -> list[str]:
    """The values of the plan's declared secrets that resolve now (a resolver that fails counts
    as unset): what to mask in logs and errors."""
    out = []
    for name, spec in (plan.get("secrets") or {}).items():
        try:
            value = (resolver or env_secret_resolver)(name, spec)
        except Exception:
            value = None
        if value:
            out.append(value)
    return out


def mask(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


# ---------------------------------------------------------------------------------------------
# Log capture: stdout/stderr of the current thread go to the step's log
# ---------------------------------------------------------------------------------------------

_local = threading.local()


class _LazyLog:
    """A log file opened on first write (most fast steps print nothing)."""

    def __init__(self, path: str | Path, secrets: list[str]):
        self.path = path
        self.secrets = secrets
        self._fh: io.TextIOBase | None = None
        self.opened = False

    def write(self, text: str) -> int:
        if self._fh is None:
            os.makedirs(os.path.dirname(os.fspath(self.path)) or ".", exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self.opened = True
        self._fh.write(mask(text, self.secrets) if self.secrets else text)
        self._fh.flush()
        return len(text)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _ThreadStream(io.TextIOBase):
    """Replaces sys.stdout/sys.stderr once: writes go to the calling thread's step log if it
    has one, else to the original stream."""

    def __init__(self, original: Any):
        self._original = original

    def write(self, text: str) -> int:
        sink = getattr(_local, "sink", None)
        if sink is not None:
            return sink.write(text)
        return self._original.write(text)

    def flush(self) -> None:
        if getattr(_local, "sink", None) is None:
            self._original.flush()

    def isatty(self) -> bool:
        return getattr(_local, "sink", None) is None and self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


_install_lock = threading.Lock()


def _install_streams() -> None:
    if isinstance(sys.stdout, _ThreadStream) and isinstance(sys.stderr, _ThreadStream):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _ThreadStream):
            sys.stdout = _ThreadStream(sys.stdout)
        if not isinstance(sys.stderr, _ThreadStream):
            sys.stderr = _ThreadStream(sys.stderr)


@contextmanager
def capture(log_path: str | Path | None, secrets: list[str]) -> Iterator[_LazyLog | None]:
    """While active, this thread's prints go to ``log_path`` (secret values masked)."""
    if log_path is None:
        yield None
        return
    _install_streams()
    sink = _LazyLog(log_path, secrets)
    previous = getattr(_local, "sink", None)
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = previous
        _local.log_written = sink.opened
        sink.close()


def log_was_written() -> bool:
    """Whether the last :func:`capture` (or command) in this thread wrote its log file."""
    return bool(getattr(_local, "log_written", False))


class _StderrHandler(logging.Handler):
    """Writes to ``sys.stderr`` as it is at emit time (the step's log while captured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # pragma: no cover - logging must never break a step
            self.handleError(record)


def _make_logger(step: str) -> logging.Logger:
    logger = logging.Logger(f"flowc.{step}")  # not registered globally: one per instance
    h = _StderrHandler()
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    return logger


# ---------------------------------------------------------------------------------------------
# Callables
# ---------------------------------------------------------------------------------------------

_callables: dict[str, tuple[Callable[..., Any], bool]] = {}


def load_callable(ref: str) -> tuple[Callable[..., Any], bool]:
    """``"pkg.mod:func"`` (or ``"pkg.mod:Class.method"``) -> (function, wants_ctx)."""
    hit = _callables.get(ref)
    if hit is not None:
        return hit
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"'{ref}' is not a 'module:function' reference")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"'{ref}' is not callable")
    _callables[ref] = (obj, _wants_ctx(obj))
    return _callables[ref]


def _wants_ctx(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` declares a ``ctx`` parameter."""
    try:
        return "ctx" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def callable_source(ref: str) -> str:
    """The source text of a callable (for cache keys); its module file when unavailable."""
    if ref.startswith("integration:"):
        return ref
    fn, _ = load_callable(ref)
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        mod = sys.modules.get(getattr(fn, "__module__", "") or "")
        path = getattr(mod, "__file__", None)
        return Path(path).read_text(encoding="utf-8", errors="replace") if path else ref


# ---------------------------------------------------------------------------------------------
# Input resolution
# ---------------------------------------------------------------------------------------------


class Inputs:
    """Everything a step instance's expressions may refer to, evaluated lazily (secrets are
    read only when referenced)."""

    def __init__(
        self,
        plan: Plan,
        step: str,
        *,
        params: Mapping[str, Any],
        upstream: Mapping[str, Mapping[str, Any]],
        run_id: str,
        run_date: str | None = None,
        item: Any = MISSING,
        secret_resolver: SecretResolver | None = None,
    ):
        self.plan = plan
        self.step = step
        self.params = params
        self.upstream = upstream
        self.run_id = run_id
        self.run_date = run_date
        self.item = item
        self.secret_resolver = secret_resolver
        self.secret_values: dict[str, str] = {}

    def lookup(self, path: list[str], default: Any) -> Any:
        root = path[0]
        if root == "params":
            cur: Any = self.params
            rest = path[1:]
        elif root == "steps":
            if len(path) < 4 or path[1] not in self.upstream:
                raise exprs.ExprError(
                    f"unknown reference ${{{'.'.join(path)}}} (no upstream value)"
                )
            outs = self.upstream[path[1]]
            if path[3] not in outs:
                raise exprs.ExprError(f"step '{path[1]}' has no output '{path[3]}'")
            cur, rest = outs[path[3]], path[4:]
        elif root == "secrets":
            name = path[1]
            if name not in self.secret_values:
                self.secret_values[name] = resolve_secret(
                    self.plan, self.step, name, self.secret_resolver
                )
            return self.secret_values[name]
        elif root == "item":
            if self.item is MISSING:
                raise exprs.ExprError("${item} used outside foreach")
            cur, rest = self.item, path[1:]
        elif root == "run":
            cur, rest = {"id": self.run_id, "date": self.run_date}, path[1:]
        elif root == "flow":
            cur, rest = {"name": self.plan.get("name")}, path[1:]
        elif root == "env":
            var = path[1] if len(path) > 1 else ""
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise exprs.ExprError(f"environment variable {var} is not set")
        else:
            raise exprs.ExprError(f"unknown reference root '{root}'")
        return exprs.scope_lookup({"v": cur})(["v", *rest], None)

    def eval(self, enc: Any) -> Any:
        if not isinstance(enc, dict):
            return enc
        return exprs.evaluate(enc, self.lookup)

    def kwargs(self, step_data: StepData) -> dict[str, Any]:
        return {k: self.eval(v) for k, v in (step_data.get("with") or {}).items()}

    def env(self, step_data: StepData) -> dict[str, str]:
        return {k: exprs.to_text(self.eval(v)) for k, v in (step_data.get("env") or {}).items()}

    def argv(self, step_data: StepData) -> list[str]:
        return [exprs.to_text(self.eval(a)) for a in step_data.get("command") or []]

    @property
    def secrets(self) -> list[str]:
        return list(self.secret_values.values())


def map_outputs(step: str, declared: list[str], value: Any) -> dict[str, Any]:
    """One output -> the value itself; several -> a dict keyed by output name."""
    if not declared:
        return {}
    if len(declared) == 1:
        return {declared[0]: value}
    if not isinstance(value, Mapping):
        raise StepError(
            step,
            f"returned {type(value).__name__}, but declares outputs {declared}: return a dict "
            "keyed by output name",
        )
    missing = [o for o in declared if o not in value]
    if missing:
        raise StepError(
            step,
            f"missing output(s) {missing} in the returned dict (got keys {sorted(map(str, value))})",
        )
    return {o: value[o] for o in declared}


# ---------------------------------------------------------------------------------------------
# The one public entry point
# ---------------------------------------------------------------------------------------------


def execute(
    plan: Plan,
    step: str,
    *,
    params: Mapping[str, Any],
    upstream: Mapping[str, Mapping[str, Any]],
    run_id: str,
    run_date: str | None = None,
    item: Any = MISSING,
    replica: int | None = None,
    ctx_extra: Mapping[str, Any] | None = None,
    secret_resolver: SecretResolver | None = None,
    log_path: str | Path | None = None,
    timeout: float | None = None,
    attempt: int = 1,
    index: int | None = None,
    mask_values: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """Run one attempt of one instance of ``step``; return ``{output name: value}``.

    ``upstream`` is ``{step: {output: value}}`` for the steps this one references. Secrets are
    read at call time (``secret_resolver``, default: the environment). ``log_path``: when given,
    the step's stdout/stderr (this thread's prints, or the command's output) go there, with
    secret values masked; otherwise they go to the process' stdout/stderr. ``timeout`` applies
    to ``command`` steps only (a callable in this process cannot be stopped: the executor runs
    callables with a timeout in a child process). ``ctx_extra`` keys become ``ctx`` attributes
    (``plugins``/``integrations`` fill those fields). ``mask_values``: more strings to mask in
    the log (the executor passes every declared secret it can read).
    """
    data = plan["steps"][step]
    inputs = Inputs(
        plan,
        step,
        params=params,
        upstream=upstream,
        run_id=run_id,
        run_date=run_date,
        item=item,
        secret_resolver=secret_resolver,
    )
    replicas = int(data.get("replicas") or 1)
    try:
        env = inputs.env(data)
        if data.get("kind") == "command":
            argv = inputs.argv(data)
            log = Path(log_path) if log_path is not None else None
            secrets = _to_mask(inputs, mask_values)
            return _run_command(
                step, data, argv, env, inputs.run_id, secrets, replica, replicas, log, timeout
            )
        kwargs = inputs.kwargs(data)
    except exprs.ExprError as e:
        raise StepError(step, str(e)) from None

    ref = data.get("run") or ""
    ctx_factory = lambda: _context(  # noqa: E731
        plan, step, inputs, replica, replicas, ctx_extra, log_path, attempt, index
    )
    ctx: Context | None
    if ref.startswith("integration:"):
        ctx = ctx_factory()  # its integration tree: the run service's, else built here
        from flowc.runtime import integrations  # lazy: optional part

        try:
            fn = integrations.resolve_callable(ctx, ref)
        except Exception as e:
            raise StepError(step, f"cannot resolve '{ref}': {e}") from None
        wants_ctx = _wants_ctx(fn)
    else:
        try:
            fn, wants_ctx = load_callable(ref)
        except (ImportError, AttributeError, ValueError, TypeError) as e:
            hint = ""
            if isinstance(e, ModuleNotFoundError) and e.name == ref.partition(":")[0].split(".")[0]:
                hint = (
                    " (put its folder on PYTHONPATH, or run from it, or keep it next to the flow)"
                )
            raise StepError(step, f"cannot load callable '{ref}': {e}{hint}") from None
        ctx = ctx_factory() if wants_ctx else None
    if wants_ctx:
        kwargs["ctx"] = ctx
    secrets = _to_mask(inputs, mask_values)
    with _applied_env(env, replica, replicas), capture(log_path, secrets):
        value = fn(**kwargs)
    return map_outputs(step, list(data.get("outputs") or []), value)


def _to_mask(inputs: Inputs, mask_values: tuple[str, ...] | list[str]) -> list[str]:
    """The secret values the step referenced, then ``mask_values`` not among them."""
    secrets = inputs.secrets
    return secrets + [v for v in mask_values if v not in secrets]


def _context(
    plan: Plan,
    step: str,
    inputs: Inputs,
    replica: int | None,
    replicas: int,
    ctx_extra: Mapping[str, Any] | None,
    log: str | Path | None,
    attempt: int,
    index: int | None,
) -> Context:
    extra = dict(ctx_extra or {})
    artifact_dir = extra.pop("artifact_dir", None)
    return Context(
        run_id=inputs.run_id,
        step=step,
        flow=str(plan.get("name")),
        params=dict(inputs.params),
        run_date=inputs.run_date,
        logger=_make_logger(step),
        plugins=extra.pop("plugins", None),
        integrations=extra.pop("integrations", None) or _integrations(plan, inputs.run_id),
        artifact_dir=Path(artifact_dir) if artifact_dir else None,
        log_path=Path(log) if log is not None else None,
        replica=replica,
        replicas=replicas,
        item=None if inputs.item is MISSING else inputs.item,
        index=index,
        attempt=attempt,
        extra=extra,
    )


def _integrations(plan: Plan, run_id: str) -> Any:
    """The integration tree when no run service provided one (a task process on a remote
    target: built once per run id in this process)."""
    if not plan.get("integrations"):
        return None
    from flowc.runtime import integrations  # lazy: optional part

    return integrations.for_run(plan, run_id)


def _replica_env(replica: int | None, replicas: int) -> dict[str, str]:
    """``FLOWC_REPLICA``/``FLOWC_REPLICAS`` for a replica instance (nothing otherwise)."""
    if replica is None:
        return {}
    return {"FLOWC_REPLICA": str(replica), "FLOWC_REPLICAS": str(replicas)}


@contextmanager
def _applied_env(env: dict[str, str], replica: int | None, replicas: int) -> Iterator[None]:
    """Set the step's ``env:`` (and replica variables) in ``os.environ`` for the call. This is
    process-wide: the executor only runs steps with env or replicas in their own process."""
    extra = {**env, **_replica_env(replica, replicas)}
    if not extra:
        yield
        return
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_command(
    step: str,
    data: StepData,
    argv: list[str],
    env: dict[str, str],
    run_id: str,
    secrets: list[str],
    replica: int | None,
    replicas: int,
    log: Path | None,
    timeout: float | None,
) -> dict[str, Any]:
    """Run ``argv`` (never through a shell). Declared outputs are read from the JSON object the
    process writes to the file named by ``$FLOWC_OUTPUTS``. ``secrets`` are masked in the log."""
    if not argv:
        raise StepError(step, "empty command")
    declared = list(data.get("outputs") or [])
    with tempfile.TemporaryDirectory(prefix="flowc-cmd-") as tmp:
        out_file = Path(tmp) / "outputs.json"
        child_env = {**os.environ, **env}
        child_env["FLOWC_OUTPUTS"] = str(out_file)
        child_env["FLOWC_RUN_ID"] = run_id
        child_env["FLOWC_STEP"] = step
        child_env.update(_replica_env(replica, replicas))
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            fh: Any = open(log, "ab")  # noqa: SIM115
            _local.log_written = True
        else:
            fh = None
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT if fh is not None else None,
                env=child_env,
                start_new_session=True,
            )
        except OSError as e:
            if fh is not None:
                fh.close()
            raise StepError(step, f"cannot start command {argv[0]!r}: {e}") from None
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise StepError(step, f"timed out after {timeout:g}s (command killed)") from None
        finally:
            if fh is not None:
                fh.close()
            if log is not None and secrets and log.exists():
                log.write_text(mask(log.read_text(errors="replace"), secrets))
        if rc != 0:
            tail = _tail(log) if log is not None else ""
            raise StepError(step, f"command {argv[0]!r} exited with code {rc}{tail}")
        if not declared:
            return {}
        if not out_file.exists():
            raise StepError(
                step,
                f"declares outputs {declared} but the command wrote no JSON object to "
                "$FLOWC_OUTPUTS",
            )
        try:
            values = json.loads(out_file.read_text(encoding="utf-8"))
        except ValueError as e:
            raise StepError(step, f"$FLOWC_OUTPUTS is not valid JSON: {e}") from None
        if not isinstance(values, dict) or any(o not in values for o in declared):
            raise StepError(step, f"$FLOWC_OUTPUTS must hold a JSON object with keys {declared}")
        return {o: values[o] for o in declared}


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("; last output:\n  " + "\n  ".join(text)) if text else ""
