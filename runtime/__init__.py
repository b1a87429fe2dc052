"""flowc.runtime: what generated code imports. The core is stdlib only and small.

It executes a *plan* (the JSON-able data of ``Pipeline.to_data()``, see docs/plan.md) and never
imports ``flowc.compiler``. Optional parts (Kubernetes driver, Kafka channels, plugins) import
their libraries lazily. ``Skip`` (raise it in a step to skip that instance) is importable from
here without loading anything else.
"""

if __name__ != "flowc.runtime":  # the checkout on sys.path makes the bare folder importable too
    raise ImportError(f"import flowc.runtime, not {__name__}: flowc's one import name is flowc.*")

from flowc.runtime.skip import Skip  # noqa: E402 - after the import-name guard

__all__ = ["Skip"]
