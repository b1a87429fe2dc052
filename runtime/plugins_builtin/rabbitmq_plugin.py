"""The ``rabbitmq`` datastream plugin: JSON messages on RabbitMQ queues (``pika``).

Config: ``host`` (default localhost), ``port`` (5672), ``username``/``password`` (guest),
``virtual_host`` (``/``), or one ``url`` (``amqp://user:pass@host:port/vhost``); ``durable``
(queues survive a broker restart, default true), ``heartbeat`` seconds. One blocking connection
per process, guarded by a lock (pika connections are not thread-safe; steps may run in threads).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flowc.runtime.plugins import DataStreamPlugin, plugin_health_timeout, redact_url


class RabbitMQPlugin(DataStreamPlugin):
    """Publish/subscribe over RabbitMQ's default exchange (routing key = queue name)."""

    plugin_type = "datastream"
    health_imports = ("pika",)

    def __init__(
        self,
        host: str = "localhost",
        port: int | str = 5672,
        username: str = "guest",
        password: str = "guest",
        virtual_host: str = "/",
        url: str | None = None,
        durable: bool = True,
        heartbeat: int = 60,
    ) -> None:
        super().__init__()
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.virtual_host = virtual_host
        self.url = url
        self.durable = durable
        self.heartbeat = heartbeat
        self.connection: Any = None
        self.channel: Any = None
        self._declared: set[str] = set()
        self._lock = threading.RLock()

    def _parameters(self, timeout: float | None = None) -> Any:
        """Connection parameters; with ``timeout`` (a health check): one attempt, its socket and
        handshake waits bounded by ``timeout`` seconds."""
        import pika

        if self.url:
            params = pika.URLParameters(self.url)
        else:
            params = pika.ConnectionParameters(
                host=self.host,
                port=self.port,
                virtual_host=self.virtual_host,
                credentials=pika.PlainCredentials(self.username, self.password),
                heartbeat=self.heartbeat,
                connection_attempts=3,
                retry_delay=0.5,
            )
        if timeout is not None:
            params.connection_attempts = 1
            params.socket_timeout = timeout
            params.stack_timeout = timeout
        return params

    # -- lifecycle ---------------------------------------------------------------------------

    def initialize(self) -> None:
        self.connect()

    def connect(self, timeout: float | None = None) -> None:
        import pika

        with self._lock:
            if self.connection is not None and self.connection.is_open:
                return
            self.connection = pika.BlockingConnection(self._parameters(timeout))
            self.channel = self.connection.channel()
            self.channel.confirm_delivery()  # publish returns once the broker has the message
            self._declared.clear()

    def disconnect(self) -> None:
        with self._lock:
            if self.connection is not None:
                try:
                    if self.connection.is_open:
                        self.connection.close()
                finally:
                    self.connection = None
                    self.channel = None

    def shutdown(self) -> None:
        self.disconnect()

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        where = (
            {"host": self.host, "port": self.port}
            if not self.url
            else {"url": redact_url(self.url)}
        )
        try:
            with self._lock:
                if self.connection is None or self.connection.is_closed:
                    self.connect(plugin_health_timeout(self))
                probe = f"flowc.health.{uuid.uuid4().hex[:12]}"
                self.channel.queue_declare(queue=probe, durable=False, auto_delete=True)
                self.channel.queue_delete(queue=probe)
                version = self.connection._impl.server_properties.get("version", b"")
            if isinstance(version, bytes):
                version = version.decode()
            return True, {"status": "connected", "server_version": version, **where}
        except Exception as e:  # noqa: BLE001 - reported
            return False, {"status": "error", "message": str(e) or type(e).__name__, **where}

    # -- the API -----------------------------------------------------------------------------

    def _channel(self) -> Any:
        if self.channel is None or self.connection is None or self.connection.is_closed:
            self.connect()
        return self.channel

    def create_queue(self, queue: str) -> None:
        with self._lock:
            self._channel().queue_declare(queue=queue, durable=self.durable)
            self._declared.add(queue)

    def _ensure(self, queue: str) -> None:
        if queue not in self._declared:
            self.create_queue(queue)

    def publish(self, queue: str, data: Any) -> None:
        import pika

        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        with self._lock:
            self._ensure(queue)
            self._channel().basic_publish(
                exchange="",
                routing_key=queue,
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json", delivery_mode=2 if self.durable else 1
                ),
            )

    def pull_data(self, queue: str) -> Any:
        with self._lock:
            self._ensure(queue)
            method, _props, body = self._channel().basic_get(queue=queue, auto_ack=True)
        if method is None:
            return None
        return json.loads(body)

    def subscribe(
        self, queue: str, max_messages: int | None = None, timeout: float = 1.0
    ) -> Iterator[Any]:
        got = 0
        deadline = time.monotonic() + timeout
        while max_messages is None or got < max_messages:
            with self._lock:
                self._ensure(queue)
                method, _props, body = self._channel().basic_get(queue=queue, auto_ack=True)
            if method is None:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.02)
                continue
            got += 1
            deadline = time.monotonic() + timeout
            yield json.loads(body)

    def queue_size(self, queue: str) -> int:
        with self._lock:
            self._ensure(queue)
            ok = self._channel().queue_declare(queue=queue, durable=self.durable, passive=True)
        return int(ok.method.message_count)

    def flush_queue(self, queue: str) -> None:
        with self._lock:
            self._ensure(queue)
            self._channel().queue_purge(queue=queue)

    def delete_queue(self, queue: str) -> None:
        with self._lock:
            self._channel().queue_delete(queue=queue)
            self._declared.discard(queue)
