"""flowc: a compiler from a declarative YAML pipeline DSL to real orchestrators.

The installed package maps the repository's top-level folders to sub-packages:
``compiler/`` -> ``flowc.compiler``, ``targets/`` -> ``flowc.targets``,
``runtime/`` -> ``flowc.runtime``, ``grammar/`` -> ``flowc.grammar``. ``flowc.*`` is the one
import name: each of those packages refuses to be imported under its bare folder name.
"""

from __future__ import annotations

import importlib.machinery as _machinery
import os as _os
import sys as _sys
from collections.abc import Sequence as _Sequence
from types import ModuleType as _ModuleType

__version__ = "0.1.0"

SUBPACKAGES: tuple[str, ...] = ("compiler", "grammar", "runtime", "targets")
"""The top-level folders of the repository that are ``flowc.<name>``."""


class _CheckoutFinder:
    """From a source checkout (``python -m flowc`` in the repository root, or the checkout on
    PYTHONPATH), maps exactly ``flowc.compiler``, ``flowc.grammar``, ``flowc.runtime`` and
    ``flowc.targets`` to the sibling top-level folders, as the installed package does; nothing
    else of the checkout (``tests``, ``bench``, ``flowc`` itself) becomes ``flowc.<name>``.

    A meta path finder by protocol (``find_spec``), not a subclass of ``importlib.abc``'s:
    importing that pulls importlib.resources and tempfile into every start-up."""

    def __init__(self, checkout: str) -> None:
        self.checkout = checkout

    def find_spec(
        self,
        fullname: str,
        path: _Sequence[str] | None = None,
        target: _ModuleType | None = None,
    ) -> _machinery.ModuleSpec | None:
        prefix, _, name = fullname.partition(".")
        if prefix != "flowc" or name not in SUBPACKAGES:
            return None
        return _machinery.PathFinder.find_spec(fullname, [self.checkout])


_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_checkout, "pyproject.toml")) and _os.path.isdir(
    _os.path.join(_checkout, "compiler")
):
    if not any(isinstance(f, _CheckoutFinder) and f.checkout == _checkout for f in _sys.meta_path):
        _sys.meta_path.insert(0, _CheckoutFinder(_checkout))
