"""The lock of a run being executed: an exclusive ``flock`` on ``runs/<run_id>/.lock`` (under
the project state folder), held for the run's whole life by the process executing it. The
kernel releases it when that process ends, however it ends (kill -9 included), so a second
``--resume RUN_ID`` at the same time is refused, and a resume after a crash is not."""

from __future__ import annotations

import os
from pathlib import Path

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunLocked(Exception):
    """Another process holds the run's lock; ``pid`` is the one it recorded (or None)."""

    def __init__(self, run_id: str, pid: int | None):
        self.run_id = run_id
        self.pid = pid
        who = f"process {pid}" if pid else "another process"
        super().__init__(
            f"run {run_id} is being executed by {who}: wait for it to end (or stop it) "
            "before resuming it"
        )


class RunLock:
    """``acquire()`` takes the lock or raises :class:`RunLocked`; ``release()`` drops it."""

    def __init__(self, root: Path, run_id: str):
        self.run_id = run_id
        self.path = Path(root) / "runs" / run_id / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid: int | None = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
            except (OSError, ValueError):
                pid = None
            os.close(fd)
            raise RunLocked(self.run_id, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
