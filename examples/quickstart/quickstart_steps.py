"""Step functions of the quickstart flow: plain Python, no flowc imports (stdlib only)."""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path: str) -> dict:
    """Read the sales CSV; a relative path that is not found from the current directory is
    looked up next to this file."""
    p = Path(path)
    if not p.is_absolute() and not p.exists() and (HERE / p.name).exists():
        p = HERE / p.name
    with open(p, newline="", encoding="utf-8") as fh:
        rows = [
            {**r, "units": int(r["units"]), "price": float(r["price"])} for r in csv.DictReader(fh)
        ]
    return {"rows": rows, "regions": sorted({r["region"] for r in rows}), "count": len(rows)}


def summarize(rows: list, region: str) -> dict:
    """Revenue and units of one region (one foreach instance per region)."""
    mine = [r for r in rows if r["region"] == region]
    return {
        "region": region,
        "units": sum(r["units"] for r in mine),
        "revenue": round(sum(r["units"] * r["price"] for r in mine), 2),
    }


def report(summaries: list, title: str, ctx) -> dict:
    """Write a Markdown report into the step's artifact folder; return its path and the total."""
    total = round(sum(s["revenue"] for s in summaries), 2)
    lines = [f"# {title}", "", "| region | units | revenue |", "|---|---:|---:|"]
    lines += [f"| {s['region']} | {s['units']} | {s['revenue']:.2f} |" for s in summaries]
    lines += ["", f"Total revenue: {total:.2f} (run {ctx.run_id})", ""]
    out = ctx.artifact_path("report.md")
    out.write_text("\n".join(lines), encoding="utf-8")
    ctx.logger.info("wrote %s", out)
    print("\n".join(lines))
    return {"path": str(out), "total": total}
