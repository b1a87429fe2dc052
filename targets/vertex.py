"""The Vertex AI target: the IR -> ``pipeline_job.json`` (a ``PipelineJob`` request body for
``projects.locations.pipelineJobs.create``) and, for a scheduled flow, ``schedule.json`` (a
``Schedule`` body for ``projects.locations.schedules.create``), built from the active stack's
vertex orchestrator (project, region, pipeline_root, service_account, network). Without a vertex
stack the bodies leave those out (they are then given at submission).

The pipeline spec inside is the KFP target's (:func:`flowc.targets.kfp.build_pipeline_spec`)
without the kfp-kubernetes platform spec: on Vertex, secrets come from Secret Manager (the step's
runtime glue reads the secret's ``vertex:`` source) and a per-step ``timeout`` is not expressible.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from flowc.compiler.errors import Diagnostic, FlowcError
from flowc.compiler.ir import Pipeline, Schedule
from flowc.targets.base import BaseTarget, Capabilities, every_to_cron, json_text
from flowc.targets.build_cache import BuildCache
from flowc.targets.kfp import KFP_CAPABILITIES, build_pipeline_spec, kfp_problems

_LABEL = re.compile(r"[^a-z0-9_-]+")


def _label(value: str) -> str:
    """A GCP label value: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return _LABEL.sub("-", value.lower())[:63]


def dump_json(doc: Any) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json_text(doc, sort_keys=True, ensure_ascii=False) + "\n"


def _vertex_settings(ir: Pipeline) -> dict[str, Any]:
    """The active stack's vertex orchestrator settings as the ``stack_settings`` pass resolved
    them (region default, ``pipeline_root`` from a gcs store's bucket); empty when the active
    stack (if any) does not run on Vertex: the bodies then leave out what only the stack knows
    (project, region, pipeline root, service account, network), to be given at submission."""
    return ir.orchestrator_settings("vertex")


def _problems(ir: Pipeline) -> list[Diagnostic]:
    """What a Vertex job cannot carry: a secret without a Secret Manager source, a vertex stack
    without a pipeline root, a schedule that is not a Vertex cron."""
    out: list[Diagnostic] = []
    for s in ir.steps:
        for name in s.secrets:
            ref = ir.secret(name)
            if not ref.vertex:
                out.append(
                    Diagnostic(
                        ref.loc or s.loc,
                        f"secret '{name}' (used by step '{s.name}') has no Secret Manager source "
                        "for Vertex AI",
                        f"declare it as {name}: {{vertex: {{secret: "
                        "projects/P/secrets/S/versions/latest}}",
                    )
                )
    orch = ir.stack.orchestrator if ir.stack is not None else None
    if orch is not None and ir.stack is not None and ir.stack.target == "vertex":
        if not orch.setting("pipeline_root"):
            out.append(
                Diagnostic(
                    orch.loc or ir.loc,
                    "the vertex orchestrator needs pipeline_root (or a gcs artifact_store bucket)",
                    "e.g. pipeline_root: gs://my-bucket/pipelines",
                )
            )
    sched = ir.schedule
    if sched is not None and sched.kind == "every" and not every_to_cron(sched.every_seconds or 0):
        out.append(
            Diagnostic(
                sched.loc,
                f"Vertex AI schedules are cron-based: every {sched.every_seconds:g}s has no cron "
                "equivalent",
                "use whole minutes dividing an hour (1m, 5m, 15m, 30m), whole hours dividing a "
                "day (1h, 2h, 6h, 12h), 1d, or a cron expression",
            )
        )
    if sched is not None and sched.kind == "at":
        at = datetime.fromisoformat((sched.at or "").replace("Z", "+00:00"))
        if at.second or at.microsecond:
            out.append(Diagnostic(sched.loc, "Vertex AI schedules run on whole minutes"))
    return out


def _require(ir: Pipeline) -> None:
    problems = _problems(ir)
    if problems:
        raise FlowcError(problems)


def pipeline_job(ir: Pipeline, cache: BuildCache | None = None) -> dict[str, Any]:
    """The ``PipelineJob`` request body (JSON names of google.cloud.aiplatform.v1); ``cache``:
    the compile's, holding the KFP target's spec build when it ran first."""
    settings = _vertex_settings(ir)
    _require(ir)
    spec, _ = build_pipeline_spec(ir, platform=False, cache=cache)
    runtime: dict[str, Any] = {}
    if settings.get("pipeline_root"):
        runtime["gcsOutputDirectory"] = settings["pipeline_root"]
    values = {p.name: p.default for p in ir.params if p.has_default}
    if values:
        runtime["parameterValues"] = values
    labels = {"flowc-flow": _label(ir.name)}
    if ir.owner:
        labels["flowc-owner"] = _label(ir.owner)
    if ir.environment:
        labels["flowc-environment"] = _label(ir.environment)
    # runtimeConfig even when empty: aiplatform.PipelineJob(template_path=<this file>) reads it
    job: dict[str, Any] = {
        "displayName": ir.name,
        "labels": labels,
        "pipelineSpec": spec,
        "runtimeConfig": runtime,
    }
    if settings.get("service_account"):
        job["serviceAccount"] = settings["service_account"]
    if settings.get("network"):
        job["network"] = settings["network"]
    return job


def _utc(local: str, tz: str) -> str:
    """A naive ISO date/time read in ``tz`` (or an instant with its offset) -> RFC 3339 UTC."""
    dt = datetime.fromisoformat(local.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_body(
    ir: Pipeline, sched: Schedule, job: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    """The Vertex ``Schedule`` body for ``sched`` (what Vertex cannot run is reported by
    :func:`flowc.targets.base.check_supported` with :class:`VertexTarget`'s table)."""
    body: dict[str, Any] = {
        "allowQueueing": False,
        "displayName": ir.name,
        "maxConcurrentRunCount": "1",
    }
    tz = sched.timezone
    if sched.kind == "cron":
        cron = sched.cron or ""
    elif sched.kind == "every":
        cron = every_to_cron(sched.every_seconds or 0) or ""
    else:  # at: one run, at that minute
        at = datetime.fromisoformat((sched.at or "").replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(tz))
        at = at.astimezone(UTC)
        tz = "UTC"
        cron = f"{at.minute} {at.hour} {at.day} {at.month} *"
        body["maxRunCount"] = "1"
        body["startTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    body["cron"] = f"TZ={tz} {cron}"
    if sched.start and "startTime" not in body:
        body["startTime"] = _utc(sched.start, sched.timezone)
    if sched.end:
        body["endTime"] = _utc(sched.end, sched.timezone)
    request: dict[str, Any] = {"pipelineJob": job}
    if settings.get("project"):
        request["parent"] = f"projects/{settings['project']}/locations/{settings['region']}"
    body["createPipelineJobRequest"] = request
    return body


class VertexTarget(BaseTarget):
    """Vertex AI Pipelines: ``pipeline_job.json`` (+ ``schedule.json`` for scheduled flows)."""

    name: ClassVar[str] = "vertex"
    description: ClassVar[str] = "Vertex AI PipelineJob (and Schedule) request bodies (JSON)"
    CAPABILITIES: ClassVar[Capabilities] = dataclasses.replace(
        KFP_CAPABILITIES,
        schedule="yes",  # schedule.json
        catchup=False,  # Vertex schedules do not backfill
        step_timeout=False,  # no per-task timeout in a Vertex job
    )

    def check(self, ir: Pipeline) -> list[Diagnostic]:
        return kfp_problems(ir, self.name) + _problems(ir)

    uses_build_cache: ClassVar[bool] = True

    def emit(self, ir: Pipeline, cache: BuildCache | None = None) -> dict[str, str]:
        job = pipeline_job(ir, cache)
        out = {"pipeline_job.json": dump_json(job)}
        if ir.schedule is not None:
            settings = _vertex_settings(ir)
            out["schedule.json"] = dump_json(schedule_body(ir, ir.schedule, job, settings))
        return out
