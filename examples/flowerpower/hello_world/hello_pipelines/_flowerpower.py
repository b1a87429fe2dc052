"""FlowerPower's ``PARAMS`` for a pipeline module, without FlowerPower installed.

FlowerPower loads ``conf/pipelines.yml`` and exposes ``params.<pipeline>`` as Hamilton
``@parameterize`` arguments: ``PARAMS.add_int_col`` is ``{"add_int_col": {"col_name":
value("foo"), "values": value("bar")}}``, so ``@parameterize(**PARAMS.add_int_col)`` makes one
node named after the function with those values bound.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from hamilton.function_modifiers import value


def load_params(base_dir: Path, pipeline: str) -> Any:
    """``params.<pipeline>`` of ``base_dir/conf/pipelines.yml`` in FlowerPower's h_params form."""
    with open(base_dir / "conf" / "pipelines.yml", encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    params = (conf.get("params") or {}).get(pipeline) or {}
    return SimpleNamespace(
        **{
            fn: {fn: {name: value(v) for name, v in (kwargs or {}).items()}}
            for fn, kwargs in params.items()
        }
    )
