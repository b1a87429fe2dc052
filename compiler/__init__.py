"""flowc.compiler: front-end (loader, expressions, schema), the IR, passes, output and CLI.

The public API is :func:`flowc.compiler.api.compile_flow` (YAML file -> IR) and
:func:`flowc.compiler.api.emit` (IR -> ``{relative path: text}`` for one target).
"""

if __name__ != "flowc.compiler":  # the checkout on sys.path makes the bare folder importable too
    raise ImportError(f"import flowc.compiler, not {__name__}: flowc's one import name is flowc.*")
