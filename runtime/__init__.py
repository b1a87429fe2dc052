"""flowc.runtime: what generated code imports. The core is stdlib only and small.

It executes a *plan* (the JSON-able data of ``Pipeline.to_data()``, see docs/plan.md) and never
imports ``flowc.compiler``. Optional parts (Kubernetes driver, Kafka channels, plugins) import
their libraries lazily.
"""

if __name__ != "flowc.runtime":  # the checkout on sys.path makes the bare folder importable too
    raise ImportError(f"import flowc.runtime, not {__name__}: flowc's one import name is flowc.*")
