"""mypy over ``flowc.runtime`` and ``flowc.targets`` (pyproject.toml ``[tool.mypy]``: strict on the
plan types and the executor modules typed against them), and the plan types against the plans
the compiler really writes."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest

from flowc.compiler.api import compile_flow
from flowc.runtime import plan as plan_types

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden"


def test_mypy_is_clean(tmp_path: Path) -> None:
    # mypy finds packages by folder name: give it a tree where flowc/<x> is the checkout's <x>/
    tree = tmp_path / "tree" / "flowc"
    tree.mkdir(parents=True)
    (tree / "__init__.py").symlink_to(REPO / "flowc" / "__init__.py")
    (tree / "py.typed").symlink_to(REPO / "flowc" / "py.typed")
    for sub in ("compiler", "grammar", "runtime", "targets"):
        (tree / sub).symlink_to(REPO / sub, target_is_directory=True)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(REPO / ".mypy_cache"),
            "-p",
            "flowc.runtime",
            "-p",
            "flowc.targets",
        ],
        capture_output=True,
        text=True,
        cwd=tree.parent,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Success: no issues found" in res.stdout


def _keys_fit(data: dict[str, typing.Any], td: type, where: str) -> list[str]:
    required = set(td.__required_keys__)  # type: ignore[attr-defined]
    allowed = required | set(td.__optional_keys__)  # type: ignore[attr-defined]
    problems = [f"{where}: missing {k!r}" for k in sorted(required - set(data))]
    problems += [f"{where}: undeclared {k!r}" for k in sorted(set(data) - allowed)]
    return problems


FLOWS = sorted(p for p in GOLDEN.glob("*/flow.yaml") if not p.parent.name.endswith("_bad"))


@pytest.mark.parametrize("flow", FLOWS, ids=lambda p: p.parent.name)
def test_plan_types_match_what_the_compiler_writes(flow: Path) -> None:
    try:
        plan = compile_flow(str(flow)).to_data()
    except Exception as e:  # a golden case of a compile error: nothing to compare
        pytest.fail(f"{flow} does not compile: {e}")
    problems = _keys_fit(plan, plan_types.Plan, "plan")
    for name, step in plan["steps"].items():
        problems += _keys_fit(step, plan_types.StepData, f"steps.{name}")
        problems += _keys_fit(
            step["resources"], plan_types.ResourcesData, f"steps.{name}.resources"
        )
    for name, param in plan["params"].items():
        problems += _keys_fit(param, plan_types.ParamData, f"params.{name}")
    for name, secret in plan["secrets"].items():
        problems += _keys_fit(secret, plan_types.SecretData, f"secrets.{name}")
    for name, channel in plan["channels"].items():
        problems += _keys_fit(channel, plan_types.ChannelData, f"channels.{name}")
    for name, plugin in plan["plugins"].items():
        problems += _keys_fit(plugin, plan_types.PluginData, f"plugins.{name}")
    if plan["schedule"] is not None:
        problems += _keys_fit(plan["schedule"], plan_types.ScheduleData, "schedule")
    if plan["stack"] is not None:
        problems += _keys_fit(plan["stack"], plan_types.StackData, "stack")
    if plan["integrations"] is not None:
        integ = plan["integrations"]
        problems += _keys_fit(integ, plan_types.IntegrationsData, "integrations")
        for lname, layer in integ["layers"].items():
            problems += _keys_fit(layer, plan_types.LayerData, f"integrations.layers.{lname}")
            for i in layer["integrations"]:
                problems += _keys_fit(i, plan_types.IntegrationData, f"integration {i['key']}")
    assert problems == []
    assert plan["plan_version"] == plan_types.PLAN_VERSION
