"""Pass 52: stack components and plugin types checked against their registries.

After pass 50 (``stack``) built the active stack, the custom ``components:`` and ``plugins:``:

- every ``components:`` entry is loaded (``module:Class`` or ``path/to/file.py:Class``, a path
  relative to the flow file) and registered under its key, after :mod:`flowc.compiler.trust`
  accepted where it comes from; with imports off it is only checked in its source, and a stack
  using it is not built;
- every component of the active stack is resolved by ``(kind, type)`` through
  :mod:`flowc.runtime.stack`'s registry, built with its settings and ``validate()``-d; a
  problem is a located error naming the stack, the component key and the setting;
- the orchestrator's ``resources`` fill the step resources nobody set (step > ``defaults:`` >
  stack);
- a ``container_registry`` prefixes every step image (``trainer:1`` -> ``gcr.io/acme/trainer:1``);
- every enabled plugin's ``type`` must be registered (looked up by name; only built-in plugin
  classes, whose modules import their libraries lazily, are imported to check ``config`` keys
  against their constructor; a disabled plugin is not checked).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

from flowc.compiler import trust
from flowc.compiler.errors import FlowcError, Loc, did_you_mean
from flowc.compiler.ir import CustomComponent, Plugin
from flowc.compiler.passes import PassContext

ORDER = 52


def run(ctx: PassContext) -> None:
    # the runtime registries are imported only for flows that use them (cold start)
    if ctx.components or ctx.stack is not None:
        _check_stack(ctx)
    if ctx.plugins:
        _check_plugins(ctx)


def _check_stack(ctx: PassContext) -> None:
    from flowc.runtime.stack import (
        ComponentError,
        ContainerRegistry,
        Orchestrator,
        get_component_registry,
    )

    registry = get_component_registry()
    base_dir = Path(ctx.file).parent
    custom_failed: set[str] = set()
    for comp in ctx.components:
        try:
            if not _trusted_component(ctx, comp):
                custom_failed.add(comp.name)  # checked statically (or reported): not built
                continue
            registry.load(comp.class_ref, comp.name, kind=comp.kind, base_dir=base_dir)
        except ComponentError as e:
            custom_failed.add(comp.name)
            where = "kind" if e.key == "kind" else "class"
            ctx.errors.error(
                ctx.loc("components", comp.name, where),
                f"component '{comp.name}': {e.message}",
                e.hint,
            )

    stack = ctx.stack
    built: dict[str, object] = {}
    if stack is not None:
        for cfg in stack.components:
            if cfg.type in custom_failed:
                continue  # already reported where it is declared
            try:
                built[cfg.kind] = registry.create(cfg.kind, cfg.type, dict(cfg.settings))
            except ComponentError as e:
                ctx.errors.error(
                    _setting_loc(ctx, stack.name, cfg.kind, e.key, cfg.loc),
                    f"stack '{stack.name}' {cfg.kind} ({cfg.type}): {e.message}",
                    e.hint,
                )

    ctx.stack_components = built
    orch = built.get("orchestrator")
    if isinstance(orch, Orchestrator):
        _apply_default_resources(ctx, orch.default_resources())

    reg = built.get("container_registry")
    if isinstance(reg, ContainerRegistry):
        for name, step in list(ctx.steps.items()):
            if step.image:
                image = reg.image_uri(step.image)
                if image != step.image:
                    ctx.steps[name] = dataclasses.replace(step, image=image)


def _trusted_component(ctx: PassContext, comp: CustomComponent) -> bool:
    """Apply the trust rule to a ``components:`` class before anything of it runs: a file or
    module outside the project is an error. True when the class may be imported; with imports
    off it is checked in its source instead (file or module exists, defines the class)."""
    from flowc.runtime.stack import split_ref

    if comp.class_ref.startswith("zenml:"):  # an installed package's class (or a located error)
        return True
    target, cls_name = split_ref(comp.class_ref)
    what = f"component '{comp.name}'"
    loc = ctx.loc("components", comp.name, "class")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    try:
        if is_file:
            path = trust.check_file(target, ctx.file, what)
            if trust.import_allowed():
                return True
            if not path.is_file():
                ctx.errors.error(
                    loc,
                    f"{what}: no such file: {target}",
                    "a relative path is read from the flow file's folder",
                )
                return False
            module = trust.static_module(path, path.stem, what)
        else:
            if trust.import_allowed():
                trust.locate_module(target, ctx.file, what)
                return True
            try:
                module = trust.import_module(target, ctx.file, what)
            except ImportError as e:
                ctx.errors.error(
                    loc,
                    f"{what}: cannot import module '{target}': {e}",
                    "is the package installed, or its folder on PYTHONPATH?",
                )
                return False
    except FlowcError as e:
        ctx.errors.extend(trust.relocated(e, loc))
        return False
    if cls_name and not inspect.isclass(getattr(module, cls_name, None)):
        ctx.errors.error(loc, f"{what}: '{target}' has no class '{cls_name}'")
    return False


def _check_plugins(ctx: PassContext) -> None:
    from flowc.runtime.plugins import PluginError, get_plugin_registry

    plugins = get_plugin_registry()
    for p in ctx.plugins:
        if not p.enabled:
            continue  # may come from a package this machine does not have; never loaded
        try:
            entry = plugins.entry(p.type)
        except PluginError as e:
            ctx.errors.error(
                ctx.loc("plugins", p.name, "type"), f"plugin '{p.name}': {e.message}", e.hint
            )
            continue
        if entry.source == "builtin":  # their modules import their libraries lazily: cheap
            _check_plugin_config(ctx, p, plugins.get(p.type))


def _apply_default_resources(ctx: PassContext, defaults: dict[str, object]) -> None:
    """Fill each step's resource keys that neither the step nor the flow's ``defaults:`` set
    (precedence: step > defaults > stack > none)."""
    if not defaults:
        return
    flow_set = set(ctx.defaults.resources.model_fields_set) if ctx.defaults.resources else set()
    for name, step in list(ctx.steps.items()):
        model = ctx.step_models.get(name) or ctx.function_steps.get(name)
        step_res = getattr(model, "resources", None)
        written = flow_set | (set(step_res.model_fields_set) if step_res else set())
        fill = {
            k: v
            for k, v in defaults.items()
            if k not in written and getattr(step.resources, k) is None
        }
        if fill:
            resources = dataclasses.replace(step.resources, **fill)
            ctx.steps[name] = dataclasses.replace(step, resources=resources)


def _check_plugin_config(ctx: PassContext, plugin: Plugin, cls: type) -> None:
    """Config keys against the plugin class's constructor (unknown / missing keys)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(x.kind is inspect.Parameter.VAR_KEYWORD for x in params.values()):
        return
    names = [n for n, x in params.items() if x.kind is not inspect.Parameter.VAR_POSITIONAL]
    config = dict(plugin.config)
    for key in config:
        if key not in params:
            ctx.errors.error(
                ctx.key_loc("plugins", plugin.name, "config", key),
                f"plugin '{plugin.name}' ({plugin.type}): unknown config key '{key}'",
                did_you_mean(key, names) or f"config keys: {', '.join(names)}",
            )
    for n, x in params.items():
        if x.default is inspect.Parameter.empty and x.kind is not x.VAR_POSITIONAL:
            if n not in config:
                ctx.errors.error(
                    ctx.key_loc("plugins", plugin.name),
                    f"plugin '{plugin.name}' ({plugin.type}): config needs '{n}'",
                )


def _setting_loc(
    ctx: PassContext, stack: str, kind: str, key: str | None, fallback: Loc | None
) -> Loc | None:
    path = ("stacks", stack, kind)
    if key and ctx.doc.has((*path, key)):
        return ctx.key_loc(*path, key)
    if ctx.doc.has(path):
        return ctx.key_loc(*path)
    return fallback
