"""flowc: a compiler from a declarative YAML pipeline DSL to real orchestrators.

The installed package maps the repository's top-level folders to sub-packages:
``compiler/`` -> ``flowc.compiler``, ``targets/`` -> ``flowc.targets``,
``runtime/`` -> ``flowc.runtime``, ``grammar/`` -> ``flowc.grammar``.
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# When this folder is imported straight from a source checkout (``python -m flowc`` run in the
# repository root puts the checkout first on sys.path), let ``flowc.compiler`` & co. resolve to
# the sibling top-level folders, exactly as the installed package maps them.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_checkout, "pyproject.toml")) and _os.path.isdir(
    _os.path.join(_checkout, "compiler")
):
    __path__.append(_checkout)  # type: ignore[name-defined]  # noqa: F821
