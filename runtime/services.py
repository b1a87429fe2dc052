"""Run services: things started before a run's first step and stopped after its last (even when
the run fails). Plugins (``ctx.plugins``) and the integration tree (``ctx.integrations``) are
services.

A service is named in :data:`SERVICES` as ``ctx attribute -> "module:factory"``. The module is
imported lazily; when it does not exist the service is simply absent. ``factory(plan)`` returns
``None`` when the plan does not use it (e.g. no ``plugins:``), else an object with::

    start(plan: dict, run: RunInfo) -> Any   # the value exposed as ctx.<name>
    stop() -> None                           # always called once start() returned
    stop(status) -> None                     # ... or, if it takes ``status``: "success"/"failed"
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flowc.runtime.plan import Plan

SERVICES: dict[str, str] = {
    "plugins": "flowc.runtime.plugins:service",
    "integrations": "flowc.runtime.integrations:service",
}


@dataclass(frozen=True)
class RunInfo:
    """What a service (or an operator runner) knows about the run."""

    run_id: str
    flow: str
    params: Mapping[str, Any]
    run_date: str | None = None
    root: str = ".flowc"
    extra: Mapping[str, Any] = field(default_factory=dict)


def _factory(target: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:  # the optional part is not there: no such service
            return None
        raise
    return getattr(mod, attr, None)


@contextmanager
def running(
    plan: Plan, run: RunInfo, outcome: Callable[[], str] | None = None
) -> Iterator[dict[str, Any]]:
    """Start every service the plan uses; yield ``{ctx attribute: value}``; stop them (in
    reverse order) on exit, whatever happened. A service whose ``stop`` takes ``status`` is told
    how the run ended: "failed" when the block raised, else ``outcome()`` (default "success")."""
    started: list[Any] = []
    values: dict[str, Any] = {}
    status = "success"
    try:
        for name, target in SERVICES.items():
            factory = _factory(target)
            if factory is None:
                continue
            svc = factory(plan)
            if svc is None:
                continue
            values[name] = svc.start(plan, run)
            started.append(svc)
        try:
            yield values
        except BaseException:
            status = "failed"
            raise
        if outcome is not None:
            status = outcome()
    finally:
        errors: list[BaseException] = []
        for svc in reversed(started):
            try:
                if "status" in inspect.signature(svc.stop).parameters:
                    svc.stop(status=status)
                else:
                    svc.stop()
            except Exception as e:  # keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]
