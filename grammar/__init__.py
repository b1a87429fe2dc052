"""flowc.grammar: the lark grammars (``expr.lark``), shipped as package data."""
