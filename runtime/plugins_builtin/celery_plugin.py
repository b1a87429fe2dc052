"""The ``celery`` taskqueue plugin: submit tasks to Celery workers, wait for their results.

Config: ``broker_url`` and ``backend_url`` (any Celery URLs; with no server at all:
``sqla+sqlite:///broker.db`` and ``db+sqlite:///results.db``), ``app_name`` (default ``flowc``),
``tasks`` (modules to import so their ``@app.task``s are known), ``queue``, ``polling_interval``.

Besides named Celery tasks, ``submit("module:function", *args)`` runs any importable function
through the generic ``flowc.call`` task. Start a worker that knows it with
``FLOWC_CELERY_BROKER=... FLOWC_CELERY_BACKEND=... celery -A
flowc.runtime.plugins_builtin.celery_app worker``.
"""

from __future__ import annotations

from typing import Any

from flowc.runtime.plugins import TaskQueuePlugin, redact_url

CALL_TASK = "flowc.call"


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
        info: dict[str, Any] = {"broker_url": redact_url(self.broker_url)}
        if self.backend_url:
            info["backend_url"] = redact_url(self.backend_url)
        try:
            if self.app is None:
                self.initialize()
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
                info["transport"] = conn.transport_cls
            return True, {"status": "connected", **info}
        except Exception as e:  # noqa: BLE001 - reported
            return False, {"status": "error", "message": str(e), **info}

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
