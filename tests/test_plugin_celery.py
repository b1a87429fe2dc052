"""The celery taskqueue plugin with a real Celery worker process and a broker that needs no
server (SQLAlchemy on SQLite), results in a SQLite result backend."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowc.compiler.api import compile_flow
from flowc.runtime import plugins as pl
from flowc.runtime.executor import run_plan
from flowc.runtime.plugins_builtin.celery_plugin import CeleryPlugin
from tests.plugin_services import celery_worker, rabbitmq


@pytest.fixture(scope="module")
def celery_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, int]]:
    base = tmp_path_factory.mktemp("celery")
    broker = f"sqla+sqlite:///{base / 'broker.db'}"
    backend = f"db+sqlite:///{base / 'results.db'}"
    with celery_worker(base / "worker", broker, backend) as proc:
        yield broker, backend, proc.pid


def test_steps_offload_work_to_a_celery_worker(
    tmp_path: Path, celery_urls: tuple[str, str, int]
) -> None:
    broker, backend, worker_pid = celery_urls
    f = tmp_path / "flow.yaml"
    f.write_text(textwrap.dedent(f"""
            flowc: 1
            name: offloaded
            plugins:
              taskqueue: {{type: celery, enabled: true, config: {{broker_url: "{broker}", backend_url: "{backend}"}}}}
            steps:
              offload: {{run: "flowc_stackfix.steps:offload", with: {{values: [2, 3, 4]}}, outputs: [results]}}
            """).lstrip())
    result = run_plan(compile_flow(f).to_data(), root=str(tmp_path / ".flowc"))
    assert result.ok, result.error
    results = result.outputs["offload"]["results"]
    assert [r["value"] for r in results] == [4, 9, 16]
    # computed in the worker process (solo pool: the worker's own pid), not in this one
    assert {r["pid"] for r in results} == {worker_pid}
    assert worker_pid != os.getpid()


def test_submit_status_result_and_health(celery_urls: tuple[str, str, int]) -> None:
    broker, backend, _ = celery_urls
    plugin = CeleryPlugin(broker_url=broker, backend_url=backend)
    plugin.initialize()
    try:
        task_id = plugin.submit_task("flowc_stackfix.tasks:square", 12)
        assert plugin.get_result(task_id, timeout=60)["value"] == 144
        assert plugin.get_status(task_id) == "SUCCESS"
        failing = plugin.submit("flowc_stackfix.tasks:square", "not a number", "extra arg")
        with pytest.raises(TypeError):
            plugin.result(failing, timeout=60)
        assert plugin.status(failing) == "FAILURE"
        ok, details = plugin.health_check()
        assert ok and details["status"] == "connected" and details["transport"] == "sqla"
    finally:
        plugin.shutdown()


def tq_spec(broker: str, backend: str | None, timeout: float) -> dict:
    config = {"broker_url": broker, **({"backend_url": backend} if backend else {})}
    return {"type": "celery", "enabled": True, "health_timeout": timeout, "config": config}


def test_health_pings_the_worker_through_a_task(celery_urls: tuple[str, str, int]) -> None:
    """The SQLAlchemy transport cannot broadcast across processes: the worker answers the
    ``flowc.ping`` task instead."""
    broker, backend, _ = celery_urls
    report = pl.health({"tq": tq_spec(broker, backend, 60)})["tq"]
    assert report["healthy"] is True and report["family"] == "taskqueue", report
    assert report["details"]["ping"] == "task" and report["details"]["workers"] == 1
    assert report["details"]["transport"] == "sqla"
    # without a result backend nothing can carry the worker's answer back
    report = pl.health({"tq": tq_spec(broker, None, 60)})["tq"]
    assert report["healthy"] is False
    assert "no backend_url to read a ping task's result" in report["details"]["message"]


def test_health_with_no_worker_running(tmp_path: Path) -> None:
    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"  # a broker no worker reads
    backend = f"db+sqlite:///{tmp_path / 'results.db'}"
    spec = tq_spec(broker, backend, 1)
    del spec["health_timeout"]  # the default, 5 s
    report = pl.health({"tq": spec})["tq"]
    assert report["healthy"] is False, report
    assert report["details"]["message"].startswith("No workers responded to ping within ")
    assert report["details"]["ping"] == "task"


@pytest.fixture(scope="module")
def amqp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with rabbitmq(tmp_path_factory.mktemp("rabbitmq")) as url:
        yield url


def test_health_broadcasts_a_ping_over_amqp(
    tmp_path: Path, amqp_url: str, celery_urls: tuple[str, str, int]
) -> None:
    """As ExperimentHub's CeleryPlugin: ``app.control.ping`` to the workers of an AMQP broker."""
    _, backend, _ = celery_urls
    report = pl.health({"tq": tq_spec(amqp_url, backend, 2)})["tq"]
    assert report["healthy"] is False, report
    assert report["details"]["ping"] == "broadcast"
    assert report["details"]["message"].startswith("No workers responded to ping within ")
    assert "guest:***@" in report["details"]["broker_url"]
    with celery_worker(tmp_path / "worker", amqp_url, backend):
        report = pl.health({"tq": tq_spec(amqp_url, backend, 30)})["tq"]
    assert report["healthy"] is True, report
    assert report["details"]["ping"] == "broadcast" and report["details"]["workers"] == 1
