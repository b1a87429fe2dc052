"""Pass 55: the integration framework (lolpop): the layer tree (single root; the default
``runner > component, pipeline > component`` when layer sections exist without
``integration_framework``) and each layer section's integrations and options."""

from __future__ import annotations

from typing import Any

from flowc.compiler.errors import did_you_mean
from flowc.compiler.ir import FrameworkNode, Integration, IntegrationFramework, Layer
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import IDENT_RE
from flowc.compiler.passes.secrets import config_value
from flowc.compiler.schema import DEFAULT_LAYERS, layer_names

ORDER = 55

LAYER_OPTIONS = (
    "pass_integration_to_siblings",
    "update_peer_integrations",
    "config",
    "search_paths",
)


def _node(ctx: PassContext, layer: str, value: Any, path: tuple[Any, ...]) -> FrameworkNode:
    if value is None:
        return FrameworkNode(layer)
    if not isinstance(value, dict):
        ctx.errors.error(
            ctx.loc(*path), f"layer '{layer}' must map to its child layers or be empty"
        )
        return FrameworkNode(layer)
    return FrameworkNode(layer, tuple(_node(ctx, k, v, (*path, k)) for k, v in value.items()))


def run(ctx: PassContext) -> None:
    m = ctx.model
    tree = m.integration_framework
    explicit = tree is not None
    if tree is None:
        if not m.layers:
            return
        tree = DEFAULT_LAYERS
    if len(tree) != 1:
        if not tree:
            ctx.errors.error(ctx.loc("integration_framework"), "integration_framework is empty")
            return
        second = list(tree)[1]
        ctx.errors.error(
            ctx.key_loc("integration_framework", second),
            f"integration_framework has more than one root ({', '.join(tree)})",
            "nest the layers under a single root",
        )
        return
    root_name = next(iter(tree))
    root = _node(ctx, root_name, tree[root_name], ("integration_framework", root_name))
    below = _children_of(root)
    layers = []
    for lname in layer_names(tree):
        section = m.layers.get(lname)
        if section is None:
            layers.append(Layer(name=lname))
            continue
        layer = _section(ctx, lname, section, (lname,), below)
        if layer is not None:
            layers.append(layer)
    config = config_value(ctx, m.config, ("config",), "the integration config")
    ctx.integrations = IntegrationFramework(
        root=root,
        layers=tuple(layers),
        config=tuple(config.items()),
        search_paths=tuple(m.search_paths),
        explicit=explicit,
        loc=ctx.key_loc("integration_framework") if explicit else None,
    )


def _children_of(root: FrameworkNode) -> dict[str, list[str]]:
    """Layer name -> the layers directly below it (union over every place it occurs)."""
    out: dict[str, list[str]] = {}

    def walk(n: FrameworkNode) -> None:
        kids = out.setdefault(n.layer, [])
        for c in n.children:
            if c.layer not in kids:
                kids.append(c.layer)
            walk(c)

    walk(root)
    return out


def _section(
    ctx: PassContext,
    lname: str,
    section: Any,
    path: tuple[Any, ...],
    below: dict[str, list[str]],
) -> Layer | None:
    """A layer section at ``path``: integrations (short ``key: Class`` or long ``key: {class,
    config, <layer below>: {...}}``) and the options (``config``, ``search_paths``, and
    ``pass_integration_to_siblings``/``update_peer_integrations`` written in the section or, as
    in lolpop, inside its ``config``)."""
    where = ".".join(str(p) for p in path)
    if not isinstance(section, dict):
        ctx.errors.error(ctx.loc(*path), f"layer section '{where}' must be a mapping")
        return None
    integrations, opts = [], {}
    for key, value in section.items():
        if key in LAYER_OPTIONS:
            opts[key] = value
            continue
        ipath = (*path, key)
        if not IDENT_RE.match(key) or key.startswith("_"):
            ctx.errors.error(
                ctx.key_loc(*ipath),
                f"invalid integration name '{key}'",
                "an integration becomes an attribute: use letters, digits and '_', not starting "
                "with '_'",
            )
            continue
        if isinstance(value, str):
            integrations.append(Integration(key, value, (), ctx.key_loc(*ipath)))
            continue
        if not (
            isinstance(value, dict)
            and isinstance(value.get("class"), str)
            and isinstance(value.get("config", {}), dict)
        ):
            ctx.errors.error(
                ctx.loc(*ipath),
                f"integration '{where}.{key}' must be a class reference string or "
                "{class: ..., config: {...}}",
                f"its own layers below '{lname}' may be added too: "
                + (", ".join(below.get(lname, [])) or "none"),
            )
            continue
        nested = []
        for sub, sub_value in value.items():
            if sub in ("class", "config"):
                continue
            if sub not in below.get(lname, []):
                allowed = ["class", "config", *below.get(lname, [])]
                ctx.errors.error(
                    ctx.key_loc(*ipath, sub),
                    f"unknown key '{sub}' in integration '{where}.{key}': not a layer below "
                    f"'{lname}'",
                    did_you_mean(sub, allowed) or f"allowed keys: {', '.join(allowed)}",
                )
                continue
            layer = _section(ctx, sub, sub_value, (*ipath, sub), below)
            if layer is not None:
                nested.append(layer)
        cfg = config_value(
            ctx, value.get("config", {}), (*ipath, "config"), f"integration '{where}.{key}'"
        )
        integrations.append(
            Integration(
                key, value["class"], tuple(cfg.items()), ctx.key_loc(*ipath), layers=tuple(nested)
            )
        )
    cfg = opts.get("config", {})
    if not isinstance(cfg, dict):
        ctx.errors.error(ctx.loc(*path, "config"), f"'{where}.config' must be a mapping")
        cfg = {}
    bools: dict[str, bool | None] = {}
    for b in ("pass_integration_to_siblings", "update_peer_integrations"):
        if b in opts:
            value, bpath = opts[b], (*path, b)
        elif b in cfg:
            value, bpath = cfg[b], (*path, "config", b)
        else:
            value, bpath = None, None
        if bpath is not None and not isinstance(value, bool):
            ctx.errors.error(ctx.loc(*bpath), f"'{where}.{b}' must be true or false")
            value = None
        bools[b] = value
    cfg = {k: v for k, v in cfg.items() if k not in bools}
    sp = opts.get("search_paths", [])
    if not (isinstance(sp, list) and all(isinstance(s, str) for s in sp)):
        ctx.errors.error(
            ctx.loc(*path, "search_paths"), f"'{where}.search_paths' must be a list of strings"
        )
        sp = []
    cfg = config_value(ctx, cfg, (*path, "config"), f"layer '{where}'")
    return Layer(
        name=lname,
        integrations=tuple(integrations),
        config=tuple(cfg.items()),
        pass_integration_to_siblings=bools["pass_integration_to_siblings"] is not False,
        update_peer_integrations=bools["update_peer_integrations"],
        search_paths=tuple(sp),
        loc=ctx.key_loc(*path),
    )
