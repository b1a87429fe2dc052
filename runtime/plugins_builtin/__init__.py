"""Built-in plugins: ``mlflow`` (mlops), ``rabbitmq`` and ``local`` (datastream), ``celery``
(taskqueue). Each module imports its library only when the plugin is used (extra ``plugins``)."""
