"""ExperimentHub compatibility: every name ExperimentHub's plugin code imports from its
``framework`` package, provided by flowc.

ExperimentHub code imports ``framework.plugins.base.Plugin``, ``framework.plugins.mlops.MLOpsPlugin``,
``framework.plugins.mlflow_plugin.MLflowPlugin`` (and the RabbitMQ / Celery ones) and
``framework.ExperimentHub.ExperimentHub``. A project moving to flowc keeps its plugin modules
unchanged and makes each of those ``framework`` modules one re-export line, e.g.
``framework/plugins/mlops.py``::

    from flowc.runtime.plugins_builtin.experimenthub import MLOpsPlugin  # noqa: F401

Importing this module imports no plugin library (mlflow, pika, celery load when a plugin is
initialized).
"""

from __future__ import annotations

from flowc.runtime.plugins import (
    DataStreamPlugin,
    ExperimentHub,
    MLOpsPlugin,
    Plugin,
    TaskQueuePlugin,
)
from flowc.runtime.plugins_builtin.celery_plugin import CeleryPlugin
from flowc.runtime.plugins_builtin.mlflow_plugin import MLflowPlugin
from flowc.runtime.plugins_builtin.rabbitmq_plugin import RabbitMQPlugin

__all__ = [
    "CeleryPlugin",
    "DataStreamPlugin",
    "ExperimentHub",
    "MLOpsPlugin",
    "MLflowPlugin",
    "Plugin",
    "RabbitMQPlugin",
    "TaskQueuePlugin",
]
