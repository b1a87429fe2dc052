"""``flowc submit``: compile a flow for KFP or Vertex AI and start a run there; print its URL.

- ``--target kfp``: ``kfp.Client(host=...).create_run_from_pipeline_package(...)`` with the
  compiled ``pipeline.yaml``. The host is ``--host`` or the stack's kubeflow orchestrator
  ``host``; the namespace its ``namespace``; the pipeline root ``--pipeline-root``, else a gcs
  artifact store's ``gs://BUCKET/pipelines``; the service account ``--service-account``.
- ``--target vertex``: ``aiplatform.PipelineJob(...).submit()`` with the compiled job's pipeline
  spec and the stack's vertex orchestrator ``project``, ``region``, ``pipeline_root``,
  ``service_account``, ``network`` (as the vertex target resolves them); a scheduled flow is
  created as a Vertex AI schedule (``PipelineJob.create_schedule``) instead, with the
  compiled schedule's cron. ``--api-endpoint`` points the SDK at another endpoint (REST).

The parameters of the run are the flow's params given with ``--param`` (typed by the flow);
the others take their compiled defaults. The SDKs (extras ``kfp``, ``vertex``) are imported
only here; missing, they are a clear error.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir
from flowc.compiler.errors import FlowcError


def _missing_sdk(extra: str, e: ImportError) -> FlowcError:
    return FlowcError.at(
        None, f"flowc submit needs the {extra} SDK: {e}", f"pip install 'flowc[{extra}]'"
    )


def run_arguments(ir: Any, given: dict[str, str]) -> dict[str, Any]:
    """The typed values of the params given with ``--param`` (the compiled defaults)."""
    return {p.name: p.default for p in ir.params if p.name in given}


def _orchestrator(ir: Any, kind: str) -> dict[str, Any]:
    orch = ir.stack.orchestrator if ir.stack is not None else None
    if orch is None or orch.type not in kind.split("|"):
        return {}
    return dict(orch.settings)


def _gcs_root(ir: Any) -> str | None:
    store = ir.stack.artifact_store if ir.stack is not None else None
    if store is not None and store.type == "gcs" and store.setting("bucket"):
        return f"gs://{store.setting('bucket')}/pipelines"
    return None


def submit_kfp(
    ir: Any,
    arguments: dict[str, Any],
    *,
    host: str | None,
    pipeline_root: str | None,
    service_account: str | None,
    experiment: str | None,
    run_name: str,
) -> str:
    """Create a KFP run of ``ir``; return its URL."""
    from flowc.compiler.api import emit

    settings = _orchestrator(ir, "kubeflow|kfp")
    host = host or settings.get("host")
    if not host:
        raise FlowcError.at(
            ir.stack.loc if ir.stack else None,
            "no KFP host: give --host URL or set the kubeflow orchestrator's host in the stack",
            "e.g. orchestrator: {type: kubeflow, host: https://kfp.example.com}",
        )
    files = emit(ir, "kfp")
    try:
        import kfp
    except ImportError as e:
        raise _missing_sdk("kfp", e) from None
    with tempfile.TemporaryDirectory(prefix="flowc-submit-") as tmp:
        package = Path(tmp) / "pipeline.yaml"
        package.write_text(files["pipeline.yaml"], encoding="utf-8")
        client = kfp.Client(host=host, namespace=settings.get("namespace"))
        result = client.create_run_from_pipeline_package(
            str(package),
            arguments=arguments,
            run_name=run_name,
            experiment_name=experiment,
            namespace=settings.get("namespace"),
            pipeline_root=pipeline_root or _gcs_root(ir),
            service_account=service_account,
        )
    return f"{str(host).rstrip('/')}/#/runs/details/{result.run_id}"


def submit_vertex(
    ir: Any,
    arguments: dict[str, Any],
    *,
    api_endpoint: str | None,
    credentials: Any = None,
    run_name: str,
) -> str:
    """Submit a Vertex AI pipeline job of ``ir`` (a schedule when the flow has one); return
    the console URL of the job, or the schedule's resource name."""
    from flowc.targets.vertex import pipeline_job, schedule_body

    settings = _orchestrator(ir, "vertex")
    if not settings.get("project"):
        raise FlowcError.at(
            ir.stack.loc if ir.stack else None,
            "flowc submit --target vertex needs a stack whose orchestrator is vertex (project, "
            "region, pipeline_root)",
            "add orchestrator: {type: vertex, project: P, region: R, pipeline_root: gs://B/x} "
            "and pick it with --stack or -e",
        )
    job = pipeline_job(ir)  # resolves pipeline_root and region as the vertex target does
    runtime = job.get("runtimeConfig", {})
    try:
        from google.cloud import aiplatform
    except ImportError as e:
        raise _missing_sdk("vertex", e) from None
    init: dict[str, Any] = {
        "project": settings["project"],
        "location": settings.get("region", "us-central1"),
    }
    if api_endpoint:
        init["api_endpoint"] = api_endpoint
        init["api_transport"] = "rest"
    if credentials is not None:
        init["credentials"] = credentials
    aiplatform.init(**init)
    with tempfile.TemporaryDirectory(prefix="flowc-submit-") as tmp:
        spec = Path(tmp) / "pipeline.json"
        spec.write_text(json.dumps(job["pipelineSpec"], sort_keys=True), encoding="utf-8")
        pj = aiplatform.PipelineJob(
            display_name=run_name,
            template_path=str(spec),
            pipeline_root=runtime.get("gcsOutputDirectory"),
            parameter_values={**runtime.get("parameterValues", {}), **arguments},
            labels=job.get("labels"),
            project=settings["project"],
            location=init["location"],
            credentials=credentials,
        )
        if ir.schedule is not None:
            body = schedule_body(ir, ir.schedule, job, settings)
            sched = pj.create_schedule(
                cron=body["cron"],
                display_name=body.get("displayName") or ir.name,
                max_concurrent_run_count=body.get("maxConcurrentRunCount", 1),
                service_account=settings.get("service_account"),
                network=settings.get("network"),
            )
            return str(sched.resource_name)
        pj.submit(service_account=settings.get("service_account"), network=settings.get("network"))
        return str(pj._dashboard_uri())


@click.command("submit")
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "-t", "--target", type=click.Choice(["kfp", "vertex"]), required=True, help="Where to run."
)
@click.option("--host", default=None, help="KFP API host (default: the stack's kubeflow host).")
@click.option("--pipeline-root", default=None, help="KFP pipeline root (gs://, s3://, minio://).")
@click.option("--service-account", default=None, help="KFP run's Kubernetes service account.")
@click.option("--experiment", default=None, help="KFP experiment (default: Default).")
@click.option("--run-name", default=None, help="Run name (default: FLOW + UTC time).")
@click.option("--api-endpoint", default=None, help="Vertex AI API endpoint (REST).")
@click.option(
    "--anonymous", is_flag=True, help="Vertex: anonymous credentials (for a test endpoint)."
)
@flow_options
@user_errors
def submit(
    flow: str,
    target: str,
    host: str | None,
    pipeline_root: str | None,
    service_account: str | None,
    experiment: str | None,
    run_name: str | None,
    api_endpoint: str | None,
    anonymous: bool,
    **flow_kw: Any,
) -> None:
    """Compile FLOW for KFP or Vertex AI, start a run there and print its URL."""
    ir = load_ir(flow, **flow_kw)
    arguments = run_arguments(ir, dict(flow_kw.get("params") or {}))
    name = run_name or f"{ir.name} {datetime.now(UTC).strftime('%Y-%m-%d %H-%M-%S')}"
    if target == "kfp":
        url = submit_kfp(
            ir,
            arguments,
            host=host,
            pipeline_root=pipeline_root,
            service_account=service_account,
            experiment=experiment,
            run_name=name,
        )
    else:
        credentials = None
        if anonymous:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        url = submit_vertex(
            ir, arguments, api_endpoint=api_endpoint, credentials=credentials, run_name=name
        )
    click.echo(url)
