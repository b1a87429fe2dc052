"""The ``ctx`` object a step function receives when it declares a ``ctx`` parameter.

It carries the run identity (run id, logical date, flow name), the step name, the resolved
pipeline params, a logger writing to the step's log, the values of the run services (plugins,
integration tree), where the step may write files of its own, and its replica/foreach position.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Context:
    """What a running step can see. Read-only by convention."""

    run_id: str
    step: str
    flow: str
    params: dict[str, Any]
    run_date: str | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("flowc.step"))
    plugins: Any = None
    integrations: Any = None
    artifact_dir: Path | None = None  # a local folder this step instance may write files into
    log_path: Path | None = None
    replica: int | None = None  # 0..replicas-1 when the step has replicas, else None
    replicas: int = 1
    item: Any = None  # the foreach element (None outside foreach)
    index: int | None = None  # the foreach position
    attempt: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def artifact_path(self, name: str) -> Path:
        """A path inside this step's artifact folder (the folder and, for ``sub/x``, its
        sub-folders are created). A name that is absolute or leaves the folder (``../x``, a
        symlink pointing out) is refused with :class:`ValueError`."""
        base = Path(self.artifact_dir or Path(".flowc") / "runs" / self.run_id / self.step)
        text = str(name)
        if not text or "\x00" in text or Path(text).is_absolute():
            raise ValueError(f"ctx.artifact_path({text!r}): give a relative name inside {base}")
        base.mkdir(parents=True, exist_ok=True)
        path = base / text
        real_base = base.resolve()
        real = path.resolve()
        if real != real_base and real_base not in real.parents:
            raise ValueError(
                f"ctx.artifact_path({text!r}) leaves the step's artifact folder {base}: "
                "give a relative name without '..'"
            )
        if real.parent != real_base:
            real.parent.mkdir(parents=True, exist_ok=True)
        return path

    def __getattr__(self, name: str) -> Any:
        # ctx_extra keys are reachable as attributes too (e.g. Airflow's ``ctx.ti``).
        extra = self.__dict__.get("extra") or {}
        if name in extra:
            return extra[name]
        raise AttributeError(name)
