"""flowc.grammar: the lark grammars (``expr.lark``), shipped as package data."""

if __name__ != "flowc.grammar":  # the checkout on sys.path makes the bare folder importable too
    raise ImportError(f"import flowc.grammar, not {__name__}: flowc's one import name is flowc.*")
