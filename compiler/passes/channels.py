"""Pass 40: streaming channels (pypz): declared channels, producers/consumers from the steps'
``produces``/``consumes``; unknown channels and channels consumed but never produced are errors."""

from __future__ import annotations

from flowc.compiler.errors import FlowcError, did_you_mean
from flowc.compiler.expr import parse_template
from flowc.compiler.ir import Channel
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import IDENT_RE

ORDER = 40


def run(ctx: PassContext) -> None:
    producers: dict[str, set[str]] = {c: set() for c in ctx.model.channels}
    consumers: dict[str, set[str]] = {c: set() for c in ctx.model.channels}
    first_use: dict[str, tuple] = {}
    for sname, m in ctx.model.steps.items():
        for field, table in (("produces", producers), ("consumes", consumers)):
            for i, ch in enumerate(getattr(m, field)):
                path = ("steps", sname, field, i)
                if ch not in table:
                    ctx.errors.error(
                        ctx.loc(*path),
                        f"unknown channel '{ch}' in step '{sname}'",
                        did_you_mean(ch, ctx.model.channels) or "declare it under 'channels:'",
                    )
                    continue
                table[ch].add(sname)
                if field == "consumes":
                    first_use.setdefault(ch, path)
    for name, c in ctx.model.channels.items():
        path = ("channels", name)
        if not IDENT_RE.match(name):
            ctx.errors.error(ctx.key_loc(*path), f"invalid channel name '{name}'")
        if consumers[name] and not producers[name]:
            ctx.errors.error(
                ctx.loc(*first_use[name]),
                f"channel '{name}' is consumed by {', '.join(sorted(consumers[name]))} "
                "but never produced",
                "add 'produces: [" + name + "]' to an operator step",
            )
        location = None
        if c.location is not None:
            try:
                location = parse_template(c.location, ctx.locate((*path, "location")))
            except FlowcError as e:
                ctx.errors.extend(e)
        ctx.channels[name] = Channel(
            name=name,
            schema=c.schema_,
            transport=c.transport,
            location=location,
            producers=tuple(sorted(producers[name])),
            consumers=tuple(sorted(consumers[name])),
            loc=ctx.key_loc(*path),
        )
