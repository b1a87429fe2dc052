"""flowc.targets: one module per orchestrator; each is a pure function IR -> {relpath: text}."""

if __name__ != "flowc.targets":  # the checkout on sys.path makes the bare folder importable too
    raise ImportError(f"import flowc.targets, not {__name__}: flowc's one import name is flowc.*")
