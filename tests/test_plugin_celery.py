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
from tests.plugin_services import celery_worker


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
    report = pl.health(
        {"tq": {"type": "celery", "enabled": True, "config": {"broker_url": broker}}}
    )
    assert report["tq"]["healthy"] is True and report["tq"]["family"] == "taskqueue"
