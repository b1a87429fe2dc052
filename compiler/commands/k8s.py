"""``flowc deploy/status/attach/destroy/retrieve``: the Kubernetes deployer commands.

``deploy FLOW`` compiles FLOW for the k8s target and creates its manifests (refusing a flow that
is already deployed); the others take the flow NAME and find the deployment by its labels. Kube
config: ``--kubeconfig``/``--context``, else in-cluster config inside a pod, else the standard
kubeconfig. The work is done by :mod:`flowc.runtime.k8s_deploy` (``kubernetes`` client, extra
``k8s``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir
from flowc.compiler.errors import FlowcError


def kube_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("-n", "--namespace", default=None, help="Namespace (default: kubeconfig's).")(
        fn
    )
    fn = click.option("--context", default=None, help="Kubeconfig context.")(fn)
    fn = click.option(
        "--kubeconfig",
        default=None,
        type=click.Path(dir_okay=False),
        help="Kubeconfig file (default: in-cluster, then $KUBECONFIG / ~/.kube/config).",
    )(fn)
    return fn


def _deployer(kubeconfig: str | None, context: str | None, namespace: str | None) -> Any:
    try:
        from flowc.runtime.k8s import api_client, current_namespace
        from flowc.runtime.k8s_deploy import Deployer
    except ImportError as e:  # pragma: no cover - the k8s extra is missing
        raise FlowcError.at(
            None, f"the kubernetes client is missing ({e})", "pip install 'flowc[k8s]'"
        ) from None
    try:
        api = api_client(kubeconfig, context)
    except Exception as e:
        raise FlowcError.at(None, f"cannot load the Kubernetes configuration: {e}") from None
    return Deployer(api, namespace or current_namespace(kubeconfig, context))


def _run(fn: Callable[[], Any]) -> Any:
    """Map deployer and transport errors to user errors (exit 1, no traceback)."""
    from flowc.runtime.k8s_deploy import DeployError

    try:
        return fn()
    except DeployError as e:
        raise FlowcError.at(None, str(e)) from None
    except Exception as e:  # ApiException, connection refused...
        from flowc.runtime.k8s_deploy import _reason

        raise FlowcError.at(None, f"Kubernetes API error: {_reason(e)}") from None


@click.command("deploy")
@click.argument("flow", type=click.Path(dir_okay=False))
@flow_options
@kube_options
@user_errors
def deploy(
    flow: str,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Compile FLOW for Kubernetes and create its objects (once: destroy before redeploying)."""
    import yaml

    from flowc.compiler.api import emit

    ir = load_ir(flow, env, params, sets, stack)
    docs = [d for d in yaml.safe_load_all(emit(ir, "k8s")["manifests.yaml"]) if d]
    declared = {(d.get("metadata") or {}).get("namespace") for d in docs} - {None}
    if declared and namespace and namespace not in declared:
        raise FlowcError.at(
            ir.stack.orchestrator.loc if ir.stack and ir.stack.orchestrator else None,
            f"the flow's orchestrator deploys to namespace '{sorted(declared)[0]}', not "
            f"'{namespace}'",
        )
    dep = _deployer(kubeconfig, context, namespace or (sorted(declared)[0] if declared else None))
    created = _run(lambda: dep.deploy(docs, ir.name))
    for item in created:
        click.echo(f"created {item}")
    click.echo(f"deployed flow '{ir.name}' to namespace '{dep.namespace}'")


@click.command("status")
@click.argument("name")
@kube_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def status(
    name: str, kubeconfig: str | None, context: str | None, namespace: str | None, as_json: bool
) -> None:
    """Show the deployment of flow NAME: its driver runs, their step and operator Jobs."""
    dep = _deployer(kubeconfig, context, namespace)
    info = _run(lambda: dep.status(name))
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    sched = f", schedule '{info['schedule']}'" if info["schedule"] else ""
    click.echo(f"flow {info['flow']} in namespace {info['namespace']}{sched}")
    for d in info["drivers"]:
        click.echo(f"driver {d['job']}: {d['state']} (run {d['run']})")
    for run, entry in info["runs"].items():
        click.echo(f"run {run}: {entry['state']}")
        steps = entry["steps"]
        for step in info["steps"]:
            key = next((k for k in steps if k in (step, step.replace("_", "-"))), None)
            jobs = steps.get(key, []) if key else []
            states = ", ".join(sorted({j["state"] for j in jobs})) or "not started/skipped"
            pods = ""
            if any(j["kind"] == "operator" for j in jobs):  # replicas: what each pod did
                counts = {k: sum(j["replicas"][k] for j in jobs) for k in jobs[0]["replicas"]}
                pods = ", pods: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
            n = len(jobs)
            click.echo(f"  {step:<24} {states} ({n} job{'s' if n != 1 else ''}{pods})")


@click.command("attach")
@click.argument("name")
@kube_options
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between polls.")
@user_errors
def attach(
    name: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    timeout: float | None,
    poll: float,
) -> None:
    """Follow flow NAME's newest run until its driver, step and operator Jobs ended, printing
    their logs; exit 1 if any failed."""
    dep = _deployer(kubeconfig, context, namespace)
    ok = _run(
        lambda: dep.follow(name, lambda t: click.echo(t, nl=False), poll=poll, timeout=timeout)
    )
    if not ok:
        raise FlowcError.at(None, f"flow '{name}' failed on the cluster (see the logs above)")


@click.command("destroy")
@click.argument("name")
@kube_options
@user_errors
def destroy(name: str, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Delete everything the deployment of flow NAME created, its runs included."""
    dep = _deployer(kubeconfig, context, namespace)
    for item in _run(lambda: dep.destroy(name)):
        click.echo(f"deleted {item}")


@click.command("retrieve")
@click.argument("name")
@kube_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here.")
@user_errors
def retrieve(
    name: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    output: str | None,
) -> None:
    """Print the deployed plan of flow NAME (read back from its ConfigMap)."""
    dep = _deployer(kubeconfig, context, namespace)
    text = json.dumps(_run(lambda: dep.retrieve(name)), indent=2, ensure_ascii=False) + "\n"
    if output:
        from pathlib import Path

        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
