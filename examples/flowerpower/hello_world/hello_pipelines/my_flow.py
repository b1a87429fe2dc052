"""FlowerPower's hello-world ``pipelines/my_flow.py``: Hamilton functions, ``add_int_col``
parameterized from ``conf/pipelines.yml`` exactly as the FlowerPower README writes it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hamilton.function_modifiers import parameterize

from ._flowerpower import load_params

PARAMS = load_params(Path(__file__).parents[1], "my_flow")


def df(data_path: str, fs_protocol: str = "local") -> pd.DataFrame:
    """The input CSV (FlowerPower's ``inputs: {data_path, fs_protocol}``)."""
    if fs_protocol != "local":
        raise ValueError(f"this example reads local files only, not {fs_protocol!r}")
    return pd.read_csv(data_path)


@parameterize(**PARAMS.add_int_col)
def add_int_col(df: pd.DataFrame, col_name: str, values: int) -> pd.DataFrame:
    return df.assign(**{col_name: values})


def final_df(add_int_col: pd.DataFrame) -> pd.DataFrame:
    """The frame with its row count on every row."""
    return add_int_col.assign(n_rows=len(add_int_col))


def summary(final_df: pd.DataFrame) -> float:
    """Not in ``final:``: computed only when the whole DAG runs."""
    return float(final_df["score"].sum() * 2)
