"""FlowerPower's ``my_flow`` ported to flowc: plain Hamilton-style functions.

Every public function is a step named after it. A parameter named like another function is that
function's result (``add_int_col(df)`` gets what ``df`` returned); one named like a flow param
(``data_path``, ``fs_protocol``) takes the param; the rest come from ``steps.<fn>.with`` in
flow.yaml or the function's default. Data frames are lists of row dicts here, so the example
needs nothing but the standard library.
"""

from __future__ import annotations

import csv


def df(data_path: str, fs_protocol: str = "local") -> list[dict]:
    """Load the input CSV (FlowerPower's ``inputs: {data_path, fs_protocol}``)."""
    if fs_protocol != "local":
        raise ValueError(f"this example reads local files only, not {fs_protocol!r}")
    with open(data_path, newline="", encoding="utf-8") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def add_int_col(df: list[dict], col_name: str = "foo", values: str = "bar") -> list[dict]:
    """FlowerPower's ``df.assign(**{col_name: values})``."""
    return [{**row, col_name: values} for row in df]


def row_count(add_int_col: list[dict]) -> int:
    return len(add_int_col)


def final_df(add_int_col: list[dict], row_count: int) -> list[dict]:
    """The frame with its row count on every row."""
    return [{**row, "n_rows": row_count} for row in add_int_col]


def summary(final_df: list[dict]) -> str:
    """Not in ``final:``: computed only when the whole DAG runs."""
    return f"{len(final_df)} rows, columns {sorted(final_df[0]) if final_df else []}"


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
