"""The Celery app a worker runs for the ``celery`` plugin: ``celery -A
flowc.runtime.plugins_builtin.celery_app worker`` with ``FLOWC_CELERY_BROKER`` /
``FLOWC_CELERY_BACKEND`` (and optional ``FLOWC_CELERY_TASKS``, comma-separated modules)."""

from __future__ import annotations

import os

from flowc.runtime.plugins_builtin.celery_plugin import make_app

app = make_app(
    os.environ["FLOWC_CELERY_BROKER"],
    os.environ.get("FLOWC_CELERY_BACKEND"),
    os.environ.get("FLOWC_CELERY_APP", "flowc"),
    float(os.environ.get("FLOWC_CELERY_POLL", "0.2")),
    [m for m in os.environ.get("FLOWC_CELERY_TASKS", "").split(",") if m],
)
