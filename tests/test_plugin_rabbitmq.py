"""The rabbitmq datastream plugin against a real RabbitMQ broker started by the test (Debian's
rabbitmq-server), and the server-less ``local`` datastream."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pika
import pytest

from flowc.compiler.api import compile_flow
from flowc.runtime import plugins as pl
from flowc.runtime.executor import run_plan
from flowc.runtime.plugins_builtin.rabbitmq_plugin import RabbitMQPlugin
from tests.plugin_services import free_port, rabbitmq


@pytest.fixture(scope="module")
def amqp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with rabbitmq(tmp_path_factory.mktemp("rabbitmq")) as url:
        yield url


def hostport(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return u.hostname or "127.0.0.1", u.port or 5672


def stream_flow(tmp_path: Path, plugin: str, n: int = 25) -> Path:
    text = f"""
    flowc: 1
    name: streamed
    plugins:
      datastream: {plugin}
    steps:
      produce: {{run: "flowc_stackfix.steps:produce", with: {{n: {n}, queue: "q.{tmp_path.name}"}}, outputs: [sent]}}
      consume:
        run: "flowc_stackfix.steps:consume"
        with: {{expected: "${{steps.produce.outputs.sent}}", queue: "q.{tmp_path.name}"}}
        outputs: [got]
    """
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_steps_publish_and_consume_through_rabbitmq(tmp_path: Path, amqp_url: str) -> None:
    host, port = hostport(amqp_url)
    f = stream_flow(
        tmp_path, f"{{type: rabbitmq, enabled: true, config: {{host: {host}, port: {port}}}}}"
    )
    result = run_plan(compile_flow(f).to_data(), root=str(tmp_path / ".flowc"))
    assert result.ok, result.error
    assert result.outputs["consume"]["got"] == list(range(25))


def test_messages_are_visible_to_a_plain_amqp_client(amqp_url: str) -> None:
    plugin = RabbitMQPlugin(url=amqp_url)
    plugin.initialize()
    try:
        plugin.flush_queue("flowc.raw")
        plugin.publish("flowc.raw", {"id": 1, "text": "héllo"})
        plugin.send_data("flowc.raw", [1, 2])
        assert plugin.queue_size("flowc.raw") == 2
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            ch = conn.channel()
            method, props, body = ch.basic_get("flowc.raw", auto_ack=True)
            assert props.content_type == "application/json" and props.delivery_mode == 2
            assert body.decode() == '{"id":1,"text":"héllo"}'
            ch.basic_publish("", "flowc.raw", b'{"from": "pika"}')
        finally:
            conn.close()
        assert plugin.pull_data("flowc.raw") == [1, 2]
        assert plugin.pull_data("flowc.raw") == {"from": "pika"}
        assert plugin.pull_data("flowc.raw") is None
    finally:
        plugin.delete_queue("flowc.raw")
        plugin.shutdown()
    assert plugin.connection is None


def test_health_check(amqp_url: str) -> None:
    host, port = hostport(amqp_url)
    plugin = RabbitMQPlugin(host=host, port=port)
    ok, details = plugin.health_check()
    plugin.shutdown()
    assert ok, details
    assert details["status"] == "connected" and details["port"] == port
    assert details["server_version"].count(".") >= 2
    dead = RabbitMQPlugin(host="127.0.0.1", port=free_port())
    ok, details = dead.health_check()
    assert not ok and details["status"] == "error" and details["message"]
    report = pl.health({"ds": {"type": "rabbitmq", "enabled": True, "config": {"url": amqp_url}}})
    assert report["ds"]["healthy"] is True and report["ds"]["family"] == "datastream"
    assert "guest@" not in str(report) or ":***@" in str(report["ds"]["details"].get("url", ""))


def test_local_datastream_without_a_server(tmp_path: Path) -> None:
    f = stream_flow(
        tmp_path,
        f'{{type: local, enabled: true, config: {{path: "{tmp_path / "streams"}"}}}}',
        n=40,
    )
    result = run_plan(compile_flow(f).to_data(), root=str(tmp_path / ".flowc"))
    assert result.ok, result.error
    assert result.outputs["consume"]["got"] == list(range(40))
    assert (tmp_path / "streams" / f"q.{tmp_path.name}.jsonl").read_text().count("\n") == 40
