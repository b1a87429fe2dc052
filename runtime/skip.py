"""``flowc.runtime.Skip``: what a step callable raises to mark its instance *skipped* (not
failed). Stdlib only and import-free, so ``from flowc.runtime import Skip`` stays cheap in a
step's own module."""

from __future__ import annotations


class Skip(Exception):  # noqa: N818 - the DSL's name (docs/runtime.md, "Skips")
    """Raised by a step callable (or by :func:`flowc.runtime.step.execute` for a ``command:``
    exit code listed in ``skip_on_exit_code``): the instance is skipped, its outputs are null,
    and downstream steps follow their trigger rule. Engines map it to their own skip (Airflow:
    ``AirflowSkipException``)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
