"""Masking what in-process steps write below Python's ``sys.stdout``/``sys.stderr``: raw file
descriptor writes (``os.write(1, ...)``) and the output of subprocesses they start inherit file
descriptors 1 and 2, which the thread-level capture of :mod:`flowc.runtime.step_log` cannot
see. While a run with secrets executes, :func:`masked_console` points descriptors 1 and 2 at
pipes whose pumps mask the secrets before writing to the real console, or to the log of the
step when exactly one in-process step is capturing (a descriptor belongs to the process, not to
a thread: with several steps at once the output cannot be attributed and goes, masked, to the
console). Python-level writes keep going straight to the console (or the step log)."""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flowc.runtime import step_log
from flowc.runtime.masking import pump

_lock = threading.Lock()
_secrets: list[str] = []  # the union over the runs in progress (read by the pumps)
_users = 0
_saved: list[tuple[int, int, threading.Thread, Any]] = []
_DRAIN_SECONDS = 2.0


def _route(saved_fd: int) -> Any:
    def write(data: bytes) -> None:
        sink = step_log.sole_active_sink()
        if sink is not None:
            sink.write_masked(data.decode("utf-8", "replace"))
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(saved_fd, view) :]
            except InterruptedError:  # pragma: no cover
                continue
            except OSError:
                return

    return write


def _install() -> None:
    step_log.install_streams()
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
        saved = os.dup(fd)
        os.set_inheritable(saved, False)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        thread = pump(read_end, _route(saved), _secrets)
        # Python-level writes of this process bypass the pipe: they are masked (or captured)
        # by step_log already and must not be taken for a step's raw output
        direct = io.TextIOWrapper(
            io.FileIO(saved, "w", closefd=False),
            encoding="utf-8",
            errors="replace",
            line_buffering=True,
            write_through=True,
        )
        previous = step_log.redirect_original(name, direct, fd)
        _saved.append((fd, saved, thread, previous))


def _uninstall() -> None:
    while _saved:
        fd, saved, thread, previous = _saved.pop()
        name = "stdout" if fd == 1 else "stderr"
        step_log.restore_original(name, previous)
        os.dup2(saved, fd)  # the pipe's last write end held by this process is closed
        thread.join(_DRAIN_SECONDS)  # a subprocess left running may keep the pipe open
        os.close(saved)


@contextmanager
def masked_console(secrets: list[str]) -> Iterator[None]:
    """While active (and ``secrets`` is not empty, on POSIX), descriptors 1 and 2 of this
    process are masked. Nested and concurrent uses share one redirection."""
    global _users
    if not secrets or os.name != "posix":
        yield
        return
    with _lock:
        added = [s for s in secrets if s not in _secrets]
        _secrets.extend(added)
        if _users == 0:
            try:
                _install()
            except OSError:  # no console descriptors (a daemon): nothing to mask there
                _uninstall()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _uninstall()
                _secrets.clear()
