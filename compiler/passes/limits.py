"""Pass 76: values the engines would reject, refused at validate time (located, with hints).

Each check is a rule some engine enforces at import or run time; refusing it here makes the
flow mean the same on every target instead of failing on one:

- flow and step names at most :data:`MAX_NAME` characters (they become file names, with a
  temporary prefix and suffix while writing, and Airflow ids, at most 250 characters);
- no NaN or infinity anywhere (``pipeline_job.json`` and the plan are JSON, which has neither),
  and integers within 64 bits (KFP parameters and protos);
- ``retries`` at most :data:`MAX_RETRIES` (KFP's retry count is a 32-bit proto field);
- tags at most 100 characters (Airflow's limit; a longer one fails the DagBag import);
- env var names are ``[A-Za-z_][A-Za-z0-9_]*`` (``A=B``, ``""``, ``x y;`` would be written to
  every target and fail when the pod or process starts);
- Kubernetes secret references: the name a DNS-1123 subdomain, the key a valid data key;
- step images valid image references (``[registry[:port]/]path[:tag][@digest]``);
- ``when:`` literals without control characters (a newline ends a CEL string in KFP's
  ``condition``) or non-finite numbers (``1e400``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from flowc.compiler.ir import BinOp, DictOf, Expr, Format, ListOf, Lit, Not
from flowc.compiler.passes import PassContext

ORDER = 76

#: Longest flow or step name (file names are at most 255 bytes; Airflow ids 250 characters).
MAX_NAME = 200
#: Most retries of a step (KFP's ``maxRetryCount`` is an int32; no engine needs more).
MAX_RETRIES = 100
#: Longest tag (Airflow's ``TAG_MAX_LEN``).
MAX_TAG = 100
_INT64 = 2**63

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Kubernetes: a Secret's name is a DNS-1123 subdomain; a data key is [-._a-zA-Z0-9]+.
K8S_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
K8S_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+\Z")
# The image reference grammar of the distribution/reference package (docker, containerd, k8s).
_COMP = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
IMAGE_RE = re.compile(
    rf"(?:{_HOST}/)?{_COMP}(?:/{_COMP})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?\Z"
)


def run(ctx: PassContext) -> None:
    _names(ctx)
    _numbers(ctx, ctx.doc.data, ())
    _tags(ctx)
    _secrets(ctx)
    for name, step in ctx.steps.items():
        path = ctx.step_paths.get(name, ("steps", name))
        _step(ctx, name, step, path)


def _names(ctx: PassContext) -> None:
    name = ctx.model.name
    if isinstance(name, str) and len(name) > MAX_NAME:
        ctx.errors.error(
            ctx.loc("name"),
            f"the flow name is {len(name)} characters long; at most {MAX_NAME}",
            "it names the compiled files and the Airflow DAG: shorten it",
        )
    for step in ctx.steps:
        if len(step) > MAX_NAME:
            path = ctx.step_paths.get(step, ("steps", step))
            ctx.errors.error(
                ctx.key_loc(*path),
                f"the step name is {len(step)} characters long; at most {MAX_NAME}",
                "it names tasks, pods and run folders: shorten it",
            )


def _numbers(ctx: PassContext, value: Any, path: tuple[Any, ...]) -> None:
    """NaN/infinity and integers beyond 64 bits anywhere in the written document."""
    if isinstance(value, dict):
        for k, v in value.items():
            _numbers(ctx, v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _numbers(ctx, v, (*path, i))
    elif isinstance(value, float) and not math.isfinite(value):
        ctx.errors.error(
            ctx.loc(*path),
            f"{value} is not allowed: compiled specs are JSON, which has no NaN or infinity",
            "write a finite number, or quote it to make it a string",
        )
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and abs(value) >= _INT64
        and path[-1:] != ("retries",)  # bounded tighter, with its own message, per step
    ):
        ctx.errors.error(
            ctx.loc(*path),
            "integer out of range: engines store integers in 64 bits",
            "write a smaller number, or quote it to make it a string",
        )


def _tags(ctx: PassContext) -> None:
    for i, tag in enumerate(ctx.model.tags):
        if len(tag) > MAX_TAG:
            ctx.errors.error(
                ctx.loc("tags", i),
                f"tag is {len(tag)} characters long; at most {MAX_TAG}",
                "Airflow refuses longer tags when it imports the DAG: shorten it",
            )


def _secrets(ctx: PassContext) -> None:
    for name, s in ctx.model.secrets.items():
        if s.env is not None and not ENV_NAME_RE.match(s.env):
            ctx.errors.error(
                ctx.loc("secrets", name, "env"),
                f"secret '{name}': invalid env var name '{s.env}'",
                _ENV_HINT,
            )
        if s.k8s is None:
            continue
        if len(s.k8s.name) > 253 or not K8S_NAME_RE.match(s.k8s.name):
            ctx.errors.error(
                ctx.loc("secrets", name, "k8s", "name"),
                f"secret '{name}': invalid Kubernetes secret name '{s.k8s.name}'",
                "a Secret's name is lowercase letters, digits, '-' and '.', starting and ending "
                "with a letter or digit, at most 253 characters",
            )
        if len(s.k8s.key) > 253 or not K8S_KEY_RE.match(s.k8s.key):
            ctx.errors.error(
                ctx.loc("secrets", name, "k8s", "key"),
                f"secret '{name}': invalid Kubernetes secret key '{s.k8s.key}'",
                "a Secret's data key is letters, digits, '-', '_' and '.'",
            )


_ENV_HINT = "env var names are letters, digits and '_', not starting with a digit"


def _step(ctx: PassContext, name: str, step: Any, path: tuple[Any, ...]) -> None:
    if step.retries > MAX_RETRIES:
        rpath = (*path, "retries") if ctx.doc.has((*path, "retries")) else ("defaults", "retries")
        ctx.errors.error(
            ctx.loc(*rpath),
            f"step '{name}': retries is {step.retries}; at most {MAX_RETRIES}",
            "KFP stores the retry count in 32 bits; no engine needs more: lower it",
        )
    for key, _ in step.env:
        if not ENV_NAME_RE.match(key):
            epath = (*path, "env", key)
            if not ctx.doc.has(epath):
                epath = ("defaults", "env", key)
            ctx.errors.error(
                ctx.key_loc(*epath),
                f"step '{name}': invalid env var name '{key}'",
                _ENV_HINT,
            )
    if step.image and "${" not in step.image and not IMAGE_RE.match(step.image):
        ipath = (*path, "image") if ctx.doc.has((*path, "image")) else ("defaults", "image")
        ctx.errors.error(
            ctx.loc(*ipath),
            f"step '{name}': invalid image reference '{step.image}'",
            "write [registry[:port]/]name[:tag][@sha256:digest] (lowercase name, no spaces)",
        )
    if step.when is not None:
        for lit in _literals(step.when):
            v = lit.value
            bad = None
            if isinstance(v, str) and any(ord(c) < 32 or ord(c) == 127 for c in v):
                bad = "a control character (newline, tab, ...) in a string"
            elif isinstance(v, float) and not math.isfinite(v):
                bad = f"the number {v}"
            if bad:
                ctx.errors.error(
                    ctx.loc(*path, "when"),
                    f"step '{name}': 'when' has {bad}",
                    "KFP compiles 'when' to a CEL condition, which cannot spell it: compare with "
                    "a param or a finite, single-line literal",
                )


def _literals(e: Expr) -> Iterator[Lit]:
    if isinstance(e, Lit):
        yield e
    elif isinstance(e, Format):
        for p in e.parts:
            if isinstance(p, Expr):
                yield from _literals(p)
            elif any(ord(c) < 32 for c in p):
                yield Lit(p)
    elif isinstance(e, ListOf):
        for i in e.items:
            yield from _literals(i)
    elif isinstance(e, DictOf):
        for _, v in e.items:
            yield from _literals(v)
    elif isinstance(e, BinOp):
        yield from _literals(e.left)
        yield from _literals(e.right)
    elif isinstance(e, Not):
        yield from _literals(e.operand)
