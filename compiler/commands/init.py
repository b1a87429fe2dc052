"""``flowc init NAME`` and ``flowc new FLOW [--functions]``: project scaffolding (FlowerPower's
``init`` / ``new``).

``init`` makes a project folder: ``pyproject.toml`` (with ``[tool.flowc]`` naming the target
and output folder the pre-commit hook checks), ``flows/hello.yaml`` and its step module
``steps/hello.py``, ``.pre-commit-config.yaml`` with local hooks (``flowc validate``, ``flowc
compile --check``), a README with the commands, ``.gitignore``, a git repository (unless
``--no-git``) and the first flow's compiled output, so that the hooks pass at once. ``new``
adds a flow and its step module (``--functions``: a module of plain functions, Hamilton style)
to the project in the current directory and compiles it into the same output folder. Both
refuse to overwrite a file. See docs/init.md.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.errors import FlowcError

NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
OUTPUT_DIRS = {"airflow": "dags", "kfp": "pipelines"}  # others: compiled/<target>

PYPROJECT = """\
[project]
name = "{project}"
version = "0.1.0"
description = "Pipelines written in flowc's YAML DSL"
requires-python = ">=3.11"
dependencies = ["flowc"]

[tool.setuptools]
packages = ["steps"]

[tool.flowc]
# `flowc new` compiles new flows for this target into this folder; the pre-commit hook
# (`flowc compile --check`) fails when a committed output there is stale
target = "{target}"
output = "{output}"
"""

README = """\
# {project}

Pipelines written in [flowc](https://pypi.org/project/flowc/)'s YAML DSL: `flows/` holds the
flows, `steps/` their Python code, `{output}/` the compiled {target} output. From this folder:

```
flowc run flows/hello.yaml
flowc compile flows/hello.yaml --target {target} -o {output}
```

The first runs the flow here (runs are recorded in `.flowc/`, see `flowc runs list`); the second
writes what {target} runs. More:

* `flowc new NAME` adds `flows/NAME.yaml` and `steps/NAME.py` (`--functions`: a module of plain
  functions whose parameters name their inputs, as in Hamilton) and compiles it into `{output}/`;
* `pre-commit install` checks every commit: `flowc validate` on the flows, and
  `flowc compile --check` that `{output}/` is up to date;
* a `schedule:` in a flow, then `flowc schedule flows/hello.yaml` and `flowc worker`, runs it on
  time on this machine.
"""

PRE_COMMIT = """\
# Hooks for https://pre-commit.com (`pre-commit install`): every commit validates the flows and
# checks that the compiled outputs in {output}/ are fresh. Local hooks: they run the `flowc` of
# this project's environment.
repos:
  - repo: local
    hooks:
      - id: flowc-validate
        name: flowc validate
        entry: flowc validate --no-import
        language: system
        files: ^flows/.*\\.ya?ml$
      - id: flowc-check
        name: flowc compile --check
        entry: flowc compile --check --target {target} -o {output}
        language: system
        files: ^flows/.*\\.ya?ml$
"""

GITIGNORE = """\
.flowc/
build/
__pycache__/
*.egg-info/
"""

FLOW = """\
# The {name} flow. From the project folder: flowc run flows/{name}.yaml --param who=you
flowc: 1
name: {name}
description: Make a greeting, then count its words
params:
  who: {{type: str, default: world}}
steps:
  greet:
    run: steps.{name}:greet
    with: {{who: "${{params.who}}"}}
    outputs: [greeting]
  count:
    run: steps.{name}:count_words
    with: {{text: "${{steps.greet.outputs.greeting}}"}}
    outputs: [words]
"""

STEPS = '''\
"""Step functions of the {name} flow: plain Python, no flowc imports."""

from __future__ import annotations


def greet(who: str) -> str:
    """The greeting (output ``greeting``)."""
    return f"Hello, {{who}}!"


def count_words(text: str) -> int:
    """How many words ``text`` has (output ``words``)."""
    return len(text.split())
'''

FUNCTIONS_FLOW = """\
# The {name} flow: every public function of steps/{name}.py is a step, its parameters name its
# inputs (other functions or params). From the project folder: flowc run flows/{name}.yaml
flowc: 1
name: {name}
description: Numbers, their squares and a summary, from plain functions
params:
  n: {{type: int, default: 4}}
functions: [steps.{name}]
final: [summary]
"""

FUNCTIONS_STEPS = '''\
"""Functions of the {name} flow: each is a step named after it, with one output of that name;
a parameter named like another function takes its result, one named like a param its value."""

from __future__ import annotations


def numbers(n: int) -> list[int]:
    """1 .. n."""
    return list(range(1, n + 1))


def squares(numbers: list[int]) -> list[int]:
    """Each number squared."""
    return [x * x for x in numbers]


def summary(squares: list[int]) -> dict:
    """How many squares and their total."""
    return {{"count": len(squares), "total": sum(squares)}}
'''


def _check_name(name: str, what: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise FlowcError.at(
            None,
            f"invalid {what} name '{name}'",
            "use lowercase letters, digits and '_', starting with a letter",
        )


def _write_new(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` under ``root``; none may exist yet (checked for all before writing)."""
    taken = sorted(rel for rel in files if (root / rel).exists())
    if taken:
        raise FlowcError.at(
            None,
            f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}",
            "choose another name (nothing was written)",
        )
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _settings(root: Path) -> tuple[str, str] | None:
    """``(target, output)`` from ``[tool.flowc]`` of ``root/pyproject.toml``, if written."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("flowc", {})
    except tomllib.TOMLDecodeError as e:
        raise FlowcError.at(None, f"{path}: {e}") from None
    if "target" not in tool or "output" not in tool:
        return None
    return str(tool["target"]), str(tool["output"])


def _compile_into(root: Path, flow: str, target: str, output: str) -> list[str]:
    """Compile ``root/flow`` for ``target`` into ``root/output`` as ``flowc compile`` run in
    ``root`` would (same paths, so ``--check`` agrees). Returns the files written."""
    from flowc.compiler.api import compile_flow, emit
    from flowc.compiler.output import write_outputs

    with contextlib.chdir(root):
        added = [p for p in (str(root),) if p not in sys.path]
        sys.path[:0] = added  # the project's step modules, as `flowc run` finds them
        try:
            files = emit(compile_flow(flow), target, output_dir=output)
        finally:
            for p in added:
                sys.path.remove(p)
        write_outputs(Path(output), files)
    return [f"{output}/{rel}" for rel in sorted(files)]


def _git_init(root: Path) -> bool:
    """``git init`` in ``root`` unless it is already inside a repository; False without git."""
    git = shutil.which("git")
    if git is None:
        return False
    inside = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True, text=True
    )
    if inside.returncode == 0:
        return True
    return subprocess.run([git, "init", "-q"], cwd=root, capture_output=True).returncode == 0


@click.command("init")
@click.argument("name", type=click.Path(file_okay=False))
@click.option(
    "-t",
    "--target",
    default="airflow",
    show_default=True,
    help="Target the pre-commit hook keeps compiled (airflow, kfp, vertex, k8s, local).",
)
@click.option("--git/--no-git", default=True, show_default=True, help="Run `git init` in it.")
@user_errors
def init(name: str, target: str, git: bool) -> None:
    """Create project NAME: a first flow, its steps, pre-commit hooks, README."""
    from flowc.compiler import registry

    if target not in registry.target_names():
        raise click.BadParameter(
            f"unknown target '{target}' (known: {', '.join(registry.target_names())})",
            param_hint="--target",
        )
    root = Path(name)
    project = root.resolve().name
    if root.exists() and any(root.iterdir()):
        raise FlowcError.at(
            None,
            f"'{name}' already exists and is not empty",
            "choose another name, or add a flow inside it with: flowc new FLOW",
        )
    output = OUTPUT_DIRS.get(target, f"compiled/{target}")
    fmt = {"project": project, "target": target, "output": output, "name": "hello"}
    files = {
        "pyproject.toml": PYPROJECT.format(**fmt),
        "README.md": README.format(**fmt),
        ".pre-commit-config.yaml": PRE_COMMIT.format(**fmt),
        ".gitignore": GITIGNORE,
        "flows/hello.yaml": FLOW.format(**fmt),
        "steps/__init__.py": '"""Step code of the flows in flows/."""\n',
        "steps/hello.py": STEPS.format(**fmt),
    }
    root.mkdir(parents=True, exist_ok=True)
    _write_new(root, files)
    # the repository first: compiled files name their flow by its path in the repository
    has_git = git and _git_init(root)
    compiled = _compile_into(root, "flows/hello.yaml", target, output)
    click.echo(f"created project '{project}' in {name}/")
    for rel in [*sorted(files), *compiled]:
        click.echo(f"  {rel}")
    if git and not has_git:
        click.echo("  (git not found: no repository; pre-commit needs one)", err=True)
    click.echo(f"next: cd {name} && flowc run flows/hello.yaml")


@click.command("new")
@click.argument("flow")
@click.option(
    "--functions",
    is_flag=True,
    help="Steps from a module of plain functions (Hamilton style) instead of `run:` steps.",
)
@user_errors
def new(flow: str, functions: bool) -> None:
    """Add flow FLOW (flows/FLOW.yaml) and its step module (steps/FLOW.py) here."""
    _check_name(flow, "flow")
    root = Path.cwd()
    fmt = {"name": flow}
    files = {
        f"flows/{flow}.yaml": (FUNCTIONS_FLOW if functions else FLOW).format(**fmt),
        f"steps/{flow}.py": (FUNCTIONS_STEPS if functions else STEPS).format(**fmt),
    }
    if not (root / "steps" / "__init__.py").exists():
        files["steps/__init__.py"] = '"""Step code of the flows in flows/."""\n'
    _write_new(root, files)
    settings = _settings(root)
    compiled = _compile_into(root, f"flows/{flow}.yaml", *settings) if settings else []
    click.echo(f"created flow '{flow}'")
    for rel in [*sorted(files), *compiled]:
        click.echo(f"  {rel}")
    click.echo(f"next: flowc run flows/{flow}.yaml")
