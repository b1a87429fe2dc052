"""Pass 55: the integration framework (lolpop): the layer tree (single root; the default
``runner > component, pipeline > component`` when layer sections exist without
``integration_framework``) and each layer section's integrations and options."""

from __future__ import annotations

from typing import Any

from flowc.compiler.ir import FrameworkNode, Integration, IntegrationFramework, Layer
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import IDENT_RE, resolve_config
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
    layers = []
    for lname in layer_names(tree):
        section = m.layers.get(lname)
        path = (lname,)
        if section is None:
            layers.append(Layer(name=lname))
            continue
        if not isinstance(section, dict):
            ctx.errors.error(ctx.loc(*path), f"layer section '{lname}' must be a mapping")
            continue
        integrations, opts = [], {}
        for key, value in section.items():
            if key in LAYER_OPTIONS:
                opts[key] = value
                continue
            ipath = (*path, key)
            if not IDENT_RE.match(key):
                ctx.errors.error(ctx.key_loc(*ipath), f"invalid integration name '{key}'")
                continue
            if isinstance(value, str):
                integrations.append(Integration(key, value, (), ctx.key_loc(*ipath)))
            elif (
                isinstance(value, dict)
                and isinstance(value.get("class"), str)
                and set(value) <= {"class", "config"}
                and isinstance(value.get("config", {}), dict)
            ):
                cfg = resolve_config(ctx, value.get("config", {}), (*ipath, "config"), "config")
                integrations.append(
                    Integration(key, value["class"], tuple(cfg.items()), ctx.key_loc(*ipath))
                )
            else:
                ctx.errors.error(
                    ctx.loc(*ipath),
                    f"integration '{lname}.{key}' must be a class "
                    "reference string or {class: ..., config: {...}}",
                )
        bools = {}
        for b in ("pass_integration_to_siblings", "update_peer_integrations"):
            if b in opts and not isinstance(opts[b], bool):
                ctx.errors.error(ctx.loc(*path, b), f"'{lname}.{b}' must be true or false")
            bools[b] = opts.get(b)
        cfg = opts.get("config", {})
        if not isinstance(cfg, dict):
            ctx.errors.error(ctx.loc(*path, "config"), f"'{lname}.config' must be a mapping")
            cfg = {}
        sp = opts.get("search_paths", [])
        if not (isinstance(sp, list) and all(isinstance(s, str) for s in sp)):
            ctx.errors.error(
                ctx.loc(*path, "search_paths"), f"'{lname}.search_paths' must be a list of strings"
            )
            sp = []
        cfg = resolve_config(ctx, cfg, (*path, "config"), "config")
        layers.append(
            Layer(
                name=lname,
                integrations=tuple(integrations),
                config=tuple(cfg.items()),
                pass_integration_to_siblings=bools["pass_integration_to_siblings"] is not False,
                update_peer_integrations=bools["update_peer_integrations"],
                search_paths=tuple(sp),
                loc=ctx.key_loc(*path),
            )
        )
    config = resolve_config(ctx, m.config, ("config",), "config")
    ctx.integrations = IntegrationFramework(
        root=root,
        layers=tuple(layers),
        config=tuple(config.items()),
        search_paths=tuple(m.search_paths),
        explicit=explicit,
        loc=ctx.key_loc("integration_framework") if explicit else None,
    )
