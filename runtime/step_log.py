"""Log capture for step attempts run in a thread: the current thread's stdout/stderr and the
step's logger go to the attempt's log file (opened on first write, secrets masked)."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowc.runtime.masking import MaskingStream

_local = threading.local()


class _LazyLog:
    """A log file opened on first write (most fast steps print nothing)."""

    def __init__(self, path: str | Path, secrets: list[str]):
        self.path = path
        self.secrets = secrets
        self._fh: io.TextIOBase | None = None
        self.opened = False
        # line-buffered when there are secrets: a value split over two writes is masked too
        self._stream = MaskingStream(self._write, secrets)

    def write(self, text: str) -> int:
        return self._stream.write(text)

    def _write(self, text: str) -> None:
        if self._fh is None:
            os.makedirs(os.path.dirname(os.fspath(self.path)) or ".", exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self.opened = True
        self._fh.write(text)
        self._fh.flush()

    def write_masked(self, text: str) -> None:
        """Append text masked already (a raw descriptor write of this step, see
        :mod:`flowc.runtime.step_console`)."""
        self._write(text)

    def close(self) -> None:
        self._stream.close()
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
_active: set[_LazyLog] = set()  # the logs capturing now, in every thread


def sole_active_sink() -> _LazyLog | None:
    """The log capturing now when exactly one step captures, else None."""
    active = list(_active)
    return active[0] if len(active) == 1 else None


def redirect_original(name: str, stream: Any, fd: int) -> Any:
    """Make ``sys.<name>`` (once wrapped by :func:`install_streams`) write to ``stream`` when
    its original writes to descriptor ``fd``; return what to give :func:`restore_original`."""
    wrapper = getattr(sys, name)
    if not isinstance(wrapper, _ThreadStream):
        return None
    try:
        if wrapper._original.fileno() != fd:
            return None
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    previous = wrapper._original
    wrapper._original = stream
    return previous


def restore_original(name: str, previous: Any) -> None:
    wrapper = getattr(sys, name)
    if previous is not None and isinstance(wrapper, _ThreadStream):
        replaced, wrapper._original = wrapper._original, previous
        replaced.flush()


def install_streams() -> None:
    """Wrap ``sys.stdout``/``sys.stderr`` once so that each thread's prints can be captured."""
    _install_streams()


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
    _active.add(sink)
    try:
        yield sink
    finally:
        _active.discard(sink)
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


def mark_log_written() -> None:
    """The attempt running in this thread wrote its log itself (a command's output file)."""
    _local.log_written = True
