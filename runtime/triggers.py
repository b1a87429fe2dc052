"""Trigger rules: whether a step instance runs, given the states of the instances it depends
on (docs/runtime.md, "Trigger rules"). Pure functions over state names; the executor, the
Kubernetes driver and every other runtime that schedules flowc steps share them.

States: ``success`` (``cached`` counts as success), ``failed`` (``upstream_failed`` counts as
failed) and ``skipped``. A rule is evaluated once every upstream instance is done; an instance
with no upstream always runs (its ``when`` decides next).
"""

from __future__ import annotations

from collections.abc import Iterable

TRIGGERS: tuple[str, ...] = (
    "all_success",
    "all_done",
    "one_failed",
    "one_success",
    "none_failed",
    "none_failed_min_one_success",
    "all_failed",
)
"""Every trigger rule, the default first."""

RUN = "run"
SKIPPED = "skipped"
UPSTREAM_FAILED = "upstream_failed"

SUCCEEDED = frozenset({"success", "cached"})
FAILED = frozenset({"failed", "upstream_failed"})


def kind(state: str) -> str:
    """``success`` | ``failed`` | ``skipped`` for a finished state."""
    if state in SUCCEEDED:
        return "success"
    if state in FAILED:
        return "failed"
    return "skipped"


def decide(trigger: str, upstream_states: Iterable[str]) -> str:
    """:data:`RUN`, :data:`SKIPPED` or :data:`UPSTREAM_FAILED` for an instance whose upstream
    instances finished in ``upstream_states`` (one entry per instance)."""
    kinds = [kind(s) for s in upstream_states]
    if not kinds:
        return RUN
    ok = kinds.count("success")
    bad = kinds.count("failed")
    n = len(kinds)
    if trigger == "all_success":
        return RUN if ok == n else UPSTREAM_FAILED if bad else SKIPPED
    if trigger == "all_done":
        return RUN
    if trigger == "all_failed":
        return RUN if bad == n else SKIPPED
    if trigger == "one_success":
        return RUN if ok else UPSTREAM_FAILED if bad else SKIPPED
    if trigger == "one_failed":
        return RUN if bad else SKIPPED
    if trigger == "none_failed":
        return UPSTREAM_FAILED if bad else RUN
    if trigger == "none_failed_min_one_success":
        return UPSTREAM_FAILED if bad else RUN if ok else SKIPPED
    raise ValueError(f"unknown trigger rule {trigger!r} (one of {', '.join(TRIGGERS)})")


def aggregate(instance_states: Iterable[str]) -> str:
    """The state of a step from the states of its instances (foreach items, foreach group
    items): ``failed`` when one failed, else ``upstream_failed`` when one was, else ``success``
    when one succeeded (skipped instances give null outputs), else ``skipped``; no instances
    (an empty foreach) is ``success``."""
    states = list(instance_states)
    if not states:
        return "success"
    for state in ("failed", "upstream_failed"):
        if state in states:
            return state
    if any(s in SUCCEEDED for s in states):
        return "success"
    return "skipped"
