"""The ``celery`` taskqueue plugin: submit tasks to Celery workers, wait for their results.

Config: ``broker_url`` and ``backend_url`` (any Celery URLs; with no server at all:
``sqla+sqlite:///broker.db`` and ``db+sqlite:///results.db``), ``app_name`` (default ``flowc``),
``tasks`` (modules to import so their ``@app.task``s are known), ``queue``, ``polling_interval``.

Besides named Celery tasks, ``submit("module:function", *args)`` runs any importable function
through the generic ``flowc.call`` task; ``flowc.ping`` answers the health check on transports
that cannot broadcast a ``control.ping``. Start a worker that knows both with
``FLOWC_CELERY_BROKER=... FLOWC_CELERY_BACKEND=... celery -A
flowc.runtime.plugins_builtin.celery_app worker``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flowc.runtime.plugins import TaskQueuePlugin, plugin_health_timeout, redact_url

CALL_TASK = "flowc.call"
PING_TASK = "flowc.ping"


def make_app(
    broker_url: str,
    backend_url: str | None,
    app_name: str = "flowc",
    polling_interval: float = 0.2,
    tasks: list[str] | tuple[str, ...] = (),
) -> Any:
    """A Celery app with JSON serialization and the ``flowc.call`` task."""
    from celery import Celery

    app = Celery(app_name, broker=broker_url, backend=backend_url)
    if not broker_url.startswith("sqla+"):  # the SQLAlchemy transport hands options to its engine
        app.conf.broker_transport_options = {"polling_interval": polling_interval}
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        result_extended=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name=PING_TASK, bind=True)
    def ping(task: Any) -> dict[str, Any]:
        import os

        return {"hostname": task.request.hostname, "pid": os.getpid()}

    @app.task(name=CALL_TASK)
    def call(ref: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        import importlib

        module, _, attr = ref.partition(":")
        fn: Any = importlib.import_module(module)
        for part in attr.split("."):
            fn = getattr(fn, part)
        return fn(*args, **kwargs)

    for module in tasks:
        __import__(module)
    return app


class CeleryPlugin(TaskQueuePlugin):
    """Celery client side (the workers are separate processes)."""

    plugin_type = "taskqueue"
    health_imports = ("celery",)

    def __init__(
        self,
        broker_url: str,
        backend_url: str | None = None,
        app_name: str = "flowc",
        tasks: list[str] | None = None,
        queue: str | None = None,
        polling_interval: float = 0.2,
        default_timeout: float | None = 300.0,
    ) -> None:
        super().__init__()
        self.broker_url = broker_url
        self.backend_url = backend_url
        self.app_name = app_name
        self.tasks = list(tasks or [])
        self.queue = queue
        self.polling_interval = polling_interval
        self.default_timeout = default_timeout
        self.app: Any = None

    def initialize(self) -> None:
        self.app = make_app(
            self.broker_url, self.backend_url, self.app_name, self.polling_interval, self.tasks
        )

    def shutdown(self) -> None:
        if self.app is not None:
            try:
                self.app.close()
            finally:
                self.app = None

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        """The broker is reachable and a worker answers, within ``health_timeout``.

        As ExperimentHub's CeleryPlugin, workers are pinged (``app.control.ping``, broadcast)
        where the transport broadcasts across processes (AMQP, Redis...). A transport that
        cannot (SQLAlchemy, filesystem: their fanout stays in one process) gets the ``flowc.ping``
        task instead, with an expiry, and waits for its result: the round trip through broker,
        worker and result backend. Unhealthy when no worker answers in time."""
        timeout = plugin_health_timeout(self)
        # the worker's answer must come before the caller's timeout (counted from before
        # initialize(): a new SQLite broker takes a while to create) cuts the check off
        deadline = time.monotonic() + timeout * 0.6
        info: dict[str, Any] = {"broker_url": redact_url(self.broker_url)}
        if self.backend_url:
            info["backend_url"] = redact_url(self.backend_url)
        try:
            if self.app is None:
                self.initialize()
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=0, timeout=timeout)
                info["transport"] = conn.transport_cls
                broadcast = getattr(conn.default_channel, "supports_fanout", True)
            wait = max(0.05, deadline - time.monotonic())
            if broadcast:
                workers = self._ping_workers(wait)
                info["ping"] = "broadcast"
            elif not self.backend_url:
                message = (
                    f"cannot ping workers: the {info['transport']} transport does not broadcast "
                    "and there is no backend_url to read a ping task's result from"
                )
                return False, {"status": "error", "message": message, **info}
            else:
                workers = self._ping_task(wait)
                info["ping"] = "task"
            if not workers:
                message = f"No workers responded to ping within {wait:.1f}s"
                return False, {"status": "error", "message": message, **info}
            return True, {"status": "connected", "workers": len(workers), **info}
        except Exception as e:  # noqa: BLE001 - reported
            return False, {"status": "error", "message": str(e), **info}

    def _ping_workers(self, timeout: float) -> list[str]:
        """Replies collected for up to 1 s (ExperimentHub's wait); when none came, the rest of
        ``timeout`` for a first one (a loaded worker answers late)."""
        first = min(1.0, timeout)
        replies = self.app.control.ping(timeout=first)
        if not replies and timeout > first:
            replies = self.app.control.ping(timeout=timeout - first, limit=1)
        if replies and self.backend_url and not self.backend_url.startswith("rpc"):
            self.app.backend.get_task_meta(f"flowc-health-{uuid.uuid4().hex}")
        return sorted(name for reply in replies or () for name in reply)

    def _ping_task(self, timeout: float) -> list[str]:
        from celery.exceptions import TimeoutError as CeleryTimeoutError

        opts = {"queue": self.queue} if self.queue else {}
        res = self.app.send_task(PING_TASK, expires=timeout, **opts)
        try:
            answer = res.get(timeout=timeout, interval=min(0.1, timeout / 10))
        except CeleryTimeoutError:
            return []
        finally:
            res.forget()
        return [str(answer["hostname"])]

    def register_tasks(self, tasks_module: str) -> None:
        __import__(tasks_module)
        self.tasks.append(tasks_module)

    def submit(self, task: str, *args: Any, **kwargs: Any) -> str:
        opts = {"queue": self.queue} if self.queue else {}
        if ":" in task:
            res = self.app.send_task(CALL_TASK, args=[task, list(args), kwargs], **opts)
        else:
            res = self.app.send_task(task, args=list(args), kwargs=kwargs, **opts)
        return str(res.id)

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        res = self.app.AsyncResult(task_id)
        return res.get(
            timeout=timeout if timeout is not None else self.default_timeout, interval=0.1
        )

    def status(self, task_id: str) -> str:
        return str(self.app.AsyncResult(task_id).status)
