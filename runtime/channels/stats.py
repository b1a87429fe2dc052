"""The sniffer's view of a local channel database: per-port counters (also bumped for kafka
ports), consumer-group progress, operator instance states, and their text rendering."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flowc.runtime.channels.avro import decode, parse_schema
from flowc.runtime.channels.local import _bump, _Tx, connect


def local_stats(db_path: str | os.PathLike[str]) -> dict[str, Any]:
    """What the sniffer shows: per port and replica counts, per group progress, instance states."""
    con = connect(db_path)
    try:
        ports = [
            {"step": s, "channel": c, "replica": r, "direction": d, "count": n}
            for s, c, r, d, n in con.execute(
                "SELECT step, channel, replica, direction, count FROM port_stats"
                " ORDER BY channel, direction DESC, step, replica"
            )
        ]
        produced = dict(con.execute("SELECT channel, count FROM produced ORDER BY channel"))
        groups = [
            {"channel": c, "consumer": g, "acked": n}
            for c, g, n in con.execute(
                "SELECT channel, consumer, acked FROM groups ORDER BY channel, consumer"
            )
        ]
        inflight = dict(
            ((c, g), n)
            for c, g, n in con.execute(
                "SELECT channel, consumer, count(*) FROM claims WHERE acked=0"
                " GROUP BY channel, consumer"
            )
        )
        for g in groups:
            g["in_flight"] = inflight.get((g["channel"], g["consumer"]), 0)
            g["lag"] = produced.get(g["channel"], 0) - g["acked"]
        instances = [
            {"step": s, "replica": r, "state": st, "error": e}
            for s, r, st, e in con.execute(
                "SELECT step, replica, state, error FROM instances ORDER BY step, replica"
            )
        ]
        return {"ports": ports, "produced": produced, "groups": groups, "instances": instances}
    finally:
        con.close()


def bump_port_stats(
    db_path: str | os.PathLike[str], step: str, counts: Mapping[tuple[str, str], int], replica: int
) -> None:
    """Add ``{(channel, "out"|"in"): n}`` to the sniffer's counters (used for kafka ports; the
    local transport counts inside its own transactions)."""
    counts = {k: n for k, n in counts.items() if n}
    if not counts:
        return
    con = connect(db_path)
    try:
        with _Tx(con):
            for (channel, direction), n in sorted(counts.items()):
                _bump(con, step, channel, replica, direction, n)
    finally:
        con.close()


def format_stats(stats: Mapping[str, Any], title: str = "") -> str:
    """The sniffer's text: per channel, records produced / consumed per port and replica, each
    consumer group's progress, then the state of every operator replica."""
    lines = [title] if title else []
    channels = sorted(
        {p["channel"] for p in stats["ports"]}
        | set(stats["produced"])
        | {g["channel"] for g in stats["groups"]}
    )
    for c in channels:
        lines.append(f"channel {c}: {stats['produced'].get(c, 0)} record(s) in the channel")
        for p in stats["ports"]:
            if p["channel"] == c:
                arrow = "produced" if p["direction"] == "out" else "consumed"
                who = f"{p['step']}[{p['replica']}]"
                lines.append(f"  {who:<24} {arrow:<9} {p['count']:>8}")
        for g in stats["groups"]:
            if g["channel"] == c:
                lines.append(
                    f"  group {g['consumer']}: acknowledged {g['acked']}, "
                    f"in flight {g['in_flight']}, lag {g['lag']}"
                )
    if stats["instances"]:
        states = ", ".join(f"{i['step']}[{i['replica']}] {i['state']}" for i in stats["instances"])
        lines.append(f"operators: {states}")
        for i in stats["instances"]:
            if i.get("error"):
                lines.append(f"  {i['step']}[{i['replica']}] error: {i['error']}")
    return "\n".join(lines)


def read_local(db_path: str | os.PathLike[str], channel: str, schema: Any) -> list[dict[str, Any]]:
    """Every record ever sent on ``channel`` (decoded), in order: for tests and debugging."""
    parsed = parse_schema(channel, schema)
    con = connect(db_path)
    try:
        return [
            decode(parsed, bytes(p))
            for (p,) in con.execute(
                "SELECT payload FROM records WHERE channel=? ORDER BY id", (channel,)
            )
        ]
    finally:
        con.close()
