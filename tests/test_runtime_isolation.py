"""The runtime never imports the compiler or the compiler's libraries: every module of
``flowc.runtime`` imported in a fresh interpreter leaves none of them in ``sys.modules``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("flowc.compiler", "yaml", "pydantic", "lark", "jinja2", "black", "click", "rich")

# Imports every module of the runtime package (found by walking it, so a new module is covered)
# and records, for every forbidden module that gets loaded, which module imported it. A
# forbidden module imported by flowc code fails the test; one pulled in by an optional SDK the
# runtime uses (celery depends on click) does not: that is the SDK's dependency, not ours.
PROBE = """
import importlib, json, pkgutil, sys

forbidden = %r
importers = {}


def importer():
    f = sys._getframe(2)
    while f is not None and (
        f.f_code.co_filename.startswith("<frozen")
        or f.f_globals.get("__name__", "").startswith("importlib")
    ):
        f = f.f_back
    return None if f is None else f.f_globals.get("__name__")


class Watch:
    def find_spec(self, fullname, path=None, target=None):
        top = next((x for x in forbidden if fullname == x or fullname.startswith(x + ".")), None)
        if top is not None and top not in importers:
            importers[top] = importer()
        return None


sys.meta_path.insert(0, Watch())
import flowc.runtime as rt



def loaded():
    return sorted(x for x in forbidden if any(k == x or k.startswith(x + ".") for k in sys.modules))


names = sorted(m.name for m in pkgutil.walk_packages(rt.__path__, "flowc.runtime."))
sdk = "flowc.runtime.plugins_builtin."  # third-party SDKs (celery, mlflow, pika) behind them
for name in names:
    if not name.startswith(sdk):
        importlib.import_module(name)
core = loaded()
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "core": core, "loaded": {x: importers.get(x) for x in loaded()}}))
"""


def test_no_runtime_module_imports_the_compiler_side() -> None:
    # celery_app is a worker's entry module: it builds its app from these at import
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FLOWC_CELERY_BROKER": "memory://",
        "FLOWC_CELERY_BACKEND": "cache+memory://",
    }
    res = subprocess.run(
        [sys.executable, "-c", PROBE % (FORBIDDEN,)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    assert "flowc.runtime.executor" in out["modules"]
    assert "flowc.runtime.channels.kafka" in out["modules"]
    assert "flowc.runtime.stack.builtin" in out["modules"]
    assert out["core"] == []  # every module but the SDK plugins: none of them at all
    loaded = out["loaded"]
    assert "flowc.compiler" not in loaded
    ours = {x: who for x, who in loaded.items() if who is None or who.startswith("flowc")}
    assert ours == {}  # with the plugins: only what their SDKs import themselves
