"""``command:`` steps and child processes: running an argv (never through a shell) with the
step's environment and replica variables, reading its declared outputs from ``$FLOWC_OUTPUTS``,
killing a process group, and the environment a callable sees while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from flowc.runtime.masking import file_writer, pump
from flowc.runtime.plan import StepData
from flowc.runtime.step_common import Skip, StepError
from flowc.runtime.step_log import mark_log_written


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
    process writes to the file named by ``$FLOWC_OUTPUTS``. ``secrets`` are masked in the log.
    An exit code listed in the step's ``skip_on_exit_code`` raises :class:`Skip`."""
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
            mark_log_written()
            write = file_writer(fh)
        else:
            fh = None
            write = _console_writer()
        # the output goes through a pipe and is masked while it is written, never after
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                argv,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
                preexec_fn=die_with_runner(),  # noqa: PLW1509 - only prctl and getppid
            )
        except OSError as e:
            for end in (read_end, write_end):
                os.close(end)
            if fh is not None:
                fh.close()
            raise StepError(step, f"cannot start command {argv[0]!r}: {e}") from None
        os.close(write_end)
        copier = pump(read_end, write, secrets)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise StepError(step, f"timed out after {timeout:g}s (command killed)") from None
        finally:
            copier.join(_DRAIN_SECONDS)  # a daemon the command left may keep the pipe open
            if fh is not None:
                fh.close()
        skip_codes = cast(Mapping[str, Any], data).get("skip_on_exit_code") or ()
        if rc in skip_codes:
            raise Skip(f"command {argv[0]!r} exited with code {rc} (skip_on_exit_code)")
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


_DRAIN_SECONDS = 5.0


def _console_writer() -> Callable[[bytes], None]:
    """Where a command's masked output goes without a log: this process' stdout."""

    def write(data: bytes) -> None:
        out = getattr(sys.stdout, "buffer", None)
        if out is not None:
            out.write(data)
            out.flush()
        else:
            sys.stdout.write(data.decode("utf-8", "replace"))

    return write


def _load_prctl() -> Any:
    """libc's ``prctl`` (Linux), loaded once in the runner so that a forked child only calls
    it; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - no libc
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def die_with_runner(parent: int | None = None) -> Callable[[], None] | None:
    """A ``preexec_fn`` for child processes of a run: on Linux the child gets SIGKILL when
    the runner dies (``prctl(PR_SET_PDEATHSIG)``; the runner's thread that started it, in fact:
    the executor's threads live as long as the run), even by kill -9, so a resumed run never
    starts a step that still runs. None where there is no ``prctl``."""
    if _PRCTL is None:
        return None
    runner = os.getpid() if parent is None else parent
    prctl = _PRCTL

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != runner:  # the runner died before prctl took effect
            os._exit(137)

    return preexec


def _kill_group(proc: subprocess.Popen[Any]) -> None:
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
